"""Style presets: load and validate presets.yaml, find a preset, compose the final prompt.

A preset is a Chinese prompt template with one `{prompt}` placeholder for the user's
own words, plus optional default fields (size, strengths, gen_mode). The file is data
written by hand, so everything is checked at load: one mistake stops the app with a
message that names the file, the preset and the problem, instead of a bad request later.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from .errors import InvalidInputError, PresetFileError
from .params import GEN_MODES, PortraitRequest

PRESETS_VERSION = 1
PLACEHOLDER = "{prompt}"
# A presets file is a few kilobytes; the cap keeps a wrong path (a video, a dump)
# from being read into memory and parsed.
MAX_FILE_BYTES = 1_000_000
DEFAULT_KEYS = ("width", "height", "gpen", "skin", "skin_unifi", "gen_mode")

_TOP_KEYS = ("version", "presets")
_PRESET_KEYS = ("id", "name", "description", "prompt", "defaults")
_ID_RE = re.compile(r"[a-z0-9_]+")
_BRACE_RE = re.compile(r"\{[^{}]{0,20}\}?|\}")
# What may sit between the placeholder and the rest of a template, and what is trimmed
# off the ends of the user's text so it never doubles a template's comma (not ASCII
# colons: ":)" is a smiley).
_SEPARATORS = " \t\u3000,，、;；:："
_USER_TRIM = " \t\u3000,，、；。"
_MODES_TEXT = "auto, " + ", ".join(GEN_MODES)

# Problem -> (zh, en). Filled with str.format, so literal braces are doubled.
_PROBLEMS = {
    "missing": ("文件不存在", "file not found"),
    "unreadable": ("无法读取（{reason}）", "cannot be read ({reason})"),
    "too_large": ("文件超过 {limit} 字节", "file is larger than {limit} bytes"),
    "not_utf8": ("不是 UTF-8 文本", "is not UTF-8 text"),
    "yaml_syntax": ("YAML 语法错误，第 {line} 行：{reason}", "YAML syntax error at line {line}: {reason}"),
    "too_deep": ("YAML 嵌套过深", "YAML is nested too deeply"),
    "not_mapping": (
        "顶层应是含 version 和 presets 的映射，实际是 {got}",
        "top level must be a mapping with version and presets, got {got}",
    ),
    "unknown_top_key": (
        "未知的顶层字段 {key}，允许：{allowed}",
        "unknown top-level key {key}; allowed: {allowed}",
    ),
    "bad_version": ("version 应为 {want}，实际是 {got}", "version must be {want}, got {got}"),
    "no_presets": ("presets 应是非空列表，实际是 {got}", "presets must be a non-empty list, got {got}"),
    "preset_not_mapping": (
        "应是映射（id、name、prompt…），实际是 {got}",
        "must be a mapping (id, name, prompt...), got {got}",
    ),
    "unknown_key": ("未知字段 {key}，允许：{allowed}", "unknown key {key}; allowed: {allowed}"),
    "bad_id": ("id {got} 无效，只能用小写字母、数字和下划线", "id {got} is invalid; use only a-z, 0-9 and _"),
    "duplicate_id": (
        "id {got} 与第 {first} 个预设重复",
        "duplicate id {got} (already used by preset #{first})",
    ),
    "missing_text": ("{key}.{lang} 缺失或为空", "{key}.{lang} is missing or empty"),
    "duplicate_name": ("名称 {got} 已被预设 {other} 使用", "name {got} is already used by preset {other}"),
    "missing_prompt": ("prompt 缺失或为空", "prompt is missing or empty"),
    "placeholder_count": (
        "prompt 必须恰好含一个 {{prompt}}（现有 {count} 个）",
        "prompt must contain {{prompt}} exactly once (found {count})",
    ),
    "stray_brace": (
        "prompt 中除 {{prompt}} 外不能有花括号：{got}",
        "prompt has a brace other than {{prompt}}: {got}",
    ),
    "defaults_not_mapping": ("defaults 应是映射，实际是 {got}", "defaults must be a mapping, got {got}"),
    "unknown_default": (
        "defaults 中的 {key} 不是可设字段，允许：{allowed}",
        "default {key} is not a settable field; allowed: {allowed}",
    ),
    "bad_default": ("defaults.{key} 无效：{reason}", "default {key} is invalid: {reason}"),
}


@dataclass(frozen=True)
class Preset:
    """One style: bilingual name and description, a prompt template and default fields.

    `defaults` holds values as PortraitRequest normalizes them (gen_mode None = auto),
    so `PortraitRequest(image_input=..., **preset.defaults)` always accepts them.
    """

    id: str
    name_zh: str
    name_en: str
    description_zh: str
    description_en: str
    template: str
    # hash=False: a mapping is not hashable, and presets are handy as dict keys.
    defaults: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Read-only even when built by hand, so a shared preset cannot be changed by one caller.
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    def name(self, lang: str) -> str:
        """The display name in `lang` ("zh", or "cn" as 302.AI spells it; else English)."""
        return self.name_zh if _is_chinese(lang) else self.name_en

    def description(self, lang: str) -> str:
        """The one-line description in `lang` ("zh"/"cn" or English)."""
        return self.description_zh if _is_chinese(lang) else self.description_en


def _is_chinese(lang: str | None) -> bool:
    return (lang or "").lower().startswith(("zh", "cn"))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fail(path: Path, where: tuple[str, str] | None, problem: str, **facts: Any) -> PresetFileError:
    """Build the error for one problem; `where` = (zh, en) naming the preset, or None for the file.

    A fact given as a (zh, en) tuple goes into each language's half in its own language.
    """
    zh, en = (
        text.format(**{k: v[lang] if isinstance(v, tuple) else v for k, v in facts.items()})
        for lang, text in enumerate(_PROBLEMS[problem])
    )
    if where is None:
        return PresetFileError(f"风格预设文件 {path}：{zh}", f"Presets file {path}: {en}")
    return PresetFileError(f"风格预设文件 {path}，{where[0]}：{zh}", f"Presets file {path}, {where[1]}: {en}")


def _named(preset_id: str) -> tuple[str, str]:
    return f"预设 {preset_id}", f"preset {preset_id}"


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise _fail(path, None, "missing") from None
    except OSError as exc:
        raise _fail(path, None, "unreadable", reason=exc.strerror or type(exc).__name__) from None
    if len(raw) > MAX_FILE_BYTES:
        raise _fail(path, None, "too_large", limit=MAX_FILE_BYTES)
    try:
        # utf-8-sig: editors on Windows often save a BOM.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _fail(path, None, "not_utf8") from None


def _parse_yaml(path: Path, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else "?"
        reason = exc.problem or exc.context or "invalid YAML"
        raise _fail(path, None, "yaml_syntax", line=line, reason=reason) from None
    except yaml.reader.ReaderError as exc:
        # Reader errors (control characters) carry a character position, not a line mark.
        line = text.count("\n", 0, exc.position) + 1
        raise _fail(path, None, "yaml_syntax", line=line, reason=exc.reason) from None
    except yaml.YAMLError as exc:
        raise _fail(path, None, "yaml_syntax", line="?", reason=str(exc).splitlines()[0]) from None
    except RecursionError:
        raise _fail(path, None, "too_deep") from None


def _text_pair(path: Path, where: tuple[str, str], entry: Mapping[str, Any], key: str) -> tuple[str, str]:
    value = entry.get(key)
    pair = value if isinstance(value, Mapping) else {}
    texts = []
    for lang in ("zh", "en"):
        text = pair.get(lang)
        if not isinstance(text, str) or not text.strip():
            raise _fail(path, where, "missing_text", key=key, lang=lang)
        texts.append(text.strip())
    return texts[0], texts[1]


def _check_template(path: Path, where: tuple[str, str], value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, where, "missing_prompt")
    template = value.strip()
    count = template.count(PLACEHOLDER)
    if count != 1:
        raise _fail(path, where, "placeholder_count", count=count)
    # With no other brace, template.format(prompt=x) == compose's replace, so code that
    # formats the template (or a user copying it) gets the same prompt.
    stray = _BRACE_RE.search(template.replace(PLACEHOLDER, ""))
    if stray:
        raise _fail(path, where, "stray_brace", got=stray.group())
    return template


def _check_defaults(path: Path, where: tuple[str, str], value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(path, where, "defaults_not_mapping", got=_shown(value))
    for key in value:
        if key not in DEFAULT_KEYS:
            raise _fail(path, where, "unknown_default", key=_shown(key), allowed=", ".join(DEFAULT_KEYS))
    try:
        # PortraitRequest would quietly read a falsy non-text gen_mode (0, false) as auto.
        mode = value.get("gen_mode")
        if mode is not None and not isinstance(mode, str):
            raise InvalidInputError.field("gen_mode", (_MODES_TEXT, _MODES_TEXT), mode)
        # params.py is the one source of truth for ranges: let it judge every value.
        request = PortraitRequest(image_input="http://x", **value)
    except InvalidInputError as exc:
        key = exc.field_name or "?"
        raise _fail(path, where, "bad_default", key=key, reason=(exc.zh, exc.en)) from None
    return {key: getattr(request, key) for key in value}


def _build_preset(path: Path, index: int, entry: Any, first_index: dict[str, int]) -> Preset:
    where = (f"第 {index} 个预设", f"preset #{index}")
    if not isinstance(entry, Mapping):
        raise _fail(path, where, "preset_not_mapping", got=_shown(entry))
    preset_id = entry.get("id")
    if not isinstance(preset_id, str) or not _ID_RE.fullmatch(preset_id):
        raise _fail(path, where, "bad_id", got=_shown(preset_id))
    if preset_id in first_index:
        raise _fail(path, where, "duplicate_id", got=preset_id, first=first_index[preset_id])
    first_index[preset_id] = index
    # The id is checked first: from here on errors name it, as a person searches the file for it.
    where = _named(preset_id)
    for key in entry:
        if key not in _PRESET_KEYS:
            raise _fail(path, where, "unknown_key", key=_shown(key), allowed=", ".join(_PRESET_KEYS))
    name_zh, name_en = _text_pair(path, where, entry, "name")
    description_zh, description_en = _text_pair(path, where, entry, "description")
    template = _check_template(path, where, entry.get("prompt"))
    defaults = _check_defaults(path, where, entry.get("defaults"))
    return Preset(preset_id, name_zh, name_en, description_zh, description_en, template, defaults)


def load_presets(path: str | Path) -> tuple[Preset, ...]:
    """Read and check a presets file; raise PresetFileError naming the file, preset and problem."""
    path = Path(path)
    data = _parse_yaml(path, _read_text(path))
    if not isinstance(data, Mapping):
        raise _fail(path, None, "not_mapping", got=_shown(data))
    for key in data:
        if key not in _TOP_KEYS:
            raise _fail(path, None, "unknown_top_key", key=_shown(key), allowed=", ".join(_TOP_KEYS))
    version = data.get("version")
    # bool is an int in Python; `version: true` is not version 1.
    if isinstance(version, bool) or version != PRESETS_VERSION:
        raise _fail(path, None, "bad_version", want=PRESETS_VERSION, got=_shown(version))
    entries = data.get("presets")
    if not isinstance(entries, list) or not entries:
        raise _fail(path, None, "no_presets", got=_shown(entries))
    first_index: dict[str, int] = {}
    presets = [_build_preset(path, i, entry, first_index) for i, entry in enumerate(entries, start=1)]
    # find_preset matches names too, so two presets sharing a name would make it ambiguous.
    owners: dict[str, str] = {}
    for preset in presets:
        for name in (preset.name_zh, preset.name_en):
            owner = owners.setdefault(name.casefold(), preset.id)
            if owner != preset.id:
                raise _fail(path, _named(preset.id), "duplicate_name", got=_shown(name), other=owner)
    return tuple(presets)


def _join_around_gap(before: str, after: str) -> str:
    """Join the template's two halves once the empty placeholder is gone, keeping one separator."""
    head = before.rstrip(_SEPARATORS)
    tail = after.lstrip(_SEPARATORS)
    if not head or not tail:
        return (head + tail).strip(_SEPARATORS)
    # Prefer the mark that followed the placeholder: in "风格：{prompt}，细节" the colon
    # introduced the user's words and goes with them.
    lead = after[: len(after) - len(tail)]
    trail = before[len(head) :]
    for gap in (lead, trail):
        mark = next((c for c in gap if not c.isspace()), None)
        if mark is not None:
            return head + (mark + " " if mark.isascii() else mark) + tail
    return head + (" " if trail + lead else "") + tail


def compose_prompt(preset: Preset | None, user_text: str | None) -> str:
    """The prompt sent to the API: the user's text alone, or put into the preset's template."""
    text = (user_text or "").strip()
    if preset is None:
        return text
    # The template's own commas surround the placeholder; the user's would double them.
    text = text.strip(_USER_TRIM)
    before, _, after = preset.template.partition(PLACEHOLDER)
    if text:
        # Concatenation, not str.format: braces in the user's text stay as typed.
        return (before + text + after).strip()
    return _join_around_gap(before, after).strip()


def find_preset(presets: Iterable[Preset], key: str | None) -> Preset | None:
    """The preset whose id or zh/en name is `key` (any case); None for no key; else InvalidInputError."""
    if key is None or not key.strip():
        return None
    presets = tuple(presets)
    wanted = key.strip().casefold()
    # Ids first: they are what scripts send, and they are unique by construction.
    for preset in presets:
        if preset.id.casefold() == wanted:
            return preset
    for preset in presets:
        if wanted in (preset.name_zh.casefold(), preset.name_en.casefold()):
            return preset
    ids = ", ".join(p.id for p in presets) or "-"
    raise InvalidInputError.field("preset", (f"留空或以下之一：{ids}", f"empty or one of: {ids}"), key)
