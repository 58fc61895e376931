"""One call to an OpenAI-compatible chat endpoint, streamed, with its usage and cost.

`ChatClient.chat` sends ``POST {base_url}/chat/completions`` with ``stream: true`` and reads the server-sent events
as they arrive. It reports each piece of text to a callback (for progress), and turns every failure, including the
quiet ones (an HTTP-200 body that carries an `error`, an error event mid-stream, a stream that stops early, JSON that
does not parse), into a `ModelCallError`. Cancelling the coroutine closes the connection at once.

An error event may come as ``data: {"error": ...}`` (OpenAI, Ollama), as ``event: error`` followed by its data, or
as llama.cpp's ``error: {...}`` line. One that says the prompt does not fit is a context-length error, never a
truncated stream. A stream that ends without a single event after HTTP 200 is an `EmptyStream`: llama-cpp-python's
server does that when the prompt exceeds its context (its "Requested tokens (N) exceed context window of M" goes to
its own log only), and the gateway asks the server's tokenizer which it was.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from oh_lsp.config import OpenHandsConfig
from oh_lsp.llm.errors import (
    EmptyStream,
    ErrorKind,
    ModelCallError,
    classify_body_error,
    classify_status,
    context_error,
)
from oh_lsp.llm.prompt_cache import wire_messages
from oh_lsp.llm.tokens import EndpointTokenizer, endpoint_root
from oh_lsp.redaction import known_secrets, redact, redact_data

DeltaCallback = Callable[[str], None]
AFTER_DONE_SECONDS = 2.0  # how long to read on after [DONE] (to keep the connection), before giving up on it


@dataclass
class ChatResult:
    content: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None  # the provider's usage.cost, when it reports one (the gateway fills in the rest)
    cost_source: str = "none"  # provider | catalog (price x tokens) | unknown (no price known) | none
    finish_reason: str | None = None
    latency_seconds: float = 0.0
    first_token_seconds: float | None = None
    chunks: int = 0
    usage: dict[str, Any] = field(default_factory=dict)
    done: bool = False  # the stream's [DONE] arrived
    events: int = 0  # the stream's events (with text or not)
    tokens_estimated: str | None = None  # the endpoint sent no usage: how the counts were estimated
    cached_tokens: int = 0  # of the prompt tokens, read from the provider's prompt cache (prompt_tokens_details)
    cache_write_tokens: int = 0  # of the prompt tokens, written to it
    saved_cost: float = 0.0  # what the cached tokens saved against the full prompt price (the gateway fills it in)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


MAX_CONNECTIONS = 1024


def concurrent_transport() -> httpx.AsyncBaseTransport:
    """httpx's API over aiohttp's connection pool. httpcore's pool re-examines every connection for every request
    it assigns (quadratic in the requests in flight): with 64 concurrent streams it keeps ~10 % of the ideal
    throughput here, aiohttp's keeps close to all of it (bench/concurrency.py, P2)."""
    from httpx_aiohttp import AiohttpTransport

    return AiohttpTransport(
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
    )


class ChatClient:
    """A small async client for ``/chat/completions``. One instance shares one connection pool."""

    def __init__(self, config: OpenHandsConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._http = httpx.AsyncClient(
            base_url=config.base_url + "/",
            transport=transport or concurrent_transport(),
            timeout=httpx.Timeout(connect=15.0, read=float(config.timeout_seconds), write=30.0, pool=None),
        )
        self._url = httpx.URL(config.base_url + "/chat/completions")  # parsed once, not per call
        self._tokenizer: EndpointTokenizer | None = None

    def _headers(self) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "X-Title": self.config.usage_id,
            "User-Agent": "oh-lsp",
        }
        key = self.config.require_api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def tokenizer(self) -> EndpointTokenizer:
        """The endpoint's own tokenizer (for calls that report no usage)."""
        if self._tokenizer is None:
            headers = {k: v for k, v in self._headers().items() if k != "Accept"}
            self._tokenizer = EndpointTokenizer(self._http, self.config.base_url, headers)
        return self._tokenizer

    def _body(
        self, model: str, messages: list[dict[str, Any]], max_tokens: int | None, breakpoints: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            # the key goes in a header only
            "messages": wire_messages(
                redact_data(messages, known_secrets(self.config.secrets())), breakpoints=breakpoints
            ),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if max_tokens:
            body["max_tokens"] = max_tokens
        if self.config.resolved_provider == "openrouter":
            body["usage"] = {"include": True}
        return body

    async def chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        on_delta: DeltaCallback | None = None,
        cache_breakpoints: bool = False,
    ) -> ChatResult:
        """Stream one completion from `model`. Raises `ModelCallError` for every kind of failure. With
        `cache_breakpoints`, the prompt's stable parts carry cache_control breakpoints (`prompt_cache.py`)."""
        started = time.monotonic()
        result = ChatResult(content="", model=model)
        try:
            body = self._body(model, messages, max_tokens, cache_breakpoints)
            request = self._http.build_request("POST", self._url, headers=self._headers(), json=body)
            response = await self._http.send(request, stream=True)
            try:
                if response.status_code != 200:
                    await response.aread()
                    raise classify_status(
                        response.status_code, response.headers, _json_or_text(response.text), model=model
                    )
                if "text/event-stream" in response.headers.get("content-type", ""):
                    await self._read_stream(response, result, on_delta, started)
                else:  # a server that ignores `stream` answers with one JSON document
                    await response.aread()
                    self._read_whole(_json_or_text(response.text), result, on_delta)
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise ModelCallError(
                ErrorKind.TRANSIENT, f"timed out talking to the endpoint ({type(exc).__name__})", model=model
            ) from None
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise ModelCallError(
                ErrorKind.TRANSIENT, f"connection failed or was cut: {type(exc).__name__}: {exc}", model=model
            ) from None
        except ModelCallError as exc:  # a provider may echo the key in its error: it goes no further than here
            exc.message = redact(exc.message, known_secrets(self.config.secrets()))
            exc.args = (exc.message,)
            raise
        result.latency_seconds = time.monotonic() - started
        return result

    async def _read_stream(
        self, response: httpx.Response, result: ChatResult, on_delta: DeltaCallback | None, started: float
    ) -> None:
        pieces: list[str] = []
        try:
            async with asyncio.timeout(None) as deadline:
                await self._read_events(response, result, on_delta, started, pieces, deadline)
        except TimeoutError:
            if not result.done:
                raise
            # the server kept the response open after [DONE]; the answer is complete, the connection is dropped
        done = result.done
        result.content = "".join(pieces)
        if not done and result.finish_reason is None and not result.events:
            raise EmptyStream(
                "the server answered HTTP 200 and then ended the stream without a single event", model=result.model
            )
        if not done and result.finish_reason is None:
            raise ModelCallError(
                ErrorKind.TRANSIENT, "the stream ended before the answer was complete (truncated)", model=result.model
            )
        if result.finish_reason is None:
            raise ModelCallError(ErrorKind.TRANSIENT, "the stream ended without a finish reason", model=result.model)

    async def _read_events(
        self,
        response: httpx.Response,
        result: ChatResult,
        on_delta: DeltaCallback | None,
        started: float,
        pieces: list[str],
        deadline: asyncio.Timeout,
    ) -> None:
        event_type = ""
        async for line in response.aiter_lines():
            if result.done:
                continue  # the end of the body after [DONE]
            if line.startswith("event:"):
                event_type = line[6:].strip()
                continue
            if line.startswith("error:"):  # llama.cpp's server: an SSE field named "error"
                raise _stream_error(line[6:].strip(), result.model)
            if not line.startswith("data:"):
                if not line:
                    event_type = ""  # a blank line ends an SSE event
                continue  # comments (": keep-alive") and other SSE fields
            data = line[5:].strip()
            if event_type == "error":
                raise _stream_error(data, result.model)
            if data == "[DONE]":
                # Read on to the end of the body rather than break: httpx closes a connection whose response was
                # left unread, so breaking here cost a new TCP (and TLS) connection on every call.
                result.done = True
                deadline.reschedule(asyncio.get_running_loop().time() + AFTER_DONE_SECONDS)
                continue
            try:
                event = json.loads(data)
            except json.JSONDecodeError:
                raise context_error(data, model=result.model, where=" (in the stream)") or ModelCallError(
                    ErrorKind.TRANSIENT, f"malformed event in the stream: {data[:120]!r}", model=result.model
                ) from None
            if not isinstance(event, dict):
                raise ModelCallError(
                    ErrorKind.TRANSIENT, f"unexpected event in the stream: {data[:120]!r}", model=result.model
                )
            if event.get("error"):
                raise classify_body_error(event, model=result.model, where="stream")
            result.events += 1
            self._take_usage(event, result)
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                text = delta.get("content")
                if text:
                    if result.first_token_seconds is None:
                        result.first_token_seconds = time.monotonic() - started
                    pieces.append(text)
                    result.chunks += 1
                    if on_delta is not None:
                        on_delta(text)
                if choice.get("finish_reason"):
                    result.finish_reason = choice["finish_reason"]

    def _read_whole(self, body: Any, result: ChatResult, on_delta: DeltaCallback | None) -> None:
        if not isinstance(body, dict):
            raise ModelCallError(
                ErrorKind.TRANSIENT, f"the answer is not JSON: {str(body)[:120]!r}", model=result.model
            )
        if body.get("error"):
            raise classify_body_error(body, model=result.model)
        choices = body.get("choices")
        if not choices or not isinstance(choices, list):
            raise ModelCallError(ErrorKind.TRANSIENT, "the answer has no choices", model=result.model)
        message = choices[0].get("message") or {}
        result.content = message.get("content") or ""
        result.finish_reason = choices[0].get("finish_reason")
        result.chunks = 1
        self._take_usage(body, result)
        if on_delta is not None and result.content:
            on_delta(result.content)

    @staticmethod
    def _take_usage(event: dict[str, Any], result: ChatResult) -> None:
        usage = event.get("usage")
        if isinstance(usage, dict):
            result.usage = usage
            result.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            result.completion_tokens = int(usage.get("completion_tokens") or 0)
            details = usage.get("prompt_tokens_details")
            if isinstance(details, dict):  # OpenAI's and OpenRouter's form
                result.cached_tokens = int(details.get("cached_tokens") or 0)
                result.cache_write_tokens = int(details.get("cache_write_tokens") or 0)
            if usage.get("cost") is not None:
                result.cost = float(usage["cost"])
                result.cost_source = "provider"

    async def list_models(self) -> list[dict[str, Any]]:
        """The endpoint's ``GET {base_url}/models`` entries (``data[]``). Raises `ModelCallError` on failure."""
        headers = {"Accept": "application/json", "User-Agent": "oh-lsp"}
        if self.config.api_key is not None and self.config.api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        try:
            response = await self._http.get("models", headers=headers, timeout=30.0)
        except httpx.HTTPError as exc:
            raise ModelCallError(
                ErrorKind.TRANSIENT, f"cannot list the models of {self.config.base_url}: {type(exc).__name__}"
            ) from None
        body = _json_or_text(response.text)
        if response.status_code != 200:
            raise classify_status(response.status_code, response.headers, body)
        data = body.get("data") if isinstance(body, dict) else body
        if not isinstance(data, list):
            raise ModelCallError(
                ErrorKind.TRANSIENT,
                f'{self.config.base_url}/models did not answer with a list of models (expected {{"data": [...]}})',
            )
        return [entry for entry in data if isinstance(entry, dict)]

    async def server_props(self) -> Any:
        """llama.cpp's ``GET /props`` (the server's settings, its context length among them); None when the endpoint
        has no such page."""
        try:
            response = await self._http.get(endpoint_root(self.config.base_url) + "/props", timeout=5.0)
        except httpx.HTTPError:
            return None
        return _json_or_text(response.text) if response.status_code == 200 else None

    async def aclose(self) -> None:
        await self._http.aclose()


def _stream_error(data: str, model: str) -> ModelCallError:
    """An error event: its JSON (``{"error": {...}}`` or the error object itself), or its text."""
    body = _json_or_text(data)
    if isinstance(body, dict) and "error" not in body:
        body = {"error": body}
    if not isinstance(body, dict):
        body = {"error": {"message": str(body)}}
    return classify_body_error(body, model=model, where="stream")


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text
