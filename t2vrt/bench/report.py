"""Frame parity between the two pipelines, the summary of measured runs, the JSON and the table for people."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from t2vrt.bench.measure import spread

SCHEMA = "t2vrt-bench/1"
FRAME_TOL = 1 / 255
# (key in a run's metrics, label in the table, unit scale, unit)
ROWS = (
    ("total_s", "end to end", 1.0, "s"),
    ("text_encoder_s", "text encoder", 1e3, "ms"),
    ("unet_per_step_s", "UNet per step", 1.0, "s"),
    ("glue_per_step_s", "loop glue per step (scheduler + guidance)", 1e3, "ms"),
    ("vae_per_frame_s", "VAE decode per frame", 1e3, "ms"),
    ("outside_engines_pct", "outside model calls, % of total", 1.0, "%"),
    ("peak_rss_mb", "peak RSS of the process (both pipelines loaded)", 1.0, "MB"),
    ("peak_rss_growth_mb", "peak RSS above the RSS at the run's start", 1.0, "MB"),
    ("gpu_peak_used_mb", "peak GPU memory used (device-wide, as the driver reports it)", 1.0, "MB"),
)


def compare_frames(ours: np.ndarray, ref: np.ndarray, tol: float = FRAME_TOL, ours_latents=None,
                   ref_latents=None) -> dict:
    """Both pipelines' float frames in [0, 1]; ok when the shapes agree, every value is within ``tol`` and no frame
    of ours holds a NaN. With the quality numbers of bench.quality (PSNR, SSIM, the final latents' relative L2,
    NaN and black frames).

    The saturated fraction says how much of the reference is clamped at 0 or 1, where a comparison cannot fail.
    """
    from t2vrt.bench.quality import quality

    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        return {"ok": False, "tolerance": tol, "reason": f"shapes differ: ours {ours.shape}, diffusers {ref.shape}"}
    d = np.abs(ours - ref)
    q = quality(ours, ref, ours_latents, ref_latents)
    return {
        **q,
        "ok": bool(d.max() <= tol) and q["nan_frames"] == 0,
        "tolerance": tol,
        "max_abs": float(d.max()),
        "mean_abs": float(d.mean()),
        "p999_abs": float(np.quantile(d, 0.999)),
        "saturated_fraction": float(((ref <= 0) | (ref >= 1)).mean()),
        "reference_std": float(ref.std()),
    }


def merge_parity(checks: list[dict]) -> dict:
    """The worst of the per-pair checks."""
    if not checks:
        return {}
    worst = max(checks, key=lambda c: c.get("max_abs", float("inf")))
    return {**worst, "ok": all(c["ok"] for c in checks), "pairs": len(checks)}


def summarize(runs: list[dict]) -> dict:
    keys = [k for k, *_ in ROWS if runs and k in runs[0]] + ["unet_s", "vae_decode_s", "outside_engines_s"]
    return {k: spread([r[k] for r in runs]) for k in keys if runs and k in runs[0]}


def ratios(ours: list[dict], ref: list[dict]) -> dict:
    """diffusers time / our time, pair by pair (runs alternated), for the end to end and the model stages."""
    out = {}
    for key in ("total_s", "unet_per_step_s", "text_encoder_s", "vae_per_frame_s"):
        pairs = [b[key] / a[key] for a, b in zip(ours, ref) if a[key] > 0]
        if pairs:
            out[key] = {"pairs": pairs, **spread(pairs)}
    return out


def result(machine: dict, config: dict, request: dict, ours: list[dict], ref: list[dict], parity: dict,
           extra: dict | None = None) -> dict:
    """``extra``: per pipeline name, what is not per measured run (the RSS its loading added, its warm-up runs)."""
    extra = extra or {}
    return {
        "schema": SCHEMA,
        "machine": machine,
        "config": config,
        "request": request,
        "ours": {"runs": ours, "summary": summarize(ours), **extra.get("t2vrt", {})},
        "diffusers": {"runs": ref, "summary": summarize(ref), **extra.get("diffusers", {})} if ref else None,
        "speedup": ratios(ours, ref) if ref else None,
        "parity": parity or None,
    }


def write_json(data: dict, path: str | Path) -> Path:
    from t2vrt.runtime.media.paths import write_text_atomic

    return write_text_atomic(Path(path), json.dumps(data, indent=2))  # beside the target, then renamed


def _cell(s: dict | None, scale: float) -> str:
    if not s:
        return "-"
    m, lo, hi = (s[k] * scale for k in ("median", "min", "max"))
    digits = 0 if m >= 100 else 1 if m >= 10 else 2 if m >= 1 else 3
    return f"{m:.{digits}f} [{lo:.{digits}f}-{hi:.{digits}f}]"


def table(data: dict) -> str:
    """Median [min-max] per stage for each pipeline, as a markdown table; with two pipelines also the speed-up."""
    sides = data.get("sides") or _two_sides(data)
    pair = len(sides) == 2 and data["speedup"]
    head = " | ".join(s["name"] for s in sides)
    lines = [f"| stage | {head} |" + (" diffusers / t2vrt |" if pair else ""),
             "|---|" + "---|" * (len(sides) + bool(pair))]
    for key, label, scale, unit in ROWS:
        if not any(key in s["summary"] for s in sides):
            continue
        cells = " | ".join(_cell(s["summary"].get(key), scale) for s in sides)
        ratio = (data["speedup"] or {}).get(key) if pair else None
        speed = f" {_cell(ratio, 1.0) + 'x' if ratio else ''} |" if pair else ""
        lines.append(f"| {label} ({unit}) | {cells} |" + speed)
    return "\n".join(lines + memory_rows(data))


def _two_sides(data: dict) -> list[dict]:
    out = [{"name": "t2vrt", **data["ours"]}]
    return out + ([{"name": "diffusers", **data["diffusers"]}] if data["diffusers"] else [])


def headline(data: dict) -> str:
    """One row per pipeline: end to end, its speed against each diffusers pipeline, quality against the reference,
    and the UNet step's GFLOP/s against the matrix-product peak at its precision."""
    sides = data.get("sides") or []
    refs = [s["name"] for s in sides if s["kind"] == "diffusers"]
    ref = data["config"].get("reference")
    lines = ["| pipeline | end to end (s) | " + " | ".join(f"vs {r}" for r in refs)
             + f" | PSNR vs {ref} (dB) | SSIM | NaN / black frames | UNet step (s) | GFLOP/s | of peak |",
             "|---|---|" + "---|" * len(refs) + "---|---|---|---|---|---|"]
    for s in sides:
        ratios = [s["ratios"].get(r, {}).get("total_s") for r in refs]
        vs = " | ".join("1.00x" if r == s["name"] else f"{x['median']:.2f}x" if x else "-"
                        for r, x in zip(refs, ratios))
        q, e = s.get("quality") or {}, s.get("efficiency") or {}
        psnr = "-" if "psnr_db" not in q else f"{q['psnr_db']:.1f}"
        bad = f"{q['nan_frames']} / {q['black_frames']}" if "nan_frames" in q else "-"
        frac = f"{100 * e['fraction_of_peak']:.0f}%" if "fraction_of_peak" in e else "-"
        gflops = f"{e['achieved_gflops']:.0f}" if e else "-"
        ssim = f"{q['ssim']:.4f}" if "ssim" in q else "-"
        lines.append(f"| {s['name']} ({s['backend']}) | {_cell(s['summary']['total_s'], 1.0)} | {vs} | {psnr} | {ssim} "
                     f"| {bad} | {_cell(s['summary']['unet_per_step_s'], 1.0)} | {gflops} | {frac} |")
    f = data.get("flops")
    if f:
        peaks = ", ".join(f"{k} {v:.0f}" for k, v in f["matmul_peak_gflops"].items())
        lines.append(f"\nUNet step: {f['unet_step_gflop']:.1f} GFLOP ({f['counted_by']}); matrix-product peak "
                     f"GFLOP/s with {f['threads']} threads: {peaks} ({f['peak_by']})")
    return "\n".join(lines)


def memory_rows(data: dict) -> list[str]:
    """All pipelines share the process: what loading each added, and what its first (warm-up) run grew by."""
    sides = data.get("sides") or _two_sides(data)
    pad = " |" if len(sides) == 2 and data["speedup"] else ""
    rows = []
    if any("load_rss_mb" in s for s in sides):
        rows.append("| RSS added by loading (MB) | "
                    + " | ".join(f"{s['load_rss_mb']:.0f}" if "load_rss_mb" in s else "-" for s in sides) + " |" + pad)
    if all(s.get("warmup") for s in sides):
        rows.append("| first run: peak RSS above its start (MB) | "
                    + " | ".join(f"{s['warmup'][0]['peak_rss_growth_mb']:.0f}" for s in sides) + " |" + pad)
    return rows


def parity_line(p: dict | None) -> str:
    if not p:
        return "frames: not compared (no --diffusers)"
    if "max_abs" not in p:
        return f"frames: DIFFERENT ({p.get('reason')})"
    verdict = "same" if p["ok"] else "DIFFERENT"
    return (f"frames: {verdict} within {p['tolerance']:.4f} over {p['pairs']} pairs: max |diff| {p['max_abs']:.2e}, "
            f"mean {p['mean_abs']:.2e}, 99.9% {p['p999_abs']:.2e}; {100 * p['saturated_fraction']:.1f}% of reference "
            f"values clamped at 0 or 1\n" + quality_line("quality (worst pair)", p))


def quality_line(label: str, q: dict | None) -> str:
    """PSNR, SSIM, latent relative L2 and bad frames of one comparison, on one line."""
    if not q or "psnr_db" not in q:
        return f"{label}: not measured"
    lat = f", latents rel. L2 {q['latent_rel_l2']:.2e}" if "latent_rel_l2" in q else ""
    return (f"{label}: PSNR {q['psnr_db']:.1f} dB, SSIM {q['ssim']:.4f}{lat}, max |diff| {q['max_abs']:.2e}, mean "
            f"{q['mean_abs']:.2e}; NaN frames {q['nan_frames']}, black frames {q['black_frames']} (reference: "
            f"{q['reference_nan_frames']}, {q['reference_black_frames']})")
