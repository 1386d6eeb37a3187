"""The owner's key, set to a known value, is nowhere a visitor or a log reader can look."""

from __future__ import annotations

import os
import subprocess
import sys

import requests
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from harness import ROOT, TEST_KEY, free_port, start_app_process, stop_process


def test_key_appears_in_no_page_response_log_file_or_cli_output(sim, photo_path, tmp_path):
    out_dir = tmp_path / "outputs"
    log_path = tmp_path / "server.log"
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AI302_", "PORTRAIT_"))},
        "AI302_API_KEY": TEST_KEY,
        "PORTRAIT_API_BASE": sim.url,
        "PORTRAIT_OUTPUT_DIR": str(out_dir),
        "PORTRAIT_LOG_LEVEL": "DEBUG",
        "GRADIO_SERVER_PORT": str(port),
    }
    seen: list[str] = []
    proc, url = start_app_process(env, log_path, timeout=90)
    try:
        client = Client(url, verbose=False)
        files, record = client.predict(
            image=handle_file(str(photo_path)), prompt="微笑", api_name="/generate"
        )
        seen.append(repr(record))
        _, _, sheet_record = client.predict(
            image=handle_file(str(photo_path)), presets="studio,anime", api_name="/sheet"
        )
        seen.append(repr(sheet_record))
        for fault in ("gateway:-10001", "gateway:-10004", "model:50413", "nonjson"):
            sim.configure(fault=fault)
            try:
                client.predict(image=handle_file(str(photo_path)), api_name="/generate")
            except AppError as err:
                seen.append(str(err))
        sim.configure(fault=None)
        for path in ("", "config", "gradio_api/info", "gradio_api/openapi.json", "manifest.json"):
            resp = requests.get(url + path, timeout=10)
            seen.append(resp.text)
            seen.append(repr(dict(resp.headers)))
        assert files and record["images"][0]["request_id"]
    finally:
        stop_process(proc)
    cli = subprocess.run(
        [sys.executable, "-m", "portrait", "-v", "generate", "--image", str(photo_path), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    seen += [cli.stdout, cli.stderr]
    server_log = log_path.read_text(errors="replace")
    assert "DEBUG" in server_log  # the log really was at debug level
    seen.append(server_log)
    saved = [p for p in out_dir.rglob("*") if p.is_file()]
    assert any(p.name == "run.json" for p in saved) and any(p.suffix == ".zip" for p in saved)
    seen += [p.read_bytes().decode("latin-1") for p in saved]

    assert all(TEST_KEY not in text for text in seen)
    # The key was really in use: the simulator saw an authorised call for every generation.
    assert sim.generation_count >= 4
