"""Start-up, phase by phase, for §4's diagnosis: the steps of app.py (or hello_app.py) with timestamps.

    python bench/startup_phases.py app|hello

Prints one JSON object: seconds from interpreter start (time.perf_counter() at the first line of
this file is taken after the interpreter itself started; `interpreter_s` estimates that part
from the process start time) to the end of each phase. Mirrors app.py's steps exactly; it is a
diagnostic, not the measured figure (that is `python app.py` itself, in bench_startup.py).
"""

from __future__ import annotations

import json
import os
import sys
import time

T0 = time.perf_counter()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _process_age() -> float:
    """Seconds since this process started (from /proc), i.e. interpreter start-up so far."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def _wait_200(port: int) -> None:
    import http.client

    while True:
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


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "app"
    age = _process_age()
    marks: dict[str, float] = {"interpreter_s": age}
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    port = int(os.environ.get("GRADIO_SERVER_PORT", "7860"))

    def mark(name: str) -> None:
        marks[name] = time.perf_counter() - T0

    import gradio as gr

    mark("import_gradio")
    if which == "app":
        from portrait.presets import load_presets
        from portrait.settings import Settings
        from portrait.studio import Studio
        from portrait.ui import build_demo, launch_kwargs, queue_kwargs

        mark("import_portrait")
        settings = Settings.from_env()
        presets = load_presets(settings.presets_path)
        mark("settings_presets")
        studio = Studio.open(settings)
        mark("studio_open")
        demo = build_demo(studio, presets).queue(**queue_kwargs(settings))
        mark("build_demo")
        demo.launch(
            server_name="127.0.0.1",
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            **launch_kwargs(settings),
        )
        mark("launch_returned")
    else:
        with gr.Blocks() as demo:
            gr.Markdown("Hello")
        mark("build_demo")
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        mark("launch_returned")
    _wait_200(port)
    mark("first_200")
    print(json.dumps(marks), flush=True)
    demo.close(verbose=False)
    os._exit(0)


if __name__ == "__main__":
    main()
