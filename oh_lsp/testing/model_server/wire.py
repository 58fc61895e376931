"""The OpenAI-compatible wire format, as the scripted model server speaks it.

Every body the server sends to a model client is shaped here: the endpoints' paths, a chat completion, the chunks of
a streamed one (SSE), usage, error objects and the model list. Pure functions of a :class:`Reply` and the
:class:`RecordedRequest` it answers: no sockets, no timing (``respond.py`` paces and breaks streams).

Provider variants belong here too, switched by a :class:`Reply` field: OpenRouter's usage details (``cost``, cached
tokens), llama.cpp's in-stream errors, streams without a usage chunk, other endpoints (``/tokenize``, a model list with
context lengths).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from oh_lsp.testing.model_server.script import RecordedRequest, Reply

CHAT_PATHS = {"/v1/chat/completions", "/chat/completions", "/api/v1/chat/completions"}
MODELS_PATHS = {"/v1/models", "/models", "/api/v1/models"}
DONE = "[DONE]"  # the SSE data line that ends a stream


def error(message: str, code: int) -> dict[str, Any]:
    """An OpenAI-style error body."""
    return {"error": {"message": message, "code": code}}


def new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def finish_reason(reply: Reply) -> str:
    return "tool_calls" if reply.tool_calls and reply.finish_reason == "stop" else reply.finish_reason


def usage(rec: RecordedRequest, reply: Reply) -> dict[str, Any]:
    """``reply.usage`` verbatim, else a rough count: tokens = chars // 4 (at least 1), and OpenRouter's ``cost``."""
    if reply.usage is not None:
        return reply.usage
    chars = 0
    for msg in (rec.body or {}).get("messages") or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, list):  # multi-part content: count the text parts
            content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
        chars += len(content) if isinstance(content, str) else 0
    answer = len(reply.content) + sum(len(json.dumps(c)) for c in reply.tool_calls or [])
    n, m = max(1, chars // 4), max(1, answer // 4)
    return {
        "prompt_tokens": n,
        "completion_tokens": m,
        "total_tokens": n + m,
        "cost": round(0.000001 * n + 0.000002 * m, 10),
    }


def completion(rec: RecordedRequest, reply: Reply) -> dict[str, Any]:
    """A whole (non-streamed) chat completion."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    return {
        "id": new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model or rec.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(reply)}],
        "usage": usage(rec, reply),
    }


def model_list(models: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of GET /models."""
    return {"object": "list", "data": models}


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
    closing.append(Event({**base, "choices": [], "usage": usage(rec, reply)}, paced=False))
    closing.append(Event(DONE, paced=False))
    return [*steps, closing]


def stream_error(reply: Reply) -> Event:
    """The SSE error event that breaks a stream: the scripted error body, else a provider-style 502."""
    return Event({"error": reply.error_body or {"message": "scripted mid-stream provider error", "code": 502}})


def sse(data: Any) -> bytes:
    """One server-sent event carrying ``data`` (a JSON object, or DONE)."""
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()
