"""What went wrong with a model call, classified once, as docs/models.md#the-error-table-request-layer says.

Every failure of a call becomes a `ModelCallError` whose `kind` decides what happens next: retry the same model,
cool it down and rotate, or fail the task with a message the user can act on.
"""

from __future__ import annotations

import email.utils
import enum
import re
import time
from collections.abc import Mapping
from typing import Any

SOON_SECONDS = 60.0


class ErrorKind(str, enum.Enum):
    RATE_LIMIT = "rate_limit"  # 429 per-minute: cool down until Retry-After, rotate if another model is ready
    DAILY_CAP = "daily_cap"  # 429 daily cap: cool down until the reset, rotate
    CREDITS = "credits"  # 402: no retry, provider cooled down for the day
    AUTH = "auth"  # 401/403: no retry
    TRANSIENT = "transient"  # 408, 5xx, timeouts, truncated streams, error bodies: retry, then rotate
    CONTEXT_LENGTH = "context_length"  # 400 context too long: shrink once, then a larger model
    MODEL_UNAVAILABLE = "model_unavailable"  # 404 and friends: rotate
    BAD_REQUEST = "bad_request"  # other 4xx: our request is wrong; no retry
    BUDGET = "budget"  # our own cap would be passed: not sent
    NO_MODEL = "no_model"  # no model in the catalog meets the task's requirements


class ModelCallError(Exception):
    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        model: str | None = None,
        retry_after: float | None = None,
        reset_at: float | None = None,
        fatal: bool | None = None,
        figures: ContextFigures | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.model = model
        self.retry_after = retry_after
        self.reset_at = reset_at
        self._fatal = fatal
        self.figures = figures  # a context-length error: the sizes the provider gave

    @property
    def fatal(self) -> bool:
        """No other model or later attempt can help (the user must act)."""
        if self._fatal is not None:
            return self._fatal
        return self.kind in (
            ErrorKind.AUTH,
            ErrorKind.CREDITS,
            ErrorKind.BAD_REQUEST,
            ErrorKind.BUDGET,
            ErrorKind.NO_MODEL,
        )

    def __str__(self) -> str:
        where = f" ({self.model})" if self.model else ""
        code = f"HTTP {self.status}: " if self.status else ""
        return f"{code}{self.message}{where}"


class EmptyStream(ModelCallError):
    """HTTP 200, then the stream ended without a single event: a transient failure, unless the prompt turns out to
    be larger than the model's context (`ModelGateway` asks the endpoint's tokenizer)."""

    def __init__(self, message: str, *, model: str | None = None) -> None:
        super().__init__(ErrorKind.TRANSIENT, message, model=model)


# --- context length exceeded ---------------------------------------------------------------------------------------
# The words providers use. OpenAI, vLLM, OpenRouter and llama-cpp-python (400): "This model's maximum context length is
# 4096 tokens. However, you requested 4170 tokens (...)"; llama-cpp-python's engine: "Requested tokens (4170) exceed
# context window of 4096"; llama.cpp's llama-server: "the request exceeds the available context size" (with n_ctx and
# n_prompt_tokens); Ollama: "input length exceeds the context length"; Anthropic-style: "prompt is too long".
CONTEXT_WORDS = (
    "context length",
    "context_length",
    "maximum context",
    "context window",
    "context size",
    "exceed_context",
    "too many tokens",
    "prompt is too long",
    "input is too long",
    "exceeds the context",
)
# Where each figure stands in the providers' words (lower-cased, thousands separators removed).
_LIMIT = (
    r"context window of (\d+)",
    r"maximum context length is (\d+)",
    r"(\d+) (?:tokens? )?maximum",
    r"context (?:window|length|size) (?:is|of) (\d+)",
    r"n_ctx\W+(\d+)",
)
_PROMPT = (
    r"requested tokens \((\d+)\)",
    r"\((\d+) in the messages",
    r"has (\d+) input tokens",
    r"messages resulted in (\d+)",
    r"prompt is too long: (\d+)",
    r"input length \((\d+)",
    r"n_prompt_tokens\W+(\d+)",
)
_REQUESTED = (r"you requested (?:about )?(\d+) tokens",)


def _first(patterns: tuple[str, ...], text: str) -> int | None:
    for pattern in patterns:
        match = re.search(pattern, text)
        if match:
            return int(match[1])
    return None


class ContextFigures:
    """The sizes a context-length error gave (None: not said): the prompt's tokens, all tokens asked for (prompt and
    completion), and the context's limit."""

    def __init__(self, prompt: int | None = None, limit: int | None = None, requested: int | None = None) -> None:
        self.prompt = prompt
        self.limit = limit
        self.requested = requested

    @classmethod
    def parse(cls, body: Any, text: str) -> ContextFigures:
        """From llama.cpp's `n_prompt_tokens`/`n_ctx` fields, else from the message's words."""
        err = body.get("error", body) if isinstance(body, dict) else None
        fields = err if isinstance(err, dict) else {}
        lowered = text.lower().replace(",", "")
        prompt, limit = fields.get("n_prompt_tokens"), fields.get("n_ctx")
        return cls(
            prompt if isinstance(prompt, int) else _first(_PROMPT, lowered),
            limit if isinstance(limit, int) else _first(_LIMIT, lowered),
            _first(_REQUESTED, lowered),
        )

    def __str__(self) -> str:
        said = []
        if self.prompt:
            said.append(f"prompt {self.prompt} tokens")
        if self.requested:
            said.append(f"{self.requested} asked in all")
        if self.limit:
            said.append(f"context {self.limit}")
        return ", ".join(said) or "no sizes given"


def is_context_error(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in CONTEXT_WORDS)


def context_error(
    body: Any, *, status: int | None = None, model: str | None = None, where: str = ""
) -> ModelCallError | None:
    """A `CONTEXT_LENGTH` error when `body` (an error body, a stream's error event or its text) says the prompt does
    not fit; None otherwise. Never retried as it was sent (docs/models.md#the-error-table-request-layer)."""
    message = error_message(body)
    if not is_context_error(message):
        return None
    figures = ContextFigures.parse(body, message)
    return ModelCallError(
        ErrorKind.CONTEXT_LENGTH,
        f"the prompt does not fit the model's context ({figures}){where}: {message}",
        status=status,
        model=model,
        figures=figures,
    )


def parse_reset(value: str | None, now: float | None = None) -> float | None:
    """An `X-RateLimit-Reset` value as an absolute epoch time.

    Above 10^12 it is epoch milliseconds, above 10^9 epoch seconds, otherwise seconds from now."""
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    now = time.time() if now is None else now
    if number > 1e12:
        return number / 1000.0
    if number > 1e9:
        return number
    return now + max(number, 0.0)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` in seconds from now (it may be a number or an HTTP date)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(when - (time.time() if now is None else now), 0.0)


def error_message(body: Any) -> str:
    """The provider's own words from an error body, in any of the common shapes."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            message = err.get("message") or err.get("msg") or ""
            meta = err.get("metadata")
            if isinstance(meta, dict) and meta.get("raw"):
                message = f"{message} ({str(meta['raw'])[:300]})"
            return str(message or err)[:500]
        return str(err)[:500]
    return str(body)[:500]


def classify_status(
    status: int, headers: Mapping[str, str], body: Any, *, model: str | None = None, now: float | None = None
) -> ModelCallError:
    now = time.time() if now is None else now
    message = error_message(body) or f"HTTP {status}"
    lowered = message.lower()
    if status == 429:
        retry_after = parse_retry_after(headers.get("retry-after"), now)
        reset_at = parse_reset(headers.get("x-ratelimit-reset"), now)
        remaining = headers.get("x-ratelimit-remaining")
        wait = retry_after if retry_after is not None else (reset_at - now if reset_at else None)
        per_day = any(s in lowered for s in ("per-day", "per day", "daily", "free-models-per-day"))
        if (
            per_day
            or (remaining is not None and remaining.strip() == "0" and (wait is None or wait > SOON_SECONDS))
            or (wait is not None and wait > SOON_SECONDS)
        ):
            return ModelCallError(
                ErrorKind.DAILY_CAP,
                f"daily rate limit reached: {message}",
                status=status,
                model=model,
                retry_after=wait,
                reset_at=reset_at or (now + wait if wait else None),
            )
        return ModelCallError(
            ErrorKind.RATE_LIMIT,
            f"rate limited: {message}",
            status=status,
            model=model,
            retry_after=wait,
            reset_at=now + wait if wait is not None else None,
        )
    if status == 402:
        return ModelCallError(
            ErrorKind.CREDITS,
            f"the account is out of credits: {message}. Add credits at your"
            " provider, or point OPENHANDS_BASE_URL at a local model",
            status=status,
            model=model,
        )
    if status in (401, 403):
        return ModelCallError(
            ErrorKind.AUTH,
            f"the endpoint refused the key: {message}. Check OPENROUTER_API_KEY and OPENHANDS_BASE_URL",
            status=status,
            model=model,
        )
    if status == 408 or status >= 500:
        return ModelCallError(
            ErrorKind.TRANSIENT,
            f"server error: {message}",
            status=status,
            model=model,
            retry_after=parse_retry_after(headers.get("retry-after"), now),
        )
    if status in (400, 413, 422):
        too_long = context_error(body if isinstance(body, dict) else message, status=status, model=model)
        if too_long is not None:
            return too_long
    if status == 404 or "no endpoints found" in lowered or "model not found" in lowered:
        return ModelCallError(
            ErrorKind.MODEL_UNAVAILABLE, f"model not available: {message}", status=status, model=model
        )
    return ModelCallError(
        ErrorKind.BAD_REQUEST, f"the endpoint rejected the request: {message}", status=status, model=model
    )


def classify_body_error(body: Any, *, model: str | None = None, where: str = "response") -> ModelCallError:
    """An `error` object inside an HTTP-200 body or a stream event. One that says the prompt does not fit the
    context is a context-length error whatever its code (llama.cpp and Ollama send it after HTTP 200)."""
    too_long = context_error(body, model=model, where=f" (an error in the {where})")
    if too_long is not None:
        return too_long
    err = body.get("error") if isinstance(body, dict) else None
    code = err.get("code") if isinstance(err, dict) else None
    status = code if isinstance(code, int) and 400 <= code < 600 else None
    if status is not None and status != 408 and status < 500:
        return classify_status(status, {}, body, model=model)
    return ModelCallError(
        ErrorKind.TRANSIENT, f"error in the {where}: {error_message(body)}", status=status, model=model
    )
