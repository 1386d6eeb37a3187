"""§5 Load: 50 concurrent gradio_client users x 2 generations through the app's /generate endpoint.

The app is `python app.py` in a subprocess with no key (built-in simulator), PORTRAIT_SIM_LATENCY=1,
PORTRAIT_CONCURRENCY=8, PORTRAIT_QUEUE_SIZE=200, so the ceiling is 8 generations/s. Every user is a
thread with its own `gradio_client.Client`, created before the clock starts; all start together
and call `client.submit(image=handle_file(photo), prompt=..., api_name="/generate").result()` in
turn. The server's RSS (VmRSS of the process and its children) is sampled every 0.2 s.

When the peak RSS misses its target (or with --arena-check always), a second, diagnostic run
starts the server under `MALLOC_ARENA_MAX=2` (glibc's per-thread malloc arenas capped) to show
how much of the peak is allocator retention; `--profile` samples the server with py-spy during
the main run. The clients use a 60 s httpx timeout (`--client-timeout`): gradio_client's default
of 5 s turns a slow upload on this shared machine into a client-side failure.

Run: python bench/bench_load.py [--quick] [--users N] [--per-user N] [--photo phone|small]
                                [--profile] [--arena-check auto|always|never] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from bench_startup import launch_env, stop, wait_200  # noqa: E402

SCRIPT = "bench/bench_load.py"
PROMPT = "studio portrait, soft window light"
LATENCY, CONCURRENCY, QUEUE = 1.0, 8, 200
CEILING = CONCURRENCY / LATENCY
JOB_TIMEOUT = 180.0

# (label, substrings of a py-spy stack; any one matches). First match wins, in this order.
CATEGORIES = [
    ("`prepare_photo` (decode, orient, encode the uploaded photo)", ["prepare_photo (portrait/images.py"]),
    ("simulator: render + encode the result (`render_portrait`)", ["render_portrait ("]),
    ("simulator: everything else (HTTP, multipart, decode photo, serve blobs)", ["portrait/simulator.py"]),
    ("client: download + verify the result (`fetch_image`)", ["fetch_image ("]),
    ("client: upload the photo (`host_photo`)", ["host_photo ("]),
    ("`Studio.save` / run store (write files, fsync)", ["save (portrait/studio.py", "portrait/store.py"]),
    ("other portrait code (ui, studio, client)", ["portrait/"]),
    (
        "gradio: file upload route (multipart parsing, writing the upload)",
        ["upload_file (gradio", "route_utils.py", "multipart"],
    ),
    (
        "gradio: pre/postprocess (file moves, hashing, cache, FileData)",
        ["processing_utils.py", "postprocess", "preprocess", "data_classes.py"],
    ),
    (
        "gradio: queue, SSE, routes, asyncio/uvicorn (the rest)",
        ["gradio/", "uvicorn/", "starlette/", "anyio/", "asyncio/", "fastapi/", "h11/", "httptools"],
    ),
]
OTHER = "other (PIL, stdlib, threads)"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=common.DEFAULT_DOC)
    p.add_argument("--runs", type=int, default=None, help="unused (one load run); accepted for symmetry")
    p.add_argument("--users", type=int, default=None)
    p.add_argument("--per-user", type=int, default=None)
    p.add_argument(
        "--photo",
        choices=("phone", "small"),
        default="phone",
        help="phone: the 12-MP JPEG of §1 (default); small: a 1200x1600 JPEG",
    )
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the server of the main run (diagnostics)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="sample the server with py-spy during the main run and add a CPU breakdown",
    )
    p.add_argument(
        "--arena-check",
        choices=("auto", "always", "never"),
        default="auto",
        help="second run with MALLOC_ARENA_MAX=2: auto = only when the peak RSS target is missed",
    )
    p.add_argument(
        "--client-timeout",
        type=float,
        default=60.0,
        help="httpx timeout of every gradio_client call (gradio_client's own default is 5 s)",
    )
    return p.parse_args(argv)


def small_photo() -> Path:
    from PIL import Image, ImageOps

    path = common.OUT_DIR / "small_1200x1600.jpg"
    if not path.exists():
        with Image.open(common.phone_photo()) as img:
            img.draft("RGB", (1600, 1600))
            img = ImageOps.exif_transpose(img).convert("RGB")
            img.thumbnail((1600, 1600), Image.Resampling.LANCZOS)
            img.save(path, "JPEG", quality=90)
    return path


class RssSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        t0 = time.perf_counter()
        while not self._halt.is_set():
            kb = common.rss_tree_kb(self.pid)
            if kb:
                self.samples.append((time.perf_counter() - t0, kb))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    @property
    def peak_mb(self) -> float:
        return max((kb for _, kb in self.samples), default=0) / 1024


def summarise_pyspy(raw: str) -> dict[str, int]:
    """py-spy --format raw (collapsed stacks) -> samples per category."""
    counts = {label: 0 for label, _ in CATEGORIES}
    counts[OTHER] = 0
    for line in raw.splitlines():
        stack, _, n = line.rstrip().rpartition(" ")
        if not n.isdigit():
            continue
        for label, keys in CATEGORIES:
            if any(k in stack for k in keys):
                counts[label] += int(n)
                break
        else:
            counts[OTHER] += int(n)
    return counts


@dataclass
class LoadResult:
    users: int
    per_user: int
    server_env: dict[str, str]
    up_s: float = 0.0
    clients_s: float = 0.0
    wall: float = float("nan")
    latencies: list[float] = field(default_factory=list)
    finish: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    lost: int = 0
    sim_calls: int | None = None
    saved_runs: int = 0
    run_timings: list[dict[str, float]] = field(default_factory=list)
    cpu_server: float = 0.0
    cpu_self: float = 0.0
    rss_idle: float = 0.0
    rss_before: float = 0.0
    peak: float = 0.0
    samples: int = 0
    profile: dict[str, int] | None = None
    load_text: str = ""
    server_tail: str = ""

    @property
    def total(self) -> int:
        return self.users * self.per_user

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def thr(self) -> float:
        return self.ok / self.wall if self.wall > 0 else 0.0

    @property
    def steady(self) -> float:
        """Completions between the 10th and 90th percentile finish times, per second."""
        s = sorted(self.finish)
        if len(s) < 10:
            return float("nan")
        a, b = s[len(s) // 10], s[(len(s) * 9) // 10]
        return (len(s) * 8 // 10) / (b - a) if b > a else float("nan")

    def t(self, key: str, q: float) -> float:
        return common.percentile([r[key] for r in self.run_timings if key in r], q)


def run_load(
    users: int, per_user: int, photo: Path, server_env: dict[str, str], profile: bool, client_timeout: float
) -> LoadResult:
    res = LoadResult(users, per_user, server_env)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        tmpdir = Path(tmp)
        port, sim_port = common.free_port(), common.free_port()
        env = launch_env(port, str(tmpdir / "outputs"))
        env.update(
            PORTRAIT_SIM_LATENCY=str(LATENCY),
            PORTRAIT_CONCURRENCY=str(CONCURRENCY),
            PORTRAIT_QUEUE_SIZE=str(QUEUE),
            PORTRAIT_SIM_PORT=str(sim_port),
            GRADIO_TEMP_DIR=str(tmpdir / "gradio-server"),
        )
        env.update(server_env)
        t_launch = time.perf_counter()
        with open(tmpdir / "server.out", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "app.py"], cwd=common.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        sampler = RssSampler(proc.pid)
        sampler.start()
        spy = None
        spy_out = tmpdir / "pyspy.txt"
        clients = []
        try:
            wait_200(port, proc)
            res.up_s = time.perf_counter() - t_launch
            res.rss_idle = common.rss_tree_kb(proc.pid) / 1024
            url = f"http://127.0.0.1:{port}/"

            from gradio_client import Client, handle_file

            def make_client(_i: int) -> Client:
                return Client(
                    url,
                    verbose=False,
                    analytics_enabled=False,
                    download_files=str(tmpdir / "client-dl"),
                    httpx_kwargs={"timeout": client_timeout},
                )

            t_clients = time.perf_counter()
            with ThreadPoolExecutor(max_workers=10) as pool:
                clients = list(pool.map(make_client, range(users)))
            res.clients_s = time.perf_counter() - t_clients

            if profile:
                spy = subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "--pid",
                        str(proc.pid),
                        "--rate",
                        "100",
                        "--nonblocking",
                        "--format",
                        "raw",
                        "--output",
                        str(spy_out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1.0)

            lock = threading.Lock()
            barrier = threading.Barrier(users + 1)
            clock: dict[str, float] = {}

            def user(client: Client) -> None:
                barrier.wait()
                for _ in range(per_user):
                    t0 = time.perf_counter()
                    try:
                        job = client.submit(
                            image=handle_file(str(photo)), prompt=PROMPT, api_name="/generate"
                        )
                        files, record = job.result(timeout=JOB_TIMEOUT)
                        assert files and record.get("images"), record
                        with lock:
                            res.latencies.append(time.perf_counter() - t0)
                            res.finish.append(time.perf_counter() - clock["start"])
                    except TimeoutError:
                        with lock:
                            res.lost += 1
                    except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                        with lock:
                            res.failures.append(f"{type(exc).__name__}: {str(exc)[:160]}")
                            if not res.tracebacks:
                                res.tracebacks.append(traceback.format_exc()[-1800:])

            threads = [threading.Thread(target=user, args=(c,), daemon=True) for c in clients]
            for t in threads:
                t.start()
            res.rss_before = common.rss_tree_kb(proc.pid) / 1024
            cpu_server0 = common.cpu_seconds(proc.pid)
            cpu_self0 = sum(os.times()[:2])
            load = common.MachineLoad().__enter__()
            clock["start"] = time.perf_counter()
            barrier.wait()
            for t in threads:
                t.join(JOB_TIMEOUT * per_user + 30)
            res.wall = time.perf_counter() - clock["start"]
            res.cpu_server = common.cpu_seconds(proc.pid) - cpu_server0
            res.cpu_self = sum(os.times()[:2]) - cpu_self0
            load.add_ours(res.cpu_server)
            load.__exit__(None, None, None)
            res.load_text = load.text()
            if spy is not None:
                spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
                try:
                    spy.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    spy.kill()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{sim_port}/_sim/requests", timeout=10) as r:
                    res.sim_calls = len(json.load(r)["requests"])
            except OSError:
                pass
            run_dirs = [
                p for p in (tmpdir / "outputs").glob("*") if p.is_dir() and not p.name.startswith(".")
            ]
            res.saved_runs = len(run_dirs)
            for p in run_dirs:
                try:
                    t = json.loads((p / "run.json").read_text())["timings"]
                    t["slot_s"] = t.get("prepare_and_host_s", 0.0) + t.get("generate_s", 0.0)
                    res.run_timings.append(t)
                except (OSError, ValueError, KeyError):
                    pass
        finally:
            for c in clients:
                try:
                    c.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
            stop(proc)
            sampler.stop()
        res.peak = sampler.peak_mb
        res.samples = len(sampler.samples)
        res.server_tail = (tmpdir / "server.out").read_text(errors="replace")[-1200:]
        if profile and spy_out.exists():
            res.profile = summarise_pyspy(spy_out.read_text(errors="replace"))
    return res


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    common.QUICK = args.quick
    users = args.users or (5 if args.quick else 50)
    per_user = args.per_user or (1 if args.quick else 2)
    photo = common.phone_photo() if args.photo == "phone" else small_photo()
    profile = args.profile and shutil.which("py-spy") is not None
    main_env = dict(kv.split("=", 1) for kv in args.server_env)

    r = run_load(users, per_user, photo, main_env, profile, args.client_timeout)
    arena = None
    want_arena = args.arena_check == "always" or (
        args.arena_check == "auto" and not args.quick and r.peak > 600
    )
    if want_arena and "MALLOC_ARENA_MAX" not in main_env:
        arena = run_load(
            users, per_user, photo, {**main_env, "MALLOC_ARENA_MAX": "2"}, False, args.client_timeout
        )

    parts = (
        ["python", SCRIPT]
        + (["--quick"] if args.quick else [])
        + (["--photo", args.photo] if args.photo != "phone" else [])
    )
    parts += [f"--server-env {kv}" for kv in args.server_env]
    parts += ([f"--users {args.users}"] if args.users else []) + (
        [f"--per-user {args.per_user}"] if args.per_user else []
    )
    parts += (["--profile"] if args.profile else []) + (
        [f"--arena-check {args.arena_check}"] if args.arena_check != "auto" else []
    )
    parts += [f"--client-timeout {args.client_timeout:g}"] if args.client_timeout != 60.0 else []
    cmd = " ".join(parts)

    ok, total = r.ok, r.total
    p50, p95 = common.percentile(r.latencies, 50), common.percentile(r.latencies, 95)
    failed = len(r.failures)
    ideal_wall = math.ceil(total / CONCURRENCY) * LATENCY
    per_gen = (r.cpu_server + r.cpu_self) / max(ok, 1)
    cores = os.cpu_count() or 1
    cap = min(CEILING, cores / per_gen) if per_gen > 0 else CEILING

    body = [
        f"Command: `{cmd}` — {common.now_text()}, {common.machine_line()}."
        + (" **QUICK smoke run: figures are not meaningful.**" if args.quick else "")
        + "\n"
    ]
    body.append(
        f"`python app.py` with no key, `PORTRAIT_SIM_LATENCY={LATENCY:g}`, `PORTRAIT_CONCURRENCY={CONCURRENCY}`, "
        f"`PORTRAIT_QUEUE_SIZE={QUEUE}`{''.join(f', `{k}={v}`' for k, v in main_env.items())}; {users} users "
        f"(threads, one `gradio_client.Client(url, httpx_kwargs={{'timeout': {args.client_timeout:g}}})` each, "
        f"created before the clock in {r.clients_s:.1f} s) × "
        f"{per_user} generations = {total}; photo: "
        f"{'the 12-MP phone JPEG of §1' if args.photo == 'phone' else 'a 1200×1600 JPEG'} "
        f"({photo.stat().st_size:,} bytes) uploaded with every call. The load generator runs on the same "
        f"2 cores as the server"
        + (", and so does py-spy (`--profile`), which costs a few % of CPU" if profile else "")
        + f". Server up in {r.up_s:.1f} s.\n"
    )
    body.append(r.load_text + "\n")
    body.append(
        f"CPU cost per completed generation: server {r.cpu_server / max(ok, 1) * 1000:.0f} ms + load generator "
        f"{r.cpu_self / max(ok, 1) * 1000:.0f} ms = {per_gen * 1000:.0f} ms. So even with the whole machine "
        f"({cores} cores), no other tenant and perfect parallelism, this set-up tops out near "
        f"**{cap:.1f}/s ({cap / CEILING * 100:.0f} % of the ceiling)**; at {CEILING:g}/s the server alone "
        f"would need {r.cpu_server / max(ok, 1) * CEILING:.2f} cores.\n"
    )
    body.append(
        common.table(
            ["figure", "value"],
            [
                ["completed / failed / lost (no answer in 180 s)", f"{ok} / {failed} / {r.lost}"],
                ["upstream calls the simulator received", "n/a" if r.sim_calls is None else str(r.sim_calls)],
                ["runs saved in the output folder", str(r.saved_runs)],
                [
                    "wall, first submit to last answer",
                    f"{r.wall:.2f} s (ideal ceil({total}/{CONCURRENCY}) × {LATENCY:g} s = {ideal_wall:.0f} s)",
                ],
                [
                    "throughput (completed / wall)",
                    f"{r.thr:.2f}/s = {r.thr / CEILING * 100:.0f} % of the {CEILING:g}/s ceiling",
                ],
                [
                    "steady throughput (10th–90th percentile finishes)",
                    f"{r.steady:.2f}/s" if r.steady == r.steady else "—",
                ],
                [
                    "latency as users see it (upload + queue + run + download), p50 / p95 / max",
                    f"{p50:.2f} / {p95:.2f} / {max(r.latencies, default=float('nan')):.2f} s",
                ],
                ["CPU during the load: server / load generator", f"{r.cpu_server:.1f} / {r.cpu_self:.1f} s"],
                [
                    "inside the handler (run.json timings, median / p95): prepare + upload photo",
                    f"{r.t('prepare_and_host_s', 50):.2f} / {r.t('prepare_and_host_s', 95):.2f} s",
                ],
                [
                    "… generate (1 s simulated latency + render + download)",
                    f"{r.t('generate_s', 50):.2f} / {r.t('generate_s', 95):.2f} s",
                ],
                [
                    "… prepare + upload + generate (an `upstream` concurrency slot is held at least this long)",
                    f"{r.t('slot_s', 50):.2f} / {r.t('slot_s', 95):.2f} s",
                ],
                [
                    "server RSS: idle after start / before load / peak (process + children)",
                    f"{r.rss_idle:.0f} / {r.rss_before:.0f} / {r.peak:.0f} MB ({r.samples} samples)",
                ],
            ],
        )
    )
    if r.failures:
        uniq: dict[str, int] = {}
        for f in r.failures:
            uniq[f] = uniq.get(f, 0) + 1
        body.append("\nFailures:\n\n" + "\n".join(f"- {n} × `{m}`" for m, n in list(uniq.items())[:8]) + "\n")
        if r.tracebacks:
            body.append("\nFirst failure's traceback (tail):\n\n```\n" + r.tracebacks[0].strip() + "\n```\n")
    if r.profile:
        n = sum(r.profile.values()) or 1
        body.append(
            f"\nWhere the server's CPU goes: `py-spy record --rate 100 --nonblocking --format raw` on the "
            f"server during the main run ({n} samples of busy threads; each sample is put in the first "
            f"category, in this order, that its stack matches):\n"
        )
        body.append(
            common.table(
                ["server work", "share of busy samples"],
                [[k, f"{v / n * 100:.0f} %"] for k, v in r.profile.items() if v],
            )
        )
    if arena is not None:
        body.append(
            f"\nDiagnostic run, same load, server started with `MALLOC_ARENA_MAX=2` (glibc keeps at most 2 "
            f"malloc arenas instead of up to 8 per core, so freed image buffers are reused instead of "
            f"being kept per thread): peak RSS **{arena.peak:.0f} MB** (vs {r.peak:.0f} MB above; idle "
            f"{arena.rss_idle:.0f} MB); {arena.ok} / {len(arena.failures)} / {arena.lost} completed / failed / "
            f"lost; throughput {arena.thr:.2f}/s ({arena.thr / CEILING * 100:.0f} %); p50 / p95 "
            f"{common.percentile(arena.latencies, 50):.2f} / {common.percentile(arena.latencies, 95):.2f} s. "
            f"{arena.load_text}\n"
        )
    rows = [
        common.Row(
            "5",
            f"requests lost / failed (of {total})",
            f"{r.lost} / {failed}",
            "0",
            r.lost == 0 and failed == 0,
            cmd,
        ),
        common.Row(
            "5",
            f"throughput vs {CEILING:g}/s ceiling",
            f"{r.thr:.2f}/s ({r.thr / CEILING * 100:.0f} %)",
            "≥ 90 %",
            r.thr / CEILING >= 0.9,
            cmd,
        ),
        common.Row("5", "user latency p50 / p95", f"{p50:.2f} / {p95:.2f} s", "—", None, cmd),
        common.Row(
            "5", "server peak RSS (incl. children)", f"{r.peak:.0f} MB", "≤ 600 MB", r.peak <= 600, cmd
        ),
    ]
    if arena is not None:
        rows.append(
            common.Row(
                "5",
                "… diagnostic: peak RSS with MALLOC_ARENA_MAX=2",
                f"{arena.peak:.0f} MB",
                "≤ 600 MB",
                arena.peak <= 600,
                cmd,
            )
        )
    common.write_section(args.out, "load", "\n".join(body), rows)
    print(
        f"[load] {ok}/{total} ok, {failed} failed, {r.lost} lost; {r.thr:.2f}/s ({r.thr / CEILING * 100:.0f}%), "
        f"p50 {p50:.2f}s p95 {p95:.2f}s, peak RSS {r.peak:.0f} MB, wall {r.wall:.1f}s"
        + (f"; arena=2 peak {arena.peak:.0f} MB" if arena else "")
        + f" -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
