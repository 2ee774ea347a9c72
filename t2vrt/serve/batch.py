"""`t2vrt batch`: a JSON-lines prompt file -> one video per line and OUTDIR/results.jsonl.

Every line is parsed and checked against the engine directory before any model loads; a bad line gets an
"invalid" record and the others go on. Records are keyed by the request (the prompt file, the line number and the
line's text), so another prompt file or a rerun with other flags never drops one. A line whose output exists is
skipped when an earlier record made exactly that video (same arguments), reported "exists" when something else did
(its record is kept; --overwrite renders over it). Videos reach their paths only when complete; one batch writes a
folder at a time (t2vrt.locks), and leftovers of killed writers are removed when the next one starts there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from t2vrt.engines.backends import LoadOptions
from t2vrt.errors import InputError, OutputError, T2VError
from t2vrt.jsonio import JSONError, loads
from t2vrt.serve.request import RequestChecker, VideoRequest, output_inside, parse_request

log = logging.getLogger(__name__)
RESULTS = "results.jsonl"
DONE = ("ok", "skipped")
MAX_LINE = 1 << 20  # bytes of one prompt line


@dataclass
class Line:
    """One line of the prompt file after checking: a task to render, one to skip, one whose output exists, or an
    invalid record. ``key`` names the request in results.jsonl."""

    line: int
    request: VideoRequest | None = None
    output: str | None = None
    error: str | None = None
    skip: dict | None = None  # the earlier record of a line that is already done
    key: str = ""
    prompts: str = ""
    exists: str | None = None  # why a conflicting output is left as it is

    def task(self) -> dict:
        """What a worker needs (plain data: it crosses process boundaries on Ray)."""
        return {"line": self.line, "key": self.key, "prompts": self.prompts, "request": asdict(self.request),
                "output": self.output}


def read_lines(path: str | Path) -> Iterator[tuple[int, str | None, str]]:
    """(1-based line number, text or None, why not) for each non-blank line that is not a # comment; a line that
    is not UTF-8 has text None and says where."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"prompt file {str(path)!r} does not exist; write one JSON object per line, e.g. "
                         f"{{\"prompt\": \"a cat\"}}")
    try:
        f = path.open("rb")
    except OSError as e:
        from t2vrt.jsonio import cannot_read

        raise InputError(cannot_read(path, e)) from None
    with f:
        for n, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield n, None, (f"line {n} is not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                                "save the file as UTF-8")
                continue
            if text.strip() and not text.lstrip().startswith("#"):
                yield n, text, ""


def default_output(line: int, prompt: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40] or "video"
    return f"{line:05d}-{slug}.mp4"


def request_key(prompts: str, line: int, text: str) -> str:
    """The key of a request: its prompt file, line number and the line's text (a hash)."""
    return f"{prompts}:{line}:{hashlib.sha256(text.strip().encode()).hexdigest()[:12]}"


def check_outdir(outdir: Path) -> None:
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"output folder {str(outdir)!r} is a file; give a folder path with -o")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the output folder {str(outdir)!r}: {(e.strerror or str(e)).lower()}; "
                          "choose another with -o") from None
    if not os.access(outdir, os.W_OK):
        raise InputError(f"output folder {str(outdir)!r} is not writable; choose another with -o")
    remove_leftovers(outdir)


def remove_leftovers(outdir: Path) -> None:
    """Remove what killed writers left in ``outdir`` (``.NAME.partial-PID`` files of processes that are gone; a
    live writer's are left alone, so this is safe beside a running batch). ``check_outdir`` calls it: a batch when it
    starts, the service at start-up."""
    from t2vrt.runtime.media.paths import clean_partials

    for p in clean_partials(outdir):
        log.info("removed %s, left by a writer that was killed", p)


@contextlib.contextmanager
def writing(outdir: str | Path, what: str = "batch"):
    """Hold OUTDIR's writer lock: a second batch (or the service, where it takes it) is refused at once naming this
    process."""
    from t2vrt.locks import folder_lock

    outdir = Path(outdir)
    check_outdir(outdir)
    with folder_lock(outdir, f"output folder {outdir}", {"kind": what}):
        yield outdir


def size_defaults(checker: RequestChecker, defaults: VideoRequest) -> VideoRequest:
    """generate's size default, the model's native size, unless the engine directory's range excludes it: then the
    profile's opt size, said in one warning line."""
    m, p = checker.manifest, checker.manifest.profile
    native = m.model.sample_size * m.model.vae_scale
    changed = {}
    for name, rng in (("height", p.height), ("width", p.width)):
        if getattr(defaults, name) is None and not rng[0] <= native <= rng[2]:
            changed[name] = rng[1]
    if changed:
        log.warning("the model's native size %dx%d is outside this engine directory's range (height %s, width %s); "
                    "lines without height/width use the profile's opt size %dx%d", native, native, list(p.height),
                    list(p.width), changed.get("width", native), changed.get("height", native))
    return replace(defaults, **changed)


def plan(engine_dir: str | Path, prompts: str | Path, outdir: str | Path, defaults: VideoRequest = VideoRequest(),
         overwrite: bool = False) -> list[Line]:
    """Check every line (no model loads): parse, range checks against the manifest, output path inside ``outdir``,
    no two lines writing one file, and whether an earlier run already made it."""
    outdir = Path(outdir)
    check = RequestChecker(engine_dir)
    defaults = size_defaults(check, defaults)
    check_outdir(outdir)
    previous = Results(outdir, write=False)
    source = str(Path(prompts).resolve())
    lines, owner = [], {}
    for n, text, bad in read_lines(prompts):
        item = Line(n, key=request_key(source, n, text or f"\x00{bad}"), prompts=source)
        try:
            if text is None:
                raise InputError(bad)
            req = parse_request(_json(text), defaults)
            check(req)
            name = req.output or default_output(n, req.prompt)
            target = output_inside(outdir, name)
            if name in owner:
                raise InputError(f"output {name!r} is also line {owner[name]}'s; give each line its own \"output\"")
            owner[name] = n
            item.request, item.output = req, name
            item.skip, item.exists = _already_done(previous, req, name, target, overwrite)
        except T2VError as e:
            item.error = str(e)
        lines.append(item)
    return lines


def _json(text: str) -> object:
    try:
        return loads(text, "the line", max_bytes=MAX_LINE)
    except JSONError as e:
        raise InputError(f"{e}; write one object per line, e.g. {{\"prompt\": \"a cat\"}}") from None


def _already_done(previous: Results, req: VideoRequest, name: str, target: Path,
                  overwrite: bool) -> tuple[dict | None, str | None]:
    """(the earlier record, None) if ``target`` is this request's finished video; (None, why) if ``target`` exists
    otherwise; (None, None) if the line is to be rendered (nothing there, or --overwrite)."""
    if not (target.exists() or target.is_symlink()) or overwrite:
        return None, None
    record = previous.finished(name, req.fingerprint())
    if record is not None:
        return record, None
    maker = previous.maker(name)
    by = "not this batch"
    if maker:
        by = f"line {maker['line']} of {maker.get('prompts', 'an earlier prompt file')} with other arguments"
    return None, (f"output {name!r} already exists (made by {by}); kept as it is: pass --overwrite to render this "
                  "line over it, or give the line another \"output\"")


class Results:
    """OUTDIR/results.jsonl: one record per request key. Each record is appended (one write, flushed) as it
    arrives, so an interrupted batch keeps what it finished; ``compact`` then rewrites the file atomically with one
    record per key. A finished ("ok") record is never replaced by a record that is not; when a video is rendered
    over another request's, that record becomes "overwritten". ``outcome``: this run's status of each key."""

    def __init__(self, outdir: Path, write: bool = True):
        self.path = Path(outdir) / RESULTS
        self.records: dict[str, dict] = {}
        self.made: dict[str, str] = {}  # output -> the key of the record that made the video there now
        self.outcome: dict[str, str] = {}
        self.latest: dict[str, dict] = {}  # this run's record of each key, kept or not
        for record in load_records(self.path):
            self._merge(record)
        self.write = write

    def _merge(self, record: dict) -> bool:
        key = record["key"]
        old = self.records.get(key)
        if old is not None and old.get("status") == "ok" and record.get("status") != "ok":
            return False
        made = self.made.get(record.get("output"))
        if record.get("status") == "ok" and made not in (None, key) and self.records[made].get("status") in DONE:
            self.records[made] = self.records[made] | {"status": "overwritten", "by": key}
        if record.get("status") in DONE:
            self.made[record.get("output")] = key
        self.records[key] = record
        return True

    def add(self, record: dict) -> None:
        self.outcome[record["key"]] = record["status"]
        self.latest[record["key"]] = record
        if self._merge(record) and self.write:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def note(self, key: str, status: str) -> None:
        """This run's status of a line that writes no record (skipped, exists)."""
        self.outcome[key] = status

    def maker(self, output: str) -> dict | None:
        """The record of the request whose video is at ``output`` now, if any."""
        key = self.made.get(output)
        return self.records[key] if key is not None and self.records[key].get("status") in DONE else None

    def finished(self, output: str, fingerprint: str) -> dict | None:
        record = self.maker(output)
        return record if record is not None and record.get("fingerprint") == fingerprint else None

    def compact(self) -> None:
        from t2vrt.runtime.media.paths import write_text_atomic

        def where(r: dict) -> tuple:
            return str(r.get("prompts", "")), int(r.get("line", 0)), r["key"]

        order = sorted(self.records.values(), key=where)
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in order))


def load_records(path: Path) -> Iterator[dict]:
    """The records of a results.jsonl in file order (each through the capped reader); a record of an older version
    (no key) is keyed by its line number."""
    from t2vrt.jsonio import read_bytes

    if not path.is_file():
        return
    try:
        data = read_bytes(path, max_bytes=1 << 30)
    except (OSError, JSONError) as e:
        raise InputError(f"{path} cannot be read ({e}); move it away to start a new record") from None
    for raw in data.splitlines():
        try:
            r = loads(raw, "a record", max_bytes=MAX_LINE)
            r.setdefault("key", f"line:{int(r['line'])}")
            yield r
        except (JSONError, ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring an unreadable record in %s: %.80r", path, raw)


def load_results(outdir: str | Path) -> dict[str, dict]:
    """Key -> record of OUTDIR/results.jsonl."""
    return Results(Path(outdir), write=False).records


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
        record = {"key": task.get("key", f"line:{task['line']}"), "prompts": task.get("prompts", ""),
                  "line": task["line"], "prompt": req.prompt, "output": task["output"],
                  "fingerprint": req.fingerprint()}
        try:
            started = time.time()
            target = output_inside(self.outdir, task["output"])  # again: a symlink made since the plan cannot lead out
            done = render(self.pipe, self.clock, req, target, self.fps)
            return record | {"status": "ok", "seed": done["seed"], "seconds": done["seconds"], "worker": self.worker,
                             "started": round(started, 3), "finished": round(time.time(), 3)}
        except T2VError as e:
            return record | {"status": "failed", "seed": req.seed, "error": str(e), "worker": self.worker}
        except Exception as e:  # a backend failure: one line with its type, never a traceback in the results
            first = (str(e).strip().splitlines() or [""])[0][:300]
            return record | {"status": "failed", "seed": req.seed, "error": f"{type(e).__name__}: {first}",
                             "worker": self.worker}


def line_records(lines: Iterable[Line], results: Results) -> None:
    """Record the lines that need no rendering: invalid ones (a record), skipped and existing ones (this run's
    status only: their earlier record stays as it is)."""
    for item in lines:
        if item.error is not None:
            results.add({"key": item.key, "prompts": item.prompts, "line": item.line, "status": "invalid",
                         "error": item.error})
        elif item.skip is not None:
            results.note(item.key, "skipped")
        elif item.exists is not None:
            results.note(item.key, "exists")


def to_render(lines: Iterable[Line]) -> list[Line]:
    return [item for item in lines if item.error is None and item.skip is None and item.exists is None]


def run_local(engine_dir: str | Path, lines: list[Line], outdir: str | Path, fps: float = 8.0,
              options: LoadOptions | str | None = None,
              precision: str | None = None, on_record: Callable[[dict], None] | None = None) -> Results:
    """Render the lines to do in this process, one Pipeline loaded once, with a progress bar and ETA."""
    from tqdm.auto import tqdm

    results = Results(Path(outdir))
    line_records(lines, results)
    todo = to_render(lines)
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
    """This run's count of each status over ``lines``."""
    counts: dict[str, int] = {}
    for item in lines:
        status = results.outcome.get(item.key, "missing")
        counts[status] = counts.get(status, 0) + 1
    return counts


def messages(results: Results, lines: list[Line]) -> Iterator[tuple[int, str]]:
    """(line, one line of text) for each line this run did not make: failed, and outputs that exist."""
    for item in lines:
        status = results.outcome.get(item.key)
        if status == "failed":
            yield item.line, f"failed: {results.latest[item.key].get('error')}"
        elif status == "exists":
            yield item.line, f"exists: {item.exists}"
