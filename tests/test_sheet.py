"""Style sheets against the simulator: one run per sheet, partial failures, the grid PNG and the ZIP."""

from __future__ import annotations

import contextvars
import io
import json
import zipfile

import pytest
import requests
from harness import TEST_KEY
from PIL import Image, ImageFont

from portrait import errors, sheet
from portrait.cli import main
from portrait.client import PortraitClient
from portrait.params import PortraitRequest
from portrait.presets import Preset, load_presets
from portrait.sheet import (
    FAILED_TILE,
    THUMB,
    compose_sheet_image,
    run_sheet,
    sheet_image_for_record,
    sheet_layout,
    sheet_zip,
)
from portrait.simulator import key_fingerprint
from portrait.studio import Studio

STYLES = 7


@pytest.fixture
def studio(settings, client):
    """A studio on the simulator with the test's output folder."""
    return Studio(settings, client)


@pytest.fixture
def presets(settings):
    """The first STYLES presets of presets.yaml."""
    return load_presets(settings.presets_path)[:STYLES]


@pytest.fixture
def sheet_with_one_failure(studio, presets, sim, photo_path):
    """A 7-style sheet where the first generation call to arrive fails with 50500."""
    sim.configure(fault="model:50500", fault_count=1)
    return run_sheet(studio, photo_path, presets, user_prompt="穿红色毛衣")


def test_one_failed_style_does_not_sink_the_sheet(sheet_with_one_failure, sim, presets):
    result = sheet_with_one_failure

    [failed] = result.failures
    assert isinstance(failed.error, errors.UpstreamError) and failed.error.code == 50500
    assert "内部错误" in failed.error.message("zh") and "internal error" in failed.error.message("en")
    assert [c.preset_id for c in result.cells] == [p.id for p in presets]
    assert sum(c.ok for c in result.cells) == STYLES - 1
    assert sim.generation_count == STYLES and len(sim.uploads) == 1


def test_sheet_is_one_run_in_history_with_cells_and_failures(sheet_with_one_failure, studio):
    result = sheet_with_one_failure
    [listed] = studio.store.list()
    meta = listed.meta

    assert listed.id == result.record.id and meta["kind"] == "sheet"
    assert [c["status"] for c in meta["cells"]].count("failed") == 1
    [failure] = meta["failures"]
    failed_cell = next(c for c in meta["cells"] if c["status"] == "failed")
    assert failure["preset"] == failed_cell["preset"] and failure["error"]["code"] == 50500
    assert failed_cell["file"] is None and failed_cell["error"]["kind"] == "UpstreamError"
    assert len(listed.image_paths) == STYLES - 1 and all(p.is_file() for p in listed.image_paths)
    assert {c["name_zh"] for c in meta["cells"]} >= {"影棚写真"}
    assert (listed.path / "sheet.png").is_file() and (listed.path / "input.jpg").is_file()
    assert TEST_KEY not in (listed.path / "run.json").read_text(encoding="utf-8")


def test_every_style_shares_one_seed(sheet_with_one_failure, sim):
    result = sheet_with_one_failure

    assert {r["body"]["seed"] for r in sim.requests} == {str(result.seed)}
    assert result.seed >= 0 and {c.request.seed for c in result.cells} == {result.seed}


def test_results_are_kept_byte_for_byte(sheet_with_one_failure):
    for cell in sheet_with_one_failure.cells:
        if not cell.ok:
            continue
        saved = (sheet_with_one_failure.record.path / cell.file).read_bytes()
        served = requests.get(cell.result.images[0].url, timeout=5).content
        assert saved == cell.image == served


def test_zip_holds_every_image_the_sheet_and_a_manifest(sheet_with_one_failure, tmp_path):
    result = sheet_with_one_failure
    target = tmp_path / "sheet.zip"

    data = sheet_zip(result, target)

    assert target.read_bytes() == data
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        done = [c for c in result.cells if c.ok]
        assert names == {c.file for c in done} | {"input.jpg", "sheet.png", "manifest.json"}
        for cell in done:
            assert zf.read(cell.file) == cell.image
        assert zf.read("sheet.png") == result.sheet_png
        manifest = json.loads(zf.read("manifest.json"))
        assert all(TEST_KEY.encode() not in zf.read(name) for name in names)
    assert manifest["seed"] == result.seed and manifest["user_prompt"] == "穿红色毛衣"
    assert manifest["settings"]["image_input"] == result.image_input
    cells = manifest["cells"]
    assert [c["preset"] for c in cells] == [c.preset_id for c in result.cells]
    for entry, cell in zip(cells, result.cells):
        assert entry["seed"] == result.seed
        if cell.ok:
            assert entry["status"] == "done" and entry["file"] == cell.file and entry["error"] is None
            assert entry["request_id"] == cell.result.request_id != ""
        else:
            assert entry["status"] == "failed" and entry["file"] is None
            assert entry["error"]["code"] == 50500 and entry["error"]["en"]


def test_sheet_png_is_a_grid_with_the_photo_first(sheet_with_one_failure):
    result = sheet_with_one_failure
    png = result.sheet_png
    layout = sheet_layout(STYLES + 1)

    with Image.open(io.BytesIO(png)) as img:
        img.verify()
    img = Image.open(io.BytesIO(png)).convert("RGB")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert (layout.columns, layout.rows) == (4, 2)
    assert img.size == layout.size == (2 * 32 + 4 * THUMB + 3 * 24, 118 + 2 * 32 + 2 * (THUMB + 72) + 24)
    failed_index = next(i for i, c in enumerate(result.cells) if not c.ok)
    x, y = layout.tile_origin(1 + failed_index)  # tile 0 is the input photo
    assert img.getpixel((x + THUMB // 2, y + 6)) == FAILED_TILE
    ok_index = next(i for i, c in enumerate(result.cells) if c.ok)
    x, y = layout.tile_origin(1 + ok_index)
    assert img.getpixel((x + THUMB // 2, y + THUMB // 3)) != FAILED_TILE


def test_sheet_can_be_drawn_again_in_one_language(sheet_with_one_failure):
    record = sheet_with_one_failure.record

    english = sheet_image_for_record(record, "en")

    assert english != sheet_with_one_failure.sheet_png
    assert (
        Image.open(io.BytesIO(english)).size == Image.open(io.BytesIO(sheet_with_one_failure.sheet_png)).size
    )
    assert sheet_image_for_record(record) == (record.path / "sheet.png").read_bytes()


def test_preset_defaults_win_over_base_fields(studio, sim, photo_path):
    preset = Preset("narrow", "窄幅", "Narrow", "d", "d", "风格，{prompt}", {"width": 640})
    base = PortraitRequest(width=1000, height=700, skin=0.9, seed=5, prompt="ignored")

    run_sheet(studio, photo_path, [preset], user_prompt="微笑", base=base)

    body = sim.requests[-1]["body"]
    assert (body["width"], body["height"], body["skin"], body["seed"]) == (640, 700, 0.9, "5")
    assert body["prompt"] == "风格，微笑"


def test_every_style_failing_raises_and_saves_nothing(studio, presets, sim, photo_path):
    sim.configure(fault="model:50413")

    with pytest.raises(errors.ModerationError):
        run_sheet(studio, photo_path, presets[:3])

    assert studio.store.list() == []


def test_progress_reaches_the_callers_context_from_every_worker(studio, presets, photo_path):
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="lost")
    marker.set("caller")
    seen: list[tuple[float, str, str]] = []

    run_sheet(
        studio, photo_path, presets[:4], on_progress=lambda f, step: seen.append((f, step, marker.get()))
    )

    assert {m for _, _, m in seen} == {"caller"}
    assert [s for _, s, _ in seen].count("generating") == 1 + 4
    assert seen[-1][:2] == (1.0, "done")


def test_url_source_has_no_input_tile(studio, presets, client, sim, photo_path):
    url = client.host_photo(studio.prepare_photo(photo_path))

    result = run_sheet(studio, url, presets[:2])

    assert result.photo is None and result.record.input_path is None
    assert Image.open(io.BytesIO(result.sheet_png)).size == sheet_layout(2).size


def test_labels_fall_back_to_english_without_a_cjk_font(monkeypatch, sheet_with_one_failure):
    monkeypatch.setattr(
        sheet, "cjk_font", lambda size, bold=False: (ImageFont.load_default(size=size), False)
    )

    png = compose_sheet_image(None, sheet_with_one_failure.cells, "zh")

    assert Image.open(io.BytesIO(png)).size == sheet_layout(STYLES).size


def test_cli_sheet_writes_the_run_and_a_zip(monkeypatch, settings, sim, photo_path, tmp_path, capsys):
    monkeypatch.setenv("AI302_API_KEY", TEST_KEY)
    monkeypatch.setenv("PORTRAIT_API_BASE", sim.url)
    target = tmp_path / "out.zip"

    code = main(
        ["sheet", "--image", str(photo_path), "--presets", "studio,anime", "--seed", "8"]
        + ["--out", str(tmp_path / "runs"), "--zip", str(target), "--lang", "zh"]
    )

    out = capsys.readouterr().out
    assert code == 0 and "sheet: " in out and "(seed 8)" in out
    with zipfile.ZipFile(target) as zf:
        assert {"01-studio.jpg", "02-anime.jpg", "sheet.png", "manifest.json", "input.jpg"} == set(
            zf.namelist()
        )


def test_a_visitors_own_client_makes_every_call_of_the_sheet(studio, presets, settings, sim, photo_path):
    visitor_key = "sk-visitor-own-key-0001"
    with PortraitClient(settings, api_key=visitor_key, retries=0) as visitor:
        run_sheet(studio, photo_path, presets[:3], client=visitor)

    assert {r["key_id"] for r in sim.requests} == {key_fingerprint(f"Bearer {visitor_key}")}
