"""Batch runs: photos x presets x seeds, one generation per job, resumable after a crash or Ctrl-C.

Every finished job is saved through the store as an ordinary run (so it shows in the app's
history, `meta["kind"] == "batch"`), and one JSON line is appended to the manifest
`batch.jsonl` in the output folder. The manifest is the batch's memory: running the same
batch again skips jobs whose last line says "done" (and whose files still exist) and
runs the rest, failed or never finished, again.

Manifest format (UTF-8 JSON Lines, append-only; each line written, flushed and fsynced
on its own; a torn last line from a crash is ignored when reading):

- `{"type": "session", "event": "start" | "end", "time": ISO-8601, ...counts and settings}`
  bracket each invocation (for people reading the file; resuming ignores them).
- `{"type": "job", "key": ..., "status": "done" | "failed", "photo": absolute path,
  "photo_sha256": ..., "preset": id, "seed_requested": -1 or n, "seed": seed sent or null,
  "prompt": user's words, "request_id": ..., "run": run id, "outputs": [paths relative
  to the manifest's folder], "request": fields sent, "error": PortraitError.as_dict() or
  null, "attempt": n, "time": ISO-8601, "wall_seconds": s}`, one per finished attempt.

A job's key is its photo (absolute path + content hash), preset id, requested seed and
user prompt: change any of them and it is a new job. The last line for a key wins.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InvalidInputError, PhotoError, PortraitError
from .images import PreparedPhoto
from .params import PortraitRequest
from .presets import Preset, compose_prompt
from .sheet import SheetCell, compose_sheet_image, restore_error

if TYPE_CHECKING:
    from .studio import Studio

MANIFEST_NAME = "batch.jsonl"
SHEETS_DIR = "sheets"
KIND = "batch"
DEFAULT_CONCURRENCY = 2  # the provider's QPS limit is low; two calls in flight stay under it
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# How often the main thread wakes to refresh the progress line while jobs run.
TICK_SECONDS = 0.25


@dataclass(frozen=True)
class BatchJob:
    """One generation of a batch: a photo, a style, a seed (-1 = random) and the user's words."""

    photo: Path
    photo_sha256: str
    preset: Preset
    seed: int
    prompt: str = ""

    @property
    def key(self) -> str:
        """The job's identity across invocations: photo path + content hash, preset, seed, prompt."""
        words = hashlib.sha256(self.prompt.encode("utf-8")).hexdigest()[:12] if self.prompt else "-"
        return f"{self.photo}#{self.photo_sha256[:16]}|{self.preset.id}|seed={self.seed}|prompt={words}"

    def request(self, image_input: str) -> PortraitRequest:
        """The request this job sends: the preset's prompt and defaults, the job's seed."""
        return PortraitRequest(
            image_input=image_input,
            prompt=compose_prompt(self.preset, self.prompt),
            seed=self.seed,
            **dict(self.preset.defaults),
        )


@dataclass(frozen=True)
class BatchProgress:
    """A snapshot for the progress line: counts over the whole batch, ETA for what is left."""

    total: int
    done: int
    failed: int
    running: int
    elapsed: float
    eta: float | None
    stopping: bool = False


@dataclass
class BatchSummary:
    """What one invocation did. `done` counts every job done so far, earlier invocations included."""

    total: int
    done: int
    skipped: int
    ran: int
    failures: list[tuple[BatchJob, PortraitError]]
    interrupted: bool
    abandoned: int
    manifest: Path
    sheets: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Jobs that failed in this invocation (they are retried by the next one)."""
        return len(self.failures)


# -- planning -----------------------------------------------------------------------------


def collect_photos(paths: Iterable[str | Path]) -> list[Path]:
    """Photo files from files and folders (a folder's image files, not its subfolders), in order, once each."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise PhotoError(
                "找不到照片文件或文件夹。", "The photo file or folder was not found.", detail=str(raw)
            )
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise PhotoError("没有找到照片（支持 JPEG、PNG、WebP 等）。", "No photos found (JPEG, PNG, WebP…).")
    return unique


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_seeds(text: str) -> list[int]:
    """ "1,2,3" -> [1, 2, 3] (duplicates dropped; each checked like the API's seed field)."""
    seeds = [PortraitRequest(seed=part.strip()).seed for part in text.split(",") if part.strip()]
    if not seeds:
        raise InvalidInputError.field(
            "seeds", ("逗号分隔的种子，如 1,2", "comma-separated seeds, e.g. 1,2"), text
        )
    return list(dict.fromkeys(seeds))


def plan_jobs(
    photos: Sequence[Path], presets: Sequence[Preset], seeds: Sequence[int], prompt: str = ""
) -> list[BatchJob]:
    """Every (photo, preset, seed) job, photo by photo, in the order given."""
    jobs = []
    for photo in photos:
        photo = Path(photo).resolve()
        try:
            sha = file_sha256(photo)
        except OSError:
            raise PhotoError(
                "无法读取照片文件。", "The photo file cannot be read.", detail=photo.name
            ) from None
        jobs += [BatchJob(photo, sha, preset, seed, prompt.strip()) for preset in presets for seed in seeds]
    return jobs


# -- the manifest -------------------------------------------------------------------------


class Manifest:
    """batch.jsonl: append one JSON line at a time (flushed and fsynced); read the last line per key."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> None:
        """Append one line durably. Safe from several threads."""
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Opened per line: an abandoned worker finishing after the batch returned still
            # has a file to write to, and nothing is left open between lines.
            with open(self.path, "a+b") as fh:
                fh.seek(0, os.SEEK_END)
                if fh.tell() > 0:
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        # A crash tore the last line: end it, so this line is not glued to it.
                        line = b"\n" + line
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())

    def entries(self) -> list[dict[str, Any]]:
        """Every readable line, in order (a torn or garbled line is skipped)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        out = []
        for line in raw.split(b"\n"):
            try:
                entry = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out

    def jobs(self) -> dict[str, dict[str, Any]]:
        """The last job line for each key."""
        latest: dict[str, dict[str, Any]] = {}
        for entry in self.entries():
            if entry.get("type") == "job" and isinstance(entry.get("key"), str):
                latest[entry["key"]] = entry
        return latest

    def attempts(self) -> dict[str, int]:
        """How many finished attempts each key has."""
        counts: dict[str, int] = {}
        for entry in self.entries():
            if entry.get("type") == "job" and isinstance(entry.get("key"), str):
                counts[entry["key"]] = counts.get(entry["key"], 0) + 1
        return counts

    def is_done(self, entry: dict[str, Any] | None) -> bool:
        """True when a job line says done and its files are still there."""
        if not entry or entry.get("status") != "done":
            return False
        outputs = entry.get("outputs") or []
        return bool(outputs) and all((self.path.parent / p).is_file() for p in outputs)


def read_manifest(path: str | Path) -> dict[str, dict[str, Any]]:
    """The last job line per key of a batch manifest (empty when there is none)."""
    return Manifest(path).jobs()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- running ------------------------------------------------------------------------------


class _PhotoHost:
    """Each photo is prepared and uploaded once per invocation, however many jobs use it."""

    def __init__(self, studio: Studio) -> None:
        self._studio = studio
        self._lock = threading.Lock()
        self._locks: dict[Path, threading.Lock] = {}
        self._hosted: dict[Path, tuple[str, PreparedPhoto | None]] = {}

    def get(self, photo: Path) -> tuple[str, PreparedPhoto | None]:
        with self._lock:
            lock = self._locks.setdefault(photo, threading.Lock())
        with lock:
            if photo not in self._hosted:
                self._hosted[photo] = self._studio.image_input(photo)
            return self._hosted[photo]


class _Crash:
    """A worker's unexpected exception, handed to the main thread to re-raise."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _run_job(
    studio: Studio, host: _PhotoHost, manifest: Manifest, job: BatchJob, attempt: int
) -> tuple[dict[str, Any], PortraitError | None]:
    """Run one job, save it as a run, append its manifest line; return the line and any error."""
    t0 = time.monotonic()
    entry: dict[str, Any] = {
        "type": "job",
        "key": job.key,
        "status": "failed",
        "photo": str(job.photo),
        "photo_sha256": job.photo_sha256,
        "preset": job.preset.id,
        "seed_requested": job.seed,
        "seed": None,
        "prompt": job.prompt,
        "request_id": None,
        "run": None,
        "outputs": [],
        "request": None,
        "error": None,
        "attempt": attempt,
    }
    error: PortraitError | None = None
    try:
        image_input, photo = host.get(job.photo)
        request = job.request(image_input)
        result = studio.generate_one(request)
        timings = {"generate_s": round(time.monotonic() - t0, 3)}
        extra = {"kind": KIND, "preset": job.preset.id, "user_prompt": job.prompt, "batch_key": job.key}
        record = studio.save(request, [result], [], photo, timings, extra)
        sent = result.request.settings_dict()
        if sent["image_input"].startswith("data:"):
            sent["image_input"] = "data:image/jpeg;base64,…(input.jpg)"
        entry.update(
            status="done",
            seed=result.seed,
            request_id=result.request_id,
            run=record.id,
            outputs=[os.path.relpath(p, manifest.path.parent) for p in record.image_paths],
            request=sent,
        )
    except PortraitError as err:
        error = err
        entry["error"] = err.as_dict()
    entry["time"] = _now()
    entry["wall_seconds"] = round(time.monotonic() - t0, 3)
    manifest.append(entry)
    return entry, error


def run_batch(
    studio: Studio,
    jobs: Sequence[BatchJob],
    *,
    manifest_path: str | Path | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    stop: threading.Event | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
    info: dict[str, Any] | None = None,
) -> BatchSummary:
    """Run the jobs not already done, `concurrency` at a time; return what happened.

    Stops starting new jobs when `stop` is set or on KeyboardInterrupt (Ctrl-C), waits for
    the running ones and returns with `interrupted=True`; a second Ctrl-C abandons them
    (they may still finish and record themselves while the process lives). The manifest
    defaults to `batch.jsonl` in the studio's output folder.
    """
    manifest = Manifest(manifest_path or Path(studio.store.root) / MANIFEST_NAME)
    stop = stop or threading.Event()
    concurrency = max(1, int(concurrency))
    unique = list({job.key: job for job in jobs}.values())
    state = manifest.jobs()
    attempts = manifest.attempts()
    todo = deque(job for job in unique if not manifest.is_done(state.get(job.key)))
    skipped = len(unique) - len(todo)
    total_todo = len(todo)
    host = _PhotoHost(studio)
    results: queue.Queue[tuple[BatchJob, Any]] = queue.Queue()
    threads: list[threading.Thread] = []
    failures: list[tuple[BatchJob, PortraitError]] = []
    done_now = 0
    running = 0
    started = time.monotonic()
    manifest.append(
        {"type": "session", "event": "start", "time": _now(), "jobs": len(unique), "todo": total_todo}
        | {"already_done": skipped, "concurrency": concurrency, **(info or {})}
    )

    def report(stopping: bool = False) -> None:
        if on_progress is None:
            return
        finished = done_now + len(failures)
        elapsed = time.monotonic() - started
        left = total_todo - finished
        eta = elapsed / finished * left if finished and left > 0 and not stop.is_set() else None
        on_progress(
            BatchProgress(len(unique), skipped + done_now, len(failures), running, elapsed, eta, stopping)
        )

    def worker(job: BatchJob) -> None:
        try:
            outcome: Any = _run_job(studio, host, manifest, job, attempts.get(job.key, 0) + 1)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
            outcome = _Crash(exc)
        results.put((job, outcome))

    def collect(timeout: float | None) -> bool:
        nonlocal done_now, running
        try:
            job, outcome = results.get(timeout=timeout)
        except queue.Empty:
            return False
        running -= 1
        if isinstance(outcome, _Crash):
            stop.set()
            raise outcome.exc
        _entry, error = outcome
        if error is None:
            done_now += 1
        else:
            failures.append((job, error))
        return True

    def busy() -> bool:
        return any(t.is_alive() for t in threads) or not results.empty()

    interrupted = False
    abandoned = 0
    try:
        try:
            while todo or running > 0:
                while todo and running < concurrency and not stop.is_set():
                    job = todo.popleft()
                    # Daemon threads: an abandoned call must not keep the process alive.
                    thread = threading.Thread(
                        target=worker, args=(job,), name=f"batch-{job.preset.id}", daemon=True
                    )
                    threads.append(thread)
                    running += 1
                    thread.start()
                    report()
                if running == 0:
                    break
                # Reported right after each completion, before the next job starts, so a
                # callback that sets `stop` there really stops the batch at that point.
                collect(TICK_SECONDS)
                report()
        except KeyboardInterrupt:
            stop.set()
            report(stopping=True)
            while busy():
                collect(TICK_SECONDS)
                report(stopping=True)
    except KeyboardInterrupt:
        # Second Ctrl-C while waiting: leave the running calls behind.
        abandoned = max(0, running)
    finally:
        interrupted = stop.is_set() and bool(todo or abandoned)
        manifest.append(
            {"type": "session", "event": "end", "time": _now(), "done": skipped + done_now}
            | {"failed": len(failures), "interrupted": interrupted, "abandoned": abandoned}
        )
    report()
    return BatchSummary(
        total=len(unique),
        done=skipped + done_now,
        skipped=skipped,
        ran=done_now + len(failures),
        failures=failures,
        interrupted=interrupted,
        abandoned=abandoned,
        manifest=manifest.path,
    )


def format_progress(p: BatchProgress) -> str:
    """One plain-text progress line: done/total, failures, running, ETA."""
    if p.eta is None:
        eta = "--:--"
    else:
        minutes, seconds = divmod(int(round(p.eta)), 60)
        eta = (
            f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"
            if minutes >= 60
            else f"{minutes}:{seconds:02d}"
        )
    line = f"batch {p.done}/{p.total} done · {p.failed} failed · {p.running} running · ETA {eta}"
    if p.stopping:
        line += " · stopping: waiting for running jobs (Ctrl-C again to abandon them)"
    return line


# -- sheets -------------------------------------------------------------------------------


def write_sheets(
    studio: Studio,
    jobs: Sequence[BatchJob],
    *,
    manifest_path: str | Path | None = None,
    lang: str = "both",
) -> list[Path]:
    """One sheet PNG per photo (`sheets/<name>-<hash>.png` beside the manifest) from the manifest."""
    manifest = Manifest(manifest_path or Path(studio.store.root) / MANIFEST_NAME)
    state = manifest.jobs()
    by_photo: dict[Path, list[BatchJob]] = {}
    for job in jobs:
        by_photo.setdefault(job.photo, []).append(job)
    written = []
    for photo, photo_jobs in by_photo.items():
        cells = [c for c in (_cell(manifest, state.get(job.key), job) for job in photo_jobs) if c is not None]
        if not cells:
            continue
        try:
            photo_jpeg: bytes | None = studio.prepare_photo(photo).jpeg
        except PhotoError:
            photo_jpeg = None
        png = compose_sheet_image(
            photo_jpeg,
            cells,
            lang,
            user_prompt=photo_jobs[0].prompt,
            simulated=bool(getattr(studio, "offline", False)),
        )
        target = manifest.path.parent / SHEETS_DIR / f"{photo.stem}-{photo_jobs[0].photo_sha256[:8]}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(png)
        os.replace(tmp, target)
        written.append(target)
    return written


def _cell(manifest: Manifest, entry: dict[str, Any] | None, job: BatchJob) -> SheetCell | None:
    if entry is None:
        return None
    preset = job.preset
    request = None
    fields = entry.get("request")
    if isinstance(fields, dict):
        request = PortraitRequest(**fields)
    else:
        request = job.request("")
    if manifest.is_done(entry):
        image = (manifest.path.parent / entry["outputs"][0]).read_bytes()
        return SheetCell(preset.id, preset.name_zh, preset.name_en, request=request, image=image)
    error = restore_error(entry["error"]) if entry.get("error") else None
    return SheetCell(preset.id, preset.name_zh, preset.name_en, request=request, error=error)


__all__ = [
    "BatchJob",
    "BatchProgress",
    "BatchSummary",
    "Manifest",
    "collect_photos",
    "file_sha256",
    "format_progress",
    "parse_seeds",
    "plan_jobs",
    "read_manifest",
    "run_batch",
    "write_sheets",
]
