"""A local HTTP server that speaks 302.AI's Portrait API contract, for tests, benchmarks and offline mode.

It serves the same paths and JSON shapes as 302.AI (`POST /302/upload-file`,
`POST /doubao/drawing/portrait`, hosted `/files/` and `/results/`), validates fields with
the limits in `portrait.params`, and answers with real JPEGs derived from the input photo.
Every image is visibly stamped "SIMULATED · 模拟结果": nothing here pretends to be the model.

Faults can be switched on globally (`Simulator.configure`, `POST /_sim/config`) or per request
(`X-Sim-Fault: NAME`, `X-Sim-Latency: seconds`) so client retries and error messages can be
tested over real HTTP. Fault names:

- `gateway:<err_code>`: 302.AI gateway error body (every err_code of the contract).
- `model:<code>`: Volcengine model error body (`data: null`); `model200:<code>`: same, HTTP 200.
- `http429` (Retry-After: 1), `http429-noretry`, `http503` (Retry-After: 1, gateway -10008),
  `http500` (plain text), `nonjson` (200 text/html), `truncated` (200, JSON cut in half).
- `empty` (success, no images), `base64` (success, image only in `binary_data_base64`),
  `result404` (success, the result URL 404s), `result-notimage` (the URL serves text/plain).
- `hang` (no answer until `stop()`), `slow:<seconds>` (extra latency), `reset` (TCP RST, no answer).

`fault` may also be a comma-separated list; one name is drawn per call. With `fault_rate` > 0
each generation call independently gets a fault with that probability, drawn from `fault`
or, when `fault` is unset, from `DEFAULT_FAULT_MIX` (deterministic with `rng_seed`).

A generation call goes: log it, check the key, pick the fault; error-shaped faults, `hang`
and `reset` answer right there (no validation, no latency); otherwise validate the body, load
the photo, sleep the latency, render, and let a success-shaped fault change the answer.
"""

from __future__ import annotations

import base64
import email.message
import email.parser
import email.policy
import email.utils
import functools
import hashlib
import hmac
import io
import json
import logging
import math
import random
import re
import secrets
import socket
import struct
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

import requests
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from .errors import InvalidInputError
from .fonts import FONT_LOCK, cjk_font
from .params import GEN_MODES, SEED_MAX, SEED_RANDOM, SIZE_DEFAULT, STRENGTH_DEFAULTS, PortraitRequest

__all__ = [
    "DEFAULT_FAULT_MIX",
    "GATEWAY_ERRORS",
    "MODEL_ERRORS",
    "RenderSpec",
    "Simulator",
    "go_duration",
    "open_photo",
    "render_portrait",
    "serve",
]

_log = logging.getLogger("portrait.simulator")

UPLOAD_PATH = "/302/upload-file"
PORTRAIT_PATH = "/doubao/drawing/portrait"

MAX_UPLOAD_BYTES = 30 * 1024 * 1024
_MULTIPART_SLACK = 64 * 1024  # room for the form's boundaries and headers around a 30 MB file
MAX_PHOTO_PIXELS = 64_000_000  # refuse before decoding rather than allocate gigabytes
MAX_JSON_BYTES = 32 * 1024 * 1024  # a 20 MB photo as a data: URL still fits
MAX_FETCH_BYTES = 20 * 1024 * 1024
FETCH_TIMEOUT = 10.0
# Bodies up to this size are read and discarded before a 413, so the client sees the answer
# instead of a broken pipe; anything larger gets the answer and a closed connection.
MAX_DRAIN_BYTES = 128 * 1024 * 1024
MAX_FILES, MAX_FILES_BYTES = 200, 512 * 1024 * 1024
MAX_RESULTS, MAX_RESULTS_BYTES = 500, 512 * 1024 * 1024
MAX_LOGGED_CALLS = 10_000
PHOTO_CACHE_SIZE = 4
MAX_LOGGED_STRING = 2_000  # longer strings (data: URLs) are shortened in the request log
JPEG_QUALITY = 90

_IMAGE_INPUT_ERROR = "image_input could not be downloaded or is not an image"
_MODEL_INVALID = "Input invalid for this service."

# err_code -> (HTTP status, message, message_cn, message_jp). The contract does not say which
# status each code uses; balance and quota codes use 402 so a client that only looks at the
# status still classes them as "pay or wait", not as an auth failure (which 403 would suggest).
GATEWAY_ERRORS: dict[int, tuple[int, str, str, str]] = {
    -10001: (401, "Missing API key", "缺少API Key", "APIキーがありません"),
    -10002: (
        403,
        "Tool is disabled or deleted",
        "该工具已禁用或删除",
        "このツールは無効または削除されています",
    ),
    -10003: (502, "Network error", "网络错误", "ネットワークエラー"),
    -10004: (402, "Insufficient account balance", "账户余额不足", "アカウント残高が不足しています"),
    -10005: (401, "API key has expired", "API Key已过期", "APIキーの有効期限が切れています"),
    -10006: (402, "Total quota reached", "已达到总额度上限", "総利用枠の上限に達しました"),
    -10007: (402, "Daily quota reached", "已达到每日额度上限", "1日の利用枠の上限に達しました"),
    -10008: (503, "No available channel", "暂无可用渠道", "利用可能なチャネルがありません"),
    -10009: (403, "Function not supported", "不支持该功能", "この機能はサポートされていません"),
    -10010: (404, "Resource not found", "资源不存在", "リソースが見つかりません"),
    -10011: (400, "Invalid request", "无效的请求", "無効なリクエストです"),
    -10012: (
        402,
        "Hourly quota of this free tool reached",
        "免费工具每小时额度已达上限",
        "無料ツールの1時間あたりの利用枠の上限に達しました",
    ),
    -10018: (402, "Monthly quota reached", "已达到每月额度上限", "月間利用枠の上限に達しました"),
    -1024: (504, "Upstream connection timeout", "上游连接超时", "上流接続がタイムアウトしました"),
}

# Volcengine code -> (HTTP status, message).
MODEL_ERRORS: dict[int, tuple[int, str]] = {
    50411: (400, "Pre Img Risk Not Pass"),
    50412: (400, "Pre Text Risk Not Pass"),
    50413: (400, "Post Text Risk Not Pass"),
    50511: (400, "Post Img Risk Not Pass"),
    50512: (400, "Post Text Risk Not Pass: generated text"),
    50518: (400, "Pre Img Copyright Risk Not Pass"),
    50519: (400, "Post Img Copyright Risk Not Pass"),
    50429: (429, "Request Has Reached API Limit, Please Try Later"),
    50430: (429, "Request Has Reached API Concurrent Limit, Please Try Later"),
    50500: (500, "Internal Error"),
    50501: (500, "Internal RPC Error"),
    50215: (400, _MODEL_INVALID),
}

# Faults answered before the body is validated: they need no photo and no latency.
_EARLY_KINDS = frozenset(
    {
        "gateway",
        "model",
        "model200",
        "http429",
        "http429-noretry",
        "http503",
        "http500",
        "nonjson",
        "hang",
        "reset",
    }
)
# Faults that only change what a finished generation returns.
_LATE_KINDS = frozenset({"truncated", "empty", "base64", "result404", "result-notimage", "slow"})
_UPLOAD_KINDS = frozenset(
    {"gateway", "http429", "http429-noretry", "http503", "http500", "nonjson", "hang", "reset"}
    | {"truncated", "empty", "result404", "slow"}
)

# Transient failures a real deployment meets; `hang` is left out so a fault_rate never stalls a run.
DEFAULT_FAULT_MIX = (
    "http429",
    "http503",
    "http500",
    "model:50429",
    "model:50430",
    "model:50500",
    "gateway:-10008",
    "gateway:-1024",
    "nonjson",
    "truncated",
    "reset",
    "result404",
)

_UNSET: Any = object()


# ---------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class _Fault:
    name: str
    kind: str
    arg: float | int | None = None

    @property
    def early(self) -> bool:
        return self.kind in _EARLY_KINDS


def _parse_fault(name: str, *, upload: bool = False) -> _Fault:
    """One fault name -> _Fault; ValueError names what is wrong."""
    name = name.strip()
    kind, _, arg = name.partition(":")
    if kind in ("gateway", "model", "model200"):
        try:
            code = int(arg)
        except ValueError:
            raise ValueError(f"fault {name!r} needs a numeric code") from None
        table = GATEWAY_ERRORS if kind == "gateway" else MODEL_ERRORS
        if code not in table:
            raise ValueError(f"fault {name!r}: unknown code; known: {sorted(table)}")
        fault = _Fault(name, kind, code)
    elif kind == "slow":
        try:
            seconds = float(arg)
        except ValueError:
            raise ValueError(f"fault {name!r} needs seconds, e.g. slow:2.5") from None
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"fault {name!r}: seconds must be >= 0")
        fault = _Fault(name, kind, seconds)
    elif not arg and kind in _EARLY_KINDS | _LATE_KINDS:
        fault = _Fault(name, kind)
    else:
        raise ValueError(f"unknown fault {name!r}")
    if upload and fault.kind not in _UPLOAD_KINDS:
        raise ValueError(f"fault {name!r} does not apply to uploads; use one of {sorted(_UPLOAD_KINDS)}")
    return fault


_DEFAULT_MIX = tuple(_parse_fault(n) for n in DEFAULT_FAULT_MIX)


def _parse_fault_list(value: str | None, *, upload: bool = False) -> tuple[_Fault, ...]:
    if value is None:
        return ()
    if not isinstance(value, str):
        raise ValueError("a fault must be a string (a name or a comma-separated list) or null")
    names = [n.strip() for n in value.split(",") if n.strip()]
    if names in ([], ["none"]):
        return ()
    return tuple(_parse_fault(n, upload=upload) for n in names)


# ---------------------------------------------------------------------------- small helpers


def _frac(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def go_duration(seconds: float) -> str:
    """Format seconds the way Go's time.Duration.String does (e.g. "20.464465228s", "1.5ms")."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_frac(ns, 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_frac(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    return f"{sign}{text}{_frac(rest, 1_000_000_000)}s"


def _request_id() -> str:
    """Like 302.AI's: a local timestamp then 20 upper-case hex digits."""
    return time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(10).upper()


def _json_bytes(data: Any, *, ascii_only: bool = False) -> bytes:
    return json.dumps(data, ensure_ascii=ascii_only, separators=(",", ":")).encode("utf-8")


def _shorten_strings(value: Any) -> Any:
    """A copy of parsed JSON with huge strings (data: URLs) cut, so the request log stays small."""
    if isinstance(value, str) and len(value) > MAX_LOGGED_STRING:
        return f"{value[:64]}…[{len(value)} chars]"
    if isinstance(value, dict):
        return {k: _shorten_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten_strings(v) for v in value]
    return value


_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key"}


def key_fingerprint(authorization: str) -> str:
    """A short one-way id of the key a call carried, so tests can tell keys apart without seeing them."""
    token = authorization.removeprefix("Bearer ").strip()
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:12] if token else ""


def _redacted_headers(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in headers.items():
        if key.lower() == "authorization":
            out[key] = "Bearer ***"
        elif key.lower() in _SECRET_HEADERS:
            out[key] = "***"
        else:
            out[key] = value
    return out


def _clean_text(text: str) -> str:
    """Replace lone surrogates (from odd JSON escapes or header bytes) so the text can be drawn and sent."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _header_text(text: str) -> str:
    """Header text with any undecodable bytes (kept as surrogate escapes) made printable."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class _BlobStore:
    """Thread-safe in-memory files, bounded by count and bytes (oldest dropped first)."""

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self._items: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._bytes = 0
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def put(self, name: str, data: bytes, content_type: str) -> None:
        with self._lock:
            old = self._items.pop(name, None)
            if old is not None:
                self._bytes -= len(old[0])
            self._items[name] = (data, content_type)
            self._bytes += len(data)
            while len(self._items) > self._max_items or (
                self._bytes > self._max_bytes and len(self._items) > 1
            ):
                _, (dropped, _) = self._items.popitem(last=False)
                self._bytes -= len(dropped)

    def get(self, name: str) -> tuple[bytes, str] | None:
        with self._lock:
            return self._items.get(name)


# ---------------------------------------------------------------------------- images


@dataclass(frozen=True)
class RenderSpec:
    """The parameters that decide a simulated portrait (with the photo)."""

    width: int
    height: int
    prompt: str
    gpen: float
    skin: float
    skin_unifi: float
    gen_mode: str
    seed: int


# Font lookup is shared with the style sheets (portrait/fonts.py); faces are cached, so
# drawing holds the shared lock.
_FONT_LOCK = FONT_LOCK
_font = cjk_font


def open_photo(data: bytes, target: tuple[int, int] | None = None) -> Image.Image:
    """Decode a photo to upright RGB (transparent areas on white). Raises on anything not an image."""
    img = Image.open(io.BytesIO(data))
    if img.width * img.height > MAX_PHOTO_PIXELS:
        raise ValueError(f"photo of {img.width}x{img.height} px is too large")
    if target is not None:
        # JPEG only: decode at the smallest 1/2^n scale that still covers the target; much faster.
        edge = max(target)
        img.draft("RGB", (edge, edge))
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return img.convert("RGB")


def _cover_box(source: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest crop of `source` with the aspect of `size`, centred across, upper part kept (faces sit high)."""
    sw, sh = source
    scale = min(sw / size[0], sh / size[1])
    cw, ch = max(1, round(size[0] * scale)), max(1, round(size[1] * scale))
    left, top = (sw - cw) // 2, round((sh - ch) * 0.35)
    return left, top, left + cw, top + ch


def _grade_matrix(rng: random.Random, spec: RenderSpec, strength: float) -> tuple[float, ...]:
    """One RGB colour matrix: seed-derived tint, gpen as contrast, skin_unifi as desaturation.

    A single matrix pass is cheaper than a tone curve plus a saturation filter.
    """
    contrast = 1.0 + 0.3 * spec.gpen
    saturation = 1.0 - 0.4 * spec.skin_unifi
    luma = (0.299, 0.587, 0.114)
    matrix: list[float] = []
    for channel in range(3):
        gain = 1.0 + rng.uniform(-0.2, 0.2) * strength
        lift = rng.uniform(-16.0, 16.0) * strength
        row = [(1 - saturation) * luma[i] + (saturation if i == channel else 0.0) for i in range(3)]
        matrix += [gain * contrast * v for v in row]
        matrix.append(gain * 128 * (1 - contrast) + lift)
    return tuple(matrix)


def _retouch(img: Image.Image, spec: RenderSpec, matrix: tuple[float, ...]) -> Image.Image:
    if spec.skin > 0 and min(img.size) >= 64:
        # A cheap blur (box reduce, bilinear up) blended in: reads as skin smoothing.
        soft = _upscale(img.reduce(8), img.size)
        img = Image.blend(img, soft, 0.5 * spec.skin)
    return img.convert("RGB", matrix)


def _work_size(photo_size: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """`size`, or smaller when the photo's crop is smaller: work there and upscale once at the end."""
    box = _cover_box(photo_size, size)
    scale = min(1.0, max((box[2] - box[0]) / size[0], 64 / min(size)))
    return round(size[0] * scale), round(size[1] * scale)


def _person(
    photo: Image.Image, size: tuple[int, int], spec: RenderSpec, matrix: tuple[float, ...]
) -> Image.Image:
    """The photo cover-cropped to `size`, then retouched."""
    box = _cover_box(photo.size, size)
    if (box[2] - box[0], box[3] - box[1]) == size:
        return _retouch(photo.crop(box), spec, matrix)
    return _retouch(photo.resize(size, Image.Resampling.BILINEAR, box=box), spec, matrix)


def _upscale(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    # From a tiny image, bilinear straight to full size is slow in Pillow (~45 ms at 1328 px);
    # bilinear to a quarter then nearest is ~6x faster and looks the same on smooth content.
    quarter = (max(1, size[0] // 4), max(1, size[1] // 4))
    if img.width < quarter[0] and img.height < quarter[1]:
        img = img.resize(quarter, Image.Resampling.BILINEAR)
        return img.resize(size, Image.Resampling.NEAREST)
    return img.resize(size, Image.Resampling.BILINEAR)


@functools.lru_cache(maxsize=16)
def _soft_ellipse(size: tuple[int, int]) -> Image.Image:
    # Drawn small, blurred and scaled up: a soft edge at a fraction of the cost (and cached).
    small = (max(8, size[0] // 8), max(8, size[1] // 8))
    mask = Image.new("L", small, 0)
    mx, my = small[0] // 14, small[1] // 14
    ImageDraw.Draw(mask).ellipse((mx, my, small[0] - 1 - mx, small[1] - 1 - my), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(max(1.0, min(small) / 40)))
    return mask.resize(size, Image.Resampling.BILINEAR)


def _colour(rng: random.Random, low: int = 30, high: int = 230) -> tuple[int, int, int]:
    return (rng.randrange(low, high), rng.randrange(low, high), rng.randrange(low, high))


def _gradient(size: tuple[int, int], rng: random.Random) -> Image.Image:
    ramp = Image.linear_gradient("L")
    if rng.random() < 0.5:
        ramp = ramp.rotate(90)
    return _upscale(ImageOps.colorize(ramp.reduce(4), _colour(rng), _colour(rng)), size)


def _fit_text(text: str, font: Any, width: float) -> str:
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _stamp(img: Image.Image, spec: RenderSpec) -> None:
    """Darken a band across the lower part and write what this is, the seed and the prompt."""
    w, h = img.size
    band = max(56, h // 7)
    top = h - band - h // 12
    box = (0, top, w, top + band)
    img.paste(img.crop(box).point(lambda v: v * 2 // 5), box)
    title_size = max(14, min(int(band * 0.42), w // 11))
    line_size = max(11, min(int(band * 0.22), w // 34))
    with _FONT_LOCK:
        title_font, cjk = _font(title_size)
        line_font, _ = _font(line_size)
        title = "SIMULATED · 模拟结果" if cjk else "SIMULATED"
        prompt = " ".join(spec.prompt.split())[:40]
        if not cjk:
            prompt = "".join(c if c.isascii() else "?" for c in prompt)
        line = f"seed {spec.seed} · {spec.gen_mode}" + (f" · {prompt}" if prompt else "")
        line = _fit_text(line, line_font, w * 0.94)
        draw = ImageDraw.Draw(img)
        pad = int(band * 0.1)
        # Centred by measuring, not with anchors: the bitmap fallback font does not support them.
        _, _, _, line_h = draw.textbbox((0, 0), line, font=line_font)
        draw.text(
            ((w - title_font.getlength(title)) / 2, top + pad), title, font=title_font, fill=(255, 255, 255)
        )
        draw.text(
            ((w - line_font.getlength(line)) / 2, top + band - pad - line_h),
            line,
            font=line_font,
            fill=(235, 235, 235),
        )


def render_portrait(photo: Image.Image, spec: RenderSpec, *, stamp: bool = True) -> bytes:
    """Make the simulated result: a JPEG of exactly spec.width x spec.height, deterministic for its inputs.

    reference keeps the photo's background; reference_char keeps the person over a blurred,
    tinted backdrop; creative puts the person in an ellipse over a seed-derived gradient.
    """
    size = (spec.width, spec.height)
    work = _work_size(photo.size, size)
    w, h = work
    rng = random.Random(f"{spec.seed}|{spec.gen_mode}|{spec.prompt}")
    if spec.gen_mode == "reference":
        canvas = _person(photo, work, spec, _grade_matrix(rng, spec, 0.6))
    elif spec.gen_mode == "reference_char":
        person = _person(photo, work, spec, _grade_matrix(rng, spec, 0.8))
        small = (max(1, w // 24), max(1, h // 24))
        backdrop = photo.resize(small, Image.Resampling.BOX, box=_cover_box(photo.size, small))
        backdrop = _upscale(Image.blend(backdrop, Image.new("RGB", small, _colour(rng)), 0.6), work)
        backdrop.paste(person, (0, 0), _soft_ellipse(work))
        canvas = backdrop
    else:
        canvas = _gradient(work, rng)
        inner = (int(w * 0.68), int(h * 0.82))
        person = _person(photo, inner, spec, _grade_matrix(rng, spec, 1.0))
        canvas.paste(person, ((w - inner[0]) // 2, (h - inner[1]) // 2), _soft_ellipse(inner))
    if work != size:
        canvas = canvas.resize(size, Image.Resampling.BILINEAR)
    if stamp:
        _stamp(canvas, spec)
    out = io.BytesIO()
    canvas.save(
        out, "JPEG", quality=JPEG_QUALITY, comment=b"302.AI Portrait API simulator: not a real result"
    )
    return out.getvalue()


# ---------------------------------------------------------------------------- HTTP


class _BadSimHeader(ValueError):
    """An X-Sim-* header the simulator cannot use."""


class _ModelInputError(Exception):
    """The body would be refused by the model with code 50215."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default backlog of 5 drops connections under a benchmark

    def __init__(self, address: tuple[str, int], sim: Simulator) -> None:
        self.sim = sim
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every handler blocked on a socket (idle keep-alive, slow client) so none outlives stop()."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Only socket errors get here (handlers answer their own bugs); a vanished client is routine.
        _log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "PortraitSimulator/1.0"
    # Headers and body go out in two writes; without this, Nagle + delayed ACK adds ~40 ms per call.
    disable_nagle_algorithm = True

    @property
    def sim(self) -> Simulator:
        return self.server.sim

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        _log.debug("%s %s", self.address_string(), format % args)

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:  # the client went away, or stop() shut the socket
            self.close_connection = True

    # -- dispatch

    def do_GET(self) -> None:  # noqa: N802 - name set by BaseHTTPRequestHandler
        self._dispatch()

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        self._responded = False
        self._started = time.monotonic()
        path = urlsplit(self.path).path
        method = "GET" if self.command == "HEAD" else self.command
        try:
            if method == "POST" and path == PORTRAIT_PATH:
                self._generate()
            elif method == "POST" and path == UPLOAD_PATH:
                self._upload()
            elif method == "GET" and path in ("", "/"):
                self._send_json(200, {"simulator": True})
            elif method == "GET" and (path.startswith("/files/") or path.startswith("/results/")):
                self._serve_blob(path)
            elif path.startswith("/_sim/"):
                self._control(method, path)
            else:
                self._discard_body()
                self._send_gateway(-10010)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - a simulator bug must still answer, not drop the client
            self.close_connection = True
            if self.sim._stopping.is_set():
                return  # stop() shut the socket under us; nothing to report
            _log.exception("simulator failed on %s %s", self.command, path)
            if not self._responded:
                self._send(500, b"Internal Server Error", "text/plain; charset=utf-8", close=True)

    # -- sending

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        *,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        self._responded = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_json(self, status: int, data: Any, **kwargs: Any) -> None:
        self._send(status, _json_bytes(data), "application/json; charset=utf-8", **kwargs)

    def _send_gateway(self, err_code: int, *, status: int | None = None, **kwargs: Any) -> None:
        default_status, message, message_cn, message_jp = GATEWAY_ERRORS[err_code]
        body = {
            "error": {
                "err_code": err_code,
                "message": message,
                "message_cn": message_cn,
                "message_jp": message_jp,
                "type": "api_error",
            }
        }
        self._send_json(status or default_status, body, **kwargs)

    def _model_body(self, code: int, message: str | None = None) -> dict[str, Any]:
        return {
            "code": code,
            "data": None,
            "message": message or MODEL_ERRORS[code][1],
            "request_id": _request_id(),
            "status": code,
            "time_elapsed": go_duration(time.monotonic() - self._started),
        }

    def _send_model_error(self, code: int, message: str | None = None, *, status: int | None = None) -> None:
        self._send_json(
            status or MODEL_ERRORS[code][0], self._model_body(code, message and _clean_text(message))
        )

    def _reset_connection(self) -> None:
        """Abort with a TCP RST and no answer, as a crashed upstream or a dropped proxy does."""
        self._responded = True
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        # The real close (and the RST) happens once rfile, which holds a reference, is closed too.
        self.rfile.close()
        self.connection.close()

    def _drop_without_answer(self) -> None:
        """Used when stop() interrupts a handler: close quietly, like a server going away."""
        self._responded = True
        self.close_connection = True

    # -- request bodies

    def _content_length(self) -> int | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return None
        raw = self.headers.get("Content-Length", "0").strip() or "0"
        try:
            length = int(raw)
        except ValueError:
            return None
        return length if length >= 0 else None

    def _discard_body(self) -> None:
        length = self._content_length()
        if length is None or length > MAX_DRAIN_BYTES:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _read_body(self, limit: int) -> bytes | None:
        """The request body, or None after answering 411/413 (the connection is then closed if unread)."""
        length = self._content_length()
        if length is None:
            self._send_gateway(-10011, status=411, close=True)
            return None
        if length > limit:
            self._discard_body()
            self._send_gateway(-10011, status=413, close=self.close_connection)
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise ConnectionError("client closed the connection mid-body")
        return body

    def _authorized(self) -> bool:
        """Check the Bearer key; on failure answer like the gateway does."""
        scheme, _, token = self.headers.get("Authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            self._send_gateway(-10001)
            return False
        expected = self.sim._api_key
        if expected is not None and not hmac.compare_digest(token.encode(), expected.encode()):
            body = {
                "error": {
                    "err_code": -10001,
                    "message": "Invalid API key",
                    "message_cn": "无效的API Key",
                    "message_jp": "無効なAPIキーです",
                    "type": "api_error",
                }
            }
            self._send_json(401, body)
            return False
        return True

    def _base_url(self) -> str:
        return self.sim._public_url(self.headers.get("Host"))

    # -- faults shared by both endpoints

    def _apply_early_fault(self, fault: _Fault) -> None:
        kind = fault.kind
        if kind == "gateway":
            self._send_gateway(int(fault.arg or 0))
        elif kind in ("model", "model200"):
            code = int(fault.arg or 0)
            self._send_model_error(code, status=200 if kind == "model200" else None)
        elif kind in ("http429", "http429-noretry"):
            body = {
                "error": {
                    "err_code": 429,
                    "message": "Too Many Requests",
                    "message_cn": "请求过于频繁，请稍后再试",
                    "message_jp": "リクエストが多すぎます",
                    "type": "api_error",
                }
            }
            self._send_json(429, body, headers={"Retry-After": "1"} if kind == "http429" else None)
        elif kind == "http503":
            self._send_gateway(-10008, status=503, headers={"Retry-After": "1"})
        elif kind == "http500":
            self._send(500, b"Internal Server Error", "text/plain; charset=utf-8")
        elif kind == "nonjson":
            self._send(200, b"<html>Bad gateway</html>", "text/html; charset=utf-8")
        elif kind == "hang":
            self.sim._stopping.wait()
            self._drop_without_answer()
        elif kind == "reset":
            self._reset_connection()
        else:  # pragma: no cover - _parse_fault only makes known kinds
            raise AssertionError(kind)

    def _send_success(self, data: Any, *, truncated: bool, headers: dict[str, str] | None = None) -> None:
        body = _json_bytes(data)
        if truncated:
            body = body[: len(body) // 2]
        self._send(200, body, "application/json; charset=utf-8", headers=headers)

    # -- endpoints

    def _serve_blob(self, path: str) -> None:
        folder, _, name = path.lstrip("/").partition("/")
        store = self.sim._files if folder == "files" else self.sim._results
        found = store.get(name)
        if found is None:
            self._send(404, b"404 page not found", "text/plain; charset=utf-8")
        else:
            self._send(200, found[0], found[1])

    def _upload(self) -> None:
        length = self._content_length()
        limit = MAX_UPLOAD_BYTES + _MULTIPART_SLACK
        if length is not None and length > limit:
            self.sim._log_upload({"bytes": length, "content_type": None, "filename": None})
        body = self._read_body(limit)
        if body is None:
            return
        try:
            part = _file_part(self.headers.get("Content-Type", ""), body)
        except ValueError:
            part = None
        self.sim._log_upload(
            {
                "bytes": len(part.data) if part else 0,
                "content_type": part.content_type if part else None,
                "filename": part.filename if part else None,
            }
        )
        if not self._authorized():
            return
        if part is not None and len(part.data) > MAX_UPLOAD_BYTES:
            self._send_gateway(-10011, status=413)
            return
        try:
            fault = self.sim._next_fault(self.headers.get("X-Sim-Fault"), upload=True)
        except _BadSimHeader as exc:
            self._send_json(400, {"sim_error": str(exc)})
            return
        if fault is not None and fault.early:
            self._apply_early_fault(fault)
            return
        if fault is not None and fault.kind == "slow" and self.sim._stopping.wait(float(fault.arg or 0)):
            self._drop_without_answer()
            return
        if part is None:
            self._send_json(400, {"code": 400, "data": None, "message": "file is required"})
            return
        try:
            with Image.open(io.BytesIO(part.data)) as img:
                fmt = (img.format or "").upper()
        except Exception:  # noqa: BLE001 - Pillow raises many types for a non-image
            self._send_json(400, {"code": 400, "data": None, "message": "invalid image"})
            return
        ext, content_type = _FORMATS.get(fmt, ("img", f"image/{fmt.lower() or 'octet-stream'}"))
        # Named by content like 302.AI's own hashes, so the same photo keeps its URL.
        name = f"{hashlib.md5(part.data, usedforsecurity=False).hexdigest()}.{ext}"
        kind = fault.kind if fault else None
        if kind == "result404":
            name = f"{uuid.uuid4().hex}.{ext}"
        else:
            self.sim._files.put(name, part.data, content_type)
        url = "" if kind == "empty" else f"{self._base_url()}/files/{name}"
        self._send_success({"code": 200, "data": url, "message": "success"}, truncated=kind == "truncated")

    def _generate(self) -> None:
        query = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        raw = self._read_body(MAX_JSON_BYTES)
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = None
        # Logged before anything can fail, so tests can count what arrived.
        self.sim._log_generation(
            {
                "path": urlsplit(self.path).path,
                "query": query,
                "body": _shorten_strings(body),
                "headers": _redacted_headers(self.headers),
                "key_id": key_fingerprint(self.headers.get("Authorization", "")),
                "time": time.time(),
            }
        )
        if raw is None or not self._authorized():
            return
        try:
            fault = self.sim._next_fault(self.headers.get("X-Sim-Fault"))
            latency = self.sim._latency_for(self.headers.get("X-Sim-Latency"))
        except _BadSimHeader as exc:
            self._send_json(400, {"sim_error": str(exc)})
            return
        if fault is not None and fault.early:
            self._apply_early_fault(fault)
            return
        try:
            spec, image_input = _parse_body(body)
            photo = self.sim._decode_photo(self._load_image_input(image_input), (spec.width, spec.height))
        except _ModelInputError as exc:
            self._send_model_error(50215, str(exc))
            return
        except Exception:  # noqa: BLE001 - any fetch or decode failure is the same answer upstream
            self._send_model_error(50215, _IMAGE_INPUT_ERROR)
            return
        if spec.seed == SEED_RANDOM:
            spec = _replace_seed(spec, self.sim._random_seed())
        kind = fault.kind if fault else None
        delay = latency + (float(fault.arg or 0) if kind == "slow" else 0.0)
        if delay > 0 and self.sim._stopping.wait(delay):
            self._drop_without_answer()
            return
        images: list[bytes] = []
        name = f"{uuid.uuid4().hex}.jpeg"
        if kind == "result-notimage":
            self.sim._results.put(name, b"not an image", "text/plain; charset=utf-8")
        elif kind not in ("empty", "result404"):
            images.append(render_portrait(photo, spec))
            self.sim._results.put(name, images[0], "image/jpeg")
        # result404/result-notimage are about the URL, so they answer with one whatever the format.
        as_url = kind in ("result404", "result-notimage") or (
            query.get("response_format", "url") == "url" and kind != "base64"
        )
        if kind == "empty":
            urls, b64 = [], []
        elif as_url:
            urls, b64 = [f"{self._base_url()}/results/{name}"], [""]
        else:
            urls, b64 = [], [base64.b64encode(images[0]).decode("ascii")]
        data = {
            "code": 10000,
            "data": {
                "algorithm_base_resp": {"status_code": 0, "status_message": "Success"},
                "binary_data_base64": b64,
                "image_urls": urls,
                "llm_result": "",
                "pe_result": "",
                "predict_tags_result": "",
                "rephraser_result": "",
                "request_id": "",
                "vlm_result": "",
            },
            "message": "Success",
            "request_id": _request_id(),
            "status": 10000,
            "time_elapsed": go_duration(time.monotonic() - self._started),
        }
        # Not part of the contract: lets tests and the offline UI show which seed "-1" became.
        self._send_success(data, truncated=kind == "truncated", headers={"X-Sim-Seed": str(spec.seed)})

    def _load_image_input(self, url: str) -> bytes:
        """Bytes of image_input: our own hosted file, a data: URL, or any http(s) URL."""
        if url.startswith("data:"):
            meta, sep, payload = url[5:].partition(",")
            if not sep or not meta.lower().startswith("image/") or ";base64" not in meta.lower():
                raise ValueError("not a base64 image data: URL")
            if len(payload) > MAX_FETCH_BYTES * 4 // 3 + 4:
                raise ValueError("data: URL too large")
            return base64.b64decode(payload)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL")
        own = self.sim._own_blob(parts)
        if own is not None:
            return own
        with requests.get(url, timeout=FETCH_TIMEOUT, stream=True) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            data = bytearray()
            for chunk in response.iter_content(1 << 16):
                data += chunk
                if len(data) > MAX_FETCH_BYTES:
                    raise ValueError("image too large")
        return bytes(data)

    def _control(self, method: str, path: str) -> None:
        if method == "GET" and path == "/_sim/requests":
            body = {"requests": self.sim.requests, "uploads": self.sim.uploads}
            self._send(200, _json_bytes(body, ascii_only=True), "application/json")
            return
        if method != "POST" or path not in ("/_sim/config", "/_sim/reset"):
            self._discard_body()
            self._send_json(404, {"sim_error": f"no control endpoint {method} {path}"})
            return
        raw = self._read_body(1 << 20)
        if raw is None:
            return
        if path == "/_sim/reset":
            self.sim.reset()
            self._send_json(200, {"ok": True})
            return
        try:
            changes = json.loads(raw) if raw.strip() else {}
            if not isinstance(changes, dict):
                raise ValueError("send a JSON object")
            unknown = set(changes) - {"latency", "fault", "fault_count", "fault_rate", "upload_fault"}
            if unknown:
                raise ValueError(f"unknown keys: {sorted(unknown)}")
            self.sim.configure(**changes)
        except (ValueError, TypeError) as exc:
            self._send_json(400, {"sim_error": str(exc)})
            return
        self._send_json(200, self.sim._config_snapshot())


_FORMATS = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "GIF": ("gif", "image/gif"),
    "BMP": ("bmp", "image/bmp"),
    "TIFF": ("tiff", "image/tiff"),
    "MPO": ("jpg", "image/jpeg"),  # phone JPEGs with a depth map open as MPO
}


@dataclass(frozen=True)
class _FilePart:
    data: bytes
    content_type: str | None
    filename: str | None


def _file_part(content_type: str, body: bytes) -> _FilePart | None:
    """The `file` field of a multipart/form-data body (split by hand: fast on 30 MB, no `cgi`)."""
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str) or not boundary:
        raise ValueError("not multipart/form-data")
    for raw in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if raw.startswith(b"--"):
            break  # the closing delimiter
        raw = raw.removeprefix(b"\r\n")
        head, sep, content = raw.partition(b"\r\n\r\n")
        if not sep:
            continue
        # The HTTP policy reads 8-bit header bytes as UTF-8 (the default policy mangles them).
        part = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(head + b"\r\n\r\n")
        name = part.get_param("name", header="content-disposition")
        if name is not None and email.utils.collapse_rfc2231_value(name) == "file":
            filename = part.get_filename()
            return _FilePart(
                content.removesuffix(b"\r\n"),
                str(part["Content-Type"]) if part["Content-Type"] else None,
                _header_text(filename) if filename is not None else None,
            )
    return None


def _parse_body(body: Any) -> tuple[RenderSpec, str]:
    """Validate the JSON body against the contract (limits from portrait.params)."""
    if not isinstance(body, dict):
        raise _ModelInputError(f"{_MODEL_INVALID} The request body must be a JSON object.")
    image_input = body.get("image_input")
    if not isinstance(image_input, str) or not image_input.strip():
        raise _ModelInputError(f"{_MODEL_INVALID} Field image_input is required (a URL of the photo).")
    gen_mode = body.get("gen_mode")
    if gen_mode is not None and gen_mode not in GEN_MODES:
        raise _ModelInputError(
            f"{_MODEL_INVALID} Field gen_mode = {gen_mode!r} is not allowed; use one of {', '.join(GEN_MODES)}."
        )
    seed = body.get("seed", str(SEED_RANDOM))
    if not isinstance(seed, str):
        # The contract types seed as a string; a Go backend refuses a JSON number there.
        raise _ModelInputError(f'{_MODEL_INVALID} Field seed must be a string such as "42" or "-1".')
    prompt = body.get("prompt")
    try:
        req = PortraitRequest(
            image_input=image_input.strip(),
            prompt="" if prompt is None else prompt,
            width=body.get("width", SIZE_DEFAULT),
            height=body.get("height", SIZE_DEFAULT),
            gpen=body.get("gpen", STRENGTH_DEFAULTS["gpen"]),
            skin=body.get("skin", STRENGTH_DEFAULTS["skin"]),
            skin_unifi=body.get("skin_unifi", STRENGTH_DEFAULTS["skin_unifi"]),
            gen_mode=gen_mode,
            seed=seed,
        )
    except InvalidInputError as exc:
        raise _ModelInputError(f"{_MODEL_INVALID} {exc.en}") from None
    # As documented: a prompt means creative, no prompt means reference, unless given by hand.
    mode = req.gen_mode or ("creative" if req.prompt else "reference")
    spec = RenderSpec(
        req.width, req.height, _clean_text(req.prompt), req.gpen, req.skin, req.skin_unifi, mode, req.seed
    )
    return spec, req.image_input


def _replace_seed(spec: RenderSpec, seed: int) -> RenderSpec:
    return RenderSpec(
        spec.width, spec.height, spec.prompt, spec.gpen, spec.skin, spec.skin_unifi, spec.gen_mode, seed
    )


# ---------------------------------------------------------------------------- the simulator


class Simulator:
    """A 302.AI Portrait API on 127.0.0.1 with switchable latency and faults. Thread-safe.

    Use as a context manager or call start()/stop(). `api_key=None` accepts any non-empty
    Bearer key; otherwise the key must match exactly.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        api_key: str | None = None,
        fault: str | None = None,
        fault_rate: float = 0.0,
        rng_seed: int | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._api_key = api_key
        self._rng_seed = rng_seed
        self._default_latency = _check_latency(latency)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._url = ""
        self._files = _BlobStore(MAX_FILES, MAX_FILES_BYTES)
        # Variations and seed sweeps send the same photo again and again; decoding it is the
        # largest single cost of a call, so the last few decoded photos are kept.
        self._photos: OrderedDict[tuple[str, int], Image.Image] = OrderedDict()
        self._results = _BlobStore(MAX_RESULTS, MAX_RESULTS_BYTES)
        self._clear_state()
        self.configure(fault=fault, fault_rate=fault_rate)

    def _clear_state(self) -> None:
        # Called from __init__ and, under the lock, from reset().
        self._latency = self._default_latency
        self._faults: tuple[_Fault, ...] = ()
        self._fault_name: str | None = None
        self._fault_count: int | None = None
        self._fault_rate = 0.0
        self._upload_faults: tuple[_Fault, ...] = ()
        self._upload_fault_name: str | None = None
        self._rng = random.Random(self._rng_seed)
        self._requests: list[dict[str, Any]] = []
        self._uploads: list[dict[str, Any]] = []
        self._generation_count = 0

    # -- lifecycle

    def start(self) -> Simulator:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            raise RuntimeError("this Simulator was already started")
        self._server = _Server((self._host, self._port), self)
        host, port = self._server.server_address[:2]
        # Bound to every interface, the loopback address is the one that surely reaches us.
        self._url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
        # A short poll interval keeps stop() prompt; the idle cost is negligible.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="portrait-simulator",
            daemon=True,
        )
        self._thread.start()
        _log.info("Portrait API simulator listening on %s", self._url)
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping or hanging handlers and close open connections."""
        server = self._server
        if server is None or self._stopping.is_set():
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. "http://127.0.0.1:43567" (known after start())."""
        if not self._url:
            raise RuntimeError("the Simulator has not been started")
        return self._url

    # -- steering

    def configure(
        self,
        *,
        latency: float = _UNSET,
        fault: str | None = _UNSET,
        fault_count: int | None = _UNSET,
        fault_rate: float = _UNSET,
        upload_fault: str | None = _UNSET,
    ) -> None:
        """Change latency and faults; arguments left out stay as they are.

        Setting `fault` without `fault_count` makes it last until changed. `fault_count=N`
        ends the fault (and any fault_rate) after N generation calls got it. Raises ValueError.
        """
        updates: dict[str, Any] = {}
        if latency is not _UNSET:
            updates["_latency"] = _check_latency(latency)
        if fault is not _UNSET:
            updates["_faults"] = _parse_fault_list(fault)
            updates["_fault_name"] = ",".join(f.name for f in updates["_faults"]) or None
            updates.setdefault("_fault_count", None)
        if fault_count is not _UNSET:
            if fault_count is not None and (
                isinstance(fault_count, bool) or not isinstance(fault_count, int) or fault_count < 1
            ):
                raise ValueError("fault_count must be a positive integer or None")
            updates["_fault_count"] = fault_count
        if fault_rate is not _UNSET:
            if (
                isinstance(fault_rate, bool)
                or not isinstance(fault_rate, (int, float))
                or not 0 <= fault_rate <= 1
            ):
                raise ValueError("fault_rate must be a number from 0 to 1")
            updates["_fault_rate"] = float(fault_rate)
        if upload_fault is not _UNSET:
            updates["_upload_faults"] = _parse_fault_list(upload_fault, upload=True)
            updates["_upload_fault_name"] = ",".join(f.name for f in updates["_upload_faults"]) or None
        with self._lock:
            for key, value in updates.items():
                setattr(self, key, value)

    def reset(self) -> None:
        """Clear faults and the request log; latency back to the constructor's value; rng re-seeded."""
        with self._lock:
            self._clear_state()

    def _config_snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency": self._latency,
                "fault": self._fault_name,
                "fault_count": self._fault_count,
                "fault_rate": self._fault_rate,
                "upload_fault": self._upload_fault_name,
            }

    # -- what arrived

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A snapshot of the generation calls received (Authorization redacted), oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def uploads(self) -> list[dict[str, Any]]:
        """A snapshot of the upload calls received: {"bytes", "content_type", "filename", "time"}."""
        with self._lock:
            return list(self._uploads)

    @property
    def generation_count(self) -> int:
        """How many generation calls arrived since start or the last reset()."""
        with self._lock:
            return self._generation_count

    # -- used by the handler

    def _log_generation(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._generation_count += 1
            self._requests.append(entry)
            if len(self._requests) > MAX_LOGGED_CALLS:
                del self._requests[: len(self._requests) - MAX_LOGGED_CALLS]

    def _log_upload(self, entry: dict[str, Any]) -> None:
        entry["time"] = time.time()
        with self._lock:
            self._uploads.append(entry)
            if len(self._uploads) > MAX_LOGGED_CALLS:
                del self._uploads[: len(self._uploads) - MAX_LOGGED_CALLS]

    def _next_fault(self, header: str | None, *, upload: bool = False) -> _Fault | None:
        """The fault for this call: the X-Sim-Fault header wins, else the configured fault/rate."""
        if header is not None:
            try:
                chosen = _parse_fault_list(header, upload=upload)
            except ValueError as exc:
                raise _BadSimHeader(f"X-Sim-Fault: {exc}") from None
            with self._lock:
                return self._pick(chosen) if chosen else None
        with self._lock:
            if upload:
                return self._pick(self._upload_faults) if self._upload_faults else None
            if self._fault_rate > 0:
                if self._rng.random() >= self._fault_rate:
                    return None
                pool = self._faults or _DEFAULT_MIX
            elif self._faults:
                pool = self._faults
            else:
                return None
            chosen_fault = self._pick(pool)
            if self._fault_count is not None:
                self._fault_count -= 1
                if self._fault_count <= 0:
                    self._faults, self._fault_name, self._fault_count, self._fault_rate = (), None, None, 0.0
            return chosen_fault

    def _pick(self, pool: tuple[_Fault, ...]) -> _Fault:
        # A single fault draws nothing, so it does not shift the seeded sequence of a fault_rate.
        return pool[0] if len(pool) == 1 else self._rng.choice(pool)

    def _decode_photo(self, data: bytes, target: tuple[int, int]) -> Image.Image:
        key = (hashlib.sha256(data).hexdigest(), max(target))
        with self._lock:
            if key in self._photos:
                self._photos.move_to_end(key)
                return self._photos[key]
        photo = open_photo(data, target)  # decoded outside the lock: other calls go on meanwhile
        with self._lock:
            self._photos[key] = photo
            while len(self._photos) > PHOTO_CACHE_SIZE:
                self._photos.popitem(last=False)
        return photo

    def _latency_for(self, header: str | None) -> float:
        if header is None:
            with self._lock:
                return self._latency
        try:
            return _check_latency(float(header))
        except ValueError:
            raise _BadSimHeader(f"X-Sim-Latency: {header!r} is not a number of seconds >= 0") from None

    def _random_seed(self) -> int:
        with self._lock:
            return self._rng.randrange(0, SEED_MAX + 1)

    def _public_url(self, host_header: str | None) -> str:
        # Bound to every interface, the caller's Host header is the address that reaches us.
        if self._host in ("0.0.0.0", "") and host_header and re.fullmatch(r"[\w.\-\[\]:]+", host_header):
            return f"http://{host_header}"
        return self.url

    def _own_blob(self, parts: SplitResult) -> bytes | None:
        """Bytes for one of our own /files/ or /results/ URLs, without a round trip over HTTP."""
        if self._server is None:
            return None
        own_hosts = {"127.0.0.1", "localhost", self._host, urlsplit(self.url).hostname}
        try:
            port = parts.port
        except ValueError:
            return None
        if port != self._server.server_address[1] or parts.hostname not in own_hosts:
            return None
        folder, _, name = parts.path.lstrip("/").partition("/")
        if folder not in ("files", "results"):
            return None
        found = (self._files if folder == "files" else self._results).get(name)
        if found is None:
            raise ValueError("no such hosted file")
        return found[0]


def _check_latency(value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError("latency must be a number of seconds >= 0")
    return float(value)


def serve(
    host: str = "127.0.0.1",
    port: int = 8302,
    *,
    latency: float = 1.5,
    fault: str | None = None,
    api_key: str | None = None,
) -> None:
    """Run a simulator in the foreground until Ctrl-C, printing its URL."""
    sim = Simulator(host, port, latency=latency, fault=fault, api_key=api_key).start()
    print(f"302.AI Portrait API simulator on {sim.url} (images are stamped SIMULATED). Ctrl-C stops it.")
    print(f"  set PORTRAIT_API_BASE={sim.url} to point a client at it", flush=True)
    try:
        while not sim._stopping.wait(1.0):
            pass
    except KeyboardInterrupt:
        print("stopping the simulator")
    finally:
        sim.stop()
