"""Test helpers shared by the suites: the canary key, free ports, launching the app in-process.

(Kept out of conftest.py: tests/e2e has its own conftest, and two modules named `conftest`
cannot both be imported by name.)
"""

from __future__ import annotations

import socket

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
