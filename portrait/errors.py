"""One exception family. Each error knows its user-facing message in Chinese and English.

Callers can catch `PortraitError` or be precise. Every error carries the provider's
code, the HTTP status and the request id when there is one. No message ever holds the
API key: messages are built from fixed texts plus what the provider said.
"""

from __future__ import annotations

import json
from typing import Any


class PortraitError(Exception):
    """Base of every failure this library raises."""

    zh = "出错了，请稍后重试。"
    en = "Something went wrong. Please try again later."
    retryable = False

    def __init__(
        self,
        zh: str | None = None,
        en: str | None = None,
        *,
        code: int | str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.zh = zh or type(self).zh
        self.en = en or type(self).en
        self.code = code
        self.http_status = http_status
        self.request_id = request_id or None
        self.detail = detail
        self.field_name: str | None = None
        super().__init__(self.message())

    @property
    def kind(self) -> str:
        """A stable short name for the kind of error (for logs, tests and JSON)."""
        return type(self).__name__

    def message(self, lang: str | None = None) -> str:
        """The user-facing message: 'zh', 'en', or both (the default)."""
        if lang == "zh":
            text = self.zh
        elif lang == "en":
            text = self.en
        else:
            text = f"{self.zh} / {self.en}"
        extras = []
        if self.code is not None:
            extras.append(f"code {self.code}")
        if self.detail:
            extras.append(self.detail)
        return f"{text} ({'; '.join(extras)})" if extras else text

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description (no secrets are ever stored on an error)."""
        return {
            "kind": self.kind,
            "zh": self.zh,
            "en": self.en,
            "code": self.code,
            "http_status": self.http_status,
            "request_id": self.request_id,
            "detail": self.detail,
        }

    def __repr__(self) -> str:
        return f"{self.kind}(code={self.code!r}, http_status={self.http_status!r}, request_id={self.request_id!r})"


class InvalidInputError(PortraitError):
    """A field, photo or URL that the API would refuse; nothing was sent."""

    zh = "输入无效，请修改后重试。"
    en = "Invalid input; please change it and try again."

    @classmethod
    def field(cls, name: str, allowed: tuple[str, str], value: Any) -> InvalidInputError:
        """Refuse one field, naming it and its allowed values (allowed = (zh, en))."""
        try:
            shown = repr(value)
        except (ValueError, RecursionError):  # an int over 4300 digits, a too-deeply nested list
            shown = f"<{type(value).__name__}>"
        if len(shown) > 60:
            shown = shown[:57] + "..."
        err = cls(
            f"参数 {name} 的值 {shown} 无效，允许：{allowed[0]}。",
            f"Field {name} = {shown} is not allowed; use {allowed[1]}.",
        )
        err.field_name = name
        return err


class PhotoError(InvalidInputError):
    """The input photo cannot be used (not an image, broken, too large...)."""

    zh = "照片无法使用，请换一张 JPEG 或 PNG 照片。"
    en = "This photo cannot be used; please choose a JPEG or PNG photo."


class AuthError(PortraitError):
    """The API key is missing, wrong or expired."""

    zh = "API 密钥缺失、无效或已过期，请检查 AI302_API_KEY。"
    en = "The API key is missing, invalid or expired; check AI302_API_KEY."


class QuotaError(PortraitError):
    """The account's balance or a quota is used up."""

    zh = "账户余额不足或额度已用完，请到 302.AI 充值或等待额度恢复。"
    en = "The account balance or quota is used up; top up at 302.AI or wait for the quota to reset."


class RateLimitError(PortraitError):
    """Too many requests at once; waiting helps."""

    zh = "请求太频繁（限流/并发上限），请稍等片刻再试。"
    en = "Too many requests right now (rate or concurrency limit); wait a moment and retry."
    retryable = True

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)


class ModerationError(PortraitError):
    """The input or the output was refused by content moderation."""

    zh = "内容未通过审核，请更换照片或修改提示词。"
    en = "The content did not pass moderation; change the photo or rephrase the prompt."


class UpstreamError(PortraitError):
    """The provider failed (internal error, no channel, bad answer)."""

    zh = "服务端暂时出错，请稍后重试。"
    en = "The service had an internal problem; please retry in a little while."
    retryable = True


class RequestTimeoutError(PortraitError):
    """The API did not answer in time. The call may still have been charged."""

    zh = "服务响应超时，请稍后重试（本次请求可能已计费）。"
    en = "The service did not answer in time; retry later (this call may have been charged)."
    retryable = True


class ResultFetchError(PortraitError):
    """The portraits were made but could not be downloaded."""

    zh = "图片已生成但无法下载，请重试。"
    en = "The portraits were generated but could not be downloaded; please retry."
    retryable = True


class LimitError(PortraitError):
    """A limit set by the owner of this app (per visitor or per day) was reached."""

    zh = "已达到本应用的使用上限，请稍后再来，或使用你自己的 API 密钥。"
    en = "This app's usage limit was reached; come back later or use your own API key."


class PresetFileError(PortraitError):
    """The presets file is missing or broken; the message names the preset and the problem."""

    zh = "风格预设文件有误。"
    en = "The presets file is invalid."


# Gateway err_code -> (class, zh, en). Texts say what to do next.
_GATEWAY = {
    -10001: (
        AuthError,
        "缺少 API 密钥，请设置 AI302_API_KEY。",
        "The API key is missing; set AI302_API_KEY.",
    ),
    -10002: (UpstreamError, "该工具已停用或删除。", "This tool is disabled or deleted at 302.AI."),
    -10003: (UpstreamError, "302.AI 网络错误，请稍后重试。", "A network error at 302.AI; retry shortly."),
    -10004: (
        QuotaError,
        "账户余额不足，请到 302.AI 充值。",
        "Insufficient account balance; top up at 302.AI.",
    ),
    -10005: (AuthError, "API 密钥已过期，请更换密钥。", "The API key has expired; use a valid key."),
    -10006: (
        QuotaError,
        "总额度已用完，请提高额度。",
        "The key's total quota is used up; raise it at 302.AI.",
    ),
    -10007: (
        QuotaError,
        "今日额度已用完，请明天再试或提高额度。",
        "The key's daily quota is used up; retry tomorrow or raise it.",
    ),
    -10008: (
        UpstreamError,
        "暂无可用通道，请稍后重试。",
        "No channel is available right now; retry in a few minutes.",
    ),
    -10009: (InvalidInputError, "不支持该功能。", "This function is not supported."),
    -10010: (UpstreamError, "资源不存在。", "The resource was not found at 302.AI."),
    -10011: (InvalidInputError, "请求无效，请检查参数。", "The request is invalid; check the fields."),
    -10012: (
        QuotaError,
        "免费工具每小时额度已用完，请一小时后再试。",
        "The free tool's hourly quota is used up; retry in an hour.",
    ),
    -10018: (
        QuotaError,
        "本月额度已用完，请提高额度。",
        "The key's monthly quota is used up; raise it at 302.AI.",
    ),
    -1024: (
        RequestTimeoutError,
        "上游连接超时，请稍后重试。",
        "The upstream connection timed out; retry shortly.",
    ),
}

# Model (Volcengine) code -> (class, zh, en).
_MODEL = {
    50411: (
        ModerationError,
        "输入照片未通过审核，请更换照片。",
        "The input photo failed moderation; use a different photo.",
    ),
    50412: (
        ModerationError,
        "提示词未通过审核，请修改提示词。",
        "The prompt failed moderation; rephrase it.",
    ),
    50413: (
        ModerationError,
        "提示词含敏感或版权词，请修改提示词。",
        "The prompt has sensitive or copyrighted words; rephrase it.",
    ),
    50511: (
        ModerationError,
        "生成的图片未通过审核，请换个种子或修改提示词再试。",
        "The generated image failed moderation; retry with another seed or prompt.",
    ),
    50512: (
        ModerationError,
        "生成的文本未通过审核，请换个种子再试。",
        "The generated text failed moderation; retry with another seed.",
    ),
    50518: (
        ModerationError,
        "输入照片涉及版权，请更换照片。",
        "The input photo looks copyrighted; use a different photo.",
    ),
    50519: (
        ModerationError,
        "生成的图片涉及版权，请换个种子再试。",
        "The output looks copyrighted; retry with another seed.",
    ),
    50429: (
        RateLimitError,
        "请求太频繁（QPS 上限），请稍后再试。",
        "Too many requests per second; wait a moment and retry.",
    ),
    50430: (
        RateLimitError,
        "并发数已达上限，请稍后再试。",
        "Too many requests at once; wait a moment and retry.",
    ),
    50500: (
        UpstreamError,
        "模型服务内部错误，请稍后重试。",
        "The model service had an internal error; retry shortly.",
    ),
    50501: (
        UpstreamError,
        "模型服务内部错误，请稍后重试。",
        "The model service had an internal error; retry shortly.",
    ),
    50215: (
        InvalidInputError,
        "输入不符合该服务要求，请换一张单人清晰正脸照片。",
        "The input is not valid for this service; use a clear photo of one person.",
    ),
}


def _short(text: Any, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_from_response(
    http_status: int,
    body: bytes | str | dict | None,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> PortraitError:
    """Map any failed answer (gateway error, model error, non-JSON) to a PortraitError."""
    data: Any = body
    if isinstance(body, (bytes, str)):
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[..." nested too deep
            data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        code = err.get("err_code")
        cls, zh, en = _GATEWAY.get(code, (None, None, None)) if isinstance(code, int) else (None, None, None)
        if cls is None:
            cls = _class_for_status(http_status)
        detail = _short(err.get("message") or "") or None
        kwargs: dict[str, Any] = dict(
            code=code, http_status=http_status, request_id=request_id, detail=detail
        )
        if cls is RateLimitError:
            kwargs["retry_after"] = retry_after
        return cls(zh, en, **kwargs)
    if isinstance(data, dict) and "code" in data:
        code = data.get("code")
        rid = data.get("request_id") or request_id
        cls, zh, en = _MODEL.get(code, (None, None, None)) if isinstance(code, int) else (None, None, None)
        if cls is None:
            cls = _class_for_status(http_status)
        detail = _short(data.get("message") or "") or None
        kwargs = dict(
            code=code,
            http_status=http_status,
            request_id=rid if isinstance(rid, str) else None,
            detail=detail,
        )
        if cls is RateLimitError:
            kwargs["retry_after"] = retry_after
        return cls(zh, en, **kwargs)
    cls = _class_for_status(http_status)
    kwargs = dict(
        http_status=http_status,
        request_id=request_id,
        detail=f"HTTP {http_status}, unexpected reply",
    )
    if cls is RateLimitError:
        kwargs["retry_after"] = retry_after
    return cls(
        None if cls is not UpstreamError else "服务返回了无法识别的结果，请稍后重试。",
        None
        if cls is not UpstreamError
        else "The service returned an unreadable answer; please retry later.",
        **kwargs,
    )


def _class_for_status(status: int) -> type[PortraitError]:
    if status in (401, 403):
        return AuthError
    if status == 402:
        return QuotaError
    if status == 429:
        return RateLimitError
    if status in (408, 504):
        return RequestTimeoutError
    if status in (400, 422):
        return InvalidInputError
    return UpstreamError
