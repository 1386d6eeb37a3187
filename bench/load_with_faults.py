"""Load with faults, full size, run by hand; and peak memory of hostile photos. Prints Markdown.

Load (the default): `python app.py` runs as a subprocess in offline mode (its built-in simulator
on a fixed port, latency 1 s), the simulator is told `fault_rate=0.1` (the default transient
mix) through its control endpoint, then USERS gradio_client users each send REQUESTS
`/generate` calls one after another, all users at once. Every call ends as
- answered: images came back,
- failed with a message: an AppError whose text is bilingual (zh / en),
- lost: anything else (a timeout of the configured wait, a connection error, an odd message).
Reported: those counts, the longest wait against the configured timeout, p50/p95 waits, the
simulator's call count (transport retries show up there), and the app process's peak RSS
(sampled from /proc/<pid>/status every 0.1 s, plus the kernel's VmHWM).

Photos (`--photos`): each photo of a hostile corpus goes through `portrait.images.prepare_photo`
(the app's default caps) in its own subprocess, which reports its outcome and `ru_maxrss`; an
import-only subprocess gives the baseline.

    python bench/load_with_faults.py                  # 30 users x 3 requests, concurrency 8
    python bench/load_with_faults.py --photos         # the hostile photo corpus
    python bench/load_with_faults.py --quick          # a smoke run (tiny counts)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402 - puts the repository root on sys.path

ROOT = common.ROOT
CJK = re.compile(r"[\u4e00-\u9fff]")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--users", type=int, default=30)
    p.add_argument("--requests", type=int, default=3, help="calls per user, one after another")
    p.add_argument("--latency", type=float, default=1.0, help="simulated seconds per generation")
    p.add_argument("--fault-rate", type=float, default=0.1)
    p.add_argument("--concurrency", type=int, default=8, help="PORTRAIT_CONCURRENCY of the app")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds a caller waits for an answer")
    p.add_argument("--photos", action="store_true", help="measure the hostile photo corpus instead")
    p.add_argument("--quick", action="store_true", help="a smoke run: 4 users x 1 request")
    p.add_argument("--build-corpus", type=Path, default=None, help=argparse.SUPPRESS)  # used by --photos
    args = p.parse_args(argv)
    if args.quick:
        args.users, args.requests = 4, 1
    return args


def command(args: argparse.Namespace, argv: list[str]) -> str:
    return "python bench/load_with_faults.py" + ("" if not argv else " " + " ".join(argv))


def machine() -> str:
    m = common.machine_info()
    return (
        f"{m['cores']} cores ({m['cpu']}, shared), {m['memory']} RAM, {m['os']}; Python {m['python']}, "
        f"Gradio {m['gradio']}, gradio_client {m['gradio_client']}, Pillow {m['pillow']}"
    )


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "unknown"


def status_kb(pid: int, field: str) -> int:
    """A kB field of /proc/<pid>/status (VmRSS, VmHWM), 0 when the process is gone."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------------- load


def start_app(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    import requests

    url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}/"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"app.py exited with {proc.returncode}; see {log}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + "config", timeout=2).status_code == 200:
                return proc, url
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("app.py did not answer within 180 s")


class RssSampler(threading.Thread):
    """Samples a process's RSS every 0.1 s; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self._stop_event = pid, 0, threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.1):
            self.peak_kb = max(self.peak_kb, status_kb(self.pid, "VmRSS"))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_load(args: argparse.Namespace, argv: list[str]) -> str:
    import requests
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    tmp = Path(tempfile.mkdtemp(prefix="portrait-load-"))
    photo = tmp / "photo.jpg"
    sys.path.insert(0, str(ROOT / "tests"))
    from photo_factory import jpeg_bytes, portrait_image

    photo.write_bytes(jpeg_bytes(portrait_image()))
    sim_port = common.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI302_", "PORTRAIT_", "GRADIO_"))}
    env.update(
        PORTRAIT_OUTPUT_DIR=str(tmp / "outputs"),
        PORTRAIT_SIM_LATENCY=str(args.latency),
        PORTRAIT_SIM_PORT=str(sim_port),
        PORTRAIT_CONCURRENCY=str(args.concurrency),
        GRADIO_SERVER_PORT=str(common.free_port()),
        GRADIO_ANALYTICS_ENABLED="False",
        GRADIO_TEMP_DIR=str(tmp / "gradio"),
    )
    started_at = common.now_text()
    proc, url = start_app(env, tmp / "app.log")
    sim = f"http://127.0.0.1:{sim_port}"
    options = {
        "verbose": False,
        "download_files": str(tmp / "downloads"),
        "httpx_kwargs": {"timeout": args.timeout},
    }
    try:
        warm = Client(url, **options)
        warm.predict(image=handle_file(str(photo)), api_name="/generate")
        warm.close()
        rss_idle = status_kb(proc.pid, "VmRSS")
        requests.post(sim + "/_sim/reset", timeout=10)
        requests.post(
            sim + "/_sim/config", json={"fault_rate": args.fault_rate}, timeout=10
        ).raise_for_status()
        sampler = RssSampler(proc.pid)
        sampler.start()
        with ThreadPoolExecutor(args.users) as pool:
            clients = list(pool.map(lambda _: Client(url, **options), range(args.users)))

        def user(client: Client) -> list[tuple[str, float, str]]:
            results = []
            for _ in range(args.requests):
                t0 = time.monotonic()
                try:
                    job = client.submit(image=handle_file(str(photo)), api_name="/generate")
                    files, _ = job.result(timeout=args.timeout)
                    results.append(("answered" if files else "lost", time.monotonic() - t0, ""))
                except AppError as err:
                    text = str(err)
                    kind = "failed" if CJK.search(text) and " / " in text else "lost"
                    results.append((kind, time.monotonic() - t0, text))
                except Exception as err:  # noqa: BLE001 - a lost request, whatever it was
                    results.append(("lost", time.monotonic() - t0, repr(err)))
            return results

        t0 = time.monotonic()
        with ThreadPoolExecutor(args.users) as pool:
            outcomes = [o for per_user in pool.map(user, clients) for o in per_user]
        wall = time.monotonic() - t0
        sampler.stop()
        with ThreadPoolExecutor(args.users) as pool:
            list(pool.map(Client.close, clients))  # each waits up to 1 s for its heartbeat thread
        calls = len(requests.get(sim + "/_sim/requests", timeout=30).json()["requests"])
        rss_end = status_kb(proc.pid, "VmRSS")
        hwm = status_kb(proc.pid, "VmHWM")
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    shutil.rmtree(tmp, ignore_errors=True)

    kinds = [k for k, _, _ in outcomes]
    waits = [w for _, w, _ in outcomes]
    answered_waits = [w for k, w, _ in outcomes if k == "answered"]
    failures: dict[str, int] = {}
    for kind, _, text in outcomes:
        if kind != "answered":
            key = text.split(" / ", 1)[-1].split(" (", 1)[0][:70] if kind == "failed" else text[:70]
            failures[f"{kind}: {key}"] = failures.get(f"{kind}: {key}", 0) + 1
    total = args.users * args.requests
    rows = [
        ("requests", f"{total} ({args.users} users × {args.requests}, all users at once)"),
        ("answered", str(kinds.count("answered"))),
        ("failed with a bilingual message", str(kinds.count("failed"))),
        ("lost", str(kinds.count("lost"))),
        ("longest wait / configured timeout", f"{max(waits):.1f} s / {args.timeout:.0f} s"),
        (
            "wait p50 / p95 (all calls)",
            f"{common.percentile(waits, 50):.1f} s / {common.percentile(waits, 95):.1f} s",
        ),
        (
            "wait p50 / p95 (answered)",
            f"{common.percentile(answered_waits, 50):.1f} s / {common.percentile(answered_waits, 95):.1f} s",
        ),
        ("wall time", f"{wall:.1f} s"),
        ("generation calls the simulator got", f"{calls} (retries of 429/503 included)"),
        ("app RSS idle → after the run", f"{rss_idle / 1024:.0f} MB → {rss_end / 1024:.0f} MB"),
        ("app peak RSS (sampled / VmHWM)", f"{sampler.peak_kb / 1024:.0f} MB / {hwm / 1024:.0f} MB"),
    ]
    lines = [
        f"Command: `{command(args, argv)}` — {started_at}; load average before the run: {load_average()}.",
        f"Machine: {machine()}.",
        f"Settings: simulator latency {args.latency} s, fault_rate {args.fault_rate} (default transient mix), "
        f"PORTRAIT_CONCURRENCY={args.concurrency}, app transport retries on (as shipped).",
        "",
        common.table(["figure", "value"], rows).rstrip(),
        "",
        "Failures by message:",
        "",
        *(f"- {n} × {k}" for k, n in sorted(failures.items(), key=lambda kv: -kv[1])),
    ]
    if not failures:
        lines.append("- none")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- photos


CHILD = r"""
import json, resource, sys, time
from portrait.errors import PhotoError
from portrait.images import prepare_photo
path = sys.argv[1]
t0 = time.perf_counter()
if path == "-":
    outcome = "import only (baseline)"
else:
    try:
        p = prepare_photo(path)
        outcome = f"ok: {p.original_size[0]}x{p.original_size[1]} -> {p.width}x{p.height} JPEG, {len(p.jpeg) // 1024} KB"
    except PhotoError as err:
        outcome = "PhotoError: " + err.en
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - t0, "hwm_kb": hwm,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _save(img, fmt: str, **kwargs) -> bytes:  # noqa: ANN001 - a PIL image
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def build_corpus(folder: Path, notes: list[str]) -> list[tuple[str, Path]]:
    """The hostile photos, written to `folder`; the 20000x20000 JPEG is cached in bench/out."""
    from PIL import Image

    sys.path.insert(0, str(ROOT / "tests"))
    from photo_factory import portrait_image

    phone = common.phone_photo()  # 12 MP, EXIF orientation 6
    upright = portrait_image((3024, 4032))
    files: dict[str, bytes] = {
        "zero bytes (.jpg)": b"",
        "text renamed .jpg": b"I am a text file pretending to be a JPEG.\n" * 20,
        "truncated JPEG (12 MP, first half)": phone.read_bytes()[: phone.stat().st_size // 2],
        "PNG bomb 20000x20000 (1-bit)": _save(Image.new("1", (20000, 20000)), "PNG"),
        "animated GIF 1000x1000, 20 frames": b"",
        "CMYK JPEG 3024x4032": _save(upright.convert("CMYK"), "JPEG", quality=90),
        "16-bit grey PNG 3024x4032": _save(
            Image.linear_gradient("L")
            .resize((3024, 4032))
            .convert("I")
            .point(lambda v: v * 256)
            .convert("I;16"),
            "PNG",
        ),
        "RGBA PNG 3024x4032 (alpha)": _save(upright.convert("RGBA"), "PNG"),
        "EXIF-rotated phone JPEG 4032x3024 (12 MP)": phone.read_bytes(),
        "file over the 30 MB read cap (31 MB)": phone.read_bytes()
        + b"\0" * (31_000_000 - phone.stat().st_size),
    }
    # The worst a photo can be and still be accepted: exactly at the 64 MP pixel cap.
    at_cap = portrait_image((8000, 8000))
    files["JPEG 8000x8000 (64 MP, at the pixel cap)"] = _save(at_cap, "JPEG", quality=90)
    files["RGBA PNG 8000x8000 (64 MP, at the pixel cap)"] = _save(
        at_cap.convert("RGBA"), "PNG", compress_level=1
    )
    del at_cap
    frames = [Image.new("RGB", (1000, 1000), (i * 12, 80, 200 - i * 8)) for i in range(20)]
    files["animated GIF 1000x1000, 20 frames"] = _save(
        frames[0], "GIF", save_all=True, append_images=frames[1:]
    )
    corpus = []
    for name, data in files.items():
        path = folder / (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ".bin")
        path.write_bytes(data)
        corpus.append((name, path))

    big = common.OUT_DIR / "real_20000x20000.jpg"
    if not big.exists():
        t0 = time.monotonic()
        img = Image.linear_gradient("L").resize((20000, 20000), Image.Resampling.BILINEAR)
        img = Image.merge("RGB", (img, img.rotate(90), img.rotate(180)))
        tmp = big.with_suffix(".tmp")
        img.save(tmp, "JPEG", quality=80)
        del img
        os.replace(tmp, big)
        notes.append(
            f"The real 20000x20000 JPEG took {time.monotonic() - t0:.0f} s to make (cached in bench/out)."
        )
    corpus.insert(4, ("real JPEG 20000x20000 (400 MP)", big))

    heic = folder / "photo.heic"
    if shutil.which("heif-enc"):
        png = folder / "heic-source.png"
        upright.save(png)
        subprocess.run(["heif-enc", "-q", "60", str(png), "-o", str(heic)], check=True, capture_output=True)
        corpus.append(("HEIC 3024x4032 (iPhone format, made by heif-enc)", heic))
    else:
        notes.append(
            "heif-enc is not installed: the HEIC case used tests/test_reliability.py's 96x128 sample."
        )
        sys.path.insert(0, str(ROOT / "tests"))
        from test_reliability import HEIC

        heic.write_bytes(HEIC)
        corpus.append(("HEIC 96x128 (test sample)", heic))
    return corpus


def run_photos(args: argparse.Namespace, argv: list[str]) -> str:
    started_at = common.now_text()
    folder = Path(tempfile.mkdtemp(prefix="portrait-photos-"))
    try:
        # Built in a subprocess: Linux carries a parent's peak RSS across fork+exec into the
        # child's ru_maxrss, so the measuring parent must stay small.
        built = subprocess.run(
            [sys.executable, __file__, "--build-corpus", str(folder)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            check=True,
        )
        made = json.loads(built.stdout)
        notes: list[str] = made["notes"]
        corpus = [("(no photo: interpreter + portrait.images imported)", Path("-"))]
        corpus += [(name, Path(path)) for name, path in made["corpus"]]
        rows = []
        for name, path in corpus:
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(path)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            if proc.returncode != 0:
                rows.append((name, "—", "—", "—", "—", f"crashed: {proc.stderr.strip().splitlines()[-1]}"))
                continue
            out = json.loads(proc.stdout)
            size = "—" if str(path) == "-" else f"{path.stat().st_size / 1e6:.2f} MB"
            peak, maxrss = f"{out['hwm_kb'] / 1024:.0f} MB", f"{out['maxrss_kb'] / 1024:.0f} MB"
            rows.append((name, size, peak, maxrss, f"{out['seconds']:.2f} s", out["outcome"]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    lines = [
        f"Command: `{command(args, argv)}` — {started_at}; load average before the run: {load_average()}.",
        f"Machine: {machine()}.",
        "Each row is a fresh subprocess: `prepare_photo(path)` with the app's default caps (30 MB read, "
        "64 MP, long edge 2048, 4.5 MB JPEG out). Peak RSS is that process's VmHWM (/proc/self/status); "
        "`ru_maxrss` is shown too (on Linux it also counts the parent's footprint at spawn time).",
        "",
        common.table(["photo", "file", "peak RSS (VmHWM)", "ru_maxrss", "time", "outcome"], rows).rstrip(),
    ]
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.build_corpus is not None:
        notes: list[str] = []
        corpus = build_corpus(args.build_corpus, notes)
        print(json.dumps({"corpus": [(name, str(path)) for name, path in corpus], "notes": notes}))
        return 0
    print(run_photos(args, argv) if args.photos else run_load(args, argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
