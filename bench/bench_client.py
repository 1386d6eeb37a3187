"""§2 Client overhead: one full Studio.run against Simulator(latency=0) vs a bare `requests` script.

library = Studio(settings, PortraitClient(settings)).run(photo_path, request)
          (prepare the 12-MP photo, upload, generate, download the 1328x1328 result, save the run)
bare    = requests.Session: upload pre-encoded bytes, POST the JSON, GET the result URL, write the file

Both talk to the same in-process simulator, upload the same JPEG bytes (so the simulator's
decoded-photo cache treats them alike) and ask for the same 1328x1328 generation.

Run: python bench/bench_client.py [--quick] [--runs N] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import cProfile
import io
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SCRIPT = "bench/bench_client.py"
PROMPT = "studio portrait, soft window light"


class Bare:
    """The same HTTP calls with plain requests, phase times recorded."""

    def __init__(self, base: str, jpeg: bytes, out_dir: Path) -> None:
        import requests

        self.base = base
        self.jpeg = jpeg
        self.out_dir = out_dir
        self.session = requests.Session()
        self.headers = {"Authorization": "Bearer bench"}
        self.phases: list[dict[str, float]] = []
        self.n = 0

    def run(self) -> None:
        t0 = time.perf_counter()
        r = self.session.post(
            self.base + "/302/upload-file",
            files={"file": ("photo.jpg", self.jpeg, "image/jpeg")},
            headers=self.headers,
            timeout=60,
        )
        r.raise_for_status()
        photo_url = r.json()["data"]
        t1 = time.perf_counter()
        body = {
            "image_input": photo_url,
            "prompt": PROMPT,
            "width": 1328,
            "height": 1328,
            "gpen": 0.4,
            "skin": 0.3,
            "skin_unifi": 0.0,
            "seed": str(random.randrange(0, 2**31 - 1)),
        }
        r = self.session.post(
            self.base + "/doubao/drawing/portrait",
            params={"response_format": "url"},
            json=body,
            headers=self.headers,
            timeout=60,
        )
        r.raise_for_status()
        result_url = r.json()["data"]["image_urls"][0]
        t2 = time.perf_counter()
        img = self.session.get(result_url, timeout=60)
        img.raise_for_status()
        t3 = time.perf_counter()
        self.n += 1
        (self.out_dir / f"bare-{self.n}.jpg").write_bytes(img.content)
        t4 = time.perf_counter()
        self.phases.append({"upload": t1 - t0, "generate": t2 - t1, "download": t3 - t2, "save": t4 - t3})


def main(argv: list[str] | None = None) -> int:
    args = common.parse_args(__doc__.splitlines()[0], argv)
    runs = args.runs or (2 if args.quick else 15)
    from portrait.client import PortraitClient
    from portrait.images import prepare_photo
    from portrait.params import PortraitRequest
    from portrait.settings import Settings
    from portrait.simulator import Simulator
    from portrait.studio import Studio

    path = common.phone_photo()
    jpeg = prepare_photo(path).jpeg  # the bare script uploads these pre-encoded bytes
    request = PortraitRequest(prompt=PROMPT, width=1328, height=1328)

    with Simulator(latency=0).start() as sim, tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        settings = Settings(api_key="bench", api_base=sim.url, output_dir=Path(tmp) / "outputs")
        client = PortraitClient(settings)
        studio = Studio(settings, client)
        bare_dir = Path(tmp) / "bare"
        bare_dir.mkdir()
        bare = Bare(sim.url, jpeg, bare_dir)
        lib_timings: list[dict[str, float]] = []

        def lib() -> None:
            outcome = studio.run(path, request)
            assert outcome.results and outcome.record is not None
            assert outcome.results[0].images[0].size == (1328, 1328)
            lib_timings.append(dict(outcome.timings))

        with common.MachineLoad() as load:
            times = common.interleave({"library": lib, "bare": bare.run}, runs)
        lib_timings = lib_timings[-runs:]
        bare_phases = bare.phases[-runs:]

        # Where the library's extra time goes: a profile of a few more library runs.
        prof_runs = 1 if args.quick else 5
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(prof_runs):
            studio.run(path, request)
        prof.disable()
        # Phase costs outside HTTP, timed alone in the same process.
        from portrait.images import check_image_bytes

        result_bytes = next((Path(tmp) / "outputs").glob("*/01-seed*.jpg")).read_bytes()
        prep = []
        check = []
        for _ in range(3 if args.quick else 9):
            t0 = time.perf_counter()
            prepare_photo(path)
            prep.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            check_image_bytes(result_bytes)
            check.append(time.perf_counter() - t0)
        studio.close()

    overhead = [a - b for a, b in zip(times["library"], times["bare"])]
    ratio = common.paired_ratios(times["library"], times["bare"])
    med_over = common.median(overhead)
    med_ratio = common.median(ratio)

    stats = pstats.Stats(prof, stream=io.StringIO())
    wanted = {
        "prepare_photo": "images.py",
        "host_photo": "client.py",
        "generate": "client.py",
        "fetch_image": "images.py",
        "check_image_bytes": "images.py",
        "_host_allowed": "images.py",
        "save": "studio.py",
        "_write_file": "store.py",
        "_fsync_dir": "store.py",
        "_encode_within": "images.py",
    }
    prof_rows = []
    for (file, _line, fn), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if fn in wanted and file.endswith(wanted[fn]) and "portrait" in file:
            prof_rows.append((fn, f"portrait/{Path(file).name}", ct / prof_runs * 1000))
    prof_rows.sort(key=lambda r: -r[2])
    fsync_ms = 0.0
    for (_file, _line, fn), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if fn == "<built-in method posix.fsync>":
            fsync_ms = ct / prof_runs * 1000

    def med_key(rows: list[dict[str, float]], key: str) -> float:
        return common.median([r.get(key, 0.0) for r in rows]) * 1000

    lib_save = [t["total_s"] - t["prepare_and_host_s"] - t["generate_s"] for t in lib_timings]
    cmd = common.command_line(SCRIPT, args)
    body = [common.section_preamble(args, SCRIPT)]
    body.append(
        f'In-process `Simulator(latency=0)`; `Settings(api_key="bench", api_base=sim.url, output_dir=tmp)`, '
        f"`PortraitClient(settings)`, `Studio(settings, client)`; photo: the 12-MP phone JPEG of §1. "
        f"{runs} interleaved runs each after one warm-up.\n"
    )
    body.append(load.text() + "\n")
    body.append(
        common.table(
            ["variant", "wall ms, median (min–max)"],
            [
                ["library `Studio.run(path, request)`", common.spread(times["library"], 1000)],
                ["bare `requests` (pre-encoded bytes)", common.spread(times["bare"], 1000)],
                ["**library − bare, per round**", common.spread(overhead, 1000)],
                ["library / bare, per round", common.spread(ratio, 1, "{:.2f}")],
            ],
        )
    )
    body.append(
        "\nPhases (medians, ms). Library phases from `RunOutcome.timings`; bare phases timed in the script:\n"
    )
    body.append(
        common.table(
            ["phase", "library", "bare"],
            [
                [
                    "prepare + upload",
                    f"{med_key(lib_timings, 'prepare_and_host_s'):.1f}",
                    f"{med_key(bare_phases, 'upload'):.1f} (upload only)",
                ],
                [
                    "generate + download",
                    f"{med_key(lib_timings, 'generate_s'):.1f}",
                    f"{med_key(bare_phases, 'generate') + med_key(bare_phases, 'download'):.1f}",
                ],
                ["save", f"{common.median(lib_save) * 1000:.1f}", f"{med_key(bare_phases, 'save'):.1f}"],
            ],
        )
    )
    body.append(
        f"\nLibrary-only work timed alone: `prepare_photo(12-MP)` {common.median(prep) * 1000:.1f} ms, "
        f"`check_image_bytes(result)` {common.median(check) * 1000:.1f} ms (full decode of the 1328×1328 "
        f"result). cProfile over {prof_runs} more `Studio.run` calls (cumulative ms per run; "
        f"`os.fsync` total {fsync_ms:.1f} ms per run):\n"
    )
    body.append(
        common.table(["function", "file", "ms per run"], [[f"`{a}`", b, f"{c:.1f}"] for a, b, c in prof_rows])
    )
    rows = [
        common.Row(
            "2",
            "library overhead vs bare requests (median per-round difference)",
            f"{med_over * 1000:.0f} ms",
            "≤ 150 ms",
            med_over <= 0.150,
            cmd,
        ),
        common.Row("2", "Studio.run / bare ratio", f"{med_ratio:.2f}×", "—", None, cmd),
    ]
    common.write_section(args.out, "client", "\n".join(body), rows)
    print(
        f"[client] library {common.median(times['library']) * 1000:.0f} ms, bare {common.median(times['bare']) * 1000:.0f} ms, "
        f"overhead {med_over * 1000:.0f} ms, ratio {med_ratio:.2f} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
