"""The Portrait Studio page as a person uses it: what to click and what to read back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

GENERATION_TIMEOUT = 30_000
CAPTION = re.compile(r"^seed (\d+) · (\d+)×(\d+) · SIMULATED$")
# The folder line of #run-info: "📁 /…/outputs/<run id>".
RUN_DIR = re.compile(r"📁\s*(\S+)")
TRACEBACK_MARKERS = ("Traceback", 'File "')
_FIELD_INPUTS = (
    "#prompt textarea, #idea textarea, #aspect input:checked, #width input[type=number], "
    "#height input[type=number], #gpen input[type=number], #skin input[type=number], "
    "#skin_unifi input[type=number], #gen-mode input:checked, #seed input"
)
_SNAPSHOT_JS = f"() => JSON.stringify([...document.querySelectorAll({_FIELD_INPUTS!r})].map(e => e.value))"


@dataclass(frozen=True)
class Fields:
    """Every request field as the page shows it."""

    prompt: str
    aspect: str
    width: int
    height: int
    gpen: float
    skin: float
    skin_unifi: float
    gen_mode: str
    seed: int


class StudioPage:
    """Page object for app.py's page (elem_ids from portrait/ui.py)."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url

    # -- navigation ---------------------------------------------------------------------

    def open(self) -> StudioPage:
        self.page.goto(self.base_url + "/")
        self.wait_ready()
        return self

    def reload(self) -> StudioPage:
        self.page.reload()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        expect(self.page.locator("#generate-btn")).to_be_visible(timeout=30_000)
        # The page's own load event fills the history table; once it has run the page is idle.
        self.page.wait_for_function("document.documentElement.lang !== ''")

    def tab(self, tab_id: str) -> Locator:
        return self.page.locator(f"button[role=tab][data-tab-id={tab_id}]")

    def show_tab(self, tab_id: str) -> None:
        self.tab(tab_id).click()
        expect(self.tab(tab_id)).to_have_attribute("aria-selected", "true")

    # -- input --------------------------------------------------------------------------

    def upload(self, path: Path) -> None:
        self.page.set_input_files("#photo input[type=file]", str(path))

    def upload_photo(self, path: Path) -> None:
        """Upload a real photo and wait until the page shows it as it will be sent."""
        self.upload(path)
        expect(self.page.locator("#sent-photo img")).to_be_visible(timeout=15_000)
        expect(self.page.locator("#sent-note")).to_contain_text("JPEG")

    def pick_style(self, label: str) -> None:
        """Choose a style by its visible label, e.g. '商务形象照 / Business headshot'."""
        self.page.locator("#style input").click()
        self.page.locator(f"#style [role=option][aria-label='{label}']").click()
        expect(self.page.locator("#style input")).to_have_value(label)
        # The style's description shows once the page has filled in the style's prompt and values.
        expect(self.page.locator("#style-note")).to_contain_text(re.compile(r"\w"))

    def set_number(self, elem_id: str, value: float) -> None:
        """Type into a slider's (or Number's) box and wait until the page holds the value."""
        box = self.page.locator(f"#{elem_id} input[type=number]")
        box.fill(str(value))
        box.press("Enter")
        expect(box).to_have_value(str(value))
        rng = self.page.locator(f"#{elem_id} input[type=range]")
        if rng.count():
            expect(rng).to_have_value(str(value))

    def set_seed(self, seed: int) -> None:
        box = self.page.locator("#seed input")
        box.fill(str(seed))
        box.press("Tab")
        expect(box).to_have_value(str(seed))

    def pick_aspect(self, value: str) -> None:
        self.page.locator(f"#aspect input[value='{value}']").check()

    def pick_gen_mode(self, value: str) -> None:
        self.page.locator(f"#gen-mode input[value='{value}']").check()

    # -- output -------------------------------------------------------------------------

    @property
    def results(self) -> Locator:
        return self.page.locator("#results .grid-container .thumbnail-item img")

    @property
    def progress(self) -> Locator:
        return self.page.locator("#results [data-testid=status-tracker] [role=progressbar]")

    def run_info(self) -> str:
        return self.page.locator("#run-info").inner_text()

    def click_generate(self) -> None:
        self.page.locator("#generate-btn").click()

    def generate(self, images: int = 1) -> str:
        """Click Generate, wait for the new run's `images` portraits; returns the run id."""
        before = self.run_info()
        self.click_generate()
        return self.wait_for_run(before, images)

    def wait_for_run(self, before: str, images: int) -> str:
        self.page.wait_for_function(
            "before => { const t = document.querySelector('#run-info').innerText;"
            " return t !== before && t.includes('📁'); }",
            arg=before,
            timeout=GENERATION_TIMEOUT,
        )
        expect(self.results).to_have_count(images, timeout=GENERATION_TIMEOUT)
        return self.run_id()

    def run_id(self) -> str:
        match = RUN_DIR.search(self.run_info())
        assert match, f"no run folder in #run-info: {self.run_info()!r}"
        return Path(match.group(1).strip("`")).name

    def captions(self, gallery: str = "#results") -> list[str]:
        return self.page.locator(f"{gallery} .grid-container .caption-label").all_inner_texts()

    def image_srcs(self, gallery: str = "#results") -> list[str]:
        imgs = self.page.locator(f"{gallery} .grid-container .thumbnail-item img")
        return [imgs.nth(i).get_attribute("src") or "" for i in range(imgs.count())]

    def toast(self) -> Locator:
        return self.page.locator("[data-testid=toast-body]")

    def toast_text(self, timeout: float = 15_000) -> str:
        text = self.page.locator("[data-testid=toast-text]").first
        expect(text).to_be_visible(timeout=timeout)
        return text.inner_text()

    def close_toasts(self) -> None:
        """Close every toast (they also go away by themselves after 10 s)."""
        closers = self.page.locator("[data-testid=toast-close]")
        for i in reversed(range(closers.count())):
            try:
                # A DOM click: the close button can be briefly inert while the toast animates.
                closers.nth(i).dispatch_event("click", timeout=2_000)
            except PlaywrightError:
                pass  # it closed by itself meanwhile
        expect(self.toast()).to_have_count(0, timeout=15_000)

    def fields(self) -> Fields:
        """Every request field as currently shown on the Create tab."""
        values = self.page.evaluate(
            """() => {
                const q = s => document.querySelector(s);
                const num = id => q(`#${id} input[type=number]`).value;
                return {
                    prompt: q('#prompt textarea').value,
                    aspect: q('#aspect input:checked')?.value ?? '',
                    width: num('width'), height: num('height'),
                    gpen: num('gpen'), skin: num('skin'), skin_unifi: num('skin_unifi'),
                    gen_mode: q('#gen-mode input:checked')?.value ?? '',
                    seed: q('#seed input').value,
                };
            }"""
        )
        return Fields(
            prompt=values["prompt"],
            aspect=values["aspect"],
            width=int(values["width"]),
            height=int(values["height"]),
            gpen=float(values["gpen"]),
            skin=float(values["skin"]),
            skin_unifi=float(values["skin_unifi"]),
            gen_mode=values["gen_mode"],
            seed=int(values["seed"]),
        )

    def assert_fields_stay(self, expected: Fields, settle_ms: int = 2_000) -> None:
        """The fields show `expected`, and nothing the page does afterwards changes them.

        Restoring values can set off the page's own follow-up events (a style's defaults, an
        aspect's size) that land a moment later, so watch for `settle_ms` that none does.
        """
        expect(self.page.locator("#seed input")).to_have_value(str(expected.seed))
        assert self.fields() == expected
        before = self.page.evaluate(_SNAPSHOT_JS)
        try:
            self.page.wait_for_function(
                f"before => ({_SNAPSHOT_JS})() !== before", arg=before, timeout=settle_ms, polling=100
            )
        except PlaywrightTimeoutError:
            pass  # nothing changed: good
        assert self.fields() == expected

    def fill(self, fields: Fields) -> None:
        """Set every field through the page's own controls."""
        self.page.locator("#prompt textarea").fill(fields.prompt)
        self.pick_aspect(fields.aspect)
        if fields.aspect == "custom":
            self.set_number("width", fields.width)
            self.set_number("height", fields.height)
        else:  # the aspect preset sets the sliders
            expect(self.page.locator("#width input[type=number]")).to_have_value(str(fields.width))
            expect(self.page.locator("#height input[type=number]")).to_have_value(str(fields.height))
        self.set_number("gpen", fields.gpen)
        self.set_number("skin", fields.skin)
        self.set_number("skin_unifi", fields.skin_unifi)
        self.pick_gen_mode(fields.gen_mode)
        self.set_seed(fields.seed)

    def body_text(self) -> str:
        return self.page.locator("body").inner_text()

    def history_row_of(self, run_id: str) -> Locator:
        """The history table's cell holding `run_id` (last column)."""
        return self.page.locator("#history [role=gridcell][data-col='6']", has_text=run_id)
