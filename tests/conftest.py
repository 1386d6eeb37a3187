"""Shared fixtures: one simulator per session over real HTTP on 127.0.0.1, reset for every test."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from photo_factory import jpeg_bytes, portrait_image, write

from portrait.client import PortraitClient
from portrait.settings import Settings
from portrait.simulator import Simulator

# A key-shaped value that must never show up anywhere a visitor or a log reader can see.
TEST_KEY = "sk-test-LEAKCANARY-7f3a9c21e5b8d604"


@pytest.fixture(scope="session")
def sim_server():
    """The simulator, started once per test session."""
    server = Simulator(latency=0.0).start()
    yield server
    server.stop()


@pytest.fixture
def sim(sim_server):
    """The session's simulator with faults, latency and its request log cleared."""
    sim_server.reset()
    yield sim_server
    sim_server.reset()


@pytest.fixture
def settings(sim, tmp_path) -> Settings:
    """Settings pointing at the simulator with a known test key and a private output folder."""
    return Settings(
        api_key=TEST_KEY,
        api_base=sim.url,
        output_dir=tmp_path / "outputs",
        connect_timeout=2.0,
        read_timeout=5.0,
        download_timeout=5.0,
    )


@pytest.fixture
def client(settings):
    """A client with no transport retries (retry behaviour has its own tests)."""
    c = PortraitClient(settings, retries=0)
    yield c
    c.close()


@pytest.fixture
def photo_path(tmp_path) -> Path:
    """A 900x1200 JPEG portrait on disk."""
    return write(tmp_path / "photo.jpg", jpeg_bytes(portrait_image()))


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
