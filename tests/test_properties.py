"""Property-based tests (hypothesis) for the two places where outside data enters the library.

1. Field validation. `PortraitRequest` accepts every value inside the ranges documented in
   /work/shared/reference/portrait-api.md and puts it into `to_payload()` unchanged (seed as a
   string, no `prompt` when empty, no `gen_mode` when auto). Every value outside is refused with
   an `InvalidInputError` whose Chinese and English texts both name the field; no other
   exception type ever escapes.
2. Response parsing. Whatever a server answers (any status from the list below, any headers from
   a menu, any bytes, any JSON, JSON shaped like the contract with fields of random types, gateway
   and model error shapes, result image URLs pointing at good or broken images),
   `PortraitClient.generate` returns a `PortraitResult` or raises a `PortraitError`, nothing else.
   This runs over real HTTP: a tiny `ThreadingHTTPServer` on 127.0.0.1 replies with whatever the
   current example put in its lock-protected slots. `error_from_response` is also checked directly.

Self-contained: needs neither the shared conftest nor the simulator. No example database is kept
(`database=None`), so runs do not depend on each other.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import math
import struct
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from portrait.client import GENERATE_PATH, PortraitClient, PortraitResult
from portrait.errors import InvalidInputError, PortraitError, error_from_response
from portrait.images import check_image_bytes
from portrait.params import GEN_MODES, SEED_MAX, SIZE_MAX, SIZE_MIN, STRENGTH_FIELDS, PortraitRequest
from portrait.settings import Settings

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

API_KEY = "sk-prop-LEAKCANARY-5d1e"
PHOTO_URL = "https://file.302.ai/gpt/imgs/fbe0b42817fb1301cdaca5301a2b1d38.jpg"
STRENGTHS = tuple(f.name for f in STRENGTH_FIELDS)
DOCUMENTED_KEYS = {"image_input", "prompt", "width", "height", *STRENGTHS, "gen_mode", "seed"}
FIELDS = ("image_input", "prompt", "width", "height", *STRENGTHS, "gen_mode", "seed")

# ---------------------------------------------------------------------------------------------
# 1. Field validation
# ---------------------------------------------------------------------------------------------

# Ints too long to print (> 4300 digits) or to turn into a float.
HUGE_INTS = st.sampled_from([10**400, -(10**400), 10**5000, -(10**5000)])
# Values that are never a valid number or mode (None is added per field: it means auto for gen_mode).
JUNK = st.one_of(
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.binary(max_size=8),
    st.complex_numbers(),
    st.decimals(),
    st.fractions(),
    st.tuples(st.integers()),
)

SIZE_OK = st.integers(SIZE_MIN, SIZE_MAX)
SIZE_BAD = st.one_of(
    st.integers().filter(lambda v: not SIZE_MIN <= v <= SIZE_MAX),
    st.floats().filter(lambda v: not (v.is_integer() and SIZE_MIN <= v <= SIZE_MAX)),
    st.floats(SIZE_MIN, SIZE_MAX).filter(lambda v: not v.is_integer()),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.integers(1, 9).map(lambda k: SIZE_MIN + k / 10),
    st.text(),
    st.none(),
    HUGE_INTS,
    JUNK,
)

STRENGTH_OK = st.one_of(st.integers(0, 10).map(lambda k: k / 10), st.sampled_from([0, 1]))


def _off_grid(value: float) -> bool:
    """Outside [0, 1], not finite, or clearly (more than float noise) off the 0.1 grid."""
    if not math.isfinite(value) or not 0 <= value <= 1:
        return True
    return abs(value * 10 - round(value * 10)) > 1e-5


STRENGTH_BAD = st.one_of(
    st.integers().filter(lambda v: v not in (0, 1)),
    st.floats().filter(_off_grid),
    st.integers(0, 100).filter(lambda k: k % 10).map(lambda k: k / 100),
    st.integers(0, 9).map(lambda k: k / 10 + 0.0004),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.1, 1.1, "0.3", "1"]),
    st.text(),
    st.none(),
    HUGE_INTS,
    JUNK,
)

GEN_MODE_OK = st.sampled_from([None, "auto", *GEN_MODES])
GEN_MODE_BAD = st.one_of(
    st.text().filter(lambda s: s not in ("", "auto", "none", *GEN_MODES)),
    st.sampled_from([m.upper() for m in GEN_MODES] + [f" {m}" for m in GEN_MODES] + ["AUTO", "random"]),
    st.lists(st.sampled_from(GEN_MODES), max_size=2),
    st.integers(),
    st.floats(),
    st.sampled_from([False, True, 0, 0.0, [], {}, ()]),
    JUNK,
)

SEED_INT_OK = st.one_of(st.just(-1), st.integers(0, SEED_MAX), st.sampled_from([0, SEED_MAX]))
SEED_OK = st.one_of(SEED_INT_OK, SEED_INT_OK.map(str), SEED_INT_OK.map(lambda v: f" {v} "))
SEED_INT_BAD = st.one_of(st.integers(max_value=-2), st.integers(min_value=SEED_MAX + 1))


def _non_numeric(text: str) -> bool:
    try:
        int(text.strip())
    except ValueError:
        return True
    return False


SEED_BAD = st.one_of(
    SEED_INT_BAD,
    SEED_INT_BAD.map(str),
    st.text().filter(_non_numeric),
    st.sampled_from(["", " ", "1.5", "1e3", "0x10", "-1.0", "random", "-", "nan"]),
    st.floats().filter(lambda v: not v.is_integer()),
    st.floats().filter(lambda v: v.is_integer() and v != -1 and not 0 <= v <= SEED_MAX),
    st.none(),
    HUGE_INTS,
    JUNK,
)

OK = {
    "image_input": st.text(),
    "prompt": st.text(),
    "width": SIZE_OK,
    "height": SIZE_OK,
    **{name: STRENGTH_OK for name in STRENGTHS},
    "gen_mode": GEN_MODE_OK,
    "seed": SEED_OK,
}
BAD = {
    "image_input": st.one_of(st.none(), st.integers(), JUNK),
    "prompt": st.one_of(st.none(), st.integers(), JUNK),
    "width": SIZE_BAD,
    "height": SIZE_BAD,
    **{name: STRENGTH_BAD for name in STRENGTHS},
    "gen_mode": GEN_MODE_BAD,
    "seed": SEED_BAD,
}
ONE_BAD_FIELD = st.one_of(*(st.tuples(st.just(name), BAD[name]) for name in FIELDS))


@PROPERTY
@given(
    prompt=st.text(),
    width=SIZE_OK,
    height=SIZE_OK,
    gpen=STRENGTH_OK,
    skin=STRENGTH_OK,
    skin_unifi=STRENGTH_OK,
    gen_mode=GEN_MODE_OK,
    seed=SEED_OK,
)
def test_every_documented_value_is_accepted_and_reaches_the_payload_unchanged(
    prompt, width, height, gpen, skin, skin_unifi, gen_mode, seed
):
    strengths = {"gpen": gpen, "skin": skin, "skin_unifi": skin_unifi}
    request = PortraitRequest(
        image_input=PHOTO_URL,
        prompt=prompt,
        width=width,
        height=height,
        gen_mode=gen_mode,
        seed=seed,
        **strengths,
    )
    body = request.to_payload()

    assert set(body) <= DOCUMENTED_KEYS
    assert body["image_input"] == PHOTO_URL
    assert body["width"] == width and type(body["width"]) is int
    assert body["height"] == height and type(body["height"]) is int
    for name, value in strengths.items():
        assert body[name] == value and type(body[name]) is float
    assert body["seed"] == str(int(seed)) and isinstance(body["seed"], str)
    if prompt.strip():
        assert body["prompt"] == prompt.strip()
    else:
        assert "prompt" not in body
    if gen_mode in (None, "auto"):
        assert "gen_mode" not in body
    else:
        assert body["gen_mode"] == gen_mode
    json.dumps(body, allow_nan=False)


@PROPERTY
@given(name=st.sampled_from(STRENGTHS), tenths=st.integers(0, 10))
def test_strengths_with_float_noise_snap_to_the_exact_tenth(name, tenths):
    noisy = tenths * 0.1  # 3 * 0.1 == 0.30000000000000004
    assert PortraitRequest(image_input=PHOTO_URL, **{name: noisy}).to_payload()[name] == tenths / 10


@PROPERTY
@given(case=ONE_BAD_FIELD)
@example(case=("gpen", 10**400))
@example(case=("width", 10**5000))
@example(case=("seed", 10**5000))
@example(case=("seed", "9" * 5000))
@example(case=("gen_mode", False))
@example(case=("gen_mode", []))
@example(case=("gen_mode", 0))
@example(case=("skin", math.nan))
@example(case=("width", True))
@example(case=("seed", True))
def test_every_value_outside_the_documented_range_is_refused_naming_its_field(case):
    name, value = case
    with pytest.raises(InvalidInputError) as caught:
        PortraitRequest(**{"image_input": PHOTO_URL, name: value})
    err = caught.value
    assert err.field_name == name
    assert name in err.en and name in err.zh
    str(err)  # the message can always be rendered


@PROPERTY
@given(fields=st.fixed_dictionaries({}, optional={name: st.one_of(OK[name], BAD[name]) for name in FIELDS}))
def test_no_exception_but_invalid_input_error_escapes_validation(fields):
    try:
        request = PortraitRequest(**fields)
    except InvalidInputError as err:
        assert err.field_name in FIELDS
        return
    # What was accepted is already normal: building it again changes nothing.
    assert PortraitRequest(**request.settings_dict()) == request
    try:
        body = request.to_payload()
    except InvalidInputError as err:
        assert err.field_name == "image_input" and not request.image_input
        return
    assert set(body) <= DOCUMENTED_KEYS
    assert SIZE_MIN <= body["width"] <= SIZE_MAX and SIZE_MIN <= body["height"] <= SIZE_MAX
    assert all(round(body[name] * 10) / 10 == body[name] and 0 <= body[name] <= 1 for name in STRENGTHS)
    assert body.get("gen_mode", "creative") in GEN_MODES
    assert int(body["seed"]) == -1 or 0 <= int(body["seed"]) <= SEED_MAX
    json.dumps(body, allow_nan=False)


# ---------------------------------------------------------------------------------------------
# 2. Response parsing, over real HTTP
# ---------------------------------------------------------------------------------------------

STATUSES = (200, 201, 400, 401, 402, 403, 404, 429, 500, 502, 503, 504)
GATEWAY_CODES = (-10001, -10002, -10003, -10004, -10005, -10006, -10007, -10008, -10009, -10010, -10011)
GATEWAY_CODES += (-10012, -10018, -1024)
MODEL_CODES = (50411, 50412, 50413, 50511, 50512, 50518, 50519, 50429, 50430, 50500, 50501, 50215)
# Stands for the test server's base URL inside generated bodies; swapped in when the reply is sent.
SERVER = "http://@@test-server@@"


def _encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def _claims_size(png: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR rewritten to claim another size (cheap stand-in for a huge image)."""
    ihdr = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


GOOD_JPEG_A = _encoded(Image.new("RGB", (64, 64), (200, 120, 90)), "JPEG")
GOOD_JPEG_B = _encoded(Image.new("RGB", (96, 72), (20, 40, 160)), "JPEG")
GOOD_PNG = _encoded(Image.new("RGB", (80, 80), (0, 200, 0)), "PNG")
# (status, content type, body) served at /img/<n>.
IMAGES: dict[int, tuple[int, str, bytes]] = {
    0: (200, "image/jpeg", GOOD_JPEG_A),
    1: (200, "image/jpeg", GOOD_JPEG_B),
    2: (200, "image/png", GOOD_PNG),
    3: (200, "image/jpeg", GOOD_JPEG_A[: len(GOOD_JPEG_A) // 2]),  # truncated
    4: (200, "image/jpeg", b"definitely not a picture"),
    5: (200, "image/jpeg", b""),
    6: (200, "image/jpeg", _encoded(Image.new("RGB", (8, 8)), "JPEG")),  # under the 64 px minimum
    7: (200, "image/png", _claims_size(GOOD_PNG, 9000, 9000)),  # 81 MP, over the limit
    8: (404, "text/plain", b"gone"),
    9: (500, "image/jpeg", GOOD_JPEG_A),  # right bytes, wrong status
    10: (200, "text/html", b"<html><body>login</body></html>"),
}
GOOD_IMAGES = {0, 1, 2}
GOOD_BYTES = {GOOD_JPEG_A, GOOD_JPEG_B, GOOD_PNG}
MISSING_IMAGE = max(IMAGES) + 1  # served as 404


class _Handler(BaseHTTPRequestHandler):
    """POST /doubao/drawing/portrait -> the scripted reply; GET /img/<n> -> an image slot."""

    server: _ScriptedServer
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if urlsplit(self.path).path != GENERATE_PATH:
            self._reply(404, (("Content-Type", "text/plain"),), b"no such endpoint")
            return
        with self.server.lock:
            status, headers, body = self.server.reply
        self._reply(status, headers, body)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        with self.server.lock:
            entry = self.server.images.get(path)
        if entry is None:
            self._reply(404, (("Content-Type", "text/plain"),), b"no such image")
            return
        status, content_type, body = entry
        self._reply(status, (("Content-Type", content_type),), body)

    def _reply(self, status: int, headers: tuple[tuple[str, str], ...], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.reply: tuple[int, tuple[tuple[str, str], ...], bytes] = (200, (), b"{}")
        self.images = {f"/img/{n}": entry for n, entry in IMAGES.items()}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def script(self, status: int, headers: tuple[tuple[str, str], ...], body: bytes) -> None:
        with self.lock:
            self.reply = (status, headers, body)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up early is not a test failure


@pytest.fixture(scope="module")
def server():
    srv = _ScriptedServer()
    thread = threading.Thread(target=srv.serve_forever, name="property-test-server", daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def client(server):
    settings_ = Settings(
        api_key=API_KEY, api_base=server.url, read_timeout=3, connect_timeout=2, download_timeout=3
    )
    with PortraitClient(settings_, retries=0) as c:
        yield c


@dataclass(frozen=True)
class Reply:
    """One scripted answer. `text` (JSON, may hold SERVER) is encoded at send time; `raw` is sent as is."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    text: str | None = None
    raw: bytes = b""
    encoding: str = "utf-8"
    gzipped: bool = False

    def render(self, base_url: str) -> tuple[int, tuple[tuple[str, str], ...], bytes]:
        body = self.raw if self.text is None else self.text.replace(SERVER, base_url).encode(self.encoding)
        if self.gzipped:
            body = gzip.compress(body)
        return self.status, self.headers, body


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=12,
)
HEADER_MENU = st.sampled_from(
    [
        ("Content-Type", "application/json"),
        ("Content-Type", "application/json; charset=utf-8"),
        ("Content-Type", "text/html; charset=latin-1"),
        ("Content-Type", "application/json; charset=no-such-codec"),
        ("Content-Type", "image/jpeg"),
        ("Content-Encoding", "gzip"),
        ("Content-Encoding", "deflate"),
        ("Transfer-Encoding", "chunked"),
        ("Connection", "close"),
        ("X-Request-Id", "abc123"),
    ]
)
RETRY_AFTER = st.tuples(
    st.just("Retry-After"),
    st.one_of(
        st.sampled_from(["0", "1.5", "-3", "nan", "inf", "1e999", "Wed, 21 Oct 2015 07:28:00 GMT"]),
        st.text("0123456789.-+eE abc", max_size=10),
    ),
)
HEADERS = st.lists(st.one_of(HEADER_MENU, RETRY_AFTER), max_size=3, unique_by=lambda h: h[0]).map(tuple)

SERVER_IMAGE_URLS = st.integers(0, MISSING_IMAGE).map(lambda n: f"{SERVER}/img/{n}")
NASTY_URLS = st.sampled_from(
    [
        "",
        "http://[",
        "http://[abc]/img/0",
        "http://a\uff03b/img/0",
        "https://",
        "ftp://127.0.0.1/img/0",
        "http://10.0.0.1/img/0",
        "http://127.0.0.1:1/img/0",
        "http://" + "a" * 70 + "/img/0",
        "http://\ud800/img/0",
        "javascript:alert(1)",
        f"{SERVER}/img/0?x=1#frag",
        f" {SERVER}/img/1 ",
        f"{SERVER}/img/0\x00",
        f"{SERVER}/img/../img/1",
    ]
)
URL_ITEMS = st.one_of(SERVER_IMAGE_URLS, NASTY_URLS, st.text(max_size=30), st.integers(), st.none())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


B64_ITEMS = st.one_of(
    st.sampled_from(
        [
            "",
            _b64(GOOD_JPEG_A),
            _b64(GOOD_PNG),
            _b64(GOOD_JPEG_A)[:-7],
            _b64(GOOD_JPEG_A[:200]),
            _b64(b"junk bytes"),
            "data:image/jpeg;base64," + _b64(GOOD_JPEG_B),
            "!!!!",
            "YWJj",
            "YWJ",
            "é" * 8,
        ]
    ),
    st.text(max_size=40),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=40),
    st.integers(),
    st.none(),
)
ANY_CODE = st.one_of(
    st.just(10000),
    st.sampled_from([10000.0, "10000", True, 0, -1, 200, *MODEL_CODES]),
    JSON_VALUES,
)
CONTRACT_DATA = st.one_of(
    st.fixed_dictionaries(
        {
            "image_urls": st.one_of(st.lists(URL_ITEMS, max_size=4), JSON_VALUES),
            "binary_data_base64": st.one_of(st.lists(B64_ITEMS, max_size=3), JSON_VALUES),
        },
        optional={
            "algorithm_base_resp": JSON_VALUES,
            "llm_result": JSON_VALUES,
            "request_id": JSON_VALUES,
        },
    ),
    JSON_VALUES,
)
CONTRACT_BODY = st.fixed_dictionaries(
    {"code": ANY_CODE, "data": CONTRACT_DATA},
    optional={
        "message": JSON_VALUES,
        "request_id": JSON_VALUES,
        "status": ANY_CODE,
        "time_elapsed": st.one_of(st.just("20.464465228s"), JSON_VALUES),
    },
)
GATEWAY_BODY = st.fixed_dictionaries(
    {
        "error": st.one_of(
            st.fixed_dictionaries(
                {"err_code": st.one_of(st.sampled_from(GATEWAY_CODES), JSON_VALUES)},
                optional={
                    "message": JSON_VALUES,
                    "message_cn": JSON_VALUES,
                    "message_jp": JSON_VALUES,
                    "type": JSON_VALUES,
                },
            ),
            JSON_VALUES,
        )
    }
)
MODEL_BODY = st.fixed_dictionaries(
    {"code": st.one_of(st.sampled_from(MODEL_CODES), JSON_VALUES)},
    optional={
        "data": JSON_VALUES,
        "message": JSON_VALUES,
        "request_id": JSON_VALUES,
        "status": JSON_VALUES,
        "time_elapsed": JSON_VALUES,
    },
)
# Bodies no random generator is likely to hit: nesting too deep to parse, numbers too long to
# convert, a JSON string holding JSON, byte-order marks, NaN.
NASTY_BODIES = st.sampled_from(
    [
        b"",
        b"null",
        b"NaN",
        b'"{\\"code\\": 50413}"',
        b"[" * 50_000,
        b'{"a": ' * 20_000,
        b"1" * 5000,
        b'{"code": ' + b"9" * 5000 + b"}",
        b'{"code": 10000, "data": {"image_urls": ["' + b"9" * 10 + b'"], "x": ' + b"[" * 5000 + b"}}",
        b'\xef\xbb\xbf{"code": 10000, "data": null}',
        json.dumps({"code": 10000, "data": {"image_urls": [[[[]]]]}}).encode("utf-16"),
        b'{"error": {"err_code": -10004, "message": ' + b"[" * 990 + b"]" * 990 + b"}}",
    ]
)


@st.composite
def replies(draw: st.DrawFn, bodies: st.SearchStrategy[Any], *, json_body: bool) -> Reply:
    status = draw(st.sampled_from(STATUSES))
    headers = draw(HEADERS)
    gzipped = ("Content-Encoding", "gzip") in headers and draw(st.booleans())
    if not json_body:
        return Reply(status, headers, raw=draw(bodies), gzipped=gzipped)
    text = json.dumps(draw(bodies))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-32"]))
    return Reply(status, headers, text=text, encoding=encoding, gzipped=gzipped)


REQUEST = PortraitRequest(image_input=PHOTO_URL, prompt="长出满脸的胡子", seed=42)


def _generate(
    client: PortraitClient, server: _ScriptedServer, reply: Reply
) -> PortraitResult | PortraitError:
    """Script the reply, call generate; any exception other than PortraitError fails the test."""
    server.script(*reply.render(server.url))
    try:
        outcome: PortraitResult | PortraitError = client.generate(REQUEST)
    except PortraitError as err:
        outcome = err
    _check_outcome(server, reply, outcome)
    return outcome


def _check_outcome(server: _ScriptedServer, reply: Reply, outcome: PortraitResult | PortraitError) -> None:
    if isinstance(outcome, PortraitError):
        for text in (str(outcome), repr(outcome), outcome.message("zh"), outcome.message("en")):
            assert API_KEY not in text
        assert outcome.zh and outcome.en
        json.dumps(outcome.as_dict(), default=repr)
        return
    assert isinstance(outcome, PortraitResult)
    assert reply.status == 200, "only HTTP 200 can be a success"
    assert outcome.images and outcome.seed == REQUEST.seed
    for image in outcome.images:
        check_image_bytes(image.data)
        assert image.data in GOOD_BYTES
        assert image.seed == REQUEST.seed
        if image.url is not None:  # downloads only ever come from the API's own host here
            assert urlsplit(image.url.strip()).hostname == "127.0.0.1"


@PROPERTY
@given(reply=replies(st.one_of(st.binary(max_size=400), NASTY_BODIES), json_body=False))
def test_any_bytes_from_the_server_become_a_result_or_a_portrait_error(client, server, reply):
    assert isinstance(_generate(client, server, reply), PortraitError)


@PROPERTY
@given(reply=replies(JSON_VALUES, json_body=True))
def test_any_json_value_from_the_server_becomes_a_portrait_error(client, server, reply):
    # A JSON value that is not a dict with code 10000 and image data is never a success.
    assert isinstance(_generate(client, server, reply), PortraitError)


@PROPERTY
@given(reply=replies(CONTRACT_BODY, json_body=True))
def test_contract_shaped_json_with_random_field_types_becomes_a_result_or_a_portrait_error(
    client, server, reply
):
    _generate(client, server, reply)


@PROPERTY
@given(reply=replies(GATEWAY_BODY, json_body=True))
def test_gateway_shaped_errors_with_any_err_code_become_portrait_errors(client, server, reply):
    outcome = _generate(client, server, reply)
    assert isinstance(outcome, PortraitError)
    assert outcome.http_status in (reply.status, None)  # None: the transport failed (bad encoding)


@PROPERTY
@given(reply=replies(MODEL_BODY, json_body=True))
def test_model_shaped_errors_with_any_code_become_portrait_errors(client, server, reply):
    assert isinstance(_generate(client, server, reply), PortraitError)


@PROPERTY
@given(
    good=st.lists(st.sampled_from(sorted(GOOD_IMAGES)), min_size=1, max_size=3),
    others=st.lists(URL_ITEMS, max_size=3),
    b64=st.lists(st.sampled_from(["", "!!!!", _b64(b"junk bytes")]), max_size=2),
    order=st.randoms(use_true_random=False),
    extra=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3),
)
def test_a_success_with_a_downloadable_image_url_always_yields_that_image(
    client, server, good, others, b64, order, extra
):
    urls: list[Any] = [f"{SERVER}/img/{n}" for n in good] + others
    order.shuffle(urls)
    body = {**extra, "code": 10000, "data": {"image_urls": urls, "binary_data_base64": b64}}
    outcome = _generate(client, server, Reply(200, (("Content-Type", "application/json"),), json.dumps(body)))
    assert isinstance(outcome, PortraitResult)
    got = {image.data for image in outcome.images}
    assert {IMAGES[n][2] for n in good} <= got


@PROPERTY
@given(
    data=st.sampled_from([GOOD_JPEG_A, GOOD_JPEG_B, GOOD_PNG]),
    junk=st.lists(B64_ITEMS.filter(lambda b: b not in (_b64(GOOD_JPEG_A), _b64(GOOD_PNG))), max_size=2),
    urls=st.lists(URL_ITEMS, max_size=2),
)
def test_a_success_with_valid_base64_image_data_yields_it_without_downloading(
    client, server, data, junk, urls
):
    body = {"code": 10000, "data": {"image_urls": urls, "binary_data_base64": [*junk, _b64(data)]}}
    outcome = _generate(client, server, Reply(200, (), json.dumps(body)))
    assert isinstance(outcome, PortraitResult)
    assert all(image.url is None for image in outcome.images)
    assert data in {image.data for image in outcome.images}


# -- error_from_response directly ------------------------------------------------------------------

ANY_BODY = st.one_of(
    st.binary(max_size=300),
    NASTY_BODIES,
    st.text(max_size=300),
    JSON_VALUES.map(json.dumps),
    st.one_of(CONTRACT_BODY, GATEWAY_BODY, MODEL_BODY).map(json.dumps),
    st.one_of(CONTRACT_BODY, GATEWAY_BODY, MODEL_BODY),
    st.dictionaries(st.one_of(st.text(max_size=8), st.integers(), st.none()), JSON_VALUES, max_size=4),
    NASTY_BODIES.map(lambda b: b.decode("utf-8", "replace")),
    st.none(),
)


@PROPERTY
@given(
    status=st.one_of(st.sampled_from(STATUSES), st.integers(100, 599)),
    body=ANY_BODY,
    request_id=st.one_of(st.none(), st.text(max_size=20)),
    retry_after=st.one_of(st.none(), st.floats()),
)
def test_error_from_response_always_returns_a_portrait_error_and_never_raises(
    status, body, request_id, retry_after
):
    err = error_from_response(status, body, request_id=request_id, retry_after=retry_after)
    assert isinstance(err, PortraitError)
    assert err.http_status == status
    assert err.zh and err.en
    str(err)
    repr(err)


@PROPERTY
@given(
    code=st.sampled_from(GATEWAY_CODES),
    status=st.sampled_from(STATUSES),
    message=JSON_VALUES,
    as_bytes=st.booleans(),
)
def test_a_documented_gateway_err_code_decides_the_error_kind_whatever_the_status(
    code, status, message, as_bytes
):
    body = {"error": {"err_code": code, "message": message, "type": "api_error"}}
    reference = type(error_from_response(500, body))
    err = error_from_response(status, json.dumps(body).encode() if as_bytes else body)
    assert type(err) is reference
    assert err.code == code
