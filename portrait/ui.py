"""The Gradio page: photo in on the left, portraits out on the right, every API field in between.

`build_demo` lays the page out in the order a person works; each listener sits right
after the components it wires. Handlers only translate UI values into library calls
(`Studio`) and results into UI values: no HTTP and no business rules live here.
"""

from __future__ import annotations

import html
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import gradio as gr
from gradio import FileData
from PIL import Image

from .client import PortraitClient
from .errors import InvalidInputError, PortraitError
from .images import check_photo_url
from .limits import UsageLimiter
from .params import (
    ASPECT_PRESETS,
    GEN_MODES,
    SEED_RANDOM,
    SIZE_DEFAULT,
    SIZE_MAX,
    SIZE_MIN,
    STRENGTH_DEFAULTS,
    STRENGTH_MAX,
    STRENGTH_MIN,
    STRENGTH_STEP,
    VARIATIONS_MAX,
    VARIATIONS_MIN,
    PortraitRequest,
)
from .presets import Preset, compose_prompt, find_preset
from .sheet import SheetResult, is_sheet, run_sheet, sheet_image_for_record, sheet_zip
from .snippets import snippets_for_record
from .store import RunRecord
from .studio import RunOutcome, Studio
from .ui_text import TEXT, is_chinese, text, translations

log = logging.getLogger("portrait.ui")

AUTO = "auto"
CUSTOM = "custom"
HISTORY_LIMIT = 50

# Gradio keeps its locale setter in a hashed module; it is the same function its own
# settings panel calls, so the switch and the saved choice behave like Gradio's own.
_SET_LOCALE_JS = """
async function __psSetLocale(l) {
  const e = performance.getEntriesByType('resource').map(r => r.name)
            .find(n => /\\/assets\\/core-[^/]*\\.js$/.test(n));
  if (!e) return false;
  const m = await import(e);
  if (m.changeLocale) { m.changeLocale(l); }
  document.documentElement.lang = l;
  return true;
}
"""
LOAD_JS = (
    "() => {"
    + _SET_LOCALE_JS
    + """
  const q = new URLSearchParams(location.search).get('lang');
  if (q) localStorage.setItem('portrait_lang', q);
  const l = localStorage.getItem('portrait_lang');
  if (l) setTimeout(() => __psSetLocale(l), 0);
}"""
)
SWITCH_JS = (
    "async () => {"
    + _SET_LOCALE_JS
    + """
  const cur = document.documentElement.lang || navigator.language || 'en';
  const next = cur.toLowerCase().startsWith('zh') ? 'en' : 'zh-CN';
  localStorage.setItem('portrait_lang', next);
  // Reload rather than relabel live: Gradio 6.31 does not relabel tabs not yet opened.
  location.reload();
}"""
)
# Page events pass the page's current language in place of the hidden `lang` input.
WITH_LANG_JS = """(...args) => {
  const lang = document.documentElement.lang || navigator.language;
  const i = args.findIndex(a => a === "__lang__");
  if (i >= 0) { args[i] = lang; } else { args[args.length - 1] = lang; }
  return args;
}"""

CSS = """
#offline-banner { background: #fff4d6; border: 1px solid #f0b429; border-radius: 8px; padding: 4px 12px; }
#offline-banner p { color: #7a4d00 !important; margin: 4px 0; font-weight: 600; }
.dark #offline-banner { background: #3d2e00; }
.dark #offline-banner p { color: #ffd56b !important; }
#generate-btn { min-height: 52px; font-size: 1.1em; }
#run-info p { margin: 2px 0; }
"""


def launch_kwargs(settings: Any) -> dict[str, Any]:
    """What `demo.launch()` needs besides host/port (shared by app.py and the tests)."""
    return {
        "i18n": gr.I18n(**translations()),
        "css": CSS,
        "js": LOAD_JS,
        "theme": gr.themes.Soft(),
        "allowed_paths": [str(settings.output_dir.resolve())],
        "footer_links": ["api", "settings"],
        "show_error": False,
        "run_history": False,
        "max_file_size": settings.max_upload_bytes,
        "auth": _auth_pairs(settings.auth),
        "auth_message": "人像写真工作室 · Portrait Studio",
    }


def _auth_pairs(spec: str) -> list[tuple[str, str]] | None:
    """PORTRAIT_AUTH="user:password,user2:password2" -> Gradio's login list (None = no login)."""
    pairs = []
    for item in spec.split(","):
        name, sep, password = item.strip().partition(":")
        if sep and name and password:
            pairs.append((name, password))
    return pairs or None


def _event_limit(settings: Any) -> int:
    """Clicks served at once. Twice the upstream limit, so preparing and saving overlap with
    upstream calls; the studio's own semaphore keeps upstream calls at `settings.concurrency`."""
    return 2 * settings.concurrency


def queue_kwargs(settings: Any) -> dict[str, Any]:
    """The queue: how many upstream calls run at once, and how many may wait."""
    return {"default_concurrency_limit": _event_limit(settings), "max_size": settings.queue_size}


def t(key: str) -> Any:
    """A translatable label for a component."""
    return _I18N(key)


_I18N = gr.I18n(**translations())


@dataclass(frozen=True)
class Fields:
    """The request fields as the page holds them."""

    prompt: str
    preset: str | None
    width: int
    height: int
    gpen: float
    skin: float
    skin_unifi: float
    gen_mode: str
    seed: int


T = TypeVar("T")

_STEPS = {
    "preparing": "progress_preparing",
    "generating": "progress_generating",
    "saving": "progress_saving",
    "done": "progress_done",
}


def _reporter(progress: gr.Progress | None, lang: str) -> Callable[[float, str], None]:
    """A library progress callback that moves Gradio's progress bar, in the page's language."""

    def report(fraction: float, step: str) -> None:
        if progress is not None:
            progress(fraction, desc=text(_STEPS.get(step, "progress_generating"), lang))

    return report


def _guard(lang: str, work: Callable[[], T]) -> T:
    """Run a handler's work: library errors become bilingual gr.Errors, anything else a generic one."""
    try:
        return work()
    except PortraitError as err:
        raise _error(err, lang) from None
    except gr.Error:
        raise
    except Exception:
        log.exception("unexpected failure")
        raise gr.Error(
            text("unexpected", lang), title=text("error_title", lang), print_exception=False
        ) from None


def _warn_failures(lang: str, errors: Sequence[PortraitError]) -> None:
    """Say which images of a run failed and why; the finished ones are kept and shown."""
    reasons = "; ".join(
        html.escape(err.message("zh" if is_chinese(lang) else "en"), quote=False) for err in errors
    )
    gr.Warning(text("partial", lang).format(n=len(errors)) + reasons)


def _error(err: PortraitError, lang: str) -> gr.Error:
    title = text("error_title", lang)
    message = html.escape(err.message("zh" if is_chinese(lang) else "en" if lang else None), quote=False)
    return gr.Error(message, title=title, print_exception=False)


def _gallery_items(record: RunRecord) -> list[tuple[Image.Image, str]]:
    """The run's images for a gallery, labelled with their seeds.

    Given as images (not paths) so the gallery delivers lossless PNG downloads; the API's
    original JPEGs stay byte-for-byte in the run folder.
    """
    items = []
    for item, path in zip(record.meta.get("images", []), record.image_paths):
        caption = f"seed {item['seed']} · {item['width']}×{item['height']}"
        if record.meta.get("simulated"):
            caption += " · SIMULATED"
        with Image.open(path) as img:
            img.load()
        items.append((img, caption))
    return items


def _run_info(record: RunRecord, lang: str) -> str:
    """What a finished run was: count, size, time, seeds, request ids, where it is saved."""
    meta = record.meta
    images = meta.get("images", [])
    ids = ", ".join(f"`{i['request_id']}`" for i in images if i.get("request_id"))
    sizes = sorted({f"{i.get('width')}×{i.get('height')}" for i in images})
    elapsed = sum(v for k, v in meta.get("timings", {}).items() if k != "total_s")
    parts = [
        f"**{text('done', lang)}** · {len(images)} × {', '.join(sizes)} · {elapsed:.1f} s",
        f"seed: {', '.join(dict.fromkeys(str(i.get('seed')) for i in images))}",
        f"request_id: {ids or '—'}",
        f"📁 `{record.path}`",
    ]
    if meta.get("simulated"):
        parts.insert(0, f"🧪 **{text('simulated_tag', lang)}**")
    return "\n\n".join(parts)


def _history_rows(records: Sequence[RunRecord], presets: Sequence[Preset], lang: str) -> list[list[Any]]:
    names = {p.id: p.name(lang) for p in presets}
    rows = []
    for rec in records:
        req = rec.meta.get("request", {})
        prompt = str(req.get("prompt", ""))
        rows.append(
            [
                str(rec.meta.get("created", ""))[:19].replace("T", " "),
                names.get(rec.meta.get("preset") or "", "—"),
                prompt if len(prompt) <= 40 else prompt[:39] + "…",
                f"{req.get('width')}×{req.get('height')}",
                ", ".join(str(i.get("seed")) for i in rec.meta.get("images", [])),
                len(rec.image_paths),
                rec.id,
            ]
        )
    return rows


def _history_headers(lang: str) -> list[str]:
    keys = ("col_time", "col_style", "col_prompt", "col_size", "col_seeds", "col_images", "col_run")
    return [text(k, lang) for k in keys]


def _aspect_for(width: int, height: int) -> str:
    for label, w, h in ASPECT_PRESETS:
        if (w, h) == (width, height):
            return label
    return CUSTOM


def _tolerant_photo_input(image: gr.Image) -> gr.Image:
    """Hand every upload to our own photo checks as a file path.

    Gradio's Image opens uploads with Pillow before any handler runs; a file that is not an
    image would fail there with a bare "Error" badge instead of our bilingual message. (Wrapped
    on the instance: a gr.Image subclass would make Gradio write a .pyi stub into the package.)
    """
    original = image.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return original(payload)
        except Exception:  # noqa: BLE001 - any failure here is reported by prepare_photo, clearly
            path = getattr(payload, "path", None)
            return str(path) if path else None

    image.preprocess = preprocess  # type: ignore[method-assign]
    return image


class PortraitUI:
    """The page's handlers, bound to one studio and one set of presets."""

    def __init__(self, studio: Studio, presets: Sequence[Preset]) -> None:
        self.studio = studio
        self.presets = tuple(presets)
        settings = studio.settings
        self.limiter = UsageLimiter(
            settings.per_visitor_hourly, settings.daily_cap, settings.output_dir / ".usage.json"
        )
        self.user_keys = settings.allow_user_key and not studio.offline

    # -- shared core: the page button and the API endpoint both end here ----------------

    def run(
        self,
        image: str | None,
        fields: Fields,
        variations: int,
        lang: str,
        progress: gr.Progress | None = None,
        extra: dict[str, Any] | None = None,
        request: gr.Request | None = None,
        user_key: str = "",
    ) -> RunOutcome:
        """Validate, check limits, generate, save; PortraitErrors become gr.Error in the page's language.

        With a visitor's own key (when the owner allows it) the owner's limits do not apply and
        the key is used for this call only: never stored, logged or shown.
        """
        report = _reporter(progress, lang)
        own = bool(user_key.strip()) and self.user_keys

        def work() -> RunOutcome:
            if not image:
                raise InvalidInputError(*TEXT["no_photo"])
            portrait_request = PortraitRequest(
                prompt=fields.prompt,
                width=fields.width,
                height=fields.height,
                gpen=fields.gpen,
                skin=fields.skin,
                skin_unifi=fields.skin_unifi,
                gen_mode=fields.gen_mode,
                seed=fields.seed,
            )
            meta = {"preset": fields.preset, **(extra or {}), **({"own_key": True} if own else {})}
            return self._spend(
                int(variations),
                request,
                user_key,
                lambda client: self.studio.run(
                    image,
                    portrait_request,
                    variations=variations,
                    extra=meta,
                    on_progress=report,
                    client=client,
                ),
                lambda outcome: len(outcome.results),
            )

        outcome = _guard(lang, work)
        if outcome.failures:
            _warn_failures(lang, [err for _, err in outcome.failures])
        return outcome

    def _spend(
        self,
        count: int,
        request: gr.Request | None,
        user_key: str,
        work: Callable[[PortraitClient | None], T],
        used: Callable[[T], int],
    ) -> T:
        """Run `work` with the visitor's own key, or on the owner's key within the limits.

        `count` images are reserved before any call; what was not generated is given back.
        """
        user_key = user_key.strip()
        if user_key and self.user_keys:
            with PortraitClient(self.studio.settings, api_key=user_key) as own:
                return work(own)
        if not self.limiter.enabled:
            return work(None)
        reservation = self.limiter.reserve(_visitor(request, self.studio.settings.trusted_proxies), count)
        spent = 0
        try:
            result = work(None)
            spent = used(result)
            return result
        finally:
            self.limiter.release(reservation, spent)

    # -- the page ------------------------------------------------------------------------

    def on_generate(
        self,
        image: str | None,
        url: str,
        prompt: str,
        preset: str,
        width: float,
        height: float,
        gpen: float,
        skin: float,
        skin_unifi: float,
        gen_mode: str,
        seed: float,
        variations: float,
        user_key: str,
        lang: str,
        request: gr.Request,
        idea: str = "",
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to ask for progress
    ) -> tuple[Any, ...]:
        """The page's Generate button."""
        source = image or _url_only((url or "").strip(), lang) or None
        fields = Fields(prompt, preset or None, width, height, gpen, skin, skin_unifi, gen_mode, seed)
        outcome = self.run(
            source,
            fields,
            int(variations),
            lang,
            progress,
            extra={"user_prompt": idea or ""},
            request=request,
            user_key=user_key,
        )
        record = outcome.record
        assert record is not None
        last_seed = outcome.results[0].seed
        return (
            _gallery_items(record),
            _run_info(record, lang),
            record.id,
            gr.update(value=f"{text('seed_last', lang)}: {last_seed}", visible=True),
            last_seed,
            self.history_table(lang),
            gr.update(value=None, visible=False),
            gr.update(value=[str(p) for p in record.image_paths], visible=True),
            *self.code_for(record, request),
        )

    def on_photo(self, image: str | None, lang: str) -> tuple[Any, str]:
        """Show the photo exactly as it will be sent (upright, shrunk, JPEG)."""
        if not image:
            return None, ""
        try:
            photo = self.studio.prepare_photo(image)
        except PortraitError as err:
            raise _error(err, lang) from None
        ow, oh = photo.original_size
        note = f"{ow}×{oh} → {photo.width}×{photo.height} JPEG, {len(photo.jpeg) / 1024:.0f} KB"
        return photo.image(), note

    def on_style(self, preset_id: str, idea: str, lang: str) -> tuple[Any, ...]:
        """A style fills in the composed prompt and its recommended field values."""
        preset = find_preset(self.presets, preset_id) if preset_id else None
        prompt = compose_prompt(preset, idea or "")
        if preset is None:
            return (prompt, "", *(gr.update() for _ in range(7)), prompt)
        d = preset.defaults
        width, height = d.get("width"), d.get("height")
        return (
            prompt,
            f"*{preset.description(lang)}*",
            gr.update(value=_aspect_for(width, height)) if width and height else gr.update(),
            gr.update(value=width) if width else gr.update(),
            gr.update(value=height) if height else gr.update(),
            *(gr.update(value=d[name]) if name in d else gr.update() for name in STRENGTH_DEFAULTS),
            gr.update(value=d["gen_mode"] or AUTO) if "gen_mode" in d else gr.update(),
            prompt,
        )

    def on_idea(self, preset_id: str, idea: str, prompt: str, composed: str | None) -> tuple[Any, Any]:
        """Your own words recompose the final prompt, unless you edited the final prompt by hand.

        `composed` is the last prompt the page wrote itself; None right after "reuse", so the
        restored prompt is kept until you type again.
        """
        if composed is None:
            return gr.update(), prompt
        if (prompt or "") != composed:
            return gr.update(), composed
        preset = find_preset(self.presets, preset_id) if preset_id else None
        new = compose_prompt(preset, idea or "")
        return new, new

    @staticmethod
    def on_aspect(label: str) -> tuple[Any, Any]:
        """An aspect preset sets width and height."""
        for name, w, h in ASPECT_PRESETS:
            if name == label:
                return w, h
        return gr.update(), gr.update()

    def reuse(self, run_id: str, lang: str) -> tuple[Any, ...]:
        """Put every field of a saved run back on the page, seed included."""
        record = self.studio.store.get(run_id or "")
        if record is None:
            return tuple(gr.update() for _ in range(15))
        req = record.meta.get("request", {})
        images = record.meta.get("images", [])
        seed = images[0]["seed"] if images else req.get("seed", SEED_RANDOM)
        gr.Info(text("reused", lang))
        image_input = str(req.get("image_input", ""))
        photo = str(record.input_path) if record.input_path else None
        return (
            photo,
            "" if photo else image_input,
            record.meta.get("preset") or "",
            record.meta.get("user_prompt", ""),
            req.get("prompt", ""),
            _aspect_for(req.get("width", SIZE_DEFAULT), req.get("height", SIZE_DEFAULT)),
            req.get("width", SIZE_DEFAULT),
            req.get("height", SIZE_DEFAULT),
            req.get("gpen", STRENGTH_DEFAULTS["gpen"]),
            req.get("skin", STRENGTH_DEFAULTS["skin"]),
            req.get("skin_unifi", STRENGTH_DEFAULTS["skin_unifi"]),
            req.get("gen_mode") or AUTO,
            seed,
            max(VARIATIONS_MIN, min(VARIATIONS_MAX, len(images))),
            None,  # the restored prompt is kept as saved until you type a new idea
        )

    def history_table(self, lang: str) -> Any:
        """The history table, newest first."""
        records = self.studio.store.list(HISTORY_LIMIT)
        return gr.update(value=_history_rows(records, self.presets, lang), headers=_history_headers(lang))

    def on_history_select(
        self, table: Any, lang: str, evt: gr.SelectData, request: gr.Request
    ) -> tuple[Any, ...]:
        """Selecting a history row shows its images and its request as code, and remembers it for 'reuse'."""
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        try:
            run_id = str(table.iloc[row, -1]) if hasattr(table, "iloc") else str(table[row][-1])
        except (IndexError, KeyError, TypeError, ValueError):
            run_id = ""
        record = self.studio.store.get(run_id)
        if record is None:
            return [], "", *(gr.update() for _ in range(3))
        items = _gallery_items(record)
        if is_sheet(record):
            sheet = Image.open(io.BytesIO(sheet_image_for_record(record, "zh" if is_chinese(lang) else "en")))
            items.insert(0, (sheet, text("sheet_image", lang)))
        return items, run_id, *self.code_for(record, request)

    def code_for(self, record: RunRecord, request: gr.Request | None) -> tuple[str, str, str]:
        """curl, Python and gradio_client code that repeat the run's first request exactly."""
        try:
            snips = snippets_for_record(record, app_url=_app_url(request))
        except (PortraitError, IndexError, KeyError, ValueError, OSError):
            log.warning("no snippets for run %s", record.id, exc_info=True)
            return "", "", ""
        return snips.curl, snips.python, snips.gradio or ""

    # -- style sheets ----------------------------------------------------------------------

    def sheet(
        self,
        image: str | None,
        idea: str,
        styles: Sequence[str],
        base: dict[str, Any],
        lang: str,
        progress: gr.Progress | None,
        request: gr.Request | None,
        user_key: str = "",
    ) -> SheetResult:
        """One photo in every chosen style, within the limits; failed styles are explained, not fatal."""
        report = _reporter(progress, lang)

        def work() -> SheetResult:
            if not image:
                raise InvalidInputError(*TEXT["no_photo"])
            chosen = [find_preset(self.presets, key) for key in styles if key]
            if not chosen:
                raise InvalidInputError(*TEXT["sheet_pick"])
            request_base = PortraitRequest(**base)
            return self._spend(
                len(chosen),
                request,
                user_key,
                lambda client: run_sheet(
                    self.studio,
                    image,
                    chosen,
                    user_prompt=idea or "",
                    base=request_base,
                    on_progress=report,
                    lang="both",
                    client=client,
                ),
                lambda result: sum(1 for cell in result.cells if cell.ok),
            )

        result = _guard(lang, work)
        if result.failures:
            _warn_failures(lang, [cell.error for cell in result.failures if cell.error is not None])
        return result

    def on_sheet(
        self,
        image: str | None,
        url: str,
        idea: str,
        styles: list[str],
        gpen: float,
        skin: float,
        skin_unifi: float,
        gen_mode: str,
        seed: float,
        user_key: str,
        lang: str,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to ask for progress
    ) -> tuple[Any, ...]:
        """The page's 'style sheet' button."""
        source = image or _url_only((url or "").strip(), lang) or None
        base = {"gpen": gpen, "skin": skin, "skin_unifi": skin_unifi, "gen_mode": gen_mode, "seed": seed}
        result = self.sheet(source, idea, styles, base, lang, progress, request, user_key)
        record = result.record
        names = {c.preset_id: c.name("zh" if is_chinese(lang) else "en") for c in result.cells}
        items = [
            (img, f"{names.get(item.get('preset'), '')} · {caption}")
            for (img, caption), item in zip(_gallery_items(record), record.meta.get("images", []))
        ]
        zip_path = record.path / f"sheet-{record.id}.zip"
        sheet_zip(result, zip_path)
        return (
            items,
            _run_info(record, lang),
            record.id,
            gr.update(value=Image.open(io.BytesIO(result.sheet_png)), visible=True),
            gr.update(value=[str(record.path / record.meta["sheet_file"]), str(zip_path)], visible=True),
            self.history_table(lang),
            *self.code_for(record, request),
        )

    # -- the API endpoint ----------------------------------------------------------------

    def api_generate(
        self,
        image: FileData | str,
        prompt: str = "",
        preset: str = "",
        width: int | None = None,
        height: int | None = None,
        gpen: float | None = None,
        skin: float | None = None,
        skin_unifi: float | None = None,
        gen_mode: str = "",
        seed: int = SEED_RANDOM,
        variations: int = 1,
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> tuple[list[FileData], dict]:
        """Generate portraits of the person in `image` (a file or an http(s) URL).

        `prompt` is your own text; with `preset` (an id from presets.yaml) it is put into the
        style's template and the style's recommended values fill any field you leave out.
        Returns the saved images and the run's record (seeds, request ids, timings, settings).
        """
        lang = _request_lang(request)
        # A string from a caller is a URL, never a path on this server.
        source = _url_only(image.strip(), lang) if isinstance(image, str) else _upload_path(image)
        try:
            chosen = find_preset(self.presets, preset) if preset else None
        except PortraitError as err:
            raise _error(err, lang) from None
        d = dict(chosen.defaults) if chosen else {}

        def pick(name: str, value: Any, default: Any) -> Any:
            return value if value is not None else d.get(name, default)

        fields = Fields(
            prompt=compose_prompt(chosen, prompt or ""),
            preset=chosen.id if chosen else None,
            width=pick("width", width, SIZE_DEFAULT),
            height=pick("height", height, SIZE_DEFAULT),
            gpen=pick("gpen", gpen, STRENGTH_DEFAULTS["gpen"]),
            skin=pick("skin", skin, STRENGTH_DEFAULTS["skin"]),
            skin_unifi=pick("skin_unifi", skin_unifi, STRENGTH_DEFAULTS["skin_unifi"]),
            gen_mode=gen_mode or d.get("gen_mode") or AUTO,
            seed=seed,
        )
        outcome = self.run(
            source, fields, variations, lang, extra={"user_prompt": prompt or ""}, request=request
        )
        record = outcome.record
        assert record is not None
        files = [FileData(path=str(p), orig_name=p.name) for p in record.image_paths]
        return files, _public_record(record, outcome)

    def api_sheet(
        self,
        image: FileData | str,
        presets: str = "all",
        prompt: str = "",
        gpen: float | None = None,
        skin: float | None = None,
        skin_unifi: float | None = None,
        gen_mode: str = "",
        seed: int = SEED_RANDOM,
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> tuple[FileData, FileData, dict]:
        """One photo in many styles: `presets` is "all" or comma-separated ids from presets.yaml.

        Returns the labelled sheet (PNG), a ZIP of every full-size image with a manifest, and the
        run's record. Styles that failed are listed with their reason; the others are kept.
        """
        lang = _request_lang(request)
        source = _url_only(image.strip(), lang) if isinstance(image, str) else _upload_path(image)
        keys = [p.id for p in self.presets] if presets.strip().lower() in ("", "all") else presets.split(",")
        base = {
            "gpen": STRENGTH_DEFAULTS["gpen"] if gpen is None else gpen,
            "skin": STRENGTH_DEFAULTS["skin"] if skin is None else skin,
            "skin_unifi": STRENGTH_DEFAULTS["skin_unifi"] if skin_unifi is None else skin_unifi,
            "gen_mode": gen_mode or AUTO,
            "seed": seed,
        }
        result = self.sheet(source, prompt, [k.strip() for k in keys], base, lang, None, request)
        record = result.record
        zip_path = record.path / f"sheet-{record.id}.zip"
        sheet_zip(result, zip_path)
        sheet_path = record.path / record.meta["sheet_file"]
        meta = {k: v for k, v in record.meta.items() if k != "responses"}
        meta["run_dir"] = str(record.path)
        return (
            FileData(path=str(sheet_path), orig_name=sheet_path.name),
            FileData(path=str(zip_path), orig_name=zip_path.name),
            meta,
        )


def _upload_path(image: Any) -> str | None:
    """The server-side path of a file the caller uploaded through Gradio."""
    return image.get("path") if isinstance(image, dict) else getattr(image, "path", None)


def _app_url(request: gr.Request | None) -> str | None:
    """The URL this visitor reached the app at (for the gradio_client snippet)."""
    if request is None:
        return None
    try:
        return str(request.request.base_url)
    except AttributeError:
        return None


def _url_only(url: str, lang: str) -> str:
    """A photo URL typed by a visitor or an API caller: http(s) only."""
    if not url:
        return ""
    try:
        return check_photo_url(url)
    except PortraitError as err:
        raise _error(err, lang) from None


def _public_record(record: RunRecord, outcome: RunOutcome) -> dict[str, Any]:
    meta = {k: v for k, v in record.meta.items() if k != "responses"}
    meta["failures"] = [{"seed": s, **e.as_dict()} for s, e in outcome.failures]
    meta["run_dir"] = str(record.path)
    return meta


def _visitor(request: gr.Request | None, trusted_proxies: int = 0) -> str:
    """Who is asking: the login name, else the address seen by the first proxy we trust, else the peer."""
    if request is None:
        return "anonymous"
    if getattr(request, "username", None):
        return f"user:{request.username}"
    host = request.client.host if request.client else ""
    if trusted_proxies > 0:
        # Behind N proxies we trust (a Space has one), the client is the N-th address from the
        # right of X-Forwarded-For; entries further left are whatever the visitor sent.
        hops = [h.strip() for h in (request.headers.get("x-forwarded-for") or "").split(",") if h.strip()]
        if len(hops) >= trusted_proxies:
            host = hops[-trusted_proxies]
    return f"ip:{host or 'unknown'}"


def _request_lang(request: gr.Request | None) -> str:
    """'zh' or 'en' from the caller's Accept-Language; both languages when unknown."""
    if request is None:
        return ""
    header = (request.headers.get("accept-language") or "").strip().lower()
    if not header or header.startswith("*"):
        return ""
    return "zh" if header.startswith("zh") else "en"


def _preset_choices(presets: Sequence[Preset]) -> list[tuple[str, str]]:
    return [(f"{p.name_zh} / {p.name_en}", p.id) for p in presets]


def build_demo(studio: Studio, presets: Sequence[Preset]) -> gr.Blocks:
    """Lay out the page and wire its events. Launch with `demo.launch(**launch_kwargs(settings))`."""
    ui = PortraitUI(studio, presets)
    settings = studio.settings
    with gr.Blocks(title="Portrait Studio · 人像写真") as demo:
        lang = gr.Textbox(visible=False, value="__lang__")
        with gr.Row(equal_height=False):
            with gr.Column(scale=8):
                gr.Markdown(t("title"), elem_id="title", elem_classes=["title"])
                gr.Markdown(t("subtitle"))
            with gr.Column(scale=1, min_width=120):
                switch = gr.Button(t("lang_switch"), size="sm", elem_id="lang-switch")
        switch.click(None, js=SWITCH_JS, api_visibility="private")
        if studio.offline:
            gr.Markdown(t("offline_banner"), elem_id="offline-banner")

        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab(t("tab_create"), id="create"):
                with gr.Row(equal_height=False):
                    # ---- left: the photo, the style and every field ----
                    with gr.Column(scale=5):
                        with gr.Row(equal_height=False):
                            photo = _tolerant_photo_input(
                                gr.Image(
                                    label=t("photo"),
                                    sources=["upload", "webcam", "clipboard"],
                                    type="filepath",
                                    image_mode=None,  # pass the original file on: EXIF orientation intact
                                    height=300,
                                    elem_id="photo",
                                )
                            )
                            with gr.Column(min_width=160):
                                sent = gr.Image(
                                    label=t("sent_photo"), interactive=False, height=220, elem_id="sent-photo"
                                )
                                sent_note = gr.Markdown("", elem_id="sent-note")
                        photo_url = gr.Textbox(
                            label=t("photo_url"), placeholder="https://…", elem_id="photo-url"
                        )
                        with gr.Accordion(t("tips_title"), open=False):
                            gr.Markdown(t("photo_tips"))

                        style = gr.Dropdown(
                            choices=[(t("style_none"), ""), *_preset_choices(presets)],
                            value="",
                            label=t("style"),
                            elem_id="style",
                        )
                        style_note = gr.Markdown("", elem_id="style-note")
                        idea = gr.Textbox(label=t("idea"), placeholder=t("idea_ph"), elem_id="idea")
                        prompt = gr.Textbox(
                            label=t("prompt"),
                            info=t("prompt_info"),
                            lines=3,
                            elem_id="prompt",
                            max_length=2000,
                        )

                        variations = gr.Slider(
                            VARIATIONS_MIN,
                            VARIATIONS_MAX,
                            value=1,
                            step=1,
                            label=t("variations"),
                            info=t("variations_info"),
                            elem_id="variations",
                        )
                        with gr.Accordion(t("own_key"), open=False, visible=ui.user_keys, elem_id="own-key"):
                            user_key = gr.Textbox(
                                label=t("own_key_label"),
                                info=t("own_key_info"),
                                type="password",
                                value="",
                                elem_id="user-key",
                            )
                        go = gr.Button(t("generate"), variant="primary", elem_id="generate-btn")
                        with gr.Accordion(t("size"), open=True):
                            aspect = gr.Radio(
                                choices=[
                                    *(name for name, _, _ in ASPECT_PRESETS),
                                    (t("aspect_custom"), CUSTOM),
                                ],
                                value="1:1",
                                label=t("aspect"),
                                elem_id="aspect",
                            )
                            with gr.Row():
                                width = gr.Slider(
                                    SIZE_MIN,
                                    SIZE_MAX,
                                    value=SIZE_DEFAULT,
                                    step=1,
                                    label=t("width"),
                                    elem_id="width",
                                )
                                height = gr.Slider(
                                    SIZE_MIN,
                                    SIZE_MAX,
                                    value=SIZE_DEFAULT,
                                    step=1,
                                    label=t("height"),
                                    elem_id="height",
                                )
                        with gr.Accordion(t("retouch"), open=True):
                            strength = {
                                name: gr.Slider(
                                    STRENGTH_MIN,
                                    STRENGTH_MAX,
                                    value=default,
                                    step=STRENGTH_STEP,
                                    label=t(name),
                                    info=t(f"{name}_info"),
                                    elem_id=name,
                                )
                                for name, default in STRENGTH_DEFAULTS.items()
                            }
                        gen_mode = gr.Radio(
                            choices=[(t(f"gen_mode_{m}"), m) for m in (AUTO, *GEN_MODES)],
                            value=AUTO,
                            label=t("gen_mode"),
                            elem_id="gen-mode",
                        )
                        with gr.Row(equal_height=True):
                            seed = gr.Number(
                                value=SEED_RANDOM,
                                precision=0,
                                label=t("seed"),
                                minimum=SEED_RANDOM,
                                elem_id="seed",
                                scale=3,
                            )
                            seed_random = gr.Button(
                                t("seed_random"), size="sm", scale=1, elem_id="seed-random"
                            )
                            seed_last = gr.Button(
                                t("seed_last"), size="sm", scale=1, visible=False, elem_id="seed-last"
                            )
                        with gr.Accordion(t("sheet_title"), open=False, elem_id="sheet-box"):
                            gr.Markdown(t("sheet_help"))
                            sheet_styles = gr.CheckboxGroup(
                                choices=_preset_choices(presets),
                                value=[],
                                label=t("style"),
                                elem_id="sheet-styles",
                            )
                            with gr.Row():
                                sheet_all = gr.Button(t("sheet_all"), size="sm", elem_id="sheet-all")
                                sheet_none = gr.Button(t("sheet_none"), size="sm", elem_id="sheet-none")
                            sheet_go = gr.Button(t("sheet_go"), variant="secondary", elem_id="sheet-btn")

                    # ---- right: the portraits ----
                    with gr.Column(scale=6):
                        gallery = gr.Gallery(
                            label=t("results"),
                            format="png",
                            columns=2,
                            height=640,
                            object_fit="contain",
                            buttons=["download", "download_all", "fullscreen"],
                            interactive=False,
                            elem_id="results",
                        )
                        run_info = gr.Markdown(t("run_info_empty"), elem_id="run-info")
                        reuse = gr.Button(t("reuse"), size="sm", elem_id="reuse")
                        sheet_image = gr.Image(
                            label=t("sheet_image"),
                            format="png",
                            interactive=False,
                            visible=False,
                            elem_id="sheet-image",
                        )
                        downloads = gr.File(label=t("downloads"), visible=False, elem_id="downloads")
                        with gr.Accordion(t("code_title"), open=False, elem_id="code-box"):
                            gr.Markdown(t("code_help"))
                            code_curl = gr.Code(label="curl", language="shell", elem_id="code-curl")
                            code_python = gr.Code(
                                label="Python · requests", language="python", elem_id="code-python"
                            )
                            code_gradio = gr.Code(
                                label="gradio_client", language="python", elem_id="code-gradio"
                            )

            with gr.Tab(t("tab_history"), id="history") as history_tab:
                with gr.Row():
                    refresh = gr.Button(t("history_refresh"), size="sm", elem_id="history-refresh")
                    history_reuse = gr.Button(t("history_reuse"), size="sm", elem_id="history-reuse")
                history = gr.Dataframe(
                    headers=_history_headers("en"),
                    value=[],
                    interactive=False,
                    wrap=True,
                    label=t("history_table"),
                    elem_id="history",
                )
                history_gallery = gr.Gallery(
                    label=t("history_images"),
                    format="png",
                    columns=4,
                    height=360,
                    interactive=False,
                    buttons=["download", "download_all", "fullscreen"],
                    elem_id="history-gallery",
                )

        run_id = gr.State("")
        history_run_id = gr.State("")
        last_seed = gr.State(SEED_RANDOM)
        composed = gr.State("")
        private = {"api_visibility": "private"}
        fields = [
            photo,
            photo_url,
            style,
            idea,
            prompt,
            aspect,
            width,
            height,
            *strength.values(),
            gen_mode,
            seed,
            variations,
        ]

        codes = [code_curl, code_python, code_gradio]
        # .change covers uploads, webcam, paste, clearing and "reuse" restoring a photo.
        photo.change(ui.on_photo, [photo, lang], [sent, sent_note], js=WITH_LANG_JS, **private)
        style_outputs = [prompt, style_note, aspect, width, height, *strength.values(), gen_mode]
        # .input (not .change): only a person's choice applies a style; "reuse" restores values as saved.
        style.input(ui.on_style, [style, idea, lang], [*style_outputs, composed], js=WITH_LANG_JS, **private)
        # .change, not .input: pasted or IME-committed text counts too; always_last keeps up with typing.
        idea.change(
            ui.on_idea,
            [style, idea, prompt, composed],
            [prompt, composed],
            trigger_mode="always_last",
            **private,
        )
        aspect.input(ui.on_aspect, aspect, [width, height], **private)
        seed_random.click(lambda: SEED_RANDOM, None, seed, **private)
        seed_last.click(lambda s: s, last_seed, seed, **private)
        go.click(
            ui.on_generate,
            [
                photo,
                photo_url,
                prompt,
                style,
                width,
                height,
                *strength.values(),
                gen_mode,
                seed,
                variations,
                user_key,
                lang,
                idea,
            ],
            [gallery, run_info, run_id, seed_last, last_seed, history, sheet_image, downloads, *codes],
            js=WITH_LANG_JS,
            concurrency_id="upstream",
            concurrency_limit=_event_limit(settings),
            **private,
        )
        reuse.click(ui.reuse, [run_id, lang], [*fields, composed], js=WITH_LANG_JS, **private)
        history_reuse.click(
            ui.reuse, [history_run_id, lang], [*fields, composed], js=WITH_LANG_JS, **private
        ).then(lambda: gr.Tabs(selected="create"), None, tabs, **private)
        refresh.click(ui.history_table, lang, history, js=WITH_LANG_JS, **private)
        history_tab.select(ui.history_table, lang, history, js=WITH_LANG_JS, **private)
        history.select(
            ui.on_history_select,
            [history, lang],
            [history_gallery, history_run_id, *codes],
            js=WITH_LANG_JS,
            **private,
        )
        sheet_all.click(lambda: [p.id for p in presets], None, sheet_styles, **private)
        sheet_none.click(lambda: [], None, sheet_styles, **private)
        sheet_go.click(
            ui.on_sheet,
            [photo, photo_url, idea, sheet_styles, *strength.values(), gen_mode, seed, user_key, lang],
            [gallery, run_info, run_id, sheet_image, downloads, history, *codes],
            js=WITH_LANG_JS,
            concurrency_id="upstream",
            concurrency_limit=_event_limit(settings),
            **private,
        )
        demo.load(ui.history_table, lang, history, js=WITH_LANG_JS, **private)

        gr.api(
            ui.api_generate,
            api_name="generate",
            concurrency_id="upstream",
            concurrency_limit=_event_limit(settings),
        )
        gr.api(
            ui.api_sheet,
            api_name="sheet",
            concurrency_id="upstream",
            concurrency_limit=_event_limit(settings),
        )
    return demo
