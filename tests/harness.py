"""Test helpers shared by the suites: the canary key, free ports, launching the app in-process.

(Kept out of conftest.py: tests/e2e has its own conftest, and two modules named `conftest`
cannot both be imported by name.)
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from portrait.client import PortraitClient
from portrait.settings import Settings

# A key-shaped value that must never show up anywhere a visitor or a log reader can see.
TEST_KEY = "sk-test-LEAKCANARY-7f3a9c21e5b8d604"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_app(settings: Settings):
    """The real page and endpoints on 127.0.0.1 for these settings: (demo, studio, url)."""
    from portrait.presets import load_presets
    from portrait.studio import Studio
    from portrait.ui import build_demo, launch_kwargs, queue_kwargs

    studio = Studio(settings, PortraitClient(settings, retries=0))
    demo = build_demo(studio, load_presets(settings.presets_path)).queue(**queue_kwargs(settings))
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **launch_kwargs(settings),
    )
    return demo, studio, f"http://127.0.0.1:{port}/"


ROOT = Path(__file__).resolve().parent.parent


def start_app_process(env: dict[str, str], log: Path, timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """`python app.py` in the background with `env`; returns once its page answers (or fails with its log)."""
    url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}/"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + "config", timeout=2).status_code == 200:
                return proc, url
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"app.py did not answer within {timeout:.0f} s")


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate a child process, killing it if it does not stop in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
