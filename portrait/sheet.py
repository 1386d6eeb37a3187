"""Style sheets: one photo in many styles, side by side, for showing stakeholders.

`run_sheet` hosts the photo once, generates one portrait per preset concurrently with one
shared seed (so the styles are comparable), and saves everything as ONE run in the store
(`meta["kind"] == "sheet"`), so it shows in the app's history. A style that fails does not
sink the sheet: its cell carries the error and shows the reason on a grey tile.
`compose_sheet_image` draws the labelled grid (PNG); `sheet_zip` packs the full-size
images, the grid and a `manifest.json`. The result JPEGs are kept byte for byte.
"""

from __future__ import annotations

import contextvars
import functools
import io
import json
import os
import re
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw

from . import errors
from .client import PortraitClient, PortraitResult, generate_seed
from .errors import InvalidInputError, PortraitError
from .fonts import FONT_LOCK, Font, cjk_font
from .images import PhotoSource, PreparedPhoto
from .params import SEED_RANDOM, PortraitRequest
from .presets import Preset, compose_prompt
from .store import RunRecord
from .studio import image_record

if TYPE_CHECKING:
    from .studio import Studio

ProgressFn = Callable[[float, str], None]

KIND = "sheet"
SHEET_FILE = "sheet.png"
MANIFEST_FILE = "manifest.json"
INPUT_FILE = "input.jpg"
LANGS = ("zh", "en", "both")

# Layout, in pixels. Thumbnails fit a THUMB x THUMB box (long side THUMB).
THUMB = 512
MARGIN = 32
GAP = 24
LABEL_H = 72
TITLE_H = 118
DEFAULT_COLUMNS = 4

BACKGROUND = (246, 246, 244)
TITLE_BAND = (38, 38, 44)
TILE_BACKDROP = (232, 232, 228)
FAILED_TILE = (196, 196, 196)
TEXT_DARK = (30, 30, 30)
TEXT_MUTED = (105, 105, 105)
TEXT_FAILED = (70, 20, 20)

# Every label drawn on a sheet: (zh, en).
TEXT = {
    "title": ("风格对照", "Style sheet"),
    "input": ("原图", "Input"),
    "failed": ("生成失败", "Failed"),
    "seed": ("种子", "seed"),
    "seeds_vary": ("种子各异", "seeds vary"),
    "prompt": ("提示词", "prompt"),
    "no_prompt": ("（无，仅风格）", "(none, style only)"),
    "styles": ("种风格", "styles"),
    "simulated": ("模拟结果", "SIMULATED"),
    "unreadable": ("图片无法读取", "image cannot be read"),
    "not_sheet": ("这条记录不是风格对照。", "This run is not a style sheet."),
    "no_presets": ("请至少选择一种风格。", "Choose at least one style."),
}


def label(key: str, lang: str) -> str:
    """One sheet label in "zh", "en" or "both" ("中文 / English")."""
    zh, en = TEXT[key]
    return zh if lang == "zh" else en if lang == "en" else f"{zh} / {en}"


@dataclass(frozen=True)
class SheetCell:
    """One style of a sheet: which preset, the request sent, and either its portrait or its error."""

    preset_id: str
    name_zh: str
    name_en: str
    request: PortraitRequest | None = None
    image: bytes | None = field(default=None, repr=False)
    error: PortraitError | None = None
    file: str | None = None
    # The small grey line under the name; None = size, mode and strengths from `request`.
    caption: str | None = None
    result: PortraitResult | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the cell has a portrait."""
        return self.image is not None

    def name(self, lang: str) -> str:
        """The style's name in "zh", "en" or "both"."""
        if lang == "zh":
            return self.name_zh
        if lang == "en":
            return self.name_en
        return f"{self.name_zh} / {self.name_en}"


@dataclass
class SheetResult:
    """A finished sheet: the saved run, one cell per preset (in order), the grid PNG."""

    record: RunRecord
    cells: list[SheetCell]
    image_input: str
    photo: PreparedPhoto | None
    seed: int
    sheet_png: bytes = field(repr=False)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def failures(self) -> list[SheetCell]:
        """The cells whose generation failed."""
        return [c for c in self.cells if not c.ok]


# -- running -----------------------------------------------------------------------------


def sheet_requests(
    presets: Sequence[Preset], *, image_input: str, user_prompt: str, base: PortraitRequest, seed: int
) -> list[PortraitRequest]:
    """One request per preset: `base`'s fields, the preset's defaults over them, its prompt, one seed."""
    return [
        base.with_(
            image_input=image_input,
            prompt=compose_prompt(preset, user_prompt),
            seed=seed,
            **dict(preset.defaults),
        )
        for preset in presets
    ]


def run_sheet(
    studio: Studio,
    source: PhotoSource | PreparedPhoto,
    presets: Sequence[Preset],
    *,
    user_prompt: str = "",
    base: PortraitRequest | None = None,
    on_progress: ProgressFn | None = None,
    lang: str = "both",
    client: PortraitClient | None = None,
) -> SheetResult:
    """Generate one portrait per preset from one photo, save it all as one run, return the sheet.

    `base.prompt` is not used (the user's words are `user_prompt`); a base seed of -1 draws one
    seed for every style. Raises the first error only when every style failed. `client`
    overrides the studio's client (a visitor's own key), as `Studio.run` does.
    """
    presets = tuple(presets)
    if not presets:
        raise InvalidInputError(*TEXT["no_presets"])
    if lang not in LANGS:
        raise InvalidInputError.field("lang", (" / ".join(LANGS), " / ".join(LANGS)), lang)
    progress = on_progress or (lambda _f, _m: None)
    base = base or PortraitRequest()
    t0 = time.monotonic()
    progress(0.02, "preparing")
    image_input, photo = studio.image_input(source, client)
    t_hosted = time.monotonic()
    seed = base.seed if base.seed != SEED_RANDOM else generate_seed()
    requests_ = sheet_requests(
        presets, image_input=image_input, user_prompt=user_prompt, base=base, seed=seed
    )
    progress(0.1, "generating")

    done = 0
    lock = threading.Lock()

    def call(request: PortraitRequest) -> PortraitResult | PortraitError:
        nonlocal done
        try:
            outcome: PortraitResult | PortraitError = studio.generate_one(request, client)
        except PortraitError as err:
            outcome = err
        else:
            _thumbnail(outcome.images[0].data)  # overlap tile-making with the calls still running
        with lock:
            done += 1
            progress(0.1 + 0.8 * done / len(requests_), "generating")
        return outcome

    # One worker per style; the studio's semaphore is what bounds the upstream calls.
    with ThreadPoolExecutor(max_workers=len(requests_)) as pool:
        # Each task runs in a copy of the caller's context: Gradio's progress relies on context vars.
        futures = [pool.submit(contextvars.copy_context().run, call, r) for r in requests_]
        outcomes = [f.result() for f in futures]
    t_generated = time.monotonic()
    if not any(isinstance(o, PortraitResult) for o in outcomes):
        raise next(o for o in outcomes if isinstance(o, PortraitError))

    progress(0.92, "saving")
    cells = []
    for i, (preset, request, outcome) in enumerate(zip(presets, requests_, outcomes), start=1):
        if isinstance(outcome, PortraitResult):
            cells.append(
                SheetCell(
                    preset.id,
                    preset.name_zh,
                    preset.name_en,
                    request=outcome.request,
                    image=outcome.images[0].data,
                    file=f"{i:02d}-{preset.id}.jpg",
                    result=outcome,
                )
            )
        else:
            cells.append(SheetCell(preset.id, preset.name_zh, preset.name_en, request=request, error=outcome))
    results = [c.result for c in cells if c.result is not None]
    simulated = any(r.simulated for r in results)
    png = compose_sheet_image(
        photo.jpeg if photo is not None else None,
        cells,
        lang,
        user_prompt=user_prompt,
        created=datetime.now().astimezone(),
        simulated=simulated,
    )
    timings = {
        "prepare_and_host_s": round(t_hosted - t0, 3),
        "generate_s": round(t_generated - t_hosted, 3),
    }
    shared = base.with_(image_input=image_input, prompt=user_prompt, seed=seed)
    meta, files = _sheet_run(cells, shared, photo, png, lang, timings, simulated)
    meta["api_base"] = (client or studio.client).api_base
    record = studio.store.save(meta, files)
    timings["total_s"] = round(time.monotonic() - t0, 3)
    progress(1.0, "done")
    return SheetResult(record, cells, image_input, photo, seed, png, timings)


def _settings(request: PortraitRequest) -> dict[str, Any]:
    settings = request.settings_dict()
    if settings["image_input"].startswith("data:"):
        # As Studio.save does: the inline photo is input.jpg, not a megabyte string in run.json.
        settings["image_input"] = "data:image/jpeg;base64,…(input.jpg)"
    return settings


def _sheet_run(
    cells: list[SheetCell],
    shared: PortraitRequest,
    photo: PreparedPhoto | None,
    png: bytes,
    lang: str,
    timings: dict[str, float],
    simulated: bool,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The run.json meta and the files of a sheet run (never the key: nothing here holds it)."""
    files: dict[str, bytes] = {}
    images: list[dict[str, Any]] = []
    cell_meta: list[dict[str, Any]] = []
    for index, cell in enumerate(cells):
        assert cell.request is not None
        entry: dict[str, Any] = {
            "index": index,
            "preset": cell.preset_id,
            "name_zh": cell.name_zh,
            "name_en": cell.name_en,
            "status": "done" if cell.ok else "failed",
            "seed": cell.request.seed,
            "request": _settings(cell.request),
            "request_id": None,
            "file": None,
            "files": [],
            "error": cell.error.as_dict() if cell.error is not None else None,
        }
        if cell.result is not None and cell.file is not None:
            result = cell.result
            entry["request_id"] = result.request_id
            for j, image in enumerate(result.images, start=1):
                name = cell.file if j == 1 else cell.file.replace(".jpg", f"-{j}.jpg")
                files[name] = image.data  # the API's JPEG, byte for byte
                entry["files"].append(name)
                images.append(
                    {
                        **image_record(name, result, image),
                        "preset": cell.preset_id,
                        "name_zh": cell.name_zh,
                        "name_en": cell.name_en,
                    }
                )
            entry["file"] = entry["files"][0]
        cell_meta.append(entry)
    if photo is not None:
        files[INPUT_FILE] = photo.jpeg
    files[SHEET_FILE] = png
    meta: dict[str, Any] = {
        "kind": KIND,
        "simulated": simulated,
        "request": _settings(shared),
        "user_prompt": shared.prompt,
        "preset": None,
        "presets": [c.preset_id for c in cells],
        "seed": shared.seed,
        "lang": lang,
        "variations": len(cells),
        "input_file": INPUT_FILE if photo is not None else None,
        "sheet_file": SHEET_FILE,
        "images": images,
        "cells": cell_meta,
        "failures": [
            {"seed": c["seed"], "preset": c["preset"], "error": c["error"]} for c in cell_meta if c["error"]
        ],
        "timings": timings,
        "responses": [c.result.raw for c in cells if c.result is not None],
    }
    return meta, files


# -- reading a saved sheet ---------------------------------------------------------------


def restore_error(data: dict[str, Any]) -> PortraitError:
    """A PortraitError rebuilt from its `as_dict()` form (same class, texts, code and ids)."""
    cls = getattr(errors, str(data.get("kind") or ""), None)
    if not (isinstance(cls, type) and issubclass(cls, PortraitError)):
        cls = PortraitError
    return cls(
        data.get("zh"),
        data.get("en"),
        code=data.get("code"),
        http_status=data.get("http_status"),
        request_id=data.get("request_id"),
        detail=data.get("detail"),
    )


def is_sheet(record: RunRecord) -> bool:
    """True for a run saved by `run_sheet`."""
    return record.meta.get("kind") == KIND


def cells_from_record(record: RunRecord) -> list[SheetCell]:
    """The cells of a saved sheet, images read back from the run folder."""
    if not is_sheet(record):
        raise InvalidInputError(*TEXT["not_sheet"])
    cells = []
    for entry in record.meta.get("cells", []):
        image = (record.path / entry["file"]).read_bytes() if entry.get("file") else None
        error = restore_error(entry["error"]) if entry.get("error") else None
        cells.append(
            SheetCell(
                entry["preset"],
                entry.get("name_zh", entry["preset"]),
                entry.get("name_en", entry["preset"]),
                request=PortraitRequest(**entry["request"]) if "request" in entry else None,
                image=image,
                error=error,
                file=entry.get("file"),
            )
        )
    return cells


def sheet_image_for_record(record: RunRecord, lang: str | None = None) -> bytes:
    """The sheet PNG of a saved sheet: the stored one, or drawn again (e.g. in another language)."""
    stored = record.path / str(record.meta.get("sheet_file") or SHEET_FILE)
    if (lang is None or lang == record.meta.get("lang")) and stored.is_file():
        return stored.read_bytes()
    photo = record.input_path.read_bytes() if record.input_path and record.input_path.is_file() else None
    created = _parse_created(record.meta.get("created"))
    return compose_sheet_image(
        photo,
        cells_from_record(record),
        lang or str(record.meta.get("lang") or "both"),
        user_prompt=str(record.meta.get("user_prompt") or ""),
        created=created,
        simulated=bool(record.meta.get("simulated")),
    )


def _parse_created(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)).astimezone()
    except ValueError:
        return None


def sheet_manifest(record: RunRecord) -> dict[str, Any]:
    """manifest.json of a sheet's ZIP: settings, and per cell its preset, seed, request id, file, error."""
    meta = record.meta
    return {
        "kind": KIND,
        "run_id": record.id,
        "created": meta.get("created"),
        "simulated": bool(meta.get("simulated")),
        "api_base": meta.get("api_base"),
        "seed": meta.get("seed"),
        "user_prompt": meta.get("user_prompt", ""),
        "settings": meta.get("request", {}),
        "input_file": meta.get("input_file"),
        "sheet_file": SHEET_FILE,
        "cells": [
            {
                "index": c["index"],
                "preset": c["preset"],
                "name_zh": c.get("name_zh"),
                "name_en": c.get("name_en"),
                "status": c["status"],
                "seed": c["seed"],
                "request_id": c.get("request_id"),
                "file": c.get("file"),
                "files": c.get("files", []),
                "request": c.get("request"),
                "error": c.get("error"),
            }
            for c in meta.get("cells", [])
        ],
    }


def sheet_zip(
    source: SheetResult | RunRecord, path: str | Path | None = None, *, lang: str | None = None
) -> bytes:
    """A ZIP of a sheet: every full-size image, input.jpg, sheet.png and manifest.json.

    Returns the bytes; with `path`, also writes them there (atomically). JPEGs and the PNG
    are stored as they are (already compressed); nothing in the archive holds the API key.
    """
    record = source.record if isinstance(source, SheetResult) else source
    if not is_sheet(record):
        raise InvalidInputError(*TEXT["not_sheet"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for entry in record.meta.get("cells", []):
            for name in entry.get("files", []):
                zf.writestr(name, (record.path / name).read_bytes(), zipfile.ZIP_STORED)
        if record.input_path is not None and record.input_path.is_file():
            zf.writestr(INPUT_FILE, record.input_path.read_bytes(), zipfile.ZIP_STORED)
        zf.writestr(SHEET_FILE, sheet_image_for_record(record, lang), zipfile.ZIP_STORED)
        manifest = json.dumps(sheet_manifest(record), ensure_ascii=False, indent=2)
        zf.writestr(MANIFEST_FILE, manifest.encode("utf-8"), zipfile.ZIP_DEFLATED)
    data = buf.getvalue()
    if path is not None:
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return data


# -- drawing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SheetLayout:
    """Where everything goes on a sheet of `tiles` tiles (the input photo counts as one)."""

    tiles: int
    columns: int

    @property
    def rows(self) -> int:
        """Rows of tiles."""
        return max(1, -(-self.tiles // self.columns))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the whole sheet in pixels."""
        width = 2 * MARGIN + self.columns * THUMB + (self.columns - 1) * GAP
        height = TITLE_H + 2 * MARGIN + self.rows * (THUMB + LABEL_H) + (self.rows - 1) * GAP
        return width, height

    def tile_origin(self, index: int) -> tuple[int, int]:
        """Top-left corner of tile `index`'s image box (its label sits below the box)."""
        row, col = divmod(index, self.columns)
        return MARGIN + col * (THUMB + GAP), TITLE_H + MARGIN + row * (THUMB + LABEL_H + GAP)


def sheet_layout(tiles: int, columns: int | None = None) -> SheetLayout:
    """The layout for `tiles` tiles: DEFAULT_COLUMNS across (fewer when there are fewer tiles)."""
    tiles = max(1, tiles)
    return SheetLayout(tiles, max(1, min(tiles, columns or DEFAULT_COLUMNS)))


_TOKEN_RE = re.compile(r"[\x21-\x7e\u00c0-\u024f]+\s*|\s+|.", re.S)


def _wrap(text: str, font: Font, width: float, max_lines: int) -> list[str]:
    """Greedy wrap: Latin words stay whole, CJK wraps between characters; the last line gets '…'."""
    lines: list[str] = []
    current = ""
    for token in _TOKEN_RE.findall(" ".join(text.split())):
        if font.getlength(current + token) <= width or not current:
            current += token
            while font.getlength(current) > width and len(current) > 1:
                # A single word wider than the line: cut it.
                cut = len(current) - 1
                while cut > 1 and font.getlength(current[:cut]) > width:
                    cut -= 1
                lines.append(current[:cut])
                current = current[cut:]
        else:
            lines.append(current.rstrip())
            current = token.lstrip()
    if current.strip():
        lines.append(current.rstrip())
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _fit(lines[-1] + "…", font, width)
    return lines


def _fit(text: str, font: Font, width: float) -> str:
    """The text, shortened with '…' when it is wider than `width`."""
    if font.getlength(text) <= width:
        return text
    while len(text) > 1 and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _line_height(font: Font) -> int:
    box = font.getbbox("Hg国")
    return int(box[3] - box[1])


@functools.lru_cache(maxsize=32)
def _thumbnail(data: bytes) -> Image.Image | None:
    """A sheet tile for an image (cached: workers make them while the other styles still run)."""
    try:
        img = Image.open(io.BytesIO(data))
        # JPEG: decode at the smallest DCT scale that still covers the fitted thumbnail.
        img.draft("RGB", _fitted_box(img.size))
        img = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    img.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
    return img


def _fitted_box(size: tuple[int, int] | None) -> tuple[int, int]:
    """The thumbnail size an image of `size` gets (a square when unknown)."""
    if not size:
        return THUMB, THUMB
    w, h = size
    scale = THUMB / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _cell_caption(cell: SheetCell, seeds_vary: bool) -> str:
    if cell.caption is not None:
        return cell.caption
    req = cell.request
    if req is None:
        return ""
    parts = [f"{req.width}×{req.height}", req.gen_mode or "auto"]
    parts.append(f"gpen {req.gpen:g} · skin {req.skin:g} · unifi {req.skin_unifi:g}")
    if seeds_vary:
        parts.insert(0, f"seed {req.seed}")
    return " · ".join(parts)


def _settings_line(cells: Sequence[SheetCell], lang: str, user_prompt: str, simulated: bool) -> str:
    seeds = {c.request.seed for c in cells if c.request is not None}
    if len(seeds) == 1:
        seed_text = f"{label('seed', lang)} {seeds.pop()}"
    else:
        seed_text = label("seeds_vary", lang)
    prompt = " ".join(user_prompt.split()) or label("no_prompt", lang)
    count = f"{len({c.preset_id for c in cells})} {label('styles', lang)}"
    parts = [seed_text, count, f"{label('prompt', lang)}: {prompt}"]
    if simulated:
        parts.insert(0, label("simulated", lang))
    return " · ".join(parts)


def compose_sheet_image(
    photo_jpeg: bytes | None,
    cells: Sequence[SheetCell],
    lang: str = "both",
    *,
    user_prompt: str = "",
    created: datetime | None = None,
    simulated: bool = False,
    columns: int | None = None,
) -> bytes:
    """The sheet as PNG: a title band (date, settings), then the input photo and one tile per style.

    Each tile is a thumbnail (long side THUMB px) with the style's name under it; a failed
    style is a grey tile with the error's short message. Without a CJK font, labels are English.
    """
    if lang not in LANGS:
        raise InvalidInputError.field("lang", (" / ".join(LANGS), " / ".join(LANGS)), lang)
    if not cjk_font(12)[1]:
        lang = "en"  # Pillow's fallback font has no Chinese glyphs
    seeds_vary = len({c.request.seed for c in cells if c.request is not None}) > 1
    tiles: list[tuple[str, str, Image.Image | None, SheetCell | None]] = []
    if photo_jpeg is not None:
        thumb = _thumbnail(photo_jpeg)
        size = Image.open(io.BytesIO(photo_jpeg)).size if thumb is not None else None
        tiles.append((label("input", lang), f"{size[0]}×{size[1]}" if size else "", thumb, None))
    for cell in cells:
        thumb = _thumbnail(cell.image) if cell.image is not None else None
        tiles.append((cell.name(lang), _cell_caption(cell, seeds_vary), thumb, cell))

    layout = sheet_layout(len(tiles), columns)
    sheet = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    width = layout.size[0]
    draw.rectangle((0, 0, width, TITLE_H), fill=TITLE_BAND)
    when = (created or datetime.now().astimezone()).strftime("%Y-%m-%d %H:%M %Z").strip()
    with FONT_LOCK:  # the cached FreeType faces are shared with other threads
        title_font = cjk_font(40, bold=True)[0]
        info_font = cjk_font(20)[0]
        name_font = cjk_font(24, bold=True)[0]
        caption_font = cjk_font(16)[0]
        fail_title = cjk_font(28, bold=True)[0]
        fail_font = cjk_font(19)[0]
        date_font = cjk_font(26)[0]
        draw.text((MARGIN, 22), label("title", lang), font=title_font, fill=(255, 255, 255))
        draw.text(
            (width - MARGIN - date_font.getlength(when), 34), when, font=date_font, fill=(200, 200, 200)
        )
        settings = _settings_line(cells, lang, user_prompt, simulated)
        draw.text(
            (MARGIN, 80), _fit(settings, info_font, width - 2 * MARGIN), font=info_font, fill=(220, 220, 220)
        )
        for index, (name, caption, thumb, cell) in enumerate(tiles):
            x, y = layout.tile_origin(index)
            if thumb is not None:
                draw.rectangle((x, y, x + THUMB - 1, y + THUMB - 1), fill=TILE_BACKDROP)
                sheet.paste(thumb, (x + (THUMB - thumb.width) // 2, y + (THUMB - thumb.height) // 2))
            else:
                req = cell.request if cell is not None else None
                tw, th = _fitted_box((req.width, req.height) if req is not None else None)
                box = (x + (THUMB - tw) // 2, y + (THUMB - th) // 2)
                draw.rectangle((box[0], box[1], box[0] + tw - 1, box[1] + th - 1), fill=FAILED_TILE)
                _draw_failure(draw, cell, lang, (box[0], box[1], tw, th), fail_title, fail_font)
            name_y = y + THUMB + 8
            draw.text((x, name_y), _fit(name, name_font, THUMB), font=name_font, fill=TEXT_DARK)
            if caption:
                draw.text(
                    (x, name_y + _line_height(name_font) + 12),
                    _fit(caption, caption_font, THUMB),
                    font=caption_font,
                    fill=TEXT_MUTED,
                )
    buf = io.BytesIO()
    # Fast zlib level: the sheet is mostly photos, so higher levels cost ~2x time for ~12 % size.
    sheet.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _draw_failure(
    draw: ImageDraw.ImageDraw,
    cell: SheetCell | None,
    lang: str,
    box: tuple[int, int, int, int],
    title_font: Font,
    font: Font,
) -> None:
    """The reason a tile has no image, centred in its grey box."""
    x, y, w, h = box
    inner = w - 48
    if cell is not None and cell.error is not None:
        langs = ("zh", "en") if lang == "both" else (lang,)
        reasons = [cell.error.message(one) for one in langs]
        title = label("failed", lang)
    else:
        reasons = []
        title = label("unreadable", lang)
    line_h = _line_height(font) + 8
    lines: list[str] = []
    for reason in reasons:
        lines += _wrap(reason, font, inner, max_lines=max(2, (h - 120) // line_h // max(1, len(reasons))))
        lines.append("")
    lines = lines[:-1] if lines else lines
    block = _line_height(title_font) + 20 + len(lines) * line_h
    top = y + max(12, (h - block) // 2)
    title = _fit(title, title_font, inner)
    draw.text((x + (w - title_font.getlength(title)) / 2, top), title, font=title_font, fill=TEXT_FAILED)
    top += _line_height(title_font) + 20
    for line in lines:
        draw.text((x + (w - font.getlength(line)) / 2, top), line, font=font, fill=TEXT_DARK)
        top += line_h
