"""The Gradio app driven through its `generate` API endpoint with gradio_client, against the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from harness import TEST_KEY, free_port, launch_app
from PIL import Image

from portrait.client import PortraitClient
from portrait.presets import compose_prompt, find_preset, load_presets
from portrait.settings import Settings
from portrait.studio import Studio

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def app(sim_server, tmp_path_factory):
    """The real page and endpoint, launched on 127.0.0.1, talking to the simulator with a test key."""
    settings = Settings(
        api_key=TEST_KEY,
        api_base=sim_server.url,
        output_dir=tmp_path_factory.mktemp("app-out"),
        read_timeout=10.0,
        concurrency=4,
    )
    presets = load_presets(settings.presets_path)
    demo, studio, url = launch_app(settings)
    yield url, settings, presets
    demo.close(verbose=False)
    studio.close()


@pytest.fixture(scope="module")
def gclient(app):
    return Client(app[0], verbose=False)


@pytest.fixture
def upload(photo_path):
    return handle_file(str(photo_path))


def test_local_photo_generates_and_saves(app, gclient, sim, upload):
    _, settings, _ = app
    files, record = gclient.predict(
        image=upload, prompt="穿白衬衫", width=1024, height=1280, seed=5, api_name="/generate"
    )
    assert len(files) == 1
    with Image.open(files[0]) as img:
        assert img.size == (1024, 1280)
    run_dir = Path(record["run_dir"])
    assert run_dir.parent == settings.output_dir and (run_dir / "run.json").is_file()
    assert record["images"][0]["seed"] == 5 and record["images"][0]["request_id"]
    assert sim.requests[-1]["body"]["prompt"] == "穿白衬衫"


def test_url_photo_is_sent_as_given(app, gclient, sim, photo_path):
    _, settings, _ = app
    hosted = PortraitClient(settings).host_photo(Studio(settings).prepare_photo(photo_path))
    files, _ = gclient.predict(image=hosted, api_name="/generate")
    assert files and sim.requests[-1]["body"]["image_input"] == hosted


def test_a_server_path_given_as_text_is_refused(gclient, sim):
    with pytest.raises(AppError) as info:
        gclient.predict(image="/etc/passwd", api_name="/generate")
    assert "http" in str(info.value) and sim.generation_count == 0


def test_preset_composes_prompt_and_fills_its_defaults(app, gclient, sim, upload):
    _, _, presets = app
    preset = find_preset(presets, "id_photo")
    _, record = gclient.predict(image=upload, prompt="穿深色西装", preset="id_photo", api_name="/generate")
    body = sim.requests[-1]["body"]
    assert body["prompt"] == compose_prompt(preset, "穿深色西装")
    assert (body["width"], body["height"]) == (preset.defaults["width"], preset.defaults["height"])
    assert record["preset"] == "id_photo"


def test_explicit_fields_override_the_preset(gclient, sim, upload):
    gclient.predict(image=upload, preset="id_photo", width=800, height=600, api_name="/generate")
    assert (sim.requests[-1]["body"]["width"], sim.requests[-1]["body"]["height"]) == (800, 600)


def test_unknown_preset_names_the_choices(gclient, sim, upload):
    with pytest.raises(AppError) as info:
        gclient.predict(image=upload, preset="no-such-style", api_name="/generate")
    assert "studio" in str(info.value) and sim.generation_count == 0


def test_four_variations_have_distinct_seeds_and_images(gclient, sim, upload):
    files, record = gclient.predict(image=upload, variations=4, api_name="/generate")
    seeds = [item["seed"] for item in record["images"]]
    assert len(files) == 4 and len(set(seeds)) == 4
    assert len({Path(f).read_bytes() for f in files}) == 4
    assert sim.generation_count == 4


def test_every_field_reaches_the_simulator(gclient, sim, upload):
    gclient.predict(
        image=upload,
        prompt="在海边",
        width=1536,
        height=1152,
        gpen=0.7,
        skin=0.1,
        skin_unifi=0.5,
        gen_mode="reference_char",
        seed=123456,
        api_name="/generate",
    )
    body = sim.requests[-1]["body"]
    assert body == {
        "image_input": body["image_input"],
        "prompt": "在海边",
        "width": 1536,
        "height": 1152,
        "gpen": 0.7,
        "skin": 0.1,
        "skin_unifi": 0.5,
        "gen_mode": "reference_char",
        "seed": "123456",
    }


@pytest.mark.parametrize(
    ("fault", "zh", "en"),
    [
        ("gateway:-10004", "充值", "top up"),
        ("model:50413", "修改提示词", "rephrase"),
        ("gateway:-10001", "AI302_API_KEY", "AI302_API_KEY"),
        ("model:50430", "稍后", "wait"),
        ("nonjson", "稍后", "retry"),
    ],
)
def test_errors_reach_the_caller_as_bilingual_messages(gclient, sim, upload, fault, zh, en):
    sim.configure(fault=fault)
    with pytest.raises(AppError) as info:
        gclient.predict(image=upload, api_name="/generate")
    message = str(info.value)
    assert zh in message and en in message
    assert "Traceback" not in message


def test_out_of_range_field_is_refused_with_its_name(gclient, sim, upload):
    with pytest.raises(AppError) as info:
        gclient.predict(image=upload, width=4000, api_name="/generate")
    assert "width" in str(info.value) and "512" in str(info.value)
    assert sim.generation_count == 0


def test_chinese_caller_gets_chinese_message(app, sim, upload):
    zh_client = Client(app[0], verbose=False, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    sim.configure(fault="gateway:-10004")
    with pytest.raises(AppError) as info:
        zh_client.predict(image=upload, api_name="/generate")
    assert "充值" in str(info.value) and "top up" not in str(info.value)


def test_helper_events_are_not_on_the_api_page(gclient):
    endpoints = gclient.view_api(return_format="dict")["named_endpoints"]
    assert sorted(endpoints) == ["/generate", "/sheet"]
    names = [p["parameter_name"] for p in endpoints["/generate"]["parameters"]]
    assert names == [
        "image",
        "prompt",
        "preset",
        "width",
        "height",
        "gpen",
        "skin",
        "skin_unifi",
        "gen_mode",
        "seed",
        "variations",
    ]


def test_key_is_absent_from_page_config_and_api_info(app, gclient, upload):
    url = app[0]
    gclient.predict(image=upload, api_name="/generate")
    for path in ("", "config", "gradio_api/info", "gradio_api/openapi.json"):
        resp = requests.get(url + path, timeout=10)
        assert TEST_KEY not in resp.text, path


def test_broken_presets_file_stops_the_app_with_a_precise_message(tmp_path):
    bad = tmp_path / "presets.yaml"
    bad.write_text(
        "version: 1\npresets:\n  - id: neon\n    name: {zh: 霓虹, en: Neon}\n"
        '    description: {zh: 霓虹灯, en: neon lights}\n    prompt: "霓虹灯下的人像"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "PORTRAIT_PRESETS": str(bad), "GRADIO_SERVER_PORT": str(free_port())}
    env.pop("AI302_API_KEY", None)
    proc = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0
    assert "neon" in proc.stderr and "{prompt}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_saved_record_has_no_key_and_lists_settings(app, gclient, upload):
    _, settings, _ = app
    _, record = gclient.predict(image=upload, prompt="x", api_name="/generate")
    text = (Path(record["run_dir"]) / "run.json").read_text(encoding="utf-8")
    assert TEST_KEY not in text
    assert json.loads(text)["request"]["prompt"] == "x"


def test_sheet_endpoint_returns_sheet_zip_and_explains_a_failed_style(gclient, sim, upload):
    import zipfile

    sim.configure(fault="model:50511", fault_count=1)
    sheet, archive, record = gclient.predict(
        image=upload, presets="studio,anime,hanfu", prompt="微笑", api_name="/sheet"
    )
    with Image.open(sheet) as img:
        assert img.format == "PNG"
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        assert "manifest.json" in names and "sheet.png" in names
        assert sum(n.endswith(".jpg") and n != "input.jpg" for n in names) == 2
    statuses = sorted(c["status"] for c in record["cells"])
    assert len(statuses) == 3 and statuses.count("failed") == 1
    assert sim.generation_count == 3
