"""Fonts for text drawn into images (simulator stamps, style sheets): a CJK face when one is installed.

Chinese labels need a CJK font; Pillow's built-in font has no Chinese glyphs. The lookup
tries the usual Linux, macOS and Windows locations once and caches the answer; callers
get a flag saying whether the font can draw Chinese so they can fall back to English.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from PIL import ImageFont

FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",
    "/Library/Fonts/Arial Unicode.ttf",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)

# FreeType faces are not safe to render from several threads at once, and the faces
# below are cached and shared: hold this lock while measuring or drawing text.
FONT_LOCK = threading.Lock()

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _sc_face_index(path: str) -> int:
    """In a font collection, the index of the Simplified Chinese face (else 0)."""
    if not path.lower().endswith(".ttc"):
        return 0
    for i in range(16):
        try:
            family = ImageFont.truetype(path, 12, index=i).getname()[0] or ""
        except OSError:
            break
        if family.endswith(" SC"):
            return i
    return 0


@functools.cache
def cjk_font_file(bold: bool = False) -> tuple[str, int] | None:
    """(path, face index) of the first usable CJK font, preferring its Simplified Chinese face.

    With `bold`, the bold sibling of that font (…-Bold.ttc) when it exists, else the regular one.
    """
    for candidate in FONT_CANDIDATES:
        if not Path(candidate).is_file():
            continue
        try:
            ImageFont.truetype(candidate, 12)
        except OSError:
            continue
        if bold and "Regular" in candidate:
            sibling = candidate.replace("Regular", "Bold")
            if Path(sibling).is_file():
                try:
                    return sibling, _sc_face_index(sibling)
                except OSError:
                    pass
        return candidate, _sc_face_index(candidate)
    return None


@functools.lru_cache(maxsize=64)
def cjk_font(size: int, bold: bool = False) -> tuple[Font, bool]:
    """A font of about `size` px and whether it can draw Chinese (Pillow's default font when none is found)."""
    found = cjk_font_file(bold)
    if found is not None:
        return ImageFont.truetype(found[0], size, index=found[1]), True
    return ImageFont.load_default(size=size), False
