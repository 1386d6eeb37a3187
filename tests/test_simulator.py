"""The simulator over real HTTP: the contract's shapes, validation, every fault, and its control endpoints."""

from __future__ import annotations

import base64
import functools
import http.client
import io
import json
import re
import threading
import time
from typing import Any

import pytest
import requests
from PIL import Image, ImageChops, ImageDraw, ImageStat

from portrait.simulator import (
    GATEWAY_ERRORS,
    MODEL_ERRORS,
    RenderSpec,
    Simulator,
    go_duration,
    open_photo,
    render_portrait,
)

KEY = "sk-sim-test-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
PORTRAIT = "/doubao/drawing/portrait?response_format=url"
UPLOAD = "/302/upload-file"

# The status chosen for each gateway code (quota and balance -> 402, see the simulator's docstring).
GATEWAY_STATUS = {
    -10001: 401,
    -10002: 403,
    -10003: 502,
    -10004: 402,
    -10005: 401,
    -10006: 402,
    -10007: 402,
    -10008: 503,
    -10009: 403,
    -10010: 404,
    -10011: 400,
    -10012: 402,
    -10018: 402,
    -1024: 504,
}
MODEL_STATUS = {
    50411: 400,
    50412: 400,
    50413: 400,
    50511: 400,
    50512: 400,
    50518: 400,
    50519: 400,
    50429: 429,
    50430: 429,
    50500: 500,
    50501: 500,
    50215: 400,
}


@functools.cache
def photo_bytes() -> bytes:
    """An 800x1000 JPEG: a vertical gradient with a face-like ellipse."""
    img = Image.linear_gradient("L").resize((800, 1000)).convert("RGB")
    img = Image.merge(
        "RGB", (img.getchannel(0), img.getchannel(0).point(lambda v: 255 - v), img.getchannel(0))
    )
    ImageDraw.Draw(img).ellipse((220, 200, 580, 700), fill=(225, 180, 150))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=92)
    return out.getvalue()


@pytest.fixture(scope="module")
def simulator():
    """One simulator for this module, with a fixed rng seed so fault_rate runs repeat."""
    with Simulator(latency=0.0, rng_seed=1234) as sim:
        yield sim


@pytest.fixture(autouse=True)
def clean(simulator):
    """Every test starts with no faults and an empty log."""
    simulator.reset()
    yield
    simulator.reset()


@pytest.fixture(scope="module")
def photo_url(simulator) -> str:
    """The test photo hosted on the simulator."""
    return upload(simulator, photo_bytes()).json()["data"]


def upload(sim: Simulator, data: bytes, *, headers: dict[str, str] | None = None, **kwargs: Any):
    files = {"file": ("photo.jpg", data, "image/jpeg")}
    return requests.post(sim.url + UPLOAD, files=files, headers=AUTH | (headers or {}), timeout=5, **kwargs)


def generate(sim: Simulator, body: Any, *, headers: dict[str, str] | None = None, path: str = PORTRAIT):
    return requests.post(sim.url + path, json=body, headers=AUTH | (headers or {}), timeout=5)


def body_for(photo_url: str, **fields: Any) -> dict[str, Any]:
    return {"image_input": photo_url, "width": 512, "height": 512, "seed": "7"} | fields


def fetch_image(url: str) -> Image.Image:
    response = requests.get(url, timeout=5)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"
    img = Image.open(io.BytesIO(response.content))
    img.load()
    return img


def result_bytes(sim: Simulator, body: dict[str, Any]) -> bytes:
    response = generate(sim, body)
    assert response.status_code == 200, response.text
    return requests.get(response.json()["data"]["image_urls"][0], timeout=5).content


# ---------------------------------------------------------------------------- the happy path


def test_upload_hosts_the_photo_under_the_simulator_url(simulator):
    response = upload(simulator, photo_bytes())
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == 200 and body["message"] == "success"
    assert re.fullmatch(re.escape(simulator.url) + r"/files/[0-9a-f]{32}\.jpg", body["data"])
    hosted = requests.get(body["data"], timeout=5)
    assert hosted.content == photo_bytes() and hosted.headers["Content-Type"] == "image/jpeg"
    assert simulator.uploads[-1]["bytes"] == len(photo_bytes())
    assert simulator.uploads[-1]["filename"] == "photo.jpg"


def test_generation_returns_the_documented_shape_and_a_jpeg_of_the_requested_size(simulator, photo_url):
    response = generate(simulator, body_for(photo_url, width=1024, height=1536, prompt="长出满脸的胡子"))
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == body["status"] == 10000 and body["message"] == "Success"
    assert re.fullmatch(r"\d{14}[0-9A-F]{20}", body["request_id"])
    assert re.fullmatch(r"[0-9.]+(ns|µs|ms|s)", body["time_elapsed"])
    data = body["data"]
    assert data["algorithm_base_resp"] == {"status_code": 0, "status_message": "Success"}
    assert data["binary_data_base64"] == [""]
    for key in (
        "llm_result",
        "pe_result",
        "predict_tags_result",
        "rephraser_result",
        "request_id",
        "vlm_result",
    ):
        assert data[key] == ""
    [url] = data["image_urls"]
    assert re.fullmatch(re.escape(simulator.url) + r"/results/[0-9a-f]{32}\.jpeg", url)
    img = fetch_image(url)
    assert img.format == "JPEG" and img.size == (1024, 1536)


def test_same_inputs_give_identical_pixels_and_another_seed_differs(simulator, photo_url):
    first = result_bytes(simulator, body_for(photo_url, seed="11"))
    again = result_bytes(simulator, body_for(photo_url, seed="11"))
    other = result_bytes(simulator, body_for(photo_url, seed="12"))
    assert first == again
    a, b = (Image.open(io.BytesIO(x)).convert("RGB") for x in (first, other))
    assert ImageStat.Stat(ImageChops.difference(a, b)).mean != [0.0, 0.0, 0.0]


def test_each_gen_mode_gets_a_different_treatment_and_the_default_follows_the_prompt(simulator, photo_url):
    by_mode = {m: result_bytes(simulator, body_for(photo_url, gen_mode=m)) for m in ("reference", "creative")}
    by_mode["reference_char"] = result_bytes(simulator, body_for(photo_url, gen_mode="reference_char"))
    assert len(set(by_mode.values())) == 3
    # As documented: no prompt -> reference, a prompt -> creative, unless set by hand.
    assert result_bytes(simulator, body_for(photo_url)) == by_mode["reference"]
    prompted = body_for(photo_url, prompt="studio light")
    assert result_bytes(simulator, prompted) == result_bytes(simulator, prompted | {"gen_mode": "creative"})


def test_result_carries_a_visible_simulated_stamp(simulator, photo_url):
    w, h = 768, 1024
    stamped = fetch_image(
        generate(
            simulator, body_for(photo_url, width=w, height=h, gen_mode="reference", seed="5", prompt="a test")
        ).json()["data"]["image_urls"][0]
    )
    assert b"simulator" in stamped.info.get("comment", b"")
    spec = RenderSpec(w, h, "a test", 0.4, 0.3, 0.0, "reference", 5)
    plain = Image.open(io.BytesIO(render_portrait(open_photo(photo_bytes(), (w, h)), spec, stamp=False)))
    diff = ImageChops.difference(plain.convert("L"), stamped.convert("L"))
    # Same derivation everywhere except a band of rows in the lower part, where the stamp is.
    assert ImageStat.Stat(diff.crop((0, 0, w, h // 2))).mean[0] < 2
    rows = [ImageStat.Stat(diff.crop((0, y, w, y + 1))).mean[0] for y in range(h // 2, h)]
    assert sum(r > 25 for r in rows) >= 56


def test_seed_minus_one_picks_a_seed_and_reports_it(simulator, photo_url):
    seeds = {int(generate(simulator, body_for(photo_url, seed="-1")).headers["X-Sim-Seed"]) for _ in range(3)}
    assert len(seeds) == 3 and all(0 <= s < 2**31 for s in seeds)


def test_b64_json_puts_the_image_in_binary_data_base64(simulator, photo_url):
    response = generate(
        simulator, body_for(photo_url), path="/doubao/drawing/portrait?response_format=b64_json"
    )
    data = response.json()["data"]
    assert data["image_urls"] == []
    img = Image.open(io.BytesIO(base64.b64decode(data["binary_data_base64"][0])))
    assert img.format == "JPEG" and img.size == (512, 512)


def test_data_url_image_input_is_accepted(simulator):
    data_url = "data:image/jpeg;base64," + base64.b64encode(photo_bytes()).decode()
    response = generate(simulator, body_for(data_url))
    assert response.json()["code"] == 10000
    # The log keeps the start of a huge string, not the whole photo.
    logged = simulator.requests[-1]["body"]["image_input"]
    assert logged.startswith("data:image/jpeg;base64,") and len(logged) < 200


def test_a_foreign_http_url_is_downloaded(simulator):
    with Simulator() as other:
        foreign = upload(other, photo_bytes()).json()["data"]
        response = generate(simulator, body_for(foreign))
    assert response.json()["code"] == 10000


@pytest.mark.parametrize(
    "image_input",
    [
        "http://127.0.0.1:1/files/missing.jpg",  # nothing listens on port 1: refused at once
        "data:image/png;base64,bm90IGFuIGltYWdl",
        "data:text/plain;base64,aGVsbG8=",
        "ftp://example.com/a.jpg",
        "just words",
    ],
)
def test_image_input_that_cannot_be_loaded_is_refused_with_50215(simulator, image_input):
    response = generate(simulator, body_for(image_input))
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == body["status"] == 50215 and body["data"] is None
    assert body["message"] == "image_input could not be downloaded or is not an image"


def test_own_url_that_is_not_hosted_is_refused(simulator):
    response = generate(simulator, body_for(simulator.url + "/files/0123456789abcdef.jpg"))
    assert response.json()["code"] == 50215


# ---------------------------------------------------------------------------- auth and validation


@pytest.mark.parametrize("header", [None, "Bearer ", "Basic abc", "sk-no-scheme"])
def test_missing_key_is_a_401_gateway_error(simulator, photo_url, header):
    headers = {} if header is None else {"Authorization": header}
    for response in (
        requests.post(simulator.url + PORTRAIT, json=body_for(photo_url), headers=headers, timeout=5),
        requests.post(
            simulator.url + UPLOAD, files={"file": ("a.jpg", photo_bytes())}, headers=headers, timeout=5
        ),
    ):
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["err_code"] == -10001 and error["type"] == "api_error"
        assert error["message"] == "Missing API key" and error["message_cn"] and error["message_jp"]
    # Still logged: tests can count what arrived.
    assert simulator.generation_count == 1


def test_wrong_key_is_refused_when_a_key_is_set(photo_url):
    with Simulator(api_key="the-right-key") as strict:
        wrong = requests.post(
            strict.url + PORTRAIT, json={}, headers={"Authorization": "Bearer nope"}, timeout=5
        )
        right = requests.post(
            strict.url + PORTRAIT, json={}, headers={"Authorization": "Bearer the-right-key"}, timeout=5
        )
    assert wrong.status_code == 401 and wrong.json()["error"]["err_code"] == -10001
    assert right.status_code == 400 and right.json()["code"] == 50215  # past auth, refused for the body


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("width", 511),
        ("height", 2049),
        ("width", "wide"),
        ("gpen", 1.1),
        ("skin", 0.25),
        ("skin_unifi", -0.1),
        ("gen_mode", "auto"),
        ("seed", "abc"),
        ("seed", "-2"),
        ("seed", 42),  # the contract types seed as a string
        ("prompt", 5),
        ("image_input", ""),
    ],
)
def test_bad_field_is_a_400_50215_naming_the_field(simulator, photo_url, field, value):
    response = generate(simulator, body_for(photo_url, **{field: value}))
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == body["status"] == 50215 and body["data"] is None
    assert field in body["message"] and body["request_id"] and body["time_elapsed"]


def test_body_that_is_not_a_json_object_is_refused(simulator):
    response = requests.post(simulator.url + PORTRAIT, data=b"[1,2", headers=AUTH, timeout=5)
    assert response.status_code == 400 and response.json()["code"] == 50215
    assert simulator.requests[-1]["body"] is None


def test_upload_keeps_the_format_and_a_unicode_filename(simulator):
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(png, "PNG")
    files = {"file": ("naïve 照片.png", png.getvalue(), "image/png")}
    response = requests.post(simulator.url + UPLOAD, files=files, headers=AUTH, timeout=5)
    assert response.json()["data"].endswith(".png")
    assert requests.get(response.json()["data"], timeout=5).headers["Content-Type"] == "image/png"
    assert simulator.uploads[-1]["filename"] == "naïve 照片.png"


def test_upload_of_a_non_image_is_refused(simulator):
    response = upload(simulator, b"hello, not a photo")
    assert response.status_code == 400
    assert response.json() == {"code": 400, "data": None, "message": "invalid image"}


def test_upload_over_30_mb_is_a_413(simulator):
    response = upload(simulator, bytes(31 * 1024 * 1024))
    assert response.status_code == 413 and "error" in response.json()


# ---------------------------------------------------------------------------- faults


def check_gateway(response: requests.Response, code: int) -> None:
    assert response.status_code == GATEWAY_STATUS[code]
    error = response.json()["error"]
    assert error["err_code"] == code and error["message"] and error["message_cn"] and error["message_jp"]


def check_model(response: requests.Response, code: int, status: int) -> None:
    assert response.status_code == status
    body = response.json()
    assert body["code"] == body["status"] == code and body["data"] is None
    assert (
        body["message"] and re.fullmatch(r"\d{14}[0-9A-F]{20}", body["request_id"]) and body["time_elapsed"]
    )


def check_success(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == body["status"] == 10000
    return body["data"]


def check_other(fault: str, response: requests.Response, elapsed: float) -> None:
    if fault in ("http429", "http429-noretry"):
        assert response.status_code == 429 and "error" in response.json()
        assert response.headers.get("Retry-After") == ("1" if fault == "http429" else None)
    elif fault == "http503":
        check_gateway(response, -10008)
        assert response.headers["Retry-After"] == "1"
    elif fault == "http500":
        assert response.status_code == 500 and response.text == "Internal Server Error"
    elif fault == "nonjson":
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
        assert response.text == "<html>Bad gateway</html>"
    elif fault == "truncated":
        assert response.status_code == 200 and response.text.startswith('{"code":10000')
        assert len(response.content) == int(response.headers["Content-Length"])
        with pytest.raises(ValueError):
            json.loads(response.content)
    elif fault == "empty":
        data = check_success(response)
        assert data["image_urls"] == [] and data["binary_data_base64"] == []
    elif fault == "base64":
        data = check_success(response)
        assert data["image_urls"] == []
        assert Image.open(io.BytesIO(base64.b64decode(data["binary_data_base64"][0]))).size == (512, 512)
    elif fault == "result404":
        assert requests.get(check_success(response)["image_urls"][0], timeout=5).status_code == 404
    elif fault == "result-notimage":
        hosted = requests.get(check_success(response)["image_urls"][0], timeout=5)
        assert hosted.headers["Content-Type"].startswith("text/plain") and hosted.text == "not an image"
    elif fault == "slow:0.1":
        check_success(response)
        assert elapsed >= 0.1
    else:
        raise AssertionError(f"no check for {fault}")


OTHER_FAULTS = [
    "http429",
    "http429-noretry",
    "http503",
    "http500",
    "nonjson",
    "truncated",
    "empty",
    "base64",
    "result404",
    "result-notimage",
    "slow:0.1",
]
ALL_FAULTS = (
    [f"gateway:{c}" for c in GATEWAY_STATUS]
    + [f"model:{c}" for c in MODEL_STATUS]
    + [f"model200:{c}" for c in MODEL_STATUS]
    + OTHER_FAULTS
)


def test_every_contract_code_has_a_fault():
    assert set(GATEWAY_ERRORS) == set(GATEWAY_STATUS)
    assert set(MODEL_ERRORS) == set(MODEL_STATUS)


@pytest.mark.parametrize("fault", ALL_FAULTS)
def test_each_fault_produces_its_shape(simulator, photo_url, fault):
    simulator.configure(fault=fault)
    started = time.monotonic()
    response = generate(simulator, body_for(photo_url))
    elapsed = time.monotonic() - started
    kind, _, arg = fault.partition(":")
    if kind == "gateway":
        check_gateway(response, int(arg))
    elif kind == "model":
        check_model(response, int(arg), MODEL_STATUS[int(arg)])
    elif kind == "model200":
        check_model(response, int(arg), 200)
    else:
        check_other(fault, response, elapsed)
    assert simulator.generation_count == 1  # logged before the fault was applied


def test_reset_fault_closes_the_connection_without_an_answer(simulator, photo_url):
    with pytest.raises(requests.ConnectionError):
        generate(simulator, body_for(photo_url), headers={"X-Sim-Fault": "reset"})
    # The server carries on for the next caller.
    assert generate(simulator, body_for(photo_url)).status_code == 200


def test_per_request_header_overrides_the_global_fault(simulator, photo_url):
    simulator.configure(fault="http500")
    check_gateway(generate(simulator, body_for(photo_url), headers={"X-Sim-Fault": "gateway:-10004"}), -10004)
    check_success(generate(simulator, body_for(photo_url), headers={"X-Sim-Fault": "none"}))
    assert generate(simulator, body_for(photo_url)).status_code == 500


def test_per_request_latency_header_delays_that_call(simulator, photo_url):
    started = time.monotonic()
    check_success(generate(simulator, body_for(photo_url), headers={"X-Sim-Latency": "0.15"}))
    assert time.monotonic() - started >= 0.15


@pytest.mark.parametrize(("header", "value"), [("X-Sim-Fault", "meteor"), ("X-Sim-Latency", "soon")])
def test_unusable_sim_header_is_a_400(simulator, photo_url, header, value):
    response = generate(simulator, body_for(photo_url), headers={header: value})
    assert response.status_code == 400 and header in response.json()["sim_error"]


def test_fault_count_turns_itself_off(simulator, photo_url):
    simulator.configure(fault="http503", fault_count=2)
    statuses = [generate(simulator, body_for(photo_url)).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert requests.post(simulator.url + "/_sim/config", json={}, timeout=5).json()["fault"] is None


def test_fault_rate_is_random_but_repeatable_with_rng_seed(simulator, photo_url):
    def run() -> list[int]:
        simulator.configure(fault="http500,gateway:-10008", fault_rate=0.5)
        return [generate(simulator, body_for(photo_url)).status_code for _ in range(16)]

    first = run()
    simulator.reset()  # re-seeds the rng
    assert run() == first
    assert {200, 500, 503} <= set(first)


def test_upload_fault_applies_to_uploads_only(simulator, photo_url):
    simulator.configure(upload_fault="gateway:-10004")
    check_gateway(upload(simulator, photo_bytes()), -10004)
    check_success(generate(simulator, body_for(photo_url)))
    with pytest.raises(ValueError, match="uploads"):
        simulator.configure(upload_fault="base64")


@pytest.mark.parametrize(
    "changes",
    [{"fault": "meteor"}, {"fault": "gateway:-1"}, {"fault_rate": 2}, {"fault_count": 0}, {"latency": -1}],
)
def test_configure_refuses_what_it_cannot_do(simulator, changes):
    with pytest.raises(ValueError):
        simulator.configure(**changes)


# ---------------------------------------------------------------------------- control endpoints and logs


def test_control_endpoints_steer_report_and_reset(simulator, photo_url):
    url = simulator.url
    config = requests.post(
        url + "/_sim/config", json={"fault": "gateway:-10007", "fault_count": 1}, timeout=5
    )
    assert config.status_code == 200 and config.json()["fault"] == "gateway:-10007"
    check_gateway(generate(simulator, body_for(photo_url)), -10007)
    check_success(generate(simulator, body_for(photo_url)))
    upload(simulator, photo_bytes())
    log = requests.get(url + "/_sim/requests", timeout=5).json()
    assert [r["body"]["seed"] for r in log["requests"]] == ["7", "7"]
    assert log["requests"][0]["path"] == "/doubao/drawing/portrait"
    assert log["requests"][0]["query"] == {"response_format": "url"}
    assert log["uploads"][0]["content_type"] == "image/jpeg"

    assert requests.post(url + "/_sim/reset", timeout=5).json() == {"ok": True}
    assert requests.get(url + "/_sim/requests", timeout=5).json() == {"requests": [], "uploads": []}
    assert simulator.generation_count == 0
    for bad in ({"fault": "meteor"}, {"colour": "red"}):
        assert requests.post(url + "/_sim/config", json=bad, timeout=5).status_code == 400


def test_authorization_is_redacted_in_the_request_log(simulator, photo_url):
    generate(simulator, body_for(photo_url))
    assert simulator.requests[-1]["headers"]["Authorization"] == "Bearer ***"
    assert KEY not in requests.get(simulator.url + "/_sim/requests", timeout=5).text


def test_root_answers_json_for_get_and_head(simulator):
    assert requests.get(simulator.url + "/", timeout=5).json() == {"simulator": True}
    head = requests.head(simulator.url + "/", timeout=5)
    assert head.status_code == 200 and head.content == b""


def test_unknown_files_and_paths_are_404(simulator):
    assert requests.get(simulator.url + "/results/nothing.jpeg", timeout=5).status_code == 404
    assert requests.get(simulator.url + "/files/nothing.jpg", timeout=5).status_code == 404
    assert requests.post(simulator.url + "/v1/other", json={}, headers=AUTH, timeout=5).status_code == 404


def test_one_connection_serves_several_calls(simulator):
    conn = http.client.HTTPConnection("127.0.0.1", int(simulator.url.rsplit(":", 1)[1]), timeout=5)
    try:
        for _ in range(3):
            conn.request("POST", PORTRAIT, body=b"{}", headers=AUTH | {"Content-Type": "application/json"})
            response = conn.getresponse()
            assert response.status == 400 and json.loads(response.read())["code"] == 50215
    finally:
        conn.close()


# ---------------------------------------------------------------------------- stopping


def call_in_thread(url: str, body: Any, headers: dict[str, str]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["response"] = requests.post(url + PORTRAIT, json=body, headers=AUTH | headers, timeout=10)
        except requests.RequestException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("how", ["hang", "latency"])
def test_stop_releases_hanging_and_sleeping_calls_promptly(how):
    sim = Simulator(latency=30.0 if how == "latency" else 0.0).start()
    # A valid body: latency is slept only once the request passed validation.
    body = body_for("data:image/jpeg;base64," + base64.b64encode(photo_bytes()).decode())
    thread, outcome = call_in_thread(sim.url, body, {"X-Sim-Fault": "hang"} if how == "hang" else {})
    deadline = time.monotonic() + 3
    while sim.generation_count == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.1)  # let the handler reach its wait
    started = time.monotonic()
    sim.stop()
    thread.join(timeout=3)
    assert not thread.is_alive() and time.monotonic() - started < 1.0
    assert isinstance(outcome.get("error"), requests.ConnectionError)


def test_go_duration_formats_like_go():
    assert go_duration(20.464465228) == "20.464465228s"
    assert go_duration(2.0041170) == "2.004117s"
    assert go_duration(0.0015) == "1.5ms"
    assert go_duration(0.000002) == "2µs"
    assert go_duration(90) == "1m30s"
    assert go_duration(3661.5) == "1h1m1.5s"
    assert go_duration(0) == "0s"
