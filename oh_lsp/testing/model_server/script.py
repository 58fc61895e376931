"""Reply scripting: what the scripted model server answers, and the record of what it was asked.

:class:`Reply` says how one chat-completions request is answered (text, tool calls, latency, pacing, rate limits, HTTP
errors, error bodies, broken streams). :class:`ReplyScript` queues them -- shared, or per model -- behind an optional
``responder`` and a ``default``, and keeps a :class:`RecordedRequest` for each request. No HTTP here: the server
(``server.py``) feeds it requests, ``respond.py`` sends the chosen reply, ``wire.py`` gives it the OpenAI shape.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """What the server answers to one chat-completions request."""

    content: str = ""
    usage: dict[str, Any] | None = None  # sent verbatim; None -> computed (tokens ~ chars // 4, cost)
    status: int = 200
    headers: dict[str, Any] = field(default_factory=dict)  # extra response headers
    latency: float = 0.0  # seconds before the status line is sent
    chunk_delay: float = 0.0  # seconds between SSE events
    chunk_size: int = 8  # characters of content per SSE chunk
    error_body: dict[str, Any] | None = None  # send {"error": error_body} instead of a completion
    stream_error_after: int | None = None  # streaming: SSE error event after N content chunks
    truncate_after: int | None = None  # stream: hang up after N chunks; else after N body bytes
    malformed: bool = False  # a JSON content-type body that is not valid JSON
    finish_reason: str = "stop"  # with tool_calls and the default: "tool_calls"
    model: str | None = None  # model name echoed back (default: the request's)
    tool_calls: list[dict[str, Any]] | None = (
        None  # OpenAI function calls: [{"id", "type": "function", "function": {...}}]
    )
    usage_chunk: bool = True  # False: the answer carries no usage at all (llama-cpp-python's streams)
    # how a stream's error event goes out: "data" (data: {"error": ...}, as OpenAI and Ollama), "event" (event: error,
    # then its data), "llama.cpp" (llama-server's SSE field "error: {...}"), "silent" (nothing: the stream just ends,
    # as llama-cpp-python's does when the prompt exceeds its context)
    error_style: str = "data"
    stream: bool | None = None  # None: as the request asks; False: one JSON body even for a streamed request

    @classmethod
    def text(cls, content: str, **kw: Any) -> Reply:
        """A normal assistant answer."""
        return cls(content=content, **kw)

    @classmethod
    def tool_call(
        cls, name: str, arguments: dict[str, Any], *, call_id: str | None = None, content: str = "", **kw: Any
    ) -> Reply:
        """An assistant turn that calls one tool (OpenAI function calling): ``arguments`` is sent as JSON text."""
        call = {
            "id": call_id or "call_" + uuid.uuid4().hex[:12],
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)},
        }
        return cls(content=content, tool_calls=[call], **kw)

    @classmethod
    def rate_limited(cls, retry_after: Any = None, daily: bool = False, reset: Any = None, **kw: Any) -> Reply:
        """HTTP 429; ``daily`` models OpenRouter's exhausted free-models-per-day quota."""
        headers = dict(kw.pop("headers", {}))
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if daily:
            headers["X-RateLimit-Remaining"] = "0"
        if reset is not None:
            headers["X-RateLimit-Reset"] = str(reset)
        message = "Rate limit exceeded: free-models-per-day" if daily else "Rate limit exceeded"
        return cls(status=429, headers=headers, error_body={"message": message, "code": 429}, **kw)

    @classmethod
    def http_error(cls, status: int, message: str = "scripted HTTP error", **kw: Any) -> Reply:
        """An HTTP error status with an OpenAI-style ``{"error": {"message", "code"}}`` body."""
        return cls(status=status, error_body={"message": message, "code": status}, **kw)

    @classmethod
    def error_in_body(cls, message: str, code: int = 502, **kw: Any) -> Reply:
        """HTTP 200 whose body is an error object, as some providers send."""
        return cls(error_body={"message": message, "code": code}, **kw)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        """Build a Reply from a dict of its fields; unknown keys raise ValueError."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown Reply fields: {sorted(unknown)}")
        return cls(**data)


def unscripted() -> Reply:
    """The loud default: a request nothing was scripted for gets a 500 that says so."""
    return Reply.http_error(500, "no scripted reply for this request (ScriptedModelServer)")


@dataclass
class RecordedRequest:
    """One chat-completions request as received, and how the reply to it went."""

    method: str
    path: str
    headers: dict[str, Any]  # lower-case keys
    body: Any  # parsed JSON, or None when it was not a JSON object
    raw_body: bytes
    model: str | None
    stream: bool
    received_at: float
    reply: Reply | None = None
    chunks_sent: int = 0  # SSE content chunks sent (streaming only)
    disconnected: bool = False  # the client hung up before the reply was fully sent
    disconnected_at: float | None = None
    completed: bool = False  # the whole HTTP response was written
    connection: int = 0  # which TCP connection it came on (1, 2, ... in accept order): shows keep-alive reuse
    prompt_cache: dict[str, Any] | None = None  # what the server's prompt cache did for it (wire.PromptCache)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, without ``raw_body``."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "raw_body"}
        d["reply"] = dataclasses.asdict(self.reply) if self.reply else None
        return d


class ReplyScript:
    """The scripted side of the server: queued replies, the responder, the default, the model list, the record.

    Thread-safe: a test scripts and inspects from its own thread while the server answers on its event loop.
    """

    def __init__(self) -> None:
        self.models: list[dict[str, Any]] = []  # what GET /models lists (wire.model_entry gives providers' shapes)
        self.tokenizer: str | None = None  # "llama.cpp" (POST /tokenize), "llama-cpp-python" (/extras/tokenize/count)
        self.props: dict[str, Any] | None = None  # what llama.cpp's GET /props answers (None: 404)
        self.tokenized: list[str] = []  # the texts sent to the tokenizer, in order
        self.default: Reply = unscripted()
        self.prompt_cache: Any = None  # a wire.PromptCache: report and bill cached prompt tokens as OpenRouter does
        self.responder: Callable[[RecordedRequest], Reply | None] | None = None
        self._lock = threading.Lock()  # guards queues and requests; never held across an await
        self._shared: deque[Reply] = deque()
        self._by_model: dict[str, deque[Reply]] = {}
        self._requests: list[RecordedRequest] = []

    def script(self, *replies: Reply, model: str | None = None) -> None:
        """Queue replies (FIFO); with ``model``, only requests for that model use them."""
        with self._lock:
            queue = self._shared if model is None else self._by_model.setdefault(model, deque())
            queue.extend(replies)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of the recorded chat-completions requests, in arrival order."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget queued replies and recorded requests; restore the loud default."""
        with self._lock:
            self._shared.clear()
            self._by_model.clear()
            self._requests.clear()
            self.default = unscripted()

    def record(self, rec: RecordedRequest) -> None:
        """Add a request to the record (before it is answered, so a test sees it at once)."""
        with self._lock:
            self._requests.append(rec)

    def choose(self, rec: RecordedRequest) -> Reply:
        """responder, then the model's queue, then the shared queue, then the default."""
        if self.responder is not None:
            try:
                reply = self.responder(rec)
            except Exception as exc:  # noqa: BLE001 - a broken responder must be loud, not hang the client
                return Reply.http_error(500, f"responder raised {exc!r}")
            if reply is not None:
                return reply
        with self._lock:
            for queue in (self._by_model.get(rec.model or ""), self._shared):
                if queue:
                    return queue.popleft()
        return self.default
