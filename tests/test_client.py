"""The real client over real HTTP against the simulator: round trips, errors, timeouts, retries."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from harness import TEST_KEY, free_port
from PIL import Image

from portrait import errors
from portrait.client import PortraitClient
from portrait.params import PortraitRequest
from portrait.simulator import Simulator
from portrait.studio import Studio


def hosted_url(client, photo_path) -> str:
    return client.host_photo(Studio(client.settings, client).prepare_photo(photo_path))


def test_local_photo_round_trip_saves_images_and_record(settings, client, sim, photo_path):
    studio = Studio(settings, client)
    request = PortraitRequest(prompt="长出满脸的胡子", width=1024, height=1536, gen_mode="creative", seed=42)

    outcome = studio.run(photo_path, request)

    record = outcome.record
    assert record is not None and record.path.parent == settings.output_dir
    [path] = record.image_paths
    with Image.open(path) as img:
        assert img.format == "JPEG" and img.size == (1024, 1536)
    meta = json.loads((record.path / "run.json").read_text())
    assert meta["request"]["seed"] == 42 and meta["request"]["prompt"] == "长出满脸的胡子"
    assert meta["images"][0]["request_id"] == outcome.results[0].request_id != ""
    assert (record.path / "input.jpg").is_file()
    # What reached the wire is the documented body: seed as a string, the hosted URL.
    body = sim.requests[-1]["body"]
    assert body["seed"] == "42" and body["image_input"].startswith(sim.url + "/files/")
    assert sim.requests[-1]["query"].get("response_format") in ("url", ["url"])


def test_url_photo_is_passed_through_without_upload(settings, client, sim, photo_path):
    url = hosted_url(client, photo_path)
    uploads_before = len(sim.uploads)

    outcome = Studio(settings, client).run(url, PortraitRequest(seed=7))

    assert sim.requests[-1]["body"]["image_input"] == url
    assert len(sim.uploads) == uploads_before
    assert outcome.record.input_path is None


def test_non_http_url_is_refused_before_any_call(settings, client, sim):
    with pytest.raises(errors.InvalidInputError, match="http"):
        Studio(settings, client).run("ftp://example.com/a.jpg", PortraitRequest())
    assert sim.generation_count == 0


def test_random_seed_is_drawn_locally_and_reported(client, sim, photo_path):
    result = client.generate(PortraitRequest(image_input=hosted_url(client, photo_path)))
    assert 0 <= result.seed and sim.requests[-1]["body"]["seed"] == str(result.seed)


def test_variations_use_distinct_seeds_and_run_concurrently(settings, client, sim, photo_path):
    sim.configure(latency=0.5)
    studio = Studio(settings.with_(concurrency=4), client)
    started = time.monotonic()
    outcome = studio.run(photo_path, PortraitRequest(seed=100), variations=4)
    elapsed = time.monotonic() - started
    seeds = sorted(r.seed for r in outcome.results)
    assert seeds == [100, 101, 102, 103]
    assert len({p.read_bytes() for p in outcome.record.image_paths}) == 4
    # Four 0.5 s calls one after another would take >= 2 s.
    assert elapsed < 1.9


def test_base64_results_are_decoded(client, sim, photo_path):
    sim.configure(fault="base64")
    result = client.generate(
        PortraitRequest(image_input=hosted_url(client, photo_path), width=640, height=640)
    )
    assert result.images[0].url is None and result.images[0].size == (640, 640)


ERROR_CASES = [
    ("gateway:-10001", errors.AuthError, -10001, "AI302_API_KEY"),
    ("gateway:-10005", errors.AuthError, -10005, "expired"),
    ("gateway:-10004", errors.QuotaError, -10004, "top up"),
    ("gateway:-10006", errors.QuotaError, -10006, "quota"),
    ("gateway:-10007", errors.QuotaError, -10007, "daily"),
    ("gateway:-10018", errors.QuotaError, -10018, "monthly"),
    ("gateway:-10012", errors.QuotaError, -10012, "hourly"),
    ("gateway:-10008", errors.UpstreamError, -10008, "channel"),
    ("gateway:-10002", errors.UpstreamError, -10002, "disabled"),
    ("gateway:-10003", errors.UpstreamError, -10003, "network"),
    ("gateway:-10009", errors.InvalidInputError, -10009, "not supported"),
    ("gateway:-10010", errors.UpstreamError, -10010, "not found"),
    ("gateway:-10011", errors.InvalidInputError, -10011, "invalid"),
    ("gateway:-1024", errors.RequestTimeoutError, -1024, "timed out"),
    ("model:50411", errors.ModerationError, 50411, "different photo"),
    ("model:50412", errors.ModerationError, 50412, "rephrase"),
    ("model:50413", errors.ModerationError, 50413, "rephrase"),
    ("model:50511", errors.ModerationError, 50511, "another seed"),
    ("model:50512", errors.ModerationError, 50512, "another seed"),
    ("model:50518", errors.ModerationError, 50518, "different photo"),
    ("model:50519", errors.ModerationError, 50519, "another seed"),
    ("model:50429", errors.RateLimitError, 50429, "wait"),
    ("model:50430", errors.RateLimitError, 50430, "wait"),
    ("model:50500", errors.UpstreamError, 50500, "retry"),
    ("model:50501", errors.UpstreamError, 50501, "retry"),
    ("model:50215", errors.InvalidInputError, 50215, "one person"),
    ("model200:50413", errors.ModerationError, 50413, "rephrase"),
    ("model200:50500", errors.UpstreamError, 50500, "retry"),
]


@pytest.mark.parametrize(("fault", "kind", "code", "hint"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_every_provider_error_maps_to_its_kind_and_bilingual_message(
    client, sim, photo_path, fault, kind, code, hint
):
    url = hosted_url(client, photo_path)
    sim.configure(fault=fault)
    with pytest.raises(kind) as info:
        client.generate(PortraitRequest(image_input=url))
    err = info.value
    assert err.code == code and err.http_status is not None
    assert hint in err.en
    assert any("\u4e00" <= ch <= "\u9fff" for ch in err.zh)  # a Chinese sentence too
    assert str(code) in err.message()
    if fault.startswith("model"):
        assert err.request_id  # model errors carry the provider's request id


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("nonjson", errors.UpstreamError),
        ("truncated", errors.UpstreamError),
        ("http500", errors.UpstreamError),
        ("empty", errors.UpstreamError),
        ("result404", errors.ResultFetchError),
        ("result-notimage", errors.ResultFetchError),
        ("http429-noretry", errors.RateLimitError),
        ("reset", errors.UpstreamError),
    ],
)
def test_malformed_answers_become_typed_errors(client, sim, photo_path, fault, kind):
    url = hosted_url(client, photo_path)
    sim.configure(fault=fault)
    with pytest.raises(kind) as info:
        client.generate(PortraitRequest(image_input=url))
    assert info.value.en and info.value.zh


def test_hung_server_hits_read_timeout_and_is_not_resent(settings, sim, photo_path):
    client = PortraitClient(settings.with_(read_timeout=1.0), retries=3)
    url = hosted_url(client, photo_path)
    sim.configure(fault="hang")
    started = time.monotonic()
    with pytest.raises(errors.RequestTimeoutError) as info:
        client.generate(PortraitRequest(image_input=url))
    assert time.monotonic() - started < 4
    assert "charged" in info.value.en
    # The body was sent, so the generation may be running: it must not be sent again.
    assert sim.generation_count == 1
    client.close()


def test_429_with_retry_after_is_retried_then_succeeds(settings, sim, photo_path):
    client = PortraitClient(settings, retries=3)
    url = hosted_url(client, photo_path)
    sim.configure(fault="http429", fault_count=1)
    result = client.generate(PortraitRequest(image_input=url))
    assert result.images and sim.generation_count == 2
    client.close()


def test_503_without_work_is_retried(settings, sim, photo_path):
    client = PortraitClient(settings, retries=3)
    url = hosted_url(client, photo_path)
    sim.configure(fault="http503", fault_count=2)
    assert client.generate(PortraitRequest(image_input=url)).images
    assert sim.generation_count == 3
    client.close()


def test_model_error_at_http_500_is_not_retried(settings, sim, photo_path):
    client = PortraitClient(settings, retries=3)
    url = hosted_url(client, photo_path)
    sim.configure(fault="model:50500")
    with pytest.raises(errors.UpstreamError):
        client.generate(PortraitRequest(image_input=url))
    assert sim.generation_count == 1
    client.close()


def test_connection_refused_is_retried_until_the_server_is_up(settings, photo_path, tmp_path):
    port = free_port()
    late = Simulator(port=port)
    timer = threading.Timer(0.3, late.start)
    timer.start()
    try:
        client = PortraitClient(settings.with_(api_base=f"http://127.0.0.1:{port}"), retries=4)
        url = client.host_photo(Studio(settings, client).prepare_photo(photo_path))
        assert url.startswith(f"http://127.0.0.1:{port}/files/")
        client.close()
    finally:
        timer.join()
        late.stop()


def test_connection_refused_for_good_gives_a_clear_message(settings, photo_path):
    client = PortraitClient(settings.with_(api_base=f"http://127.0.0.1:{free_port()}"), retries=1)
    with pytest.raises(errors.UpstreamError) as info:
        client.generate(PortraitRequest(image_input="https://example.com/a.jpg"))
    assert "PORTRAIT_API_BASE" in info.value.en
    client.close()


def test_wrong_key_is_reported_as_auth_error(settings, photo_path):
    strict = Simulator(api_key="the-right-key").start()
    try:
        client = PortraitClient(settings.with_(api_base=strict.url), retries=0)
        with pytest.raises(errors.AuthError) as info:
            client.generate(PortraitRequest(image_input="https://example.com/a.jpg"))
        assert info.value.http_status == 401
        client.close()
    finally:
        strict.stop()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("width", 511),
        ("height", 2049),
        ("gpen", 1.1),
        ("skin", 0.25),
        ("skin_unifi", -0.1),
        ("gen_mode", "artistic"),
        ("seed", "abc"),
        ("seed", -2),
        ("width", "wide"),
    ],
)
def test_out_of_range_fields_are_refused_before_any_call(client, sim, field, value):
    with pytest.raises(errors.InvalidInputError) as info:
        client.generate(PortraitRequest(image_input="https://example.com/a.jpg", **{field: value}))
    assert field in info.value.en and field in info.value.zh
    assert sim.generation_count == 0


def test_key_never_appears_in_messages_logs_reprs_or_saved_json(settings, client, sim, photo_path, caplog):
    caplog.set_level(logging.DEBUG)
    studio = Studio(settings, client)
    outcome = studio.run(photo_path, PortraitRequest(seed=1))
    texts = [repr(settings), repr(client), repr(outcome.results[0]), caplog.text]
    texts += [p.read_text() for p in settings.output_dir.rglob("*.json")]
    for fault in ("gateway:-10001", "gateway:-10004", "model:50413", "nonjson"):
        sim.configure(fault=fault)
        with pytest.raises(errors.PortraitError) as info:
            client.generate(PortraitRequest(image_input="https://example.com/a.jpg"))
        texts += [str(info.value), repr(info.value), json.dumps(info.value.as_dict())]
    texts.append(caplog.text)
    assert all(TEST_KEY not in t for t in texts)
    # ...and yet the key really was sent on the wire (redacted in the simulator's log).
    assert sim.requests[-1]["headers"].get("Authorization", "").startswith("Bearer ")


def test_data_url_hosting_sends_the_photo_inline(settings, sim, photo_path):
    client = PortraitClient(settings.with_(photo_hosting="data"), retries=0)
    outcome = Studio(client.settings, client).run(photo_path, PortraitRequest(seed=3))
    assert sim.requests[-1]["body"]["image_input"].startswith("data:image/jpeg;base64,")
    assert len(sim.uploads) == 0
    saved = json.loads((outcome.record.path / "run.json").read_text())
    assert len(saved["request"]["image_input"]) < 100  # the photo itself is input.jpg
    client.close()


def test_partial_failure_keeps_the_finished_variations(settings, client, sim, photo_path):
    sim.configure(fault="model:50511", fault_count=1)
    outcome = Studio(settings, client).run(photo_path, PortraitRequest(seed=10), variations=4)
    assert len(outcome.results) == 3 and len(outcome.failures) == 1
    assert len(outcome.record.image_paths) == 3
    saved = json.loads((outcome.record.path / "run.json").read_text())
    assert saved["failures"][0]["error"]["code"] == 50511


def test_leftover_partial_runs_are_cleaned_but_fresh_ones_kept(settings, tmp_path):
    import os

    from portrait.store import RunStore

    store = RunStore(settings.output_dir)
    old, fresh = settings.output_dir / ".tmp-old", settings.output_dir / ".tmp-fresh"
    for path in (old, fresh):
        path.mkdir(parents=True)
        (path / "01-seed1.jpg").write_bytes(b"half")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert store.remove_partial() == 1
    assert not old.exists() and fresh.exists() and store.list() == []
