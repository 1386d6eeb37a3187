"""The exact request of a run as code: a curl command, a Python `requests` script, a gradio_client call.

The body in every snippet is `request.to_payload()` serialised compactly as UTF-8
(`request_body`), so what the snippet sends is byte for byte the documented body. The key
never appears: shell snippets read `$AI302_API_KEY`, Python ones `os.environ["AI302_API_KEY"]`.
Prompts can hold anything (quotes, `$`, backticks, newlines, emoji); shell text is quoted
with `shlex.quote` and Python text with `repr`, so nothing in a prompt is ever interpreted.
"""

from __future__ import annotations

import base64
import json
import shlex
from dataclasses import dataclass
from typing import Any

from .client import GENERATE_PATH
from .params import SEED_RANDOM, PortraitRequest
from .store import RunRecord

KEY_ENV = "AI302_API_KEY"
CONTENT_TYPE = "application/json; charset=utf-8"
RESPONSE_FORMAT = "url"
# One argument on a Linux command line is capped at 128 KiB (MAX_ARG_STRLEN). A body with an
# inline data: photo is larger, so it is piped in by `printf`, a shell builtin with no such cap.
MAX_INLINE_BODY = 100_000
# What RunStore keeps instead of an inline photo (see Studio.save); the photo is input.jpg.
_DATA_URL_PREFIX = "data:image/jpeg;base64,"


def request_body(request: PortraitRequest) -> bytes:
    """The JSON body as bytes, exactly as PortraitClient sends it."""
    return request.body_bytes()


def generate_url(api_base: str) -> str:
    """The full generation URL (with `?response_format=url`) for an API base."""
    return f"{api_base.rstrip('/')}{GENERATE_PATH}?response_format={RESPONSE_FORMAT}"


def curl_command(request: PortraitRequest, api_base: str) -> str:
    """A bash/zsh command that sends exactly this request; the key comes from $AI302_API_KEY."""
    raw = request_body(request)
    body = raw.decode("utf-8")
    head = [
        f"curl -sS -X POST {shlex.quote(generate_url(api_base))}",
        f'  -H "Authorization: Bearer ${KEY_ENV}"',
        f"  -H {shlex.quote('Content-Type: ' + CONTENT_TYPE)}",
    ]
    if len(raw) <= MAX_INLINE_BODY:
        # The body starts with "{", never "@", so curl cannot mistake it for a file name.
        return " \\\n".join([*head, f"  --data-binary {shlex.quote(body)}"]) + "\n"
    # printf '%s' adds no newline, so the piped bytes are the body exactly.
    return f"printf '%s' {shlex.quote(body)} | " + " \\\n".join([*head, "  --data-binary @-"]) + "\n"


def _py(value: Any) -> str:
    """A Python literal for a str, int, float or None that evaluates back to exactly `value`.

    Strings go through JSON (double quotes, like the rest of the code): every escape JSON
    writes (\\n, \\", \\uXXXX...) means the same in Python, and other characters stay as typed.
    """
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _python_literal(payload: dict[str, Any]) -> str:
    """A dict literal, one field a line."""
    lines = [f"    {_py(key)}: {_py(value)}," for key, value in payload.items()]
    return "{\n" + "\n".join(lines) + "\n}"


def python_requests_code(request: PortraitRequest, api_base: str) -> str:
    """A Python script (needs `requests`) that sends exactly this request and prints the image URLs."""
    url = f"{api_base.rstrip('/')}{GENERATE_PATH}"
    return f'''"""Portrait API (302.AI 图生图3.0-人像写真): one generation, as sent by Portrait Studio."""

import json
import os

import requests

API_URL = {_py(url)}
payload = {_python_literal(request.to_payload())}
# Compact UTF-8 JSON: byte for byte the body Portrait Studio sends.
body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

response = requests.post(
    API_URL,
    params={{"response_format": {_py(RESPONSE_FORMAT)}}},
    headers={{
        "Authorization": "Bearer " + os.environ[{_py(KEY_ENV)}],
        "Content-Type": {_py(CONTENT_TYPE)},
    }},
    data=body,
    timeout=(10, 120),
)
result = response.json()
if result.get("code") != 10000:
    raise SystemExit(f"HTTP {{response.status_code}}: {{json.dumps(result, ensure_ascii=False)}}")
print("request_id:", result.get("request_id"))
for image_url in result["data"]["image_urls"]:
    print(image_url)
'''


@dataclass(frozen=True)
class AppCall:
    """The keyword arguments of the app's `/generate` endpoint (see `PortraitUI.api_generate`).

    `image` is a local file path or an http(s) URL. `prompt` is the user's own words: with a
    `preset` the app puts them into the style's template. A field left as None takes the
    preset's value, else the API default; `gen_mode` "" means the preset's mode, else auto.
    """

    image: str
    prompt: str = ""
    preset: str = ""
    width: int | None = None
    height: int | None = None
    gpen: float | None = None
    skin: float | None = None
    skin_unifi: float | None = None
    gen_mode: str = ""
    seed: int = SEED_RANDOM
    variations: int = 1


_APP_FIELDS = ("prompt", "preset", "width", "height", "gpen", "skin", "skin_unifi", "gen_mode", "seed")


def gradio_client_code(app_url: str, call: AppCall, *, login: bool = False) -> str:
    """A Python script (needs `gradio_client`) that calls the running app's /generate endpoint."""
    auth = ""
    if login:
        auth = ', auth=(os.environ["PORTRAIT_USER"], os.environ["PORTRAIT_PASSWORD"])'
    lines = [f"    image=handle_file({_py(call.image)}),"]
    lines += [f"    {name}={_py(getattr(call, name))}," for name in _APP_FIELDS]
    lines.append(f"    variations={_py(call.variations)},")
    return (
        '"""Portrait Studio app: the same generation through its /generate API endpoint."""\n\n'
        + ("import os\n\n" if login else "")
        + "from gradio_client import Client, handle_file\n\n"
        + f"client = Client({_py(app_url)}{auth})\n"
        + "files, record = client.predict(\n"
        + "\n".join(lines)
        + '\n    api_name="/generate",\n)\n'
        + "for item in files:\n"
        + '    print(item["path"] if isinstance(item, dict) else item)\n'
        + 'print("seeds:", [image["seed"] for image in record["images"]])\n'
    )


# -- saved runs --------------------------------------------------------------------------


@dataclass(frozen=True)
class SentRequest:
    """One request a saved run sent: a label ("seed 42", a style's name) and the request itself."""

    label: str
    request: PortraitRequest


def _request_from_meta(fields: dict[str, Any], record: RunRecord) -> PortraitRequest:
    known = {k: v for k, v in fields.items() if k in PortraitRequest.__dataclass_fields__}
    image_input = str(known.get("image_input") or "")
    if image_input.startswith("data:") and record.input_path is not None and record.input_path.is_file():
        # The store keeps a placeholder instead of the inline photo; input.jpg holds the same
        # JPEG bytes, so the data: URL that was sent can be rebuilt exactly.
        image_input = _DATA_URL_PREFIX + base64.b64encode(record.input_path.read_bytes()).decode("ascii")
    known["image_input"] = image_input
    return PortraitRequest(**known)


def sent_requests(record: RunRecord) -> list[SentRequest]:
    """Every request a saved run sent (one per image or failure), seeds as they were sent.

    Works for plain runs (`meta["request"]` + one seed per image) and for style sheets
    (`meta["cells"]`, each with its own request).
    """
    meta = record.meta
    if meta.get("kind") == "sheet":
        out = []
        for cell in meta.get("cells", []):
            label = f"{cell.get('name_zh', '')} / {cell.get('name_en', '')}".strip(" /") or cell["preset"]
            out.append(SentRequest(label, _request_from_meta(cell["request"], record)))
        return out
    base = _request_from_meta(meta.get("request", {}), record)
    seeds = [item["seed"] for item in meta.get("images", [])]
    seeds += [item["seed"] for item in meta.get("failures", []) if "seed" in item]
    if not seeds:
        return [SentRequest(f"seed {base.seed}", base)]
    return [SentRequest(f"seed {seed}", base.with_(seed=seed)) for seed in seeds]


def app_call_from_record(record: RunRecord, index: int = 0) -> AppCall:
    """The /generate arguments that repeat one request of a saved run through the app."""
    request = sent_requests(record)[index].request
    meta = record.meta
    preset = meta.get("preset") or ""
    user_prompt = meta.get("user_prompt", request.prompt if not preset else "")
    if meta.get("kind") == "sheet":
        preset = meta["cells"][index]["preset"]
    image = str(record.input_path) if record.input_path is not None else request.image_input
    return AppCall(
        image=image,
        prompt=user_prompt,
        preset=preset,
        width=request.width,
        height=request.height,
        gpen=request.gpen,
        skin=request.skin,
        skin_unifi=request.skin_unifi,
        # "auto" rather than "": an empty mode would let a preset's own mode take over.
        gen_mode=request.gen_mode or "auto",
        seed=request.seed,
        variations=1,
    )


@dataclass(frozen=True)
class RunSnippets:
    """The three snippets for one request of a saved run."""

    label: str
    curl: str
    python: str
    gradio: str | None


def snippets_for_record(record: RunRecord, *, index: int = 0, app_url: str | None = None) -> RunSnippets:
    """curl, Python and (given the app's URL) gradio_client code for one request of a saved run."""
    sent = sent_requests(record)[index]
    api_base = str(record.meta.get("api_base") or "https://api.302.ai")
    gradio = gradio_client_code(app_url, app_call_from_record(record, index)) if app_url else None
    return RunSnippets(
        label=sent.label,
        curl=curl_command(sent.request, api_base),
        python=python_requests_code(sent.request, api_base),
        gradio=gradio,
    )
