"""Snippets run for real: the curl command in bash, the Python script and the gradio_client call in subprocesses.

A recording proxy sits between each caller and the simulator, so the exact body bytes on
the wire can be compared with `request_body(request)` and with what the client sent.
"""

from __future__ import annotations

import ast
import inspect
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from harness import TEST_KEY
from photo_factory import jpeg_bytes, write
from PIL import Image

from portrait.client import PortraitClient
from portrait.params import PortraitRequest
from portrait.presets import load_presets
from portrait.sheet import run_sheet
from portrait.snippets import (
    MAX_INLINE_BODY,
    AppCall,
    app_call_from_record,
    curl_command,
    gradio_client_code,
    python_requests_code,
    request_body,
    sent_requests,
    snippets_for_record,
)
from portrait.studio import Studio

CURL = shutil.which("curl")
NASTY = 'it\'s "quoted" $HOME ${PATH} `id` $(whoami) \\ back\\slash\nnew line\t tab ! % 😀👩‍🎤 长出满脸的胡子，笑容灿烂'
NASTY_PROMPTS = [
    NASTY,
    "'",
    "''''",
    "a'b\"c`d$e\\f",
    "%s %d {prompt} {} ${HOME:-x}",
    "line1\r\nline2\u2028line3",
    "emoji only 🧔🏻‍♂️🎨",
]


class _Recorder(ThreadingHTTPServer):
    """A reverse proxy that keeps every request's raw body and headers, then forwards it."""

    daemon_threads = True

    def __init__(self, target: str) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.target = target
        self.calls: list[dict[str, Any]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _RecordingHandler(BaseHTTPRequestHandler):
    server: _Recorder

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.calls.append({"path": self.path, "headers": dict(self.headers), "body": body})
        forward = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
        upstream = requests.post(self.server.target + self.path, data=body, headers=forward, timeout=10)
        self.send_response(upstream.status_code)
        self.send_header("Content-Type", upstream.headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(upstream.content)))
        self.end_headers()
        self.wfile.write(upstream.content)


@pytest.fixture
def proxy(sim):
    """A recording proxy in front of the simulator."""
    server = _Recorder(sim.url)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def hosted(client, settings, photo_path) -> str:
    """The test photo uploaded to the simulator's file host."""
    return client.host_photo(Studio(settings, client).prepare_photo(photo_path))


def _env(**extra: str) -> dict[str, str]:
    # A HOME that would show up in the body if the shell ever expanded "$HOME" in the prompt.
    return {"PATH": os.environ["PATH"], "HOME": "/nonexistent-HOME-CANARY", "LANG": "C.UTF-8", **extra}


def _run_bash(command: str, tmp_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    # `bash -c` as asked; a command too long for one argument goes in a script, as a user would paste it.
    args = ["bash", "-c", command]
    if tmp_path is not None:
        script = tmp_path / "snippet.sh"
        script.write_text(command, encoding="utf-8")
        args = ["bash", str(script)]
    return subprocess.run(
        args,
        env=_env(AI302_API_KEY=TEST_KEY),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)],
        env=_env(AI302_API_KEY=TEST_KEY),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _client_via(proxy: _Recorder, settings) -> PortraitClient:
    return PortraitClient(settings.with_(api_base=proxy.url), retries=0)


# Locally a missing curl skips these; under CI (which installs curl) it must fail instead.
needs_curl = pytest.mark.skipif(
    CURL is None and os.environ.get("CI") != "true", reason="curl is not installed"
)


@needs_curl
def test_curl_sends_the_same_request_as_the_client_for_a_hostile_prompt(settings, sim, proxy, hosted):
    request = PortraitRequest(
        image_input=hosted, prompt=NASTY, width=1024, height=1536, gen_mode="creative", seed=42
    )
    with _client_via(proxy, settings) as client:
        client.generate(request)
    command = curl_command(request, proxy.url)

    ran = _run_bash(command)

    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["code"] == 10000
    client_call, curl_call = proxy.calls[-2:]
    assert curl_call["body"] == request_body(request)
    assert json.loads(curl_call["body"]) == json.loads(client_call["body"]) == request.to_payload()
    assert curl_call["path"] == client_call["path"] == "/doubao/drawing/portrait?response_format=url"
    assert curl_call["headers"]["Authorization"] == f"Bearer {TEST_KEY}"
    # The simulator parsed the same JSON from both callers.
    assert sim.requests[-1]["body"] == sim.requests[-2]["body"]
    assert TEST_KEY not in command and "$AI302_API_KEY" in command


@needs_curl
@pytest.mark.parametrize("prompt", NASTY_PROMPTS)
def test_curl_body_is_byte_exact_whatever_the_prompt(proxy, hosted, prompt):
    request = PortraitRequest(image_input=hosted, prompt=prompt, seed=7)

    ran = _run_bash(curl_command(request, proxy.url))

    assert ran.returncode == 0, ran.stderr
    assert proxy.calls[-1]["body"] == request_body(request)


@needs_curl
def test_curl_pipes_a_body_too_large_for_one_argument(settings, proxy, tmp_path):
    noisy = Image.frombytes("RGB", (700, 700), os.urandom(700 * 700 * 3))
    photo = write(tmp_path / "noisy.jpg", jpeg_bytes(noisy, quality=95))
    data_settings = settings.with_(photo_hosting="data")
    with PortraitClient(data_settings, retries=0) as client:
        data_url = client.host_photo(Studio(data_settings, client).prepare_photo(photo))
    request = PortraitRequest(image_input=data_url, prompt=NASTY, seed=3)
    assert len(request_body(request)) > 2 * MAX_INLINE_BODY  # more than Linux's 128 KiB per argument

    command = curl_command(request, proxy.url)
    ran = _run_bash(command, tmp_path)

    assert command.startswith("printf '%s' ")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["code"] == 10000
    assert proxy.calls[-1]["body"] == request_body(request)


def test_python_snippet_sends_the_same_request_as_the_client(settings, sim, proxy, hosted, tmp_path):
    request = PortraitRequest(
        image_input=hosted, prompt=NASTY, gpen=0.7, skin=0.0, skin_unifi=1, seed=2**31 - 1
    )
    with _client_via(proxy, settings) as client:
        client.generate(request)
    code = python_requests_code(request, proxy.url)

    ran = _run_python(code, tmp_path)

    assert ran.returncode == 0, ran.stderr
    assert "/results/" in ran.stdout
    client_call, snippet_call = proxy.calls[-2:]
    assert snippet_call["body"] == request_body(request)
    assert json.loads(snippet_call["body"]) == json.loads(client_call["body"])
    assert snippet_call["headers"]["Authorization"] == f"Bearer {TEST_KEY}"
    assert snippet_call["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert sim.requests[-1]["body"] == sim.requests[-2]["body"]
    assert TEST_KEY not in code and 'os.environ["AI302_API_KEY"]' in code


@pytest.mark.parametrize("prompt", NASTY_PROMPTS)
def test_python_snippet_payload_literal_is_the_payload(prompt):
    request = PortraitRequest(image_input="https://file.302.ai/a.jpg", prompt=prompt, gpen=0.1, seed=5)
    tree = ast.parse(python_requests_code(request, "https://api.302.ai"))

    [literal] = [n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "payload"]

    assert ast.literal_eval(literal) == request.to_payload()


def test_client_sends_exactly_the_snippet_bytes(settings, proxy, hosted):
    request = PortraitRequest(image_input=hosted, prompt=NASTY, seed=42)
    with _client_via(proxy, settings) as client:
        client.generate(request)

    assert proxy.calls[-1]["body"] == request_body(request)


@needs_curl
def test_saved_run_snippet_repeats_the_request_with_the_seed_sent(settings, client, sim, photo_path):
    outcome = Studio(settings, client).run(photo_path, PortraitRequest(prompt=NASTY), variations=2)
    sent_bodies = [r["body"] for r in sim.requests]

    snippets = snippets_for_record(outcome.record, index=1)
    ran = _run_bash(snippets.curl)

    assert ran.returncode == 0, ran.stderr
    assert sim.requests[-1]["body"] in sent_bodies
    assert [s.request.seed for s in sent_requests(outcome.record)] == [r.seed for r in outcome.results]


def test_saved_run_with_inline_photo_rebuilds_the_data_url(settings, sim, proxy, photo_path):
    data_settings = settings.with_(photo_hosting="data", api_base=proxy.url)
    with PortraitClient(data_settings, retries=0) as client:
        outcome = Studio(data_settings, client).run(photo_path, PortraitRequest(seed=11))
    assert "…(input.jpg)" in outcome.record.meta["request"]["image_input"]

    [sent] = sent_requests(outcome.record)

    assert request_body(sent.request) == request_body(outcome.results[0].request)
    assert json.loads(proxy.calls[-1]["body"]) == sent.request.to_payload()


def test_sheet_run_has_one_request_per_style(settings, client, sim, photo_path):
    presets = load_presets(settings.presets_path)[:3]
    result = run_sheet(Studio(settings, client), photo_path, presets, user_prompt="戴眼镜")

    sent = sent_requests(result.record)

    assert [s.label.split(" / ")[1] for s in sent] == [p.name_en for p in presets]
    bodies = sorted((r["body"] for r in sim.requests), key=lambda b: b["prompt"])
    assert sorted((s.request.to_payload() for s in sent), key=lambda b: b["prompt"]) == bodies


def test_gradio_snippet_uses_the_endpoint_parameter_names():
    from portrait.ui import PortraitUI

    code = gradio_client_code(
        "http://127.0.0.1:7860/", AppCall(image="photo.jpg", prompt=NASTY, preset="studio")
    )
    [call] = [
        n
        for n in ast.walk(ast.parse(code))
        if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "predict"
    ]

    wanted = set(inspect.signature(PortraitUI.api_generate).parameters) - {"self", "request"}
    assert {k.arg for k in call.keywords} == wanted | {"api_name"}
    kwargs = {k.arg: k.value for k in call.keywords}
    assert ast.literal_eval(kwargs["prompt"]) == NASTY
    assert ast.literal_eval(kwargs["api_name"]) == "/generate"


def test_gradio_snippet_runs_against_the_app(settings, client, sim, photo_path, tmp_path):
    pytest.importorskip("gradio_client")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from portrait.ui import build_demo, launch_kwargs, queue_kwargs

    studio = Studio(settings, client)
    demo = build_demo(studio, load_presets(settings.presets_path)).queue(**queue_kwargs(settings))
    kwargs = {**launch_kwargs(settings), "footer_links": []}
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **kwargs)
    try:
        original = studio.run(photo_path, PortraitRequest(prompt="戴帽子", gpen=0.8, seed=99))
        code = gradio_client_code(url, app_call_from_record(original.record))
        ran = _run_python(code, tmp_path)
    finally:
        demo.close(verbose=False)

    assert ran.returncode == 0, ran.stderr
    assert "seeds: [99]" in ran.stdout
    first, again = sim.requests[-2]["body"], sim.requests[-1]["body"]
    # The app prepares input.jpg again (a new JPEG, so a new hosted URL); every other field repeats.
    assert {**again, "image_input": None} == {**first, "image_input": None}


def test_snippet_image_survives_a_round_trip_as_jpeg(settings, client, sim, photo_path):
    # The photo in a saved run is what the gradio snippet uploads: a real JPEG, not a placeholder.
    outcome = Studio(settings, client).run(photo_path, PortraitRequest(seed=1))
    call = app_call_from_record(outcome.record)

    assert Path(call.image).name == "input.jpg"
    assert Image.open(io.BytesIO(Path(call.image).read_bytes())).format == "JPEG"
