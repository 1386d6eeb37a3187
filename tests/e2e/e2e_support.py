"""Helpers for the e2e suite: free ports, child processes (the app, the simulator), test photos."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_TIMEOUT = 60.0
VIEWPORT = {"width": 1400, "height": 1000}
# A key-shaped value that must never reach the visitor's browser.
CANARY_KEY = "sk-e2e-CANARY-5f1d2c"

# Inherited settings that would change what the app under test does (a real key, a login,
# visitor limits, another output folder...) are dropped before ours are set.
_DROPPED_ENV = re.compile(r"^(AI302_|PORTRAIT_|GRADIO_)")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: ours, without inherited portrait/Gradio settings."""
    env = {k: v for k, v in os.environ.items() if not _DROPPED_ENV.match(k)}
    env.update(PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False", **extra)
    return env


@dataclass
class Proc:
    """A child process and where its output goes."""

    popen: subprocess.Popen
    log: Path

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def stop(proc: Proc) -> None:
    if proc.popen.poll() is None:
        proc.popen.terminate()
        try:
            proc.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(timeout=10)


def wait_http_200(url: str, proc: Proc, timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            pytest.fail(f"{proc.popen.args} exited with {proc.popen.returncode}:\n{proc.tail()}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer 200 within {timeout:.0f} s:\n{proc.tail()}")


def spawn(cmd: list[str], env: dict[str, str], log: Path) -> Proc:
    """Start a child in the repo root, its output in `log`."""
    with open(log, "wb") as out:
        popen = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Proc(popen, log)


@contextmanager
def running(cmd: list[str], env: dict[str, str], ready_url: str, log: Path) -> Iterator[Proc]:
    """Start a child, wait until `ready_url` answers 200, stop it (terminate, then kill) afterwards."""
    proc = spawn(cmd, env, log)
    try:
        wait_http_200(ready_url, proc)
        yield proc
    finally:
        stop(proc)


@dataclass
class App:
    """One running app: its page URL, its simulator's control URL and its output folder."""

    url: str
    sim_url: str
    output_dir: Path
    proc: Proc


@contextmanager
def offline_app(output_dir: Path, log: Path, latency: float = 0.3) -> Iterator[App]:
    """`python app.py` with no key: the built-in simulator on a port of our choosing."""
    port, sim_port = free_port(), free_port()
    env = clean_env(
        GRADIO_SERVER_PORT=str(port),
        PORTRAIT_SIM_PORT=str(sim_port),
        PORTRAIT_SIM_LATENCY=str(latency),
        PORTRAIT_OUTPUT_DIR=str(output_dir),
    )
    url = f"http://127.0.0.1:{port}"
    with running([sys.executable, "app.py"], env, url + "/", log) as proc:
        yield App(url, f"http://127.0.0.1:{sim_port}", output_dir, proc)


class SimControl:
    """The simulator's control endpoints."""

    def __init__(self, base: str) -> None:
        self.base = base

    def config(self, **changes: object) -> dict:
        resp = requests.post(f"{self.base}/_sim/config", json=changes, timeout=5)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def reset(self) -> None:
        resp = requests.post(f"{self.base}/_sim/reset", timeout=5)
        assert resp.status_code == 200, resp.text

    def log(self) -> dict:
        resp = requests.get(f"{self.base}/_sim/requests", timeout=5)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def requests(self) -> list[dict]:
        """The generation calls received since the last reset, oldest first."""
        return self.log()["requests"]


def face_photo(path: Path, size: tuple[int, int] = (900, 1200)) -> Path:
    """A synthetic portrait: gradient background, skin-coloured head, two eyes, blue shoulders."""
    w, h = size
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(img)
    draw.ellipse((w * 0.3, h * 0.15, w * 0.7, h * 0.55), fill=(224, 180, 150))
    draw.ellipse((w * 0.4, h * 0.3, w * 0.45, h * 0.34), fill=(40, 30, 30))
    draw.ellipse((w * 0.55, h * 0.3, w * 0.6, h * 0.34), fill=(40, 30, 30))
    draw.ellipse((w * 0.46, h * 0.42, w * 0.54, h * 0.45), fill=(170, 80, 80))
    draw.rectangle((w * 0.15, h * 0.6, w * 0.85, h), fill=(30, 60, 120))
    img.save(path, "JPEG", quality=90)
    return path
