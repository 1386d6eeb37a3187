"""PortraitClient: HTTP to 302.AI (or the simulator); a response becomes a PortraitResult or a PortraitError."""

from __future__ import annotations

import base64
import binascii
import io
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from PIL import Image
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError
from urllib3.util.retry import Retry

from .errors import (
    AuthError,
    PhotoError,
    PortraitError,
    RequestTimeoutError,
    ResultFetchError,
    UpstreamError,
    error_from_response,
)
from .images import PreparedPhoto, check_image_bytes, fetch_image
from .params import SEED_MAX, SEED_RANDOM, PortraitRequest
from .settings import Settings

log = logging.getLogger("portrait.client")

GENERATE_PATH = "/doubao/drawing/portrait"
UPLOAD_PATH = "/302/upload-file"
SUCCESS = 10000
USER_AGENT = "portrait-studio/1.0"
# Retry-After from a server is honoured, but never for longer than this.
MAX_RETRY_AFTER = 20.0


class _CappedRetry(Retry):
    """urllib3 Retry that honours Retry-After only up to MAX_RETRY_AFTER seconds."""

    def get_retry_after(self, response):  # type: ignore[no-untyped-def]
        value = super().get_retry_after(response)
        return None if value is None else min(value, MAX_RETRY_AFTER)


def _retry_policy(attempts: int) -> Retry:
    # Only what provably did no paid work is retried: a refused connection (connect),
    # and 429/503 answers (the request was turned away). Never a read error: after the
    # body was sent, the generation may be running and would be paid twice.
    return _CappedRetry(
        total=attempts,
        connect=attempts,
        read=False,
        other=0,
        status=attempts,
        status_forcelist=(429, 503),
        allowed_methods=frozenset({"GET", "POST"}),
        backoff_factor=0.5,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


@dataclass(frozen=True)
class PortraitImage:
    """One generated portrait: the JPEG bytes as returned, and where it came from."""

    data: bytes
    url: str | None
    seed: int

    def pil(self) -> Image.Image:
        """The image as a PIL image."""
        return Image.open(io.BytesIO(self.data))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.pil().size


@dataclass
class PortraitResult:
    """A successful call: images, the seed that was sent, ids and timings, the raw JSON."""

    request: PortraitRequest
    images: list[PortraitImage]
    seed: int
    request_id: str
    time_elapsed: str
    wall_seconds: float
    raw: dict[str, Any] = field(repr=False)
    simulated: bool = False


def generate_seed() -> int:
    """A random seed to send, so that the seed of every result is known."""
    return random.SystemRandom().randrange(0, SEED_MAX)


class PortraitClient:
    """Talks to the Portrait API. Configure once (key, base URL, timeouts, retries), call many times."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        api_key: str | None = None,
        api_base: str | None = None,
        retries: int = 3,
        simulated: bool = False,
        pool_size: int = 16,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self._api_key = api_key if api_key is not None else self.settings.api_key
        self.api_base = (api_base or self.settings.api_base).rstrip("/")
        self.simulated = simulated
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=_retry_policy(retries), pool_connections=4, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"User-Agent": USER_AGENT, "Lang": self.settings.lang})
        base_host = (urlsplit(self.api_base).hostname or "").lower()
        self._result_hosts = frozenset({base_host}) if base_host else frozenset()

    def __repr__(self) -> str:
        return f"PortraitClient(api_base={self.api_base!r}, simulated={self.simulated})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self.session.close()

    def __enter__(self) -> PortraitClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        if not self._api_key:
            raise AuthError("未设置 API 密钥（AI302_API_KEY）。", "No API key is set (AI302_API_KEY).")
        return {"Authorization": f"Bearer {self._api_key}"}

    def _post(
        self, path: str, *, timeout: tuple[float, float], headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        url = self.api_base + path
        try:
            return self.session.post(
                url, headers={**self._auth(), **(headers or {})}, timeout=timeout, **kwargs
            )
        except requests.exceptions.ConnectTimeout:
            raise RequestTimeoutError(
                "连接 API 超时，请检查网络后重试。",
                "Connecting to the API timed out; check the network and retry.",
            ) from None
        except requests.exceptions.ReadTimeout:
            raise RequestTimeoutError() from None
        except requests.exceptions.RetryError as exc:
            raise UpstreamError(detail=type(exc).__name__) from None
        except requests.exceptions.ConnectionError as exc:
            if not _never_connected(exc):
                # Reset or closed after the request went out: the server was reached and may be working.
                raise UpstreamError(
                    "连接在请求途中被断开，请稍后重试（本次请求可能已计费）。",
                    "The connection was dropped mid-request; retry later (this call may have been charged).",
                ) from None
            raise UpstreamError(
                "无法连接到 API 服务，请检查网络或 PORTRAIT_API_BASE 设置。",
                "Cannot reach the API; check the network or the PORTRAIT_API_BASE setting.",
            ) from None
        except requests.RequestException as exc:
            raise UpstreamError(detail=type(exc).__name__) from None

    def host_photo(self, photo: PreparedPhoto) -> str:
        """Make the photo reachable by the API: upload it to 302.AI's file host, or inline it."""
        if self.settings.photo_hosting == "data":
            return photo.data_url()
        resp = self._post(
            UPLOAD_PATH,
            timeout=(self.settings.connect_timeout, 60.0),
            files={"file": ("photo.jpg", photo.jpeg, "image/jpeg")},
        )
        body = _json_or_none(resp)
        if resp.status_code == 200 and isinstance(body, dict) and body.get("code") == 200:
            url = body.get("data")
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                return url
        if resp.status_code == 200 and isinstance(body, dict) and "error" not in body:
            raise UpstreamError(
                "照片上传失败，请重试或换一张照片。",
                "Uploading the photo failed; retry or use another photo.",
                http_status=resp.status_code,
                detail=str(body.get("message") or "")[:120] or None,
            )
        raise error_from_response(resp.status_code, resp.content, retry_after=_retry_after(resp))

    def generate(self, request: PortraitRequest) -> PortraitResult:
        """Run one generation. A random seed (-1) is drawn here so the result's seed is known."""
        if request.seed == SEED_RANDOM:
            request = request.with_(seed=generate_seed())
        started = time.monotonic()
        resp = self._post(
            GENERATE_PATH,
            params={"response_format": "url"},
            # Compact UTF-8, byte for byte what portrait.snippets shows (requests' json= adds spaces).
            data=request.body_bytes(),
            headers={"Content-Type": "application/json; charset=utf-8"},
            timeout=(self.settings.connect_timeout, self.settings.read_timeout),
        )
        body = _json_or_none(resp)
        if not (resp.status_code == 200 and isinstance(body, dict) and body.get("code") == SUCCESS):
            err = error_from_response(
                resp.status_code, body if body is not None else resp.content, retry_after=_retry_after(resp)
            )
            log.info("generate failed: %r", err)
            raise err
        images = self._collect_images(body, request.seed)
        return PortraitResult(
            request=request,
            images=images,
            seed=request.seed,
            request_id=str(body.get("request_id") or ""),
            time_elapsed=str(body.get("time_elapsed") or ""),
            wall_seconds=time.monotonic() - started,
            raw=body,
            simulated=self.simulated,
        )

    def _collect_images(self, body: dict[str, Any], seed: int) -> list[PortraitImage]:
        data = body.get("data")
        rid = str(body.get("request_id") or "") or None
        if not isinstance(data, dict):
            raise UpstreamError(
                "服务返回的结果格式不对，请稍后重试。",
                "The service's answer was malformed; please retry later.",
                request_id=rid,
                detail="no data",
            )
        urls = [u for u in _as_list(data.get("image_urls")) if isinstance(u, str) and u]
        b64s = [b for b in _as_list(data.get("binary_data_base64")) if isinstance(b, str) and b]
        images: list[PortraitImage] = []
        for text in b64s:
            try:
                raw = base64.b64decode(text, validate=False)
                check_image_bytes(raw)
            except (binascii.Error, ValueError, PhotoError):
                continue
            images.append(PortraitImage(raw, None, seed))
        if urls and not images:
            images = self._download_all(urls, seed, rid)
        if not images:
            raise UpstreamError(
                "服务没有返回图片，请换个种子或稍后重试。",
                "The service returned no image; retry, perhaps with another seed.",
                request_id=rid,
                detail="empty result",
            )
        return images

    def _download_all(self, urls: list[str], seed: int, request_id: str | None) -> list[PortraitImage]:
        def one(url: str) -> PortraitImage | ResultFetchError:
            try:
                data = fetch_image(
                    self.session,
                    url,
                    max_bytes=self.settings.max_result_bytes,
                    timeout=self.settings.download_timeout,
                    allowed_hosts=self._result_hosts,
                )
            except ResultFetchError as err:
                return err
            except ValueError:  # a malformed URL from the server (urlsplit / IDNA raise ValueError)
                return ResultFetchError(detail="refused URL")
            return PortraitImage(data, url, seed)

        if len(urls) == 1:
            outcomes = [one(urls[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(4, len(urls))) as pool:
                outcomes = list(pool.map(one, urls))
        images = [o for o in outcomes if isinstance(o, PortraitImage)]
        if not images:
            first = next(o for o in outcomes if isinstance(o, ResultFetchError))
            first.request_id = request_id
            raise first
        return images


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _json_or_none(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
        return None


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    """True when no connection was made (refused, DNS, TLS or proxy failure): nothing was sent or charged."""
    if isinstance(exc, (requests.exceptions.SSLError, requests.exceptions.ProxyError)):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(getattr(cause, "reason", cause), NewConnectionError)


def _retry_after(resp: requests.Response) -> float | None:
    raw = resp.headers.get("Retry-After")
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


__all__ = ["PortraitClient", "PortraitImage", "PortraitResult", "PortraitError", "generate_seed"]
