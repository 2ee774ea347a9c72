"""`t2vrt batch`: a JSON-lines prompt file -> one video per line and OUTDIR/results.jsonl.

Every line is parsed and checked against the engine directory before any model loads; a bad line gets an
"invalid" record and the others go on. A rerun skips lines whose output exists and whose earlier record matches
(same arguments); videos reach their paths only when complete, so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from t2vrt.engines.backends import LoadOptions
from t2vrt.errors import InputError, T2VError
from t2vrt.serve.request import RequestChecker, VideoRequest, output_inside, parse_request

log = logging.getLogger(__name__)
RESULTS = "results.jsonl"
DONE = ("ok", "skipped")


@dataclass
class Line:
    """One line of the prompt file after checking: a task to render, one to skip, or an invalid record."""

    line: int
    request: VideoRequest | None = None
    output: str | None = None
    error: str | None = None
    skip: dict | None = None  # the earlier record of a line that is already done

    def task(self) -> dict:
        """What a worker needs (plain data: it crosses process boundaries on Ray)."""
        return {"line": self.line, "request": asdict(self.request), "output": self.output}


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) for each non-blank line that is not a # comment."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"prompt file {str(path)!r} does not exist; write one JSON object per line, e.g. "
                         f"{{\"prompt\": \"a cat\"}}")
    with path.open(encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if text.strip() and not text.lstrip().startswith("#"):
                yield n, text


def default_output(line: int, prompt: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40] or "video"
    return f"{line:05d}-{slug}.mp4"


def check_outdir(outdir: Path) -> None:
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"output folder {str(outdir)!r} is a file; give a folder path with -o")
    outdir.mkdir(parents=True, exist_ok=True)
    if not os.access(outdir, os.W_OK):
        raise InputError(f"output folder {str(outdir)!r} is not writable; choose another with -o")


def plan(engine_dir: str | Path, prompts: str | Path, outdir: str | Path,
         defaults: VideoRequest = VideoRequest()) -> list[Line]:
    """Check every line (no model loads): parse, range checks against the manifest, output path inside ``outdir``,
    no two lines writing one file, and whether an earlier run already made it."""
    outdir = Path(outdir)
    check = RequestChecker(engine_dir)
    check_outdir(outdir)
    previous = load_results(outdir)
    lines, owner = [], {}
    for n, text in read_lines(prompts):
        item = Line(n)
        try:
            req = parse_request(_json(text), defaults)
            check(req)
            name = req.output or default_output(n, req.prompt)
            target = output_inside(outdir, name)
            if name in owner:
                raise InputError(f"output {name!r} is also line {owner[name]}'s; give each line its own \"output\"")
            owner[name] = n
            item.request, item.output = req, name
            item.skip = _already_done(previous.get(n), req, name, target)
        except T2VError as e:
            item.error = str(e)
        lines.append(item)
    return lines


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e.msg} at column {e.colno}); write one object per line, e.g. "
                         f"{{\"prompt\": \"a cat\"}}") from None


def _already_done(record: dict | None, req: VideoRequest, name: str, target: Path) -> dict | None:
    """The earlier record if ``target`` is this line's finished video; InputError if ``target`` exists otherwise."""
    if not target.exists():
        return None
    finished = record and record.get("status") in DONE
    if finished and record.get("output") == name and record.get("fingerprint") == req.fingerprint():
        return record
    raise InputError(f"output {name!r} already exists and {RESULTS} has no finished record of it for these arguments; "
                     "move it away or give this line another \"output\" (nothing is overwritten)")


class Results:
    """OUTDIR/results.jsonl. Each record is appended (one write, flushed) as it arrives, so an interrupted batch keeps
    what it finished; ``compact`` then rewrites the file atomically with one record per line, sorted (the last record
    of a line wins, as ``load_results`` reads it)."""

    def __init__(self, outdir: Path):
        self.path = Path(outdir) / RESULTS
        self.records = load_results(outdir)

    def add(self, record: dict) -> None:
        self.records[record["line"]] = record
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def compact(self) -> None:
        tmp = self.path.with_name(f".{RESULTS}.partial-{os.getpid()}")
        tmp.write_text("".join(json.dumps(self.records[n]) + "\n" for n in sorted(self.records)), encoding="utf-8")
        os.replace(tmp, self.path)


def load_results(outdir: str | Path) -> dict[int, dict]:
    path = Path(outdir) / RESULTS
    records = {}
    if path.is_file():
        for text in path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(text)
                records[int(r["line"])] = r
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring an unreadable record in %s: %.80s", path, text)
    return records


class Renderer:
    """One loaded Pipeline rendering tasks into ``outdir``; the same object runs locally and inside a Ray actor.
    ``options``: how the model loads (LoadOptions, or a backend name); ``precision`` replaces its precision."""

    def __init__(self, engine_dir: str | Path, outdir: str | Path, fps: float = 8.0,
                 options: LoadOptions | str | None = None,
                 precision: str | None = None):
        from t2vrt import Pipeline
        from t2vrt.serve.render import StageClock

        self.pipe = Pipeline.load(engine_dir, LoadOptions.of(options, precision=precision))
        self.clock = StageClock(self.pipe)
        self.outdir, self.fps = Path(outdir), fps
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        try:  # the seeded noise uses torch when it is installed: import it now, not inside the first video's time
            import torch  # noqa: F401
        except ImportError:
            pass

    def __call__(self, task: dict) -> dict:
        from t2vrt.serve.render import render

        req = VideoRequest(**task["request"])
        record = {"line": task["line"], "prompt": req.prompt, "output": task["output"],
                  "fingerprint": req.fingerprint()}
        try:
            started = time.time()
            done = render(self.pipe, self.clock, req, self.outdir / task["output"], self.fps)
            return record | {"status": "ok", "seed": done["seed"], "seconds": done["seconds"], "worker": self.worker,
                             "started": round(started, 3), "finished": round(time.time(), 3)}
        except T2VError as e:
            return record | {"status": "failed", "seed": req.seed, "error": str(e), "worker": self.worker}
        except Exception as e:  # a backend failure: one line with its type, never a traceback in the results
            first = (str(e).strip().splitlines() or [""])[0][:300]
            return record | {"status": "failed", "seed": req.seed, "error": f"{type(e).__name__}: {first}",
                             "worker": self.worker}


def line_records(lines: Iterable[Line]) -> Iterator[dict]:
    """Records of the lines that need no rendering: invalid ones, and skipped ones (their earlier record)."""
    for item in lines:
        if item.error is not None:
            yield {"line": item.line, "status": "invalid", "error": item.error}
        elif item.skip is not None:
            yield item.skip | {"status": "skipped"}


def run_local(engine_dir: str | Path, lines: list[Line], outdir: str | Path, fps: float = 8.0,
              options: LoadOptions | str | None = None,
              precision: str | None = None, on_record: Callable[[dict], None] | None = None) -> Results:
    """Render the lines to do in this process, one Pipeline loaded once, with a progress bar and ETA."""
    from tqdm.auto import tqdm

    results = Results(Path(outdir))
    for record in line_records(lines):
        results.add(record)
    todo = [item for item in lines if item.error is None and item.skip is None]
    if not todo:
        results.compact()
        return results
    renderer = Renderer(engine_dir, outdir, fps, options, precision)
    try:
        for item in tqdm(todo, desc="batch", unit="video"):
            record = renderer(item.task())
            results.add(record)
            if on_record:
                on_record(record)
    finally:
        results.compact()
    return results


def summary(results: Results, lines: list[Line]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in lines:
        status = results.records.get(item.line, {}).get("status", "missing")
        counts[status] = counts.get(status, 0) + 1
    return counts
