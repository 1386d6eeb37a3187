"""A public Space that strangers cannot drain: visitor and daily limits, login, a visitor's own key."""

from __future__ import annotations

import logging
import threading

import gradio as gr
import pytest
import requests
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from harness import TEST_KEY, launch_app

from portrait.client import PortraitClient
from portrait.errors import LimitError
from portrait.limits import UsageLimiter
from portrait.presets import load_presets
from portrait.simulator import key_fingerprint
from portrait.studio import Studio
from portrait.ui import PortraitUI

VISITOR_KEY = "sk-visitor-OWNKEY-93b1c0d7e4a2"


def test_hourly_limit_refuses_with_a_wait_hint_and_refunds_unused():
    limiter = UsageLimiter(per_visitor_hourly=3)
    first = limiter.reserve("ip:1", 2)
    with pytest.raises(LimitError) as info:
        limiter.reserve("ip:1", 2)
    assert "hourly limit" in info.value.en and "每小时" in info.value.zh and "min" in info.value.en
    limiter.reserve("ip:2", 3)  # another visitor is not affected
    limiter.release(first, used=0)  # nothing was generated: both images come back
    limiter.reserve("ip:1", 3)


def test_daily_cap_survives_a_restart(tmp_path):
    state = tmp_path / ".usage.json"
    UsageLimiter(daily_cap=3, state_file=state).reserve("a", 3)
    with pytest.raises(LimitError) as info:
        UsageLimiter(daily_cap=3, state_file=state).reserve("b", 1)
    assert "daily limit" in info.value.en and "明天" in info.value.zh


def test_visitor_limit_applies_through_the_endpoint(settings, sim, photo_path):
    demo, studio, url = launch_app(settings.with_(per_visitor_hourly=2))
    try:
        client = Client(url, verbose=False)
        client.predict(image=handle_file(str(photo_path)), variations=2, api_name="/generate")
        with pytest.raises(AppError) as info:
            client.predict(image=handle_file(str(photo_path)), api_name="/generate")
        assert "hourly limit" in str(info.value) and "每小时" in str(info.value)
        assert sim.generation_count == 2
    finally:
        demo.close(verbose=False)
        studio.close()


@pytest.mark.parametrize("trusted_proxies", [0, 1])
def test_forged_forwarded_for_does_not_reset_the_visitor_limit(
    settings, sim, photo_path, monkeypatch, trusted_proxies
):
    # As on a public server: uvicorn trusts no proxy headers from the peer itself.
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "")
    demo, studio, url = launch_app(settings.with_(per_visitor_hourly=1, trusted_proxies=trusted_proxies))
    try:
        # Behind one trusted proxy the proxy appends the real address last; the visitor controls the rest.
        real = {"X-Forwarded-For": "198.51.100.7"} if trusted_proxies else {}
        Client(url, verbose=False, headers=real).predict(
            image=handle_file(str(photo_path)), api_name="/generate"
        )
        forged_chain = "203.0.113.9" + (", 198.51.100.7" if trusted_proxies else "")
        forged = Client(url, verbose=False, headers={"X-Forwarded-For": forged_chain})
        with pytest.raises(AppError, match="hourly limit"):
            forged.predict(image=handle_file(str(photo_path)), api_name="/generate")
        assert sim.generation_count == 1
    finally:
        demo.close(verbose=False)
        studio.close()


def test_login_is_required_when_configured(settings, sim):
    demo, studio, url = launch_app(settings.with_(auth="owner:s3cret-pass"))
    try:
        assert requests.get(url + "config", timeout=10).status_code in (401, 403)
        session = requests.Session()
        resp = session.post(url + "login", data={"username": "owner", "password": "s3cret-pass"}, timeout=10)
        assert resp.status_code == 200
        assert session.get(url + "config", timeout=10).status_code == 200
        bad = requests.post(url + "login", data={"username": "owner", "password": "nope"}, timeout=10)
        assert bad.status_code in (400, 401)
    finally:
        demo.close(verbose=False)
        studio.close()


def test_own_key_is_used_only_for_that_visitor_and_never_kept(settings, sim, photo_path, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    owner_settings = settings.with_(allow_user_key=True, per_visitor_hourly=1)
    studio = Studio(owner_settings, PortraitClient(owner_settings, retries=0))
    ui = PortraitUI(studio, load_presets(owner_settings.presets_path))
    sim.configure(latency=0.5)  # make the two visits overlap
    args = dict(
        image=str(photo_path),
        url="",
        prompt="",
        preset="",
        width=1024,
        height=1024,
        gpen=0.4,
        skin=0.3,
        skin_unifi=0.0,
        gen_mode="auto",
        variations=1,
        lang="en",
        request=None,
        progress=None,
    )
    outputs: dict[str, tuple] = {}

    def visit(name: str, key: str, seed: int) -> None:
        outputs[name] = ui.on_generate(**args, seed=seed, user_key=key)

    threads = [
        threading.Thread(target=visit, args=("visitor", VISITOR_KEY, 11)),
        threading.Thread(target=visit, args=("owner", "", 22)),
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert set(outputs) == {"visitor", "owner"}

    by_seed = {r["body"]["seed"]: r["key_id"] for r in sim.requests}
    assert by_seed["11"] == key_fingerprint("Bearer " + VISITOR_KEY)
    assert by_seed["22"] == key_fingerprint("Bearer " + TEST_KEY)
    # The own-key call was not counted against the owner's limit; the owner's key call was.
    with pytest.raises(gr.Error, match="hourly limit"):
        ui.on_generate(**args, seed=33, user_key="")
    # ...and the key is nowhere: not on disk, not in logs, not in what the page got back.
    saved = "".join(
        p.read_text(errors="ignore")
        for p in owner_settings.output_dir.rglob("*")
        if p.is_file() and p.suffix in (".json",)
    )
    assert VISITOR_KEY not in saved and VISITOR_KEY not in caplog.text
    assert all(VISITOR_KEY not in repr(v) for out in outputs.values() for v in out)
    assert VISITOR_KEY not in repr(ui.history_table("en"))
    studio.close()


def test_own_key_box_is_hidden_unless_the_owner_allows_it(settings, sim):
    demo, studio, url = launch_app(settings)
    try:
        config = requests.get(url + "config", timeout=10).json()
        props = {c.get("props", {}).get("elem_id"): c["props"] for c in config["components"]}
        assert props["own-key"]["visible"] is False
        assert props["user-key"].get("value", "") == ""
    finally:
        demo.close(verbose=False)
        studio.close()
