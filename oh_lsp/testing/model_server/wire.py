"""The OpenAI-compatible wire format, as the scripted model server speaks it.

Every body the server sends to a model client is shaped here: the endpoints' paths, a chat completion, the chunks of
a streamed one (SSE), usage, error objects and the model list. Pure functions of a :class:`Reply` and the
:class:`RecordedRequest` it answers: no sockets, no timing (``respond.py`` paces and breaks streams).

Provider variants belong here too, switched by a :class:`Reply` field or a server attribute: OpenRouter's usage
details (``cost``; cached prompt tokens and their prices when the server keeps a `PromptCache`), streams without usage (``Reply.usage_chunk``), error events in each provider's form
(``Reply.error_style``) and their "context exceeded" answers (`context_exceeded`), bodies that ignore ``stream``
(``Reply.stream``), the tokenizer endpoints (``server.tokenizer``), llama.cpp's ``/props`` (``server.props``) and
model lists with context lengths (`model_entry`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from oh_lsp.testing.model_server.script import RecordedRequest, Reply

PRICE_PROMPT, PRICE_COMPLETION = 0.000001, 0.000002  # USD per token of the scripted usage's `cost`

CHAT_PATHS = {"/v1/chat/completions", "/chat/completions", "/api/v1/chat/completions"}
MODELS_PATHS = {"/v1/models", "/models", "/api/v1/models"}
TOKENIZE_PATHS = {"/tokenize": "llama.cpp", "/extras/tokenize/count": "llama-cpp-python"}  # at the server's root
PROPS_PATH = "/props"  # llama.cpp's server settings, its context length among them
DONE = "[DONE]"  # the SSE data line that ends a stream
CHARS_PER_SCRIPTED_TOKEN = 3  # the scripted tokenizer's rule: not oh-lsp's characters / 4, so a test tells them apart


def error(message: str, code: int) -> dict[str, Any]:
    """An OpenAI-style error body."""
    return {"error": {"message": message, "code": code}}


def new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def finish_reason(reply: Reply) -> str:
    return "tool_calls" if reply.tool_calls and reply.finish_reason == "stop" else reply.finish_reason


def _text(content: Any) -> str:
    if isinstance(content, list):  # multi-part content: the text parts
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def usage(rec: RecordedRequest, reply: Reply) -> dict[str, Any]:
    """``reply.usage`` verbatim, else a rough count: tokens = chars // 4 (at least 1), and OpenRouter's ``cost``.

    When the server keeps a prompt cache (`PromptCache`), the cached and written prompt tokens are reported as
    OpenRouter reports them (``prompt_tokens_details``) and priced with its cache prices."""
    if reply.usage is not None:
        return reply.usage
    chars = sum(len(_text(msg.get("content"))) for msg in _messages(rec))
    answer = len(reply.content) + sum(len(json.dumps(c)) for c in reply.tool_calls or [])
    n, m = max(1, chars // 4), max(1, answer // 4)
    body: dict[str, Any] = {"prompt_tokens": n, "completion_tokens": m, "total_tokens": n + m}
    cache = rec.prompt_cache
    if cache is None:
        return {**body, "cost": round(PRICE_PROMPT * n + PRICE_COMPLETION * m, 10)}
    cached, written = min(cache["cached_tokens"], n), min(cache["cache_write_tokens"], n)
    plain = max(n - cached - written, 0)
    cost = PRICE_PROMPT * (plain + cached * cache["read"] + written * cache["write"]) + PRICE_COMPLETION * m
    details = {"cached_tokens": cached, "cache_write_tokens": written, "audio_tokens": 0}
    return {**body, "cost": round(cost, 10), "prompt_tokens_details": details}


def _messages(rec: RecordedRequest) -> list[dict[str, Any]]:
    messages = (rec.body or {}).get("messages") or []
    return [m for m in messages if isinstance(m, dict)]


@dataclass
class PromptCache:
    """A provider's prompt cache, as OpenRouter reports and bills it (`usage`), kept per model.

    - "automatic" (OpenAI, DeepSeek): every request's prompt is cached; a later prompt reads the longest prefix it
      shares with an earlier one, in whole `block`s of tokens, once that prefix has `min_tokens`;
    - "breakpoints" (Anthropic, Gemini through OpenRouter): only the prefixes that end at a ``cache_control`` text
      part are cached (written, at `write` x the prompt price); a later prompt that starts with one reads it.

    Cached tokens are billed at `read` x the prompt price. Tokens are characters / 4, as the scripted usage counts
    them. A prompt is cached once the provider has read it (`account`'s `ready_in`, the reply's latency): a prompt
    sent while an earlier one is still being read finds nothing. Entries expire `ttl` seconds after their last use."""

    mode: str = "breakpoints"
    read: float = 0.1
    write: float = 1.25
    min_tokens: int = 0
    block: int = 1
    ttl: float = 300.0

    def __post_init__(self) -> None:
        if self.mode not in ("automatic", "breakpoints"):
            raise ValueError(f"unknown prompt cache mode {self.mode!r}: automatic or breakpoints")
        self._entries: dict[tuple[str, str], tuple[float, float]] = {}  # (model, prefix) -> (readable from, expires)
        self._lock = threading.Lock()

    def account(self, rec: RecordedRequest, ready_in: float = 0.0) -> dict[str, Any]:
        """Read and write the cache for `rec`'s prompt (readable by later prompts `ready_in` seconds from now): what
        `usage` reports of it."""
        model, now = rec.model or "", time.monotonic()
        prompt, marks = _prompt_text(_messages(rec))
        with self._lock:
            self._entries = {key: times for key, times in self._entries.items() if times[1] > now}
            readable = [p for (m, p), (ready, _) in self._entries.items() if m == model and ready <= now]
            written = 0
            if self.mode == "automatic":
                shared = max((len(_common_prefix(prompt, p)) for p in readable), default=0)
                cached = _tokens(prompt[:shared]) // self.block * self.block
                cached = cached if cached >= self.min_tokens else 0
                self._keep(model, prompt, now, ready_in)
            else:
                best = max((p for p in readable if prompt.startswith(p)), key=len, default="")
                cached = _tokens(best) if _tokens(best) >= self.min_tokens else 0
                for mark in marks:
                    prefix = prompt[:mark]
                    if _tokens(prefix) >= self.min_tokens and (model, prefix) not in self._entries:
                        written = max(written, _tokens(prefix) - cached)
                    self._keep(model, prefix, now, ready_in)
                if best:
                    self._keep(model, best, now, 0.0)
        return {"cached_tokens": cached, "cache_write_tokens": written, "read": self.read, "write": self.write}

    def _keep(self, model: str, prefix: str, now: float, ready_in: float) -> None:
        ready = self._entries.get((model, prefix), (now + ready_in, 0.0))[0]
        self._entries[(model, prefix)] = (min(ready, now + ready_in), now + self.ttl)


def _prompt_text(messages: list[dict[str, Any]]) -> tuple[str, list[int]]:
    """The prompt's text, messages one after another, and where its ``cache_control`` breakpoints end."""
    text, marks = "", []
    for message in messages:
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"text": _text(content)}]
        for part in parts:
            if isinstance(part, dict):
                text += str(part.get("text") or "")
                if part.get("cache_control"):
                    marks.append(len(text))
    return text, marks


def _common_prefix(a: str, b: str) -> str:
    return a[: next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))]


def _tokens(text: str) -> int:
    return len(text) // 4


def completion(rec: RecordedRequest, reply: Reply) -> dict[str, Any]:
    """A whole (non-streamed) chat completion."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    body = {
        "id": new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model or rec.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(reply)}],
    }
    return {**body, "usage": usage(rec, reply)} if reply.usage_chunk else body


def model_list(models: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of GET /models."""
    return {"object": "list", "data": models}


def model_entry(model_id: str, context_length: int | None = None, style: str = "openrouter") -> dict[str, Any]:
    """One GET /models entry as a provider writes it, with its context length: "openrouter" (``context_length``),
    "vllm" (``max_model_len``), "lmstudio" (``max_context_length``), "llama.cpp" (``meta.n_ctx``, beside the
    ``n_ctx_train`` it was trained with), "llama-cpp-python" (no size at all)."""
    entry: dict[str, Any] = {"id": model_id, "object": "model", "owned_by": "scripted"}
    if context_length is None or style == "llama-cpp-python":
        return entry
    if style == "llama.cpp":
        return {**entry, "meta": {"n_ctx": context_length, "n_ctx_train": 8 * context_length, "n_vocab": 49152}}
    key = {"openrouter": "context_length", "vllm": "max_model_len", "lmstudio": "max_context_length"}[style]
    return {**entry, key: context_length}


def scripted_tokens(text: str) -> int:
    """How many tokens the scripted tokenizer counts in `text`."""
    return -(-len(text) // CHARS_PER_SCRIPTED_TOKEN)


def tokenize(style: str | None, path: str, body: Any) -> tuple[int, Any]:
    """A tokenizer endpoint: llama.cpp's ``POST /tokenize {"content"}`` -> ``{"tokens": [...]}``, or
    llama-cpp-python's ``POST /extras/tokenize/count {"input"}`` -> ``{"count": n}``; 404 on any other server."""
    if style is None or TOKENIZE_PATHS.get(path) != style:
        return 404, {"detail": "Not Found"}
    field = "content" if style == "llama.cpp" else "input"
    text = body.get(field) if isinstance(body, dict) else None
    if not isinstance(text, str):
        return 422, {"detail": f"{field} is required"}
    count = scripted_tokens(text)
    return 200, {"tokens": list(range(count))} if style == "llama.cpp" else {"count": count}


def context_exceeded(style: str, prompt_tokens: int, n_ctx: int, max_tokens: int = 4096) -> Reply:
    """The "prompt does not fit" answer of a provider:

    - "openai": HTTP 400 in OpenAI's words (also vLLM's, and llama-cpp-python's own for a request it can read first);
    - "llama.cpp": HTTP 400 from llama-server, with ``n_prompt_tokens`` and ``n_ctx``;
    - "llama.cpp-stream": HTTP 200, then llama-server's SSE ``error:`` field with the same body;
    - "llama-cpp-python": HTTP 200, then a stream that ends without a word (the words go to its own log);
    - "in-stream": HTTP 200, then ``data: {"error": ...}`` with llama-cpp-python's engine's words.
    """
    engine = f"Requested tokens ({prompt_tokens}) exceed context window of {n_ctx}"
    if style == "openai":
        return Reply.http_error(
            400,
            f"This model's maximum context length is {n_ctx} tokens. However, you requested"
            f" {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the completion)."
            " Please reduce the length of the messages or completion.",
        )
    server = {
        "code": 400,
        "message": "the request exceeds the available context size, try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": prompt_tokens,
        "n_ctx": n_ctx,
    }
    if style == "llama.cpp":
        return Reply(status=400, error_body=server)
    if style == "llama.cpp-stream":
        return Reply(error_body=server, stream_error_after=0, error_style="llama.cpp")
    if style == "llama-cpp-python":
        return Reply(error_body={"message": engine}, stream_error_after=0, error_style="silent")
    if style == "in-stream":
        return Reply(error_body={"message": engine, "code": 500}, stream_error_after=0)
    raise ValueError(f"unknown provider style {style!r}")


@dataclass(frozen=True)
class Event:
    """One SSE event of a streamed completion."""

    data: Any  # a JSON object, or the literal DONE
    paced: bool = True  # waits Reply.chunk_delay before it is sent


def stream_steps(rec: RecordedRequest, reply: Reply) -> list[list[Event]]:
    """A whole streamed reply: one step per content chunk, then the closing step.

    The closing step holds the tool calls (each whole, in one delta), the finish reason, the usage chunk and DONE.
    A stream may be cut or may fail before any step (``Reply.truncate_after``, ``Reply.stream_error_after``).
    """
    base = {
        "id": new_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": reply.model or rec.model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    size = max(1, reply.chunk_size)
    pieces = [reply.content[i : i + size] for i in range(0, len(reply.content), size)] or [""]
    steps = [[Event(chunk({"role": "assistant", "content": pieces[0]}), paced=False)]]
    steps += [[Event(chunk({"content": piece}))] for piece in pieces[1:]]
    closing = [Event(chunk({"tool_calls": [{"index": n, **call}]})) for n, call in enumerate(reply.tool_calls or [])]
    closing.append(Event(chunk({}, finish_reason(reply))))
    if reply.usage_chunk:
        closing.append(Event({**base, "choices": [], "usage": usage(rec, reply)}, paced=False))
    closing.append(Event(DONE, paced=False))
    return [*steps, closing]


def stream_error(reply: Reply) -> Event:
    """The SSE error event that breaks a stream: the scripted error body, else a provider-style 502."""
    return Event({"error": reply.error_body or {"message": "scripted mid-stream provider error", "code": 502}})


def sse(data: Any) -> bytes:
    """One server-sent event carrying ``data`` (a JSON object, or DONE)."""
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def sse_error(reply: Reply, event: Event) -> bytes:
    """The error event in the reply's `error_style` (see `Reply.error_style`); b"" for "silent"."""
    if reply.error_style == "silent":
        return b""
    if reply.error_style == "event":
        return b"event: error\n" + sse(event.data)
    if reply.error_style == "llama.cpp":
        return f"error: {json.dumps(event.data['error'])}\n\n".encode()
    return sse(event.data)
