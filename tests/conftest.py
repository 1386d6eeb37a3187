"""Shared fixtures: one simulator per session over real HTTP on 127.0.0.1, reset for every test."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import TEST_KEY
from photo_factory import jpeg_bytes, portrait_image, write

from portrait.client import PortraitClient
from portrait.settings import Settings
from portrait.simulator import Simulator


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
