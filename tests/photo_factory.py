"""Test photos made on the fly with Pillow: a face-like picture in many awkward forms."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw


def portrait_image(size: tuple[int, int] = (900, 1200), mode: str = "RGB") -> Image.Image:
    """A synthetic 'person': background gradient, head ellipse, shoulders."""
    w, h = size
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(img)
    draw.ellipse((w * 0.3, h * 0.15, w * 0.7, h * 0.55), fill=(224, 180, 150))
    draw.ellipse((w * 0.4, h * 0.3, w * 0.45, h * 0.34), fill=(40, 30, 30))
    draw.ellipse((w * 0.55, h * 0.3, w * 0.6, h * 0.34), fill=(40, 30, 30))
    draw.rectangle((w * 0.15, h * 0.6, w * 0.85, h), fill=(30, 60, 120))
    return img.convert(mode) if mode != "RGB" else img


def jpeg_bytes(img: Image.Image, quality: int = 90, exif_orientation: int | None = None) -> bytes:
    """Encode as JPEG, optionally with an EXIF orientation tag."""
    buf = io.BytesIO()
    kwargs = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    img.save(buf, "JPEG", quality=quality, **kwargs)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    """Write bytes to a path and return it."""
    path.write_bytes(data)
    return path
