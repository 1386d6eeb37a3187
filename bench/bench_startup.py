"""§4 Start-up: `python app.py` until GET / answers 200, vs a one-component gr.Blocks hello world.

Both are launched the same way (env: no AI302_API_KEY, GRADIO_SERVER_PORT=<free port>,
PORTRAIT_OUTPUT_DIR=<tmp>, GRADIO_ANALYTICS_ENABLED=False), interleaved. Also `python -c "import
portrait"` (vs `python -c "pass"`), whether importing portrait imports gradio, and where start-up
time goes (`python -X importtime`, and bench/startup_phases.py).

Run: python bench/bench_startup.py [--quick] [--runs N] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SCRIPT = "bench/bench_startup.py"
APP = ["app.py"]
HELLO = ["bench/hello_app.py"]
START_TIMEOUT = 120.0


def launch_env(port: int, out_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("AI302_API_KEY", "PORTRAIT_API_BASE", "GRADIO_SERVER_NAME", "PORTRAIT_SIM_PORT"):
        env.pop(key, None)
    env.update(
        GRADIO_SERVER_PORT=str(port),
        PORTRAIT_OUTPUT_DIR=out_dir,
        GRADIO_ANALYTICS_ENABLED="False",
    )
    return env


def wait_200(port: int, proc: subprocess.Popen, timeout: float = START_TIMEOUT) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"no 200 from port {port} within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def time_start(
    argv: list[str], extra_python: list[str] | None = None, stderr_path: Path | None = None
) -> float:
    """Seconds from Popen to the first 200 on GET /."""
    port = common.free_port()
    with tempfile.TemporaryDirectory(prefix="bench-start-") as out_dir:
        err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
        try:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, *(extra_python or []), *argv],
                cwd=common.ROOT,
                env=launch_env(port, out_dir),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            try:
                wait_200(port, proc)
                return time.perf_counter() - t0
            finally:
                stop(proc)
        finally:
            if stderr_path:
                err.close()  # type: ignore[union-attr]


def time_cmd(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=common.ROOT, check=True)
    return time.perf_counter() - t0


def importtime_summary(stderr_text: str) -> dict[str, float]:
    """From `-X importtime` output: all imports, gradio's share, the rest, and portrait's own code (s)."""
    total = gradio = portrait_self = 0.0
    for line in stderr_text.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        fields = line[len("import time:") :].split("|")
        if len(fields) != 3:
            continue
        self_us, cum_us, raw = fields
        name = raw[1:]  # one space after the bar; more means a nested import
        depth = (len(name) - len(name.lstrip(" "))) // 2
        name = name.strip()
        if depth == 0:
            total += int(cum_us) / 1e6
        if name == "gradio":
            gradio = int(cum_us) / 1e6
        if name == "portrait" or name.startswith("portrait."):
            portrait_self += int(self_us) / 1e6
    return {"all": total, "gradio": gradio, "rest": total - gradio, "portrait_self": portrait_self}


def main(argv: list[str] | None = None) -> int:
    args = common.parse_args(__doc__.splitlines()[0], argv)
    runs = args.runs or (1 if args.quick else 5)

    # -- app.py vs hello world, interleaved
    load = common.MachineLoad().__enter__()
    times = common.interleave(
        {"app": lambda: time_start(APP), "hello": lambda: time_start(HELLO)}, runs, warmup=0
    )
    ratios = common.paired_ratios(times["app"], times["hello"])
    ratio = common.median(ratios)

    # -- import portrait
    imp = common.interleave(
        {"portrait": lambda: time_cmd("import portrait"), "pass": lambda: time_cmd("pass")},
        runs if args.quick else max(5, runs),
        warmup=0 if args.quick else 1,
    )
    load.__exit__(None, None, None)
    net = [a - b for a, b in zip(imp["portrait"], imp["pass"])]
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, portrait; h = [m for m in ('gradio', 'gradio_client', 'fastapi', 'numpy', 'pandas', 'httpx') if m in sys.modules];"
            "print(repr('gradio' in sys.modules)); print(len(sys.modules)); print(','.join(h))",
        ],
        cwd=common.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    gradio_loaded, n_modules, heavy = probe[0].strip(), probe[1].strip(), probe[2].strip()

    # -- diagnosis: phases and import time (skipped in --quick)
    phases: dict[str, dict[str, float]] = {}
    imports: dict[str, dict[str, float]] = {}
    if not args.quick:
        for which in ("app", "hello"):
            samples = []
            for _ in range(2):
                port = common.free_port()
                with tempfile.TemporaryDirectory(prefix="bench-phase-") as out_dir:
                    res = subprocess.run(
                        [sys.executable, "bench/startup_phases.py", which],
                        cwd=common.ROOT,
                        env=launch_env(port, out_dir),
                        capture_output=True,
                        text=True,
                        timeout=START_TIMEOUT,
                    )
                line = [x for x in res.stdout.splitlines() if x.startswith("{")]
                if line:
                    samples.append(json.loads(line[-1]))
            if samples:
                phases[which] = {k: common.median([s[k] for s in samples]) for k in samples[0]}
        with tempfile.TemporaryDirectory(prefix="bench-imptime-") as tmp:
            for which, argv_ in (("app", APP), ("hello", HELLO)):
                errf = Path(tmp) / f"{which}.txt"
                time_start(argv_, ["-X", "importtime"], errf)
                imports[which] = importtime_summary(errf.read_text(errors="replace"))

    cmd = common.command_line(SCRIPT, args)
    body = [common.section_preamble(args, SCRIPT)]
    body.append(
        f"Each start: `subprocess.Popen([python, script])` with no `AI302_API_KEY` (so app.py starts its "
        f"built-in simulator), `GRADIO_SERVER_PORT`=a free port, `PORTRAIT_OUTPUT_DIR`=tmp, "
        f"`GRADIO_ANALYTICS_ENABLED=False`, then `GET /` every 10 ms until 200; then SIGTERM. "
        f"Environment: `PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')}` (inherited; "
        f"when set, portrait's own modules are compiled at every start). "
        f"{runs} interleaved starts each (app, hello, hello, app, …).\n"
    )
    body.append(load.text() + " (Covers the start-up and import timings, not the diagnostics.)\n")
    body.append(
        common.table(
            ["command", "seconds to first 200, median (min–max)"],
            [
                ["`python app.py`", common.spread(times["app"], 1, "{:.2f}")],
                ["`python bench/hello_app.py`", common.spread(times["hello"], 1, "{:.2f}")],
                ["**app / hello, per round**", common.spread(ratios, 1, "{:.2f}")],
            ],
        )
    )
    body.append("\nImporting the library:\n")
    body.append(
        common.table(
            ["figure", "value"],
            [
                ['`python -c "import portrait"`, s', common.spread(imp["portrait"], 1, "{:.3f}")],
                ['`python -c "pass"`, s', common.spread(imp["pass"], 1, "{:.3f}")],
                ["import portrait, net of interpreter start, s", common.spread(net, 1, "{:.3f}")],
                ["`'gradio' in sys.modules` after `import portrait`", f"`{gradio_loaded}`"],
                ["modules loaded by `import portrait` (incl. interpreter's)", n_modules],
                ["of gradio_client, fastapi, numpy, pandas, httpx, loaded", f"`{heavy or 'none'}`"],
            ],
        )
    )
    if phases:
        keys = [
            "interpreter_s",
            "import_gradio",
            "import_portrait",
            "settings_presets",
            "studio_open",
            "build_demo",
            "launch_returned",
            "first_200",
        ]
        rows_ = []
        for k in keys:
            a = phases.get("app", {}).get(k)
            h = phases.get("hello", {}).get(k)
            rows_.append([k, "" if a is None else f"{a:.2f}", "" if h is None else f"{h:.2f}"])
        body.append(
            "\nPhases (`python bench/startup_phases.py app|hello`: app.py's steps with timestamps, medians of "
            "2; seconds since the script's first line, `interpreter_s` = process age then):\n"
        )
        body.append(common.table(["end of phase", "app", "hello"], rows_))
        a, h = phases.get("app", {}), phases.get("hello", {})
        if "first_200" in a and "first_200" in h:
            own_app = a["first_200"] - a["import_gradio"]
            own_hello = h["first_200"] - h["import_gradio"]
            shared = (a["import_gradio"] + h["import_gradio"]) / 2 + (
                a["interpreter_s"] + h["interpreter_s"]
            ) / 2
            body.append(
                f"\nAfter `import gradio` (which both pay: {shared:.2f} s here, with the interpreter), app.py "
                f"needs {own_app:.2f} s (portrait's imports, settings and presets, the simulator, building a "
                f"page of ~40 components, launch) and the hello world {own_hello:.2f} s. On that basis the "
                f"app's own start-up cost is {own_app - own_hello:+.2f} s, a ratio of about "
                f"**{(shared + own_app) / (shared + own_hello):.2f}** — the figure the interleaved starts "
                f"above estimate, with less of the neighbours' noise.\n"
            )
    if imports:
        a, h = imports["app"], imports["hello"]
        body.append(
            "\n`python -X importtime <script>` (one start each, until the first 200; import time is "
            "inflated by the tracing), seconds:\n"
        )
        body.append(
            common.table(
                ["imports", "app.py", "hello_app.py"],
                [
                    ["all (every import at any time, cumulative)", f"{a['all']:.2f}", f"{h['all']:.2f}"],
                    ["`gradio` (cumulative)", f"{a['gradio']:.2f}", f"{h['gradio']:.2f}"],
                    ["everything not under `gradio`", f"{a['rest']:.2f}", f"{h['rest']:.2f}"],
                    ["`portrait.*` modules' own code (self time)", f"{a['portrait_self']:.2f}", "—"],
                ],
            )
        )
    rows = [
        common.Row(
            "4",
            "start-up app.py / hello world (to first 200)",
            f"{ratio:.2f} ({common.median(times['app']):.2f} s / {common.median(times['hello']):.2f} s)",
            "≤ 1.3",
            ratio <= 1.3,
            cmd,
        ),
        common.Row(
            "4",
            '`python -c "import portrait"`',
            f"{common.median(imp['portrait']):.3f} s ({common.median(net):.3f} s net)",
            "—",
            None,
            cmd,
        ),
        common.Row(
            "4",
            "`'gradio' in sys.modules` after import portrait",
            gradio_loaded,
            "False",
            gradio_loaded == "False",
            cmd,
        ),
    ]
    common.write_section(args.out, "startup", "\n".join(body), rows)
    print(
        f"[startup] app {common.median(times['app']):.2f}s, hello {common.median(times['hello']):.2f}s, ratio {ratio:.2f}; "
        f"import portrait {common.median(imp['portrait']):.3f}s, gradio loaded: {gradio_loaded} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
