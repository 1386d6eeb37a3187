"""Every environment variable the project reads, in one place, into a frozen Settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_API_BASE = "https://api.302.ai"


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number / {name} 必须是数字") from None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _float(env, name, default)
    if not float(value).is_integer():
        raise SystemExit(f"{name}={value!r} is not an integer / {name} 必须是整数")
    return int(value)


@dataclass(frozen=True)
class Settings:
    """What the library, the CLI and the app are configured with.

    `api_key` is kept out of repr so it never lands in a log or a traceback.
    """

    api_key: str = field(default="", repr=False)
    api_base: str = DEFAULT_API_BASE
    output_dir: Path = Path("outputs")
    presets_path: Path = Path(__file__).resolve().parent.parent / "presets.yaml"
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    download_timeout: float = 60.0
    # "upload": host the photo with 302.AI's file endpoint; "data": send a data: URL.
    photo_hosting: str = "upload"
    max_photo_edge: int = 2048
    max_photo_bytes: int = 4_500_000
    max_upload_bytes: int = 30_000_000
    max_result_bytes: int = 30_000_000
    lang: str = "cn"
    # Serving (the app): concurrent upstream calls and the queue.
    concurrency: int = 4
    queue_size: int = 64
    # Public Spaces: login, per-visitor and daily limits, visitor's own key.
    auth: str = field(default="", repr=False)
    per_visitor_hourly: int = 0
    daily_cap: int = 0
    allow_user_key: bool = False
    trusted_proxies: int = 0
    log_level: str = "INFO"
    simulator_latency: float = 1.5
    simulator_port: int = 0

    @property
    def offline(self) -> bool:
        """No key: the app and CLI run against the built-in simulator."""
        return not self.api_key

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the environment once (see the README's table of settings)."""
        env = os.environ if env is None else env
        hosting = env.get("PORTRAIT_PHOTO_HOSTING", "upload").strip().lower() or "upload"
        if hosting not in ("upload", "data"):
            raise SystemExit("PORTRAIT_PHOTO_HOSTING must be 'upload' or 'data' / 必须是 upload 或 data")
        presets = env.get("PORTRAIT_PRESETS", "").strip()
        return cls(
            api_key=env.get("AI302_API_KEY", "").strip(),
            api_base=(env.get("PORTRAIT_API_BASE", "").strip() or DEFAULT_API_BASE).rstrip("/"),
            output_dir=Path(env.get("PORTRAIT_OUTPUT_DIR", "").strip() or "outputs"),
            presets_path=Path(presets) if presets else cls.presets_path,
            connect_timeout=_float(env, "PORTRAIT_CONNECT_TIMEOUT", cls.connect_timeout),
            read_timeout=_float(env, "PORTRAIT_READ_TIMEOUT", cls.read_timeout),
            download_timeout=_float(env, "PORTRAIT_DOWNLOAD_TIMEOUT", cls.download_timeout),
            photo_hosting=hosting,
            lang=env.get("PORTRAIT_LANG", "cn").strip() or "cn",
            concurrency=max(1, _int(env, "PORTRAIT_CONCURRENCY", cls.concurrency)),
            queue_size=max(1, _int(env, "PORTRAIT_QUEUE_SIZE", cls.queue_size)),
            auth=env.get("PORTRAIT_AUTH", "").strip(),
            per_visitor_hourly=max(0, _int(env, "PORTRAIT_VISITOR_HOURLY_LIMIT", 0)),
            daily_cap=max(0, _int(env, "PORTRAIT_DAILY_CAP", 0)),
            allow_user_key=env.get("PORTRAIT_ALLOW_USER_KEY", "").strip().lower() in ("1", "true", "yes"),
            log_level=env.get("PORTRAIT_LOG_LEVEL", "INFO").strip().upper() or "INFO",
            trusted_proxies=max(0, _int(env, "PORTRAIT_TRUSTED_PROXIES", 0)),
            simulator_latency=_float(env, "PORTRAIT_SIM_LATENCY", cls.simulator_latency),
            simulator_port=_int(env, "PORTRAIT_SIM_PORT", 0),
        )

    def with_(self, **changes: object) -> Settings:
        """A copy with some values changed."""
        return replace(self, **changes)
