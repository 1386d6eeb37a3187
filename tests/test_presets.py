"""Presets: the shipped file, validation messages, prompt composition and lookup."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from portrait import params
from portrait.errors import InvalidInputError, PresetFileError
from portrait.presets import MAX_FILE_BYTES, Preset, compose_prompt, find_preset, load_presets
from portrait.settings import Settings

SHIPPED = Path(__file__).resolve().parent.parent / "presets.yaml"

VALID_PRESET: dict[str, Any] = {
    "id": "studio",
    "name": {"zh": "影棚写真", "en": "Studio portrait"},
    "description": {"zh": "影棚布光。", "en": "Studio light."},
    "prompt": "专业影棚人像写真，{prompt}，纯色背景",
    "defaults": {"width": 1152, "height": 1536, "skin": 0.4, "gen_mode": "creative"},
}


@pytest.fixture(scope="module")
def shipped() -> tuple[Preset, ...]:
    return load_presets(SHIPPED)


def make_preset(template: str, **defaults: Any) -> Preset:
    return Preset("t", "测试", "Test", "说明", "Description", template, defaults)


def write_presets(tmp_path: Path, presets: list[Any], **top: Any) -> Path:
    path = tmp_path / "presets.yaml"
    data = {"version": 1, "presets": presets, **top}
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def broken_preset(**changes: Any) -> dict[str, Any]:
    """A valid preset with some keys replaced (a value of None removes the key)."""
    entry = copy.deepcopy(VALID_PRESET)
    for key, value in changes.items():
        if value is None:
            entry.pop(key, None)
        else:
            entry[key] = value
    return entry


def load_error(path: Path) -> PresetFileError:
    with pytest.raises(PresetFileError) as info:
        load_presets(path)
    err = info.value
    # Every message is bilingual and names the file.
    assert str(path) in err.zh and str(path) in err.en
    assert err.message() == f"{err.zh} / {err.en}"
    return err


# --- the shipped file ---------------------------------------------------------------


def test_shipped_file_loads_at_least_twelve_presets_with_unique_ids(shipped):
    ids = [p.id for p in shipped]
    assert len(ids) >= 12
    assert len(set(ids)) == len(ids)


def test_settings_point_at_the_shipped_file_by_default():
    assert Settings().presets_path.resolve() == SHIPPED


def test_every_shipped_template_composes_with_user_text(shipped):
    for preset in shipped:
        prompt = compose_prompt(preset, "戴着眼镜")
        assert "戴着眼镜" in prompt
        assert "{" not in prompt and "}" not in prompt, preset.id


def test_every_shipped_template_reads_cleanly_without_user_text(shipped):
    for preset in shipped:
        prompt = compose_prompt(preset, "")
        assert prompt and "{" not in prompt, preset.id
        assert "，，" not in prompt and not prompt.startswith(("，", ",")), preset.id
        assert not prompt.endswith(("，", ",")), preset.id


def test_shipped_presets_have_both_languages(shipped):
    for preset in shipped:
        assert preset.name("zh") and preset.name("en") and preset.name("zh") != preset.name("en")
        assert preset.description("zh") and preset.description("en")


def test_shipped_defaults_are_accepted_by_portrait_request(shipped):
    for preset in shipped:
        request = params.PortraitRequest(image_input="http://x", **preset.defaults)
        for key, value in preset.defaults.items():
            assert getattr(request, key) == value, (preset.id, key)
        assert params.SIZE_MIN <= request.width <= params.SIZE_MAX
        assert params.SIZE_MIN <= request.height <= params.SIZE_MAX
        assert request.gen_mode is None or request.gen_mode in params.GEN_MODES


def test_id_photo_is_three_by_four_and_keeps_the_person_not_the_background(shipped):
    id_photo = find_preset(shipped, "id_photo")
    assert (id_photo.defaults["width"], id_photo.defaults["height"]) == (1152, 1536)
    assert id_photo.defaults["gen_mode"] == "reference_char"


def test_anime_uses_prompt_mode(shipped):
    assert find_preset(shipped, "anime").defaults["gen_mode"] == "creative"


def test_preset_defaults_are_read_only(shipped):
    with pytest.raises(TypeError):
        shipped[0].defaults["width"] = 512  # type: ignore[index]


# --- compose_prompt --------------------------------------------------------------------


def test_no_preset_sends_the_user_text_stripped():
    assert compose_prompt(None, "  长出满脸的胡子 \n") == "长出满脸的胡子"


def test_user_text_goes_where_the_placeholder_is():
    preset = make_preset("影棚写真，{prompt}，纯色背景")
    assert compose_prompt(preset, " 戴着眼镜 ") == "影棚写真，戴着眼镜，纯色背景"


def test_trailing_comma_in_user_text_is_not_doubled():
    preset = make_preset("影棚写真，{prompt}，纯色背景")
    assert compose_prompt(preset, "戴着眼镜，") == "影棚写真，戴着眼镜，纯色背景"


def test_braces_in_user_text_are_kept_literally():
    preset = make_preset("影棚写真，{prompt}，纯色背景")
    assert compose_prompt(preset, "T 恤印着 {logo} 和 {0}") == "影棚写真，T 恤印着 {logo} 和 {0}，纯色背景"


def test_placeholder_in_user_text_is_not_expanded_again():
    preset = make_preset("影棚写真，{prompt}")
    assert compose_prompt(preset, "{prompt}") == "影棚写真，{prompt}"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("影棚写真，{prompt}，纯色背景", "影棚写真，纯色背景"),
        ("{prompt}，影棚写真", "影棚写真"),
        ("影棚写真，{prompt}", "影棚写真"),
        ("影棚写真， {prompt} ，纯色背景", "影棚写真，纯色背景"),
        ("studio portrait, {prompt}, plain backdrop", "studio portrait, plain backdrop"),
        ("风格：{prompt}，纯色背景", "风格，纯色背景"),
        ("studio {prompt} portrait", "studio portrait"),
        ("影棚{prompt}写真", "影棚写真"),
    ],
)
def test_empty_user_text_leaves_no_dangling_punctuation(template, expected):
    assert compose_prompt(make_preset(template), "") == expected


def test_blank_user_text_counts_as_empty():
    preset = make_preset("影棚写真，{prompt}，纯色背景")
    assert compose_prompt(preset, "  ，  ") == compose_prompt(preset, None) == "影棚写真，纯色背景"


# --- find_preset -----------------------------------------------------------------------


def test_find_preset_by_id(shipped):
    assert find_preset(shipped, "studio").id == "studio"


def test_find_preset_by_chinese_name(shipped):
    assert find_preset(shipped, "影棚写真").id == "studio"


def test_find_preset_by_english_name_in_any_case(shipped):
    assert find_preset(shipped, "  studio PORTRAIT ").id == "studio"


@pytest.mark.parametrize("key", [None, "", "   "])
def test_no_preset_key_means_no_preset(shipped, key):
    assert find_preset(shipped, key) is None


def test_unknown_preset_names_the_allowed_ids(shipped):
    with pytest.raises(InvalidInputError) as info:
        find_preset(shipped, "vaporwave")
    err = info.value
    assert err.field_name == "preset"
    assert "vaporwave" in err.en
    for preset in shipped:
        assert preset.id in err.en and preset.id in err.zh


# --- broken files ------------------------------------------------------------------------


def test_missing_file_is_reported(tmp_path):
    err = load_error(tmp_path / "nope.yaml")
    assert "file not found" in err.en and "文件不存在" in err.zh


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "presets.yaml"
    path.write_text("version: 1\npresets:\n  - id: [studio\n", encoding="utf-8")
    err = load_error(path)
    assert "YAML syntax error at line" in err.en and "YAML 语法错误" in err.zh


def test_yaml_syntax_error_gives_the_right_line_number(tmp_path):
    path = tmp_path / "presets.yaml"
    path.write_text("version: 1\npresets:\n  - id: a\n   name: b\n", encoding="utf-8")
    assert "line 4" in load_error(path).en


def test_control_character_is_a_syntax_error_with_its_line(tmp_path):
    path = tmp_path / "presets.yaml"
    path.write_text("version: 1\npresets:\n  - id: a\x07\n", encoding="utf-8")
    assert "YAML syntax error at line 3" in load_error(path).en


def test_file_over_the_size_cap_is_refused(tmp_path):
    path = tmp_path / "presets.yaml"
    path.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    assert "larger than" in load_error(path).en


def test_non_utf8_file_is_refused(tmp_path):
    path = tmp_path / "presets.yaml"
    path.write_bytes("version: 1\n# 影棚\n".encode("gbk"))
    assert "UTF-8" in load_error(path).en


@pytest.mark.parametrize("content", ["- studio\n", "just text\n", ""])
def test_top_level_must_be_a_mapping(tmp_path, content):
    path = tmp_path / "presets.yaml"
    path.write_text(content, encoding="utf-8")
    assert "top level must be a mapping" in load_error(path).en


@pytest.mark.parametrize(("version", "shown"), [(2, "got 2"), ("1", "got '1'"), (True, "got True")])
def test_wrong_version_is_reported(tmp_path, version, shown):
    err = load_error(write_presets(tmp_path, [VALID_PRESET], version=version))
    assert "version must be 1" in err.en and shown in err.en


def test_missing_version_is_reported(tmp_path):
    path = tmp_path / "presets.yaml"
    path.write_text(yaml.safe_dump({"presets": [VALID_PRESET]}, allow_unicode=True), encoding="utf-8")
    assert "version must be 1, got None" in load_error(path).en


@pytest.mark.parametrize("presets", [[], None, {"id": "studio"}])
def test_no_presets_is_reported(tmp_path, presets):
    assert "presets must be a non-empty list" in load_error(write_presets(tmp_path, presets)).en


def test_unknown_top_level_key_is_reported(tmp_path):
    err = load_error(write_presets(tmp_path, [VALID_PRESET], preset=[]))
    assert "unknown top-level key 'preset'" in err.en


def test_preset_that_is_not_a_mapping_is_named_by_position(tmp_path):
    err = load_error(write_presets(tmp_path, [VALID_PRESET, "anime"]))
    assert "preset #2" in err.en and "第 2 个预设" in err.zh and "must be a mapping" in err.en


def test_duplicate_id_names_both_positions(tmp_path):
    err = load_error(write_presets(tmp_path, [VALID_PRESET, broken_preset(name={"zh": "二", "en": "Two"})]))
    assert "preset #2" in err.en and "duplicate id studio" in err.en and "#1" in err.en


@pytest.mark.parametrize("bad_id", ["Studio", "studio-1", "", 7, None])
def test_bad_id_is_reported_by_position(tmp_path, bad_id):
    second = broken_preset(id=bad_id, name={"zh": "二", "en": "Two"})
    err = load_error(write_presets(tmp_path, [VALID_PRESET, second]))
    assert "preset #2" in err.en and "id " in err.en and "is invalid" in err.en
    assert repr(bad_id) in err.en


def test_unknown_preset_key_is_reported(tmp_path):
    entry = broken_preset(prompt=None)
    entry["promt"] = "x，{prompt}"
    err = load_error(write_presets(tmp_path, [entry]))
    assert "preset studio" in err.en and "unknown key 'promt'" in err.en


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"name": None}, "name.zh is missing or empty"),
        ({"name": {"zh": "影棚"}}, "name.en is missing or empty"),
        ({"name": "影棚写真"}, "name.zh is missing or empty"),
        ({"description": {"zh": "  ", "en": "Studio light."}}, "description.zh is missing or empty"),
        ({"description": {"zh": "说明", "en": 3}}, "description.en is missing or empty"),
        ({"prompt": None}, "prompt is missing or empty"),
        ({"prompt": "   "}, "prompt is missing or empty"),
    ],
)
def test_missing_or_empty_text_names_the_preset_and_field(tmp_path, changes, problem):
    err = load_error(write_presets(tmp_path, [broken_preset(**changes)]))
    assert "preset studio" in err.en and problem in err.en
    assert "预设 studio" in err.zh


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("影棚写真，纯色背景", "exactly once (found 0)"),
        ("影棚写真，{Prompt}", "exactly once (found 0)"),
        ("{prompt}，影棚写真，{prompt}", "exactly once (found 2)"),
        ("影棚写真，{prompt}，{style}", "brace other than {prompt}: {style}"),
        ("影棚写真，{prompt}，{0}", "brace other than {prompt}: {0}"),
        ("影棚写真，{prompt}，}", "brace other than {prompt}: }"),
        ("影棚写真，{prompt}，{{光}}", "brace other than {prompt}: {"),
    ],
)
def test_bad_template_names_the_preset_and_problem(tmp_path, template, problem):
    err = load_error(write_presets(tmp_path, [broken_preset(prompt=template)]))
    assert "preset studio" in err.en and problem in err.en


@pytest.mark.parametrize("key", ["seed", "prompt", "image_input", "Width"])
def test_unknown_default_key_is_reported(tmp_path, key):
    err = load_error(write_presets(tmp_path, [broken_preset(defaults={key: 1})]))
    assert "preset studio" in err.en and f"default {key!r} is not a settable field" in err.en


@pytest.mark.parametrize(
    ("defaults", "field"),
    [
        ({"width": 4000}, "width"),
        ({"height": 100}, "height"),
        ({"width": "1152"}, "width"),
        ({"skin": 1.5}, "skin"),
        ({"gpen": 0.25}, "gpen"),
        ({"skin_unifi": -0.1}, "skin_unifi"),
        ({"gen_mode": "fast"}, "gen_mode"),
        ({"gen_mode": False}, "gen_mode"),
    ],
)
def test_default_out_of_range_names_the_preset_and_field(tmp_path, defaults, field):
    err = load_error(write_presets(tmp_path, [broken_preset(defaults=defaults)]))
    assert "preset studio" in err.en and f"default {field} is invalid" in err.en
    assert f"defaults.{field} 无效" in err.zh and f"参数 {field}" in err.zh
    # Each language's half carries the reason in its own language only.
    assert "参数" not in err.en and "Field" not in err.zh


def test_defaults_must_be_a_mapping(tmp_path):
    err = load_error(write_presets(tmp_path, [broken_preset(defaults=[1152, 1536])]))
    assert "preset studio" in err.en and "defaults must be a mapping" in err.en


def test_duplicate_name_is_reported(tmp_path):
    other = broken_preset(id="studio2", name={"zh": "另一个", "en": "STUDIO portrait"})
    err = load_error(write_presets(tmp_path, [VALID_PRESET, other]))
    assert "preset studio2" in err.en and "already used by preset studio" in err.en


def test_valid_file_round_trips_values(tmp_path):
    entry = broken_preset(defaults={"width": 1152, "skin": 0.4, "gen_mode": "auto"})
    (preset,) = load_presets(write_presets(tmp_path, [entry]))
    assert preset.id == "studio" and preset.template == "专业影棚人像写真，{prompt}，纯色背景"
    assert preset.name("en") == "Studio portrait" and preset.name("cn") == "影棚写真"
    assert dict(preset.defaults) == {"width": 1152, "skin": 0.4, "gen_mode": None}
