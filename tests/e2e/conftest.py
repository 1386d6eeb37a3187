"""End-to-end fixtures: the real app as a subprocess, headless Debian Chromium, one page per test.

The app runs exactly as a person starts it (`python app.py`) with no AI302_API_KEY, so it uses
its built-in simulator; PORTRAIT_SIM_PORT pins that simulator to a known port so the tests can
steer it (`POST /_sim/config`, `POST /_sim/reset`) and read what it received (`GET /_sim/requests`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    VIEWPORT,
    App,
    SimControl,
    face_photo,
    offline_app,
)

# -- session fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium; never a downloaded browser."""
    if not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} is missing (install Debian's chromium package); the e2e suite needs it"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def e2e_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def app(e2e_tmp, chromium_path) -> Iterator[App]:
    """The app under test, started once for the session (offline: built-in simulator)."""
    with offline_app(e2e_tmp / "outputs", e2e_tmp / "app.log") as running_app:
        yield running_app


@pytest.fixture(scope="session")
def photo(e2e_tmp) -> Path:
    """A 900x1200 JPEG of a synthetic person."""
    return face_photo(e2e_tmp / "face.jpg")


@pytest.fixture(scope="session")
def not_an_image(e2e_tmp) -> Path:
    """Text pretending to be a JPEG."""
    path = e2e_tmp / "holiday.jpg"
    path.write_text("This is not a photo, just some text with a .jpg name.\n" * 20)
    return path


# -- per-test fixtures ----------------------------------------------------------------------


@pytest.fixture
def sim(app) -> SimControl:
    """The app's simulator with faults, latency and the request log reset for this test."""
    control = SimControl(app.sim_url)
    control.reset()
    return control


@pytest.fixture
def locale() -> str:
    """The browser language (tests override it with @pytest.mark.parametrize('locale', ...))."""
    return "en-US"


def screenshot_name(request: pytest.FixtureRequest, suffix: str = "") -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}{suffix}.png"


@pytest.fixture
def context(browser, locale):
    ctx = browser.new_context(locale=locale, viewport=VIEWPORT, accept_downloads=True)
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context, request):
    """A fresh page; whatever it shows at the end is saved as screenshots/<test name>.png."""
    pg = context.new_page()
    yield pg
    try:
        pg.screenshot(path=str(screenshot_name(request)), full_page=True)
    except Exception as exc:  # noqa: BLE001 - a failed screenshot must not hide the test's own result
        print(f"screenshot failed: {exc}")


@pytest.fixture
def shot(request):
    """Save an extra screenshot: shot(page, '-step') -> screenshots/<test name>-step.png."""

    def save(pg, suffix: str) -> None:
        pg.screenshot(path=str(screenshot_name(request, suffix)), full_page=True)

    return save
