"""Photos in and portraits out: open a photo safely, orient, shrink and encode it; fetch results safely."""

from __future__ import annotations

import base64
import io
import ipaddress
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidInputError, PhotoError, ResultFetchError

# Pixels we agree to decode. A 12-MP phone photo is 12e6; 64e6 leaves room for
# 8K panoramas while refusing decompression bombs before a byte is decoded.
MAX_PIXELS = 64_000_000
# Formats other than JPEG are decoded at full size: keep their peak memory bounded.
MAX_PIXELS_FULL_DECODE = 40_000_000
MIN_EDGE = 64
JPEG_QUALITY = 92
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
MAX_REDIRECTS = 3  # result downloads: hops followed, each checked like the first URL

PhotoSource = str | Path | bytes | Image.Image | BinaryIO


@dataclass(frozen=True)
class PreparedPhoto:
    """The photo exactly as it will be sent: RGB JPEG bytes within the provider's limits."""

    jpeg: bytes
    width: int
    height: int
    original_size: tuple[int, int]

    def image(self) -> Image.Image:
        """The prepared photo as a PIL image (for previews)."""
        return Image.open(io.BytesIO(self.jpeg))

    def data_url(self) -> str:
        """The photo as an inline data: URL."""
        return "data:image/jpeg;base64," + base64.b64encode(self.jpeg).decode("ascii")


def is_http_url(text: str) -> bool:
    """True for an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(text.strip())
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. "http://[" : not a URL we can use
        return False


def check_photo_url(url: str) -> str:
    """Accept an http(s) URL for the API to fetch; refuse anything else with a clear message."""
    url = url.strip()
    if not is_http_url(url):
        raise InvalidInputError(
            "照片网址必须以 http:// 或 https:// 开头。",
            "A photo URL must start with http:// or https://.",
        )
    return url


def _read_capped(source: str | Path | BinaryIO | bytes, max_bytes: int) -> bytes:
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, (str, Path)):
        path = Path(source)
        try:
            with path.open("rb") as fh:
                data = fh.read(max_bytes + 1)
        except FileNotFoundError:
            raise PhotoError("找不到照片文件。", "The photo file was not found.", detail=path.name) from None
        except OSError as exc:
            raise PhotoError(
                "无法读取照片文件。", "The photo file cannot be read.", detail=path.name
            ) from exc
    else:
        data = source.read(max_bytes + 1)
    if not data:
        raise PhotoError("照片文件是空的。", "The photo file is empty.")
    if len(data) > max_bytes:
        raise PhotoError(
            f"照片文件太大（上限 {max_bytes // 1_000_000} MB），请换一张小一些的照片。",
            f"The photo file is too large (limit {max_bytes // 1_000_000} MB); use a smaller one.",
        )
    return data


def _open(data: bytes) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:
        raise PhotoError(
            f"照片像素过多，请换一张不超过 {MAX_PIXELS // 1_000_000} 百万像素的照片。",
            f"The photo has too many pixels; use one under {MAX_PIXELS // 1_000_000} megapixels.",
        ) from None
    except (UnidentifiedImageError, ValueError, OSError):
        raise PhotoError(
            "这不是可识别的图片文件，请上传 JPEG、PNG 或 WebP 照片。",
            "This is not an image we can read; upload a JPEG, PNG or WebP photo.",
        ) from None
    _check_pixels(img.size)
    w, h = img.size
    if img.format != "JPEG" and w * h > MAX_PIXELS_FULL_DECODE:
        # Only JPEG can be decoded at a reduced scale; others are decoded whole, 4 bytes a pixel.
        raise PhotoError(
            f"这张 {img.format} 照片太大（{w}×{h}），请换成 JPEG 或不超过 {MAX_PIXELS_FULL_DECODE // 1_000_000} 百万像素。",
            f"This {img.format} photo is too large ({w}×{h}); use a JPEG or one under "
            f"{MAX_PIXELS_FULL_DECODE // 1_000_000} megapixels.",
        )
    return img


def _check_pixels(size: tuple[int, int]) -> None:
    w, h = size
    if w * h > MAX_PIXELS:
        raise PhotoError(
            f"照片像素过多（{w}×{h}），请换一张不超过 {MAX_PIXELS // 1_000_000} 百万像素的照片。",
            f"The photo has too many pixels ({w}×{h}); use one under {MAX_PIXELS // 1_000_000} megapixels.",
        )
    if min(w, h) < MIN_EDGE:
        raise PhotoError(
            f"照片太小（{w}×{h}），请使用至少 {MIN_EDGE} 像素、脸部清晰的照片。",
            f"The photo is too small ({w}×{h}); use one at least {MIN_EDGE} px with a clear face.",
        )


def _draft_scale(size: tuple[int, int], max_edge: int) -> tuple[int, int]:
    """The size JPEG DCT scaling (1/1, 1/2, 1/4, 1/8) gives that still fits max_edge, if any."""
    w, h = size
    for scale in (1, 2, 4, 8):
        sw, sh = -(-w // scale), -(-h // scale)
        if max(sw, sh) <= max_edge:
            return sw, sh
    return -(-w // 8), -(-h // 8)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grey: scale to 8 bits instead of clipping to white.
        img = img.point(lambda v: v / 256).convert("L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def prepare_photo(
    source: PhotoSource,
    *,
    max_edge: int = 2048,
    max_bytes: int = 4_500_000,
    max_read: int = 30_000_000,
) -> PreparedPhoto:
    """Open a photo safely and return it as RGB JPEG bytes, upright, long edge <= max_edge."""
    if isinstance(source, Image.Image):
        img = source
        _check_pixels(img.size)
    else:
        img = _open(_read_capped(source, max_read))
    original = img.size
    try:
        if img.format in ("JPEG", "MPO") and img.mode in ("RGB", "L", "CMYK", "YCbCr"):
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: most of the speed-up on phone photos.
            img.draft("RGB", _draft_scale(img.size, max_edge))
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        img.load()
        img = ImageOps.exif_transpose(img)
        img = _to_rgb(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise PhotoError(
            "照片文件已损坏或不完整，请重新导出或换一张。",
            "The photo file is damaged or incomplete; export it again or use another one.",
        ) from None
    if max(img.size) > max_edge:
        img.thumbnail((max_edge, max_edge), Image.Resampling.LANCZOS, reducing_gap=3.0)
    jpeg = _encode_within(img, max_bytes)
    final = Image.open(io.BytesIO(jpeg)).size
    return PreparedPhoto(jpeg=jpeg, width=final[0], height=final[1], original_size=original)


def _encode_within(img: Image.Image, max_bytes: int) -> bytes:
    quality = JPEG_QUALITY
    while True:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality, optimize=False)
        if buf.tell() <= max_bytes:
            return buf.getvalue()
        if quality > 70:
            quality -= 10
        else:
            img = img.resize(
                (max(1, img.width * 3 // 4), max(1, img.height * 3 // 4)), Image.Resampling.LANCZOS
            )


def check_image_bytes(data: bytes) -> tuple[int, int]:
    """Verify that bytes are a whole, decodable image; return its size."""
    try:
        img = Image.open(io.BytesIO(data))
        _check_pixels(img.size)
        img.load()
        return img.size
    except PhotoError:
        raise
    except Exception:  # noqa: BLE001 - Pillow raises many kinds; all mean "not an image"
        raise PhotoError("返回的数据不是有效图片。", "The returned data is not a valid image.") from None


def _host_allowed(url: str, allowed_hosts: frozenset[str]) -> bool:
    try:
        host = urlsplit(url).hostname or ""
        if host.lower() in allowed_hosts:
            return True
        infos = socket.getaddrinfo(host, None)
    except (OSError, ValueError, UnicodeError):
        return False
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_reserved or addr.is_multicast:
            return False
    return True


def fetch_image(
    session: requests.Session,
    url: str,
    *,
    max_bytes: int,
    timeout: float,
    allowed_hosts: frozenset[str] = frozenset(),
) -> bytes:
    """Download one result image: http(s) only, public hosts (or allowed ones), capped, verified.

    Redirects are followed by hand (at most MAX_REDIRECTS) and every hop is checked like the
    first URL, so a public host cannot bounce the download to a private address. The body is
    read one socket read at a time, so `timeout` bounds the whole download even when the
    server trickles bytes.
    """
    deadline = time.monotonic() + timeout
    try:
        for _ in range(MAX_REDIRECTS + 1):
            if not is_http_url(url) or not _host_allowed(url, allowed_hosts):
                raise ResultFetchError(detail="refused URL")
            resp = session.get(url, timeout=timeout, stream=True, allow_redirects=False)
            if resp.is_redirect:
                resp.close()
                url = urljoin(url, resp.headers["Location"])
                continue
            with resp:
                if resp.status_code != 200:
                    raise ResultFetchError(http_status=resp.status_code, detail=f"HTTP {resp.status_code}")
                chunks, total = [], 0
                while chunk := resp.raw.read1(64 * 1024, decode_content=True):
                    total += len(chunk)
                    if total > max_bytes:
                        raise ResultFetchError(detail="image too large")
                    if time.monotonic() > deadline:
                        raise ResultFetchError(detail="download too slow")
                    chunks.append(chunk)
            break
        else:
            raise ResultFetchError(detail="too many redirects")
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise ResultFetchError(detail=type(exc).__name__) from None
    data = b"".join(chunks)
    try:
        check_image_bytes(data)
    except PhotoError:
        raise ResultFetchError(detail="not an image") from None
    return data
