"""Portrait Studio: a client, a simulator and a CLI for 302.AI's Portrait API (图生图3.0-人像写真)."""

from .client import PortraitClient, PortraitImage, PortraitResult
from .errors import (
    AuthError,
    InvalidInputError,
    LimitError,
    ModerationError,
    PhotoError,
    PortraitError,
    PresetFileError,
    QuotaError,
    RateLimitError,
    RequestTimeoutError,
    ResultFetchError,
    UpstreamError,
)
from .images import PreparedPhoto, prepare_photo
from .params import PortraitRequest
from .settings import Settings
from .store import RunRecord, RunStore
from .studio import RunOutcome, Studio

__all__ = [
    "AuthError",
    "InvalidInputError",
    "LimitError",
    "ModerationError",
    "PhotoError",
    "PortraitClient",
    "PortraitError",
    "PortraitImage",
    "PortraitRequest",
    "PortraitResult",
    "PreparedPhoto",
    "PresetFileError",
    "QuotaError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResultFetchError",
    "RunOutcome",
    "RunRecord",
    "RunStore",
    "Settings",
    "Studio",
    "UpstreamError",
    "prepare_photo",
]
