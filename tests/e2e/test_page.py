"""The real page in headless Chromium: what a person sees when they use Portrait Studio.

Each test starts from a fresh browser context and a reset simulator; screenshots of the
final state land in tests/e2e/screenshots/<test name>.png.
"""

from __future__ import annotations

import hashlib
import io
import re
import sys

import pytest
import requests
from e2e_support import CANARY_KEY, clean_env, free_port, offline_app, spawn, stop, wait_http_200
from PIL import Image
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect
from studio_page import CAPTION, GENERATION_TIMEOUT, TRACEBACK_MARKERS, Fields, StudioPage

pytestmark = pytest.mark.e2e

BUSINESS = "商务形象照 / Business headshot"  # presets.yaml: business, 1152x1536 by default
CJK = re.compile(r"[\u4e00-\u9fff]")

EN = {
    "lang": "en",
    "generate": "✨ Generate portraits",
    "title": "Portrait Studio",
    "photo": "Photo of the person",
    "switch": "中文",
    "create": "生成 / Create",
    "history": "历史记录 / History",
    "no_photo": "Please upload a photo or enter a photo URL first.",
}
ZH = {
    "lang": "zh-CN",
    "generate": "✨ 生成写真",
    "title": "人像写真工作室",
    "photo": "人物照片",
    "switch": "English",
    "create": "生成 / Create",
    "history": "历史记录 / History",
    "no_photo": "请先上传照片或填写照片网址。",
}


def assert_no_traceback(text: str) -> None:
    for marker in TRACEBACK_MARKERS:
        assert marker not in text, f"traceback text {marker!r} on the page:\n{text}"


def assert_language(studio: StudioPage, words: dict[str, str]) -> None:
    page = studio.page
    page.wait_for_function(f"document.documentElement.lang.startsWith({words['lang'][:2]!r})")
    expect(page.locator("#generate-btn")).to_have_text(words["generate"])
    expect(page.locator("#title")).to_contain_text(words["title"])
    expect(page.locator("#photo [data-testid=block-label]")).to_have_text(words["photo"])
    expect(page.locator("#lang-switch")).to_have_text(words["switch"])
    expect(studio.tab("create")).to_have_text(words["create"])


def assert_no_photo_error_in(studio: StudioPage, words: dict[str, str]) -> None:
    """Generate with no photo: the page answers in its language (and calls nobody)."""
    studio.click_generate()
    message = studio.toast_text()
    assert message == words["no_photo"]
    assert_no_traceback(studio.body_text())
    studio.close_toasts()


# -- 1. the main path ---------------------------------------------------------------------


def test_generate_shows_progress_then_portraits_and_downloads_a_png(app, sim, page, photo, shot):
    sim.config(latency=2.0)  # long enough to watch the progress
    studio = StudioPage(page, app.url).open()
    expect(page.locator("#offline-banner")).to_be_visible()

    studio.upload_photo(photo)
    expect(page.locator("#sent-note")).to_contain_text("900×1200")
    studio.pick_style(BUSINESS)
    expect(page.locator("#prompt textarea")).to_have_value(re.compile("职业商务形象照"))
    expect(page.locator("#width input[type=number]")).to_have_value("1152")
    expect(page.locator("#height input[type=number]")).to_have_value("1536")

    before = studio.run_info()
    studio.click_generate()
    expect(studio.progress).to_be_visible(timeout=10_000)
    expect(page.locator("#results .progress-text")).to_contain_text(re.compile(r"\d+(\.\d+)?s"))
    shot(page, "-progress")
    run_id = studio.wait_for_run(before, images=1)
    expect(studio.progress).to_have_count(0)

    # The portrait sits next to the photo (right column), labelled with its seed.
    photo_box = page.locator("#photo").bounding_box()
    gallery_box = page.locator("#results").bounding_box()
    assert photo_box and gallery_box
    assert gallery_box["x"] >= photo_box["x"] + photo_box["width"]
    assert gallery_box["y"] < photo_box["y"] + photo_box["height"]
    (caption,) = studio.captions()
    match = CAPTION.match(caption)
    assert match, caption
    seed, width, height = (int(g) for g in match.groups())
    assert (width, height) == (1152, 1536)
    info = studio.run_info()
    assert f"seed: {seed}" in info and run_id in info

    (call,) = sim.requests()
    assert call["body"]["seed"] == str(seed)
    assert (call["body"]["width"], call["body"]["height"]) == (1152, 1536)

    # Download it with the gallery's own button.
    page.locator("#results .grid-container .thumbnail-item").first.click()
    with page.expect_download() as info_download:
        page.locator("#results button[aria-label=Download]").click()
    data = info_download.value.path().read_bytes()
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG", f"downloaded {info_download.value.suggested_filename} is {img.format}"
        assert img.size == (1152, 1536)


def test_four_variations_are_four_distinct_images(app, sim, page, photo):
    studio = StudioPage(page, app.url).open()
    studio.upload_photo(photo)
    studio.set_number("variations", 4)
    studio.generate(images=4)

    captions = studio.captions()
    seeds = [int(CAPTION.match(c).group(1)) for c in captions]
    assert len(set(seeds)) == 4, captions
    digests = set()
    for src in studio.image_srcs():
        resp = page.request.get(src)
        assert resp.ok, src
        with Image.open(io.BytesIO(resp.body())) as img:
            assert img.size == (1328, 1328)
        digests.add(hashlib.sha256(resp.body()).hexdigest())
    assert len(digests) == 4, "the four portraits are not four different images"
    assert sorted(int(c["body"]["seed"]) for c in sim.requests()) == sorted(seeds)


# -- 2. every field reaches the API -------------------------------------------------------


def test_every_field_reaches_the_api_exactly(app, sim, page, photo):
    studio = StudioPage(page, app.url).open()
    studio.upload_photo(photo)
    wanted = Fields(
        prompt="e2e: 穿白衬衫，在窗边微笑 / white shirt by a window",
        aspect="9:16",
        width=936,
        height=1664,
        gpen=0.9,
        skin=0.7,
        skin_unifi=0.5,
        gen_mode="reference_char",
        seed=424242,
    )
    studio.fill(wanted)
    assert studio.fields() == wanted
    studio.generate(images=1)

    assert studio.captions() == ["seed 424242 · 936×1664 · SIMULATED"]
    (call,) = sim.requests()
    body = call["body"]
    assert body["prompt"] == wanted.prompt
    assert (body["width"], body["height"]) == (936, 1664)
    assert body["gpen"] == pytest.approx(0.9)
    assert body["skin"] == pytest.approx(0.7)
    assert body["skin_unifi"] == pytest.approx(0.5)
    assert body["gen_mode"] == "reference_char"
    assert body["seed"] == "424242"


# -- 3. errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "locale", "message", "other_language"),
    [
        ("gateway:-10004", "en-US", "Insufficient account balance; top up at 302.AI.", "账户余额不足"),
        ("model:50413", "zh-CN", "提示词含敏感或版权词，请修改提示词。", "rephrase it"),
    ],
    ids=["balance-en", "moderation-zh"],
)
def test_upstream_fault_shows_actionable_message_then_next_run_succeeds(
    app, sim, page, photo, shot, fault, message, other_language
):
    studio = StudioPage(page, app.url).open()
    studio.upload_photo(photo)
    sim.config(fault=fault, fault_count=1)

    studio.click_generate()
    text = studio.toast_text()
    assert message in text
    assert other_language not in text
    assert_no_traceback(text)
    assert_no_traceback(studio.body_text())
    expect(studio.results).to_have_count(0)
    shot(page, "-error")

    studio.close_toasts()
    studio.generate(images=1)
    assert CAPTION.match(studio.captions()[0])
    expect(studio.toast()).to_have_count(0)
    assert sim.config()["fault"] is None  # the one injected fault was used up by the first run


def test_non_image_upload_never_reaches_the_api(app, sim, page, not_an_image):
    studio = StudioPage(page, app.url).open()
    studio.upload(not_an_image)
    expect(page.locator("#photo img")).to_be_visible(timeout=15_000)  # the browser took the file
    studio.click_generate()
    # The click is over when the results area shows its error badge (or an error toast).
    expect(page.locator("#results [data-testid=status-tracker]")).to_contain_text(
        "Error", timeout=GENERATION_TIMEOUT
    )
    log = sim.log()
    assert log["requests"] == [] and log["uploads"] == []
    expect(studio.results).to_have_count(0)
    assert_no_traceback(studio.body_text())


def test_non_image_upload_is_refused_with_a_clear_message(app, sim, page, not_an_image):
    studio = StudioPage(page, app.url).open()
    studio.upload(not_an_image)
    expect(page.locator("#photo img")).to_be_visible(timeout=15_000)
    studio.click_generate()
    expect(page.locator("#results [data-testid=status-tracker]")).to_contain_text(
        "Error", timeout=GENERATION_TIMEOUT
    )
    # An error toast shows up together with the badge; a short grace period is plenty.
    text = studio.toast_text(timeout=3_000)
    assert re.search(r"not an image|cannot be used|JPEG|PNG", text), text
    assert_no_traceback(text)
    assert sim.log()["requests"] == []


# -- 4. language ------------------------------------------------------------------------------


@pytest.mark.parametrize(("locale", "words"), [("zh-CN", ZH), ("en-US", EN)], ids=["zh-CN", "en-US"])
def test_page_speaks_the_browser_language(app, sim, page, words):
    studio = StudioPage(page, app.url).open()
    assert_language(studio, words)
    expect(studio.tab("history")).to_have_text(words["history"])
    expect(page.locator("#offline-banner")).to_contain_text("AI302_API_KEY")
    if words is ZH:
        assert CJK.search(page.locator("#offline-banner").inner_text())
    assert_no_photo_error_in(studio, words)
    assert sim.requests() == []


def test_language_switch_flips_labels_and_sticks_after_reload(app, sim, page, shot):
    studio = StudioPage(page, app.url).open()
    assert_language(studio, EN)

    page.locator("#lang-switch").click()
    assert_language(studio, ZH)
    assert_no_photo_error_in(studio, ZH)  # errors follow the switch, not the browser
    studio.reload()
    assert_language(studio, ZH)
    shot(page, "-zh-after-reload")

    page.locator("#lang-switch").click()
    assert_language(studio, EN)
    studio.reload()
    assert_language(studio, EN)
    assert_no_photo_error_in(studio, EN)


def test_language_switch_relabels_the_history_tab(app, sim, page):
    studio = StudioPage(page, app.url).open()
    page.locator("#lang-switch").click()
    assert_language(studio, ZH)
    expect(studio.tab("history")).to_have_text(ZH["history"], timeout=2_000)


# -- 5. history -------------------------------------------------------------------------------

IDEA = "smiling by a window"


def make_run_with_everything_set(studio: StudioPage, photo) -> tuple[Fields, str, list[str]]:
    """A run made the way a person works: a style, their own idea, then every value tweaked."""
    page = studio.page
    studio.upload_photo(photo)
    # Idea first, then the style: the style composes the prompt from the whole idea at once
    # (typing after picking a style races, see test_typing_your_idea_over_a_slow_link_...).
    page.locator("#idea textarea").press_sequentially(IDEA, delay=20)
    studio.pick_style(BUSINESS)
    expect(page.locator("#prompt textarea")).to_have_value(re.compile(f"职业商务形象照，{IDEA}，"))
    prompt = page.locator("#prompt textarea").input_value()
    made = Fields(
        prompt=prompt,
        aspect="custom",
        width=1000,
        height=1400,
        gpen=0.8,
        skin=0.1,
        skin_unifi=0.6,
        gen_mode="reference",
        seed=777001,
    )
    studio.fill(made)
    studio.set_number("variations", 2)
    assert studio.fields() == made
    run_id = studio.generate(images=2)
    return made, run_id, studio.captions()


def test_history_survives_reload_and_restart_and_reuse_restores_every_field(
    app, sim, page, context, photo, e2e_tmp, shot
):
    studio = StudioPage(page, app.url).open()
    made, run_id, captions = make_run_with_everything_set(studio, photo)
    assert captions == ["seed 777001 · 1000×1400 · SIMULATED", "seed 777002 · 1000×1400 · SIMULATED"]

    # After a reload the run is listed.
    studio.reload()
    studio.show_tab("history")
    expect(studio.history_row_of(run_id)).to_be_visible(timeout=10_000)
    shot(page, "-after-reload")

    # After a restart (a second app on the same output folder) too, and reuse brings it all back.
    with offline_app(app.output_dir, e2e_tmp / "app-restarted.log") as restarted:
        fresh = StudioPage(context.new_page(), restarted.url).open()
        assert fresh.fields() != made
        fresh.show_tab("history")
        cell = fresh.history_row_of(run_id)
        expect(cell).to_be_visible(timeout=10_000)
        row = fresh.page.locator(
            f"#history [role=gridcell][data-row='{cell.get_attribute('data-row')}']"
        ).all_inner_texts()
        assert "Business headshot" in row and "1000×1400" in row and "777001, 777002" in row, row
        cell.click()
        expect(fresh.page.locator("#history-gallery .grid-container .thumbnail-item img")).to_have_count(2)
        assert fresh.captions("#history-gallery") == captions

        fresh.page.locator("#history-reuse").click()
        expect(fresh.page.locator("[data-testid=toast-text]")).to_contain_text("Settings restored.")
        # Reuse takes the person back to the Create tab with everything filled in, and the
        # restored style does not overwrite the restored values with its own defaults.
        expect(fresh.tab("create")).to_have_attribute("aria-selected", "true")
        expect(fresh.page.locator("#style input")).to_have_value(BUSINESS)
        expect(fresh.page.locator("#photo img")).to_be_visible()
        fresh.assert_fields_stay(made)
        expect(fresh.page.locator("#variations input[type=number]")).to_have_value("2")
        shot(fresh.page, "-restarted-reused")


def test_reuse_keeps_your_idea(app, sim, page, photo):
    studio = StudioPage(page, app.url).open()
    studio.upload_photo(photo)
    page.locator("#idea textarea").press_sequentially(IDEA, delay=20)
    studio.generate(images=1)
    page.locator("#reuse").click()
    expect(page.locator("[data-testid=toast-text]")).to_contain_text("Settings restored.")
    expect(page.locator("#idea textarea")).to_have_value(IDEA, timeout=2_000)


def test_typing_your_idea_over_a_slow_link_ends_up_whole_in_the_prompt(app, sim, page):
    StudioPage(page, app.url).open()
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    # A slow mobile link: each request takes a second longer, so the page's call for the first
    # key is still pending while the rest of the words are typed at a normal 10 keys a second.
    conditions = {"offline": False, "latency": 1000, "downloadThroughput": -1, "uploadThroughput": -1}
    cdp.send("Network.emulateNetworkConditions", conditions)
    page.locator("#idea textarea").press_sequentially("in a garden", delay=100)
    expect(page.locator("#prompt textarea")).to_have_value("in a garden", timeout=8_000)


def test_pasting_your_idea_updates_the_prompt(app, sim, page, context):
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.url)
    StudioPage(page, app.url).open()
    page.evaluate("text => navigator.clipboard.writeText(text)", IDEA)
    page.locator("#idea textarea").click()
    page.keyboard.press("Control+V")
    expect(page.locator("#idea textarea")).to_have_value(IDEA)
    expect(page.locator("#prompt textarea")).to_have_value(IDEA, timeout=5_000)


# -- 6. the API key ---------------------------------------------------------------------------


@pytest.fixture
def keyed_app(tmp_path):
    """A separate simulator that accepts only the canary key, and an app that holds that key."""
    sim_port, port = free_port(), free_port()
    sim_url, url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{port}"
    sim_cmd = [sys.executable, "-m", "portrait", "simulate", "--port", str(sim_port), "--latency", "0.2"]
    env = clean_env(
        AI302_API_KEY=CANARY_KEY,
        PORTRAIT_API_BASE=sim_url,
        GRADIO_SERVER_PORT=str(port),
        PORTRAIT_OUTPUT_DIR=str(tmp_path / "outputs"),
    )
    # Both start at once; the app only calls the simulator when someone generates.
    procs = [
        spawn([*sim_cmd, "--key", CANARY_KEY], clean_env(), tmp_path / "sim.log"),
        spawn([sys.executable, "app.py"], env, tmp_path / "app.log"),
    ]
    try:
        wait_http_200(sim_url + "/_sim/requests", procs[0])
        wait_http_200(url + "/", procs[1])
        yield url, sim_url, tmp_path / "outputs"
    finally:
        for proc in reversed(procs):
            stop(proc)


# The page's event streams (/gradio_api/queue/data) stay open between events, so their bodies
# never "finish" for Playwright; copy what the page reads from them as it arrives.
STREAM_TEE_JS = """
window.__e2eStreams = [];
const __e2eFetch = window.fetch;
window.fetch = async (...args) => {
  const resp = await __e2eFetch(...args);
  if ((resp.headers.get('content-type') || '').includes('event-stream') && resp.body) {
    const reader = resp.clone().body.getReader();
    const text = new TextDecoder();
    (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        window.__e2eStreams.push(text.decode(value, { stream: true }));
      }
    })();
  }
  return resp;
};
"""


def test_api_key_never_reaches_the_browser(keyed_app, page, photo):
    url, sim_url, outputs = keyed_app
    finished, console = [], []
    # Only requests whose body has fully arrived (the heartbeat stream never ends).
    page.on("requestfinished", lambda req: finished.append(req))
    page.on("console", lambda msg: console.append(msg.text))
    page.on("pageerror", lambda err: console.append(str(err)))

    page.add_init_script(STREAM_TEE_JS)
    studio = StudioPage(page, url).open()
    expect(page.locator("#offline-banner")).to_have_count(0)  # this app really uses its key
    studio.upload_photo(photo)
    run_id = studio.generate(images=1)
    assert re.match(r"^seed \d+ · 1328×1328$", studio.captions()[0])
    calls = requests.get(sim_url + "/_sim/requests", timeout=5).json()["requests"]
    assert len(calls) == 1  # the only key the simulator accepts worked: the app really holds it
    # Everything the server streamed to the page, the generation's result included.
    page.wait_for_function("run => (window.__e2eStreams || []).join('').includes(run)", arg=run_id)

    key = CANARY_KEY.encode()
    places: dict[str, bytes] = {
        "page HTML": page.content().encode(),
        "page text": studio.body_text().encode(),
        "GET /": page.request.get(url + "/").body(),
        "/config": page.request.get(url + "/config").body(),
        "/gradio_api/info": page.request.get(url + "/gradio_api/info").body(),
        "/gradio_api/info?all_endpoints=true": page.request.get(
            url + "/gradio_api/info?all_endpoints=true"
        ).body(),
        "storage": page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}])").encode(),
        "console": "\n".join(console).encode(),
    }
    read = 0
    for req in finished:
        resp = req.response()
        if resp is None:
            continue
        try:
            body = resp.body()
        except PlaywrightError:  # redirects have no body to read
            continue
        read += 1
        places[f"response {resp.status} {req.method} {resp.url}"] = body
    assert read >= 10, f"only {read} response bodies could be read"
    names = " ".join(places)
    for part in ("/gradio_api/upload", "/gradio_api/queue/join", "/gradio_api/file="):
        assert part in names, f"no {part} response was read"
    places["event streams"] = page.evaluate("() => window.__e2eStreams.join('')").encode()
    run_json = (outputs / run_id / "run.json").read_bytes()
    places["run.json"] = run_json

    leaks = [name for name, body in places.items() if key in body]
    assert not leaks, f"the API key shows up in: {leaks}"
    # Also not in a shortened or encoded form a visitor could piece together.
    for fragment in (CANARY_KEY[-12:].encode(), CANARY_KEY.encode().hex().encode()):
        assert not [n for n, b in places.items() if fragment in b], fragment
