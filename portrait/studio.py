"""Studio: one run from photo to saved portraits, shared by the app, the CLI and Python callers.

prepare the photo -> host it -> N generations concurrently (distinct seeds) -> save the
finished ones -> return. With no API key the studio starts the built-in simulator and
every result is marked as simulated.
"""

from __future__ import annotations

import contextvars
import io
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from .client import PortraitClient, PortraitImage, PortraitResult
from .errors import InvalidInputError, PortraitError
from .images import PhotoSource, PreparedPhoto, check_photo_url, prepare_photo
from .params import SEED_MAX, SEED_RANDOM, VARIATIONS_MAX, VARIATIONS_MIN, PortraitRequest
from .settings import Settings
from .store import RunRecord, RunStore

log = logging.getLogger("portrait.studio")

# The simulator accepts any key; this one only marks offline calls in its log.
OFFLINE_KEY = "offline-simulator"

ProgressFn = Callable[[float, str], None]
PREPARED_CACHE_SIZE = 8


@dataclass
class RunOutcome:
    """What one click produced: saved record, the results, and the variations that failed."""

    record: RunRecord | None
    results: list[PortraitResult]
    failures: list[tuple[int, PortraitError]]
    image_input: str
    photo: PreparedPhoto | None = None
    timings: dict[str, float] = field(default_factory=dict)


def image_record(name: str, result: PortraitResult, image: PortraitImage) -> dict[str, Any]:
    """What run.json keeps about one saved image: file, seed, ids, timings, source URL, size."""
    width, height = Image.open(io.BytesIO(image.data)).size
    return {
        "file": name,
        "seed": result.seed,
        "request_id": result.request_id,
        "time_elapsed": result.time_elapsed,
        "wall_seconds": round(result.wall_seconds, 3),
        "url": image.url,
        "width": width,
        "height": height,
    }


def _file_key(source: object) -> tuple[str, int, int] | None:
    """(path, size, mtime) of a photo file, or None for anything that is not a readable file."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    try:
        st = os.stat(source)
    except (OSError, ValueError):
        return None
    return os.fspath(source), st.st_size, st.st_mtime_ns


def variation_seeds(seed: int, count: int) -> list[int]:
    """Distinct seeds for `count` variations: seed, seed+1, ... or distinct random ones."""
    if seed != SEED_RANDOM:
        return [(seed + i) % (SEED_MAX + 1) for i in range(count)]
    rng = random.SystemRandom()
    return rng.sample(range(SEED_MAX), count)


def _check_variations(count: Any) -> int:
    try:
        n = int(count)
    except (TypeError, ValueError):
        n = -1
    if isinstance(count, bool) or n != count or not VARIATIONS_MIN <= n <= VARIATIONS_MAX:
        raise InvalidInputError.field(
            "variations",
            (f"{VARIATIONS_MIN}–{VARIATIONS_MAX} 的整数", f"an integer {VARIATIONS_MIN}–{VARIATIONS_MAX}"),
            count,
        )
    return n


class Studio:
    """The library's front door: a configured client, the output folder and the upstream limit."""

    def __init__(
        self,
        settings: Settings,
        client: PortraitClient | None = None,
        *,
        simulator: Any = None,
    ) -> None:
        self.settings = settings
        self.simulator = simulator
        self.client = client or PortraitClient(settings)
        self.store = RunStore(settings.output_dir)
        # Bounds concurrent upstream calls across every visitor and every feature.
        self._upstream = threading.BoundedSemaphore(max(1, settings.concurrency))
        self._prepared: dict[tuple[str, int, int], PreparedPhoto] = {}
        self._cache_lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings | None = None) -> Studio:
        """A studio for these settings; with no key, start the simulator and point at it."""
        settings = settings or Settings.from_env()
        RunStore(settings.output_dir).remove_partial()
        if not settings.offline:
            return cls(settings)
        from .simulator import Simulator

        sim = Simulator(port=settings.simulator_port, latency=settings.simulator_latency).start()
        client = PortraitClient(settings, api_key=OFFLINE_KEY, api_base=sim.url, simulated=True)
        log.info("No AI302_API_KEY: running on the built-in simulator at %s", sim.url)
        return cls(settings, client, simulator=sim)

    @property
    def offline(self) -> bool:
        """True when results come from the simulator."""
        return self.client.simulated

    def close(self) -> None:
        """Close connections and stop the simulator if this studio started it."""
        self.client.close()
        if self.simulator is not None:
            self.simulator.stop()

    def __enter__(self) -> Studio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prepare_photo(self, source: PhotoSource) -> PreparedPhoto:
        """Open, orient, shrink and encode a local photo with this studio's limits.

        A file already prepared (same path, size and modification time) is not prepared
        again: the page prepares it once for the preview and once more when generating.
        """
        key = _file_key(source)
        if key is not None:
            with self._cache_lock:
                cached = self._prepared.get(key)
            if cached is not None:
                return cached
        photo = prepare_photo(
            source,
            max_edge=self.settings.max_photo_edge,
            max_bytes=self.settings.max_photo_bytes,
            max_read=self.settings.max_upload_bytes,
        )
        if key is not None:
            with self._cache_lock:
                self._prepared[key] = photo
                while len(self._prepared) > PREPARED_CACHE_SIZE:
                    self._prepared.pop(next(iter(self._prepared)))
        return photo

    def image_input(
        self, source: PhotoSource, client: PortraitClient | None = None
    ) -> tuple[str, PreparedPhoto | None]:
        """The `image_input` URL for a photo: a checked http(s) URL, or a local photo prepared and hosted."""
        if isinstance(source, str) and ("://" in source or source.startswith("data:")):
            # Text that looks like a URL is a URL: check it instead of reading it as a path.
            return check_photo_url(source), None
        photo = source if isinstance(source, PreparedPhoto) else self.prepare_photo(source)
        with self._upstream:
            return (client or self.client).host_photo(photo), photo

    def generate_one(self, request: PortraitRequest, client: PortraitClient | None = None) -> PortraitResult:
        """One upstream call, within the studio's concurrency limit."""
        with self._upstream:
            return (client or self.client).generate(request)

    def run(
        self,
        source: PhotoSource | PreparedPhoto,
        request: PortraitRequest,
        *,
        variations: int = 1,
        extra: dict[str, Any] | None = None,
        on_progress: ProgressFn | None = None,
        client: PortraitClient | None = None,
    ) -> RunOutcome:
        """Generate `variations` portraits concurrently, save the finished ones, then return.

        Raises the first error when nothing succeeded; otherwise failures are reported
        in the outcome and the successes are kept. `client` overrides the studio's client
        for this run (a visitor's own key).
        """
        count = _check_variations(variations)
        progress = on_progress or (lambda _f, _m: None)
        t0 = time.monotonic()
        progress(0.02, "preparing")
        image_input, photo = self.image_input(source, client)
        t_hosted = time.monotonic()
        seeds = variation_seeds(request.seed, count)
        base = request.with_(image_input=image_input)
        progress(0.1, "generating")

        done = 0
        lock = threading.Lock()

        def call(seed: int) -> PortraitResult | PortraitError:
            nonlocal done
            try:
                outcome: PortraitResult | PortraitError = self.generate_one(base.with_(seed=seed), client)
            except PortraitError as err:
                outcome = err
            with lock:
                done += 1
                progress(0.1 + 0.8 * done / count, "generating")
            return outcome

        if count == 1:
            outcomes = [call(seeds[0])]
        else:
            with ThreadPoolExecutor(max_workers=count) as pool:
                # Each worker runs in a copy of the caller's context, so progress callbacks
                # that rely on context variables (Gradio's do) still reach the caller.
                futures = [pool.submit(contextvars.copy_context().run, call, s) for s in seeds]
                outcomes = [f.result() for f in futures]
        t_generated = time.monotonic()
        results = [o for o in outcomes if isinstance(o, PortraitResult)]
        failures = [(s, o) for s, o in zip(seeds, outcomes) if isinstance(o, PortraitError)]
        if not results:
            raise failures[0][1]
        progress(0.92, "saving")
        timings = {
            "prepare_and_host_s": round(t_hosted - t0, 3),
            "generate_s": round(t_generated - t_hosted, 3),
        }
        record = self.save(base, results, failures, photo, timings, extra or {})
        timings["total_s"] = round(time.monotonic() - t0, 3)
        progress(1.0, "done")
        return RunOutcome(record, results, failures, image_input, photo, timings)

    def save(
        self,
        request: PortraitRequest,
        results: list[PortraitResult],
        failures: list[tuple[int, PortraitError]],
        photo: PreparedPhoto | None,
        timings: dict[str, float],
        extra: dict[str, Any],
    ) -> RunRecord:
        """Write a run's images and its JSON record (never the key) to the output folder."""
        files: dict[str, bytes] = {}
        images = []
        for i, result in enumerate(results, start=1):
            for j, image in enumerate(result.images, start=1):
                name = f"{i:02d}-seed{result.seed}" + (f"-{j}" if j > 1 else "") + ".jpg"
                files[name] = image.data
                images.append(image_record(name, result, image))
        input_file = None
        if photo is not None:
            input_file = "input.jpg"
            files[input_file] = photo.jpeg
        settings = request.settings_dict()
        if settings["image_input"].startswith("data:"):
            settings["image_input"] = "data:image/jpeg;base64,…(input.jpg)"
        meta = {
            "simulated": any(r.simulated for r in results),
            "api_base": self.client.api_base,
            "request": settings,
            "variations": len(results) + len(failures),
            "input_file": input_file,
            "images": images,
            "failures": [{"seed": seed, "error": err.as_dict()} for seed, err in failures],
            "timings": timings,
            "responses": [r.raw for r in results],
            **extra,
        }
        return self.store.save(meta, files)
