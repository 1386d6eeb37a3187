"""Every field of the Portrait API: its default, its range, and how it goes on the wire.

This module is the one source of truth for limits. The UI sliders, the CLI flags,
the simulator's validation and the local checks all read from here.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from .errors import InvalidInputError

SIZE_MIN = 512
SIZE_MAX = 2048
SIZE_DEFAULT = 1328

STRENGTH_MIN = 0.0
STRENGTH_MAX = 1.0
STRENGTH_STEP = 0.1

GEN_MODES = ("creative", "reference", "reference_char")
SEED_RANDOM = -1
SEED_MAX = 2**31 - 1

SIZE_ALLOWED = (f"{SIZE_MIN}–{SIZE_MAX} 的整数", f"an integer {SIZE_MIN}–{SIZE_MAX}")
_MODES_TEXT = "auto, " + ", ".join(GEN_MODES)

VARIATIONS_MIN = 1
VARIATIONS_MAX = 4


@dataclass(frozen=True)
class StrengthField:
    """A 0-1 slider field in 0.1 steps."""

    name: str
    default: float
    zh: str
    en: str


STRENGTH_FIELDS = (
    StrengthField("gpen", 0.4, "人脸修复强度（GPEN）", "face restoration (GPEN)"),
    StrengthField("skin", 0.3, "磨皮强度", "skin smoothing"),
    StrengthField("skin_unifi", 0.0, "肤色统一强度", "skin tone unification"),
)
STRENGTH_DEFAULTS = {f.name: f.default for f in STRENGTH_FIELDS}

# Friendly aspect presets: (label, width, height). Every size is inside the range and
# a multiple of 16, with the long edge as large as the API's default allows.
ASPECT_PRESETS = (
    ("1:1", 1328, 1328),
    ("3:4", 1152, 1536),
    ("4:3", 1536, 1152),
    ("2:3", 1056, 1584),
    ("3:2", 1584, 1056),
    ("9:16", 936, 1664),
    ("16:9", 1664, 936),
    ("1:1 max", 2048, 2048),
)


def _check_size(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError.field(name, SIZE_ALLOWED, value)
    if isinstance(value, float) and not value.is_integer():
        raise InvalidInputError.field(name, SIZE_ALLOWED, value)
    value = int(value)
    if not SIZE_MIN <= value <= SIZE_MAX:
        raise InvalidInputError.field(name, SIZE_ALLOWED, value)
    return value


def _check_strength(name: str, value: Any) -> float:
    allowed = ("0 到 1，步长 0.1", "0 to 1 in steps of 0.1")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError.field(name, allowed, value)
    if isinstance(value, int) and not STRENGTH_MIN <= value <= STRENGTH_MAX:
        raise InvalidInputError.field(name, allowed, value)  # before float(): 10**400 would overflow
    value = float(value)
    if not math.isfinite(value) or not STRENGTH_MIN <= value <= STRENGTH_MAX:
        raise InvalidInputError.field(name, allowed, value)
    tenths = round(value * 10)
    if abs(value * 10 - tenths) > 1e-6:
        raise InvalidInputError.field(name, allowed, value)
    return tenths / 10


def _check_seed(value: Any) -> int:
    allowed = (f"-1（随机）或 0–{SEED_MAX} 的整数", f"-1 (random) or an integer 0–{SEED_MAX}")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise InvalidInputError.field("seed", allowed, value) from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError.field("seed", allowed, value)
    if value != SEED_RANDOM and not 0 <= value <= SEED_MAX:
        raise InvalidInputError.field("seed", allowed, value)
    return value


@dataclass(frozen=True)
class PortraitRequest:
    """One call to the Portrait API. Values are checked when the object is made."""

    image_input: str = ""
    prompt: str = ""
    width: int = SIZE_DEFAULT
    height: int = SIZE_DEFAULT
    gpen: float = STRENGTH_DEFAULTS["gpen"]
    skin: float = STRENGTH_DEFAULTS["skin"]
    skin_unifi: float = STRENGTH_DEFAULTS["skin_unifi"]
    gen_mode: str | None = None
    seed: int = SEED_RANDOM

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.prompt, str):
            raise InvalidInputError.field("prompt", ("文本", "text"), self.prompt)
        set_(self, "prompt", self.prompt.strip())
        if not isinstance(self.image_input, str):
            raise InvalidInputError.field("image_input", ("http(s) 网址", "an http(s) URL"), self.image_input)
        set_(self, "width", _check_size("width", self.width))
        set_(self, "height", _check_size("height", self.height))
        for f in STRENGTH_FIELDS:
            set_(self, f.name, _check_strength(f.name, getattr(self, f.name)))
        if self.gen_mode is not None and not isinstance(self.gen_mode, str):
            raise InvalidInputError.field("gen_mode", (_MODES_TEXT, _MODES_TEXT), self.gen_mode)
        mode = self.gen_mode or None
        if mode in ("auto", "none"):
            mode = None
        if mode is not None and mode not in GEN_MODES:
            raise InvalidInputError.field("gen_mode", (_MODES_TEXT, _MODES_TEXT), mode)
        set_(self, "gen_mode", mode)
        set_(self, "seed", _check_seed(self.seed))

    def with_(self, **changes: Any) -> PortraitRequest:
        """A copy with some fields changed (and checked again)."""
        return replace(self, **changes)

    def to_payload(self) -> dict[str, Any]:
        """The JSON body exactly as the API documents it (seed as a string)."""
        if not self.image_input:
            raise InvalidInputError.field(
                "image_input", ("一张照片或 http(s) 网址", "a photo or an http(s) URL"), ""
            )
        body: dict[str, Any] = {"image_input": self.image_input}
        if self.prompt:
            body["prompt"] = self.prompt
        body.update(
            width=self.width,
            height=self.height,
            gpen=self.gpen,
            skin=self.skin,
            skin_unifi=self.skin_unifi,
        )
        if self.gen_mode:
            body["gen_mode"] = self.gen_mode
        body["seed"] = str(self.seed)
        return body

    def body_bytes(self) -> bytes:
        """The JSON body as sent: compact UTF-8 (the bytes the code snippets reproduce)."""
        return json.dumps(self.to_payload(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def settings_dict(self) -> dict[str, Any]:
        """Every field as a plain dict (for saving and for 'reuse these settings')."""
        return asdict(self)
