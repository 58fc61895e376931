"""A scriptable OpenAI-compatible chat-completions server for tests and benchmarks.

Standard library only: a small HTTP/1.1 server on asyncio streams (keep-alive, many
concurrent connections, no thread per request). A test queues :class:`Reply` objects
that say exactly what the "model" answers -- text, latency, streaming pace, rate
limits, HTTP errors, error bodies, broken streams -- and then inspects
:class:`RecordedRequest` objects to see what the client sent and how each exchange ended::

    with ScriptedModelServer() as srv:
        srv.script(Reply.text("hello"), Reply.rate_limited(retry_after=2))
        ...  # point the client under test at srv.base_url
        assert srv.requests[0].headers["authorization"] == "Bearer k"

``python -m oh_lsp.testing.model_server`` serves from another process: it prints
``{"base_url": ...}`` and is scripted over HTTP (``POST /__script`` and friends).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Self

CHAT_PATHS = {"/v1/chat/completions", "/chat/completions", "/api/v1/chat/completions"}
MODELS_PATHS = {"/v1/models", "/models", "/api/v1/models"}
_PHRASES = {s.value: s.phrase for s in HTTPStatus}


@dataclass
class Reply:
    """What the server answers to one chat-completions request."""

    content: str = ""
    usage: dict | None = None  # sent verbatim; None -> computed (tokens ~ chars // 4, cost)
    status: int = 200
    headers: dict = field(default_factory=dict)  # extra response headers
    latency: float = 0.0  # seconds before the status line is sent
    chunk_delay: float = 0.0  # seconds between SSE events
    chunk_size: int = 8  # characters of content per SSE chunk
    error_body: dict | None = None  # send {"error": error_body} instead of a completion
    stream_error_after: int | None = None  # streaming: SSE error event after N content chunks
    truncate_after: int | None = None  # stream: hang up after N chunks; else after N body bytes
    malformed: bool = False  # a JSON content-type body that is not valid JSON
    finish_reason: str = "stop"  # with tool_calls and the default: "tool_calls"
    model: str | None = None  # model name echoed back (default: the request's)
    tool_calls: list[dict] | None = None  # OpenAI function calls: [{"id", "type": "function", "function": {...}}]

    @classmethod
    def text(cls, content: str, **kw: Any) -> Reply:
        """A normal assistant answer."""
        return cls(content=content, **kw)

    @classmethod
    def tool_call(
        cls, name: str, arguments: dict, *, call_id: str | None = None, content: str = "", **kw: Any
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
    def from_dict(cls, data: dict) -> Reply:
        """Build a Reply from a dict of its fields; unknown keys raise ValueError."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown Reply fields: {sorted(unknown)}")
        return cls(**data)


def _finish_reason(reply: Reply) -> str:
    return "tool_calls" if reply.tool_calls and reply.finish_reason == "stop" else reply.finish_reason


def _unscripted() -> Reply:
    return Reply.http_error(500, "no scripted reply for this request (ScriptedModelServer)")


@dataclass
class RecordedRequest:
    """One chat-completions request as received, and how the reply to it went."""

    method: str
    path: str
    headers: dict  # lower-case keys
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

    def to_dict(self) -> dict:
        """JSON-friendly form, without ``raw_body``."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "raw_body"}
        d["reply"] = dataclasses.asdict(self.reply) if self.reply else None
        return d


class _Conn:
    """Buffered reader for one connection that can also watch for the client hanging up.

    While a reply is sent, :meth:`watch_eof` keeps reading so EOF is seen at once; bytes it
    reads meanwhile (a pipelined request) stay in the buffer for the next request.
    """

    def __init__(self, reader: asyncio.StreamReader, number: int = 0):
        self.reader, self.buf, self.eof = reader, bytearray(), False
        self.number = number

    async def _fill(self) -> bool:
        try:
            data = await self.reader.read(65536)
        except ConnectionError:
            data = b""
        self.buf += data
        self.eof = not data
        return bool(data)

    async def readline(self) -> bytes:
        while (i := self.buf.find(b"\n")) < 0 and len(self.buf) < 65536:
            if self.eof or not await self._fill():
                break
        i = len(self.buf) - 1 if i < 0 else i
        line = bytes(self.buf[: i + 1])
        del self.buf[: i + 1]
        return line

    async def readexactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if self.eof or not await self._fill():
                raise asyncio.IncompleteReadError(bytes(self.buf), n)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def watch_eof(self) -> float:
        """Return time.time() at the moment the client closes its side."""
        while not self.eof and await self._fill():
            pass
        return time.time()


class ScriptedModelServer:
    """OpenAI-compatible HTTP server whose answers are scripted by the test.

    :meth:`start`/:meth:`stop` run it on a private event loop in a daemon thread;
    :meth:`astart`/:meth:`astop` run it inside the caller's event loop instead.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host, self.port, self._want_port = host, port, port
        self.models: list[dict] = []
        self.default: Reply = _unscripted()
        self.responder: Callable[[RecordedRequest], Reply | None] | None = None
        self._lock = threading.Lock()  # guards queues and requests; never held across an await
        self._shared: deque[Reply] = deque()
        self._by_model: dict[str, deque[Reply]] = {}
        self._requests: list[RecordedRequest] = []
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()
        self._connections = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def astart(self) -> ScriptedModelServer:
        """Start listening in the running event loop (idempotent)."""
        if self._server is None:
            self._loop = asyncio.get_running_loop()
            self._server = await asyncio.start_server(self._handle, self.host, self._want_port, backlog=1024)
            self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def astop(self) -> None:
        """Stop listening and drop all open connections."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    def start(self) -> ScriptedModelServer:
        """Serve from a private event loop in a daemon thread (idempotent)."""
        if self._server is not None:
            return self
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="model-server", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.astart(), loop).result(timeout=10)
        except BaseException:  # e.g. port in use
            self._stop_thread(loop)
            raise
        return self

    def stop(self) -> None:
        """Stop a server started with :meth:`start`; safe to call twice."""
        if self._thread is not None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(self.astop(), self._loop).result(timeout=10)
            self._stop_thread(self._loop)

    def _stop_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        loop.close()
        self._thread = self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ scripting
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
            self.default = _unscripted()

    def _choose(self, rec: RecordedRequest) -> Reply:
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

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection until either side closes it."""
        task = asyncio.current_task()
        self._tasks.add(task)
        conn = _Conn(reader, next(self._connections))
        try:
            while await self._one_request(conn, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # client went away, or sent something that is not HTTP
        except asyncio.CancelledError:
            pass  # server shutdown (Python 3.11 would log a cancelled connection task)
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _one_request(self, conn: _Conn, writer: asyncio.StreamWriter) -> bool:
        """Read and answer one request; return whether to keep the connection open."""
        line = await conn.readline()
        if not line.strip():
            return bool(line) and not conn.eof  # tolerate stray CRLF between requests
        method, target, version = line.decode("latin-1").split()
        headers: dict[str, str] = {}
        while (h := await conn.readline()).strip():
            key, _, value = h.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        conn_hdr = headers.get("connection", "").lower()
        keep = "close" not in conn_hdr and (version == "HTTP/1.1" or "keep-alive" in conn_hdr)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            _write(writer, 411, _err("chunked request bodies are not supported", 411), False)
            await writer.drain()
            return False
        raw = await conn.readexactly(int(headers.get("content-length") or 0))
        path = target.split("?", 1)[0]
        if path in CHAT_PATHS and method == "POST":
            return await self._chat(method, path, headers, raw, conn, writer, keep)
        if path.removeprefix("/v1").startswith("/__"):
            status, payload = self._control(method, path.removeprefix("/v1"), raw)
        elif path in MODELS_PATHS and method == "GET":
            status, payload = 200, {"object": "list", "data": self.models}
        else:
            status, payload = 404, _err(f"not found: {method} {path}", 404)
        _write(writer, status, payload, keep)
        await writer.drain()
        return keep

    def _control(self, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        """The ``/__*`` endpoints that script the server from another process."""
        try:
            data = json.loads(raw) if raw else {}
            if (method, path) == ("POST", "/__script"):
                replies = [Reply.from_dict(r) for r in data.get("replies", [])]
                self.script(*replies, model=data.get("model"))
                return 200, {"ok": True, "queued": len(replies)}
            if (method, path) == ("POST", "/__default"):
                self.default = Reply.from_dict(data)
                return 200, {"ok": True}
            if (method, path) == ("GET", "/__requests"):
                return 200, [r.to_dict() for r in self.requests]
            if (method, path) == ("POST", "/__clear"):
                self.clear()
                return 200, {"ok": True}
        except (ValueError, TypeError, AttributeError) as exc:
            return 400, _err(f"bad control request: {exc}", 400)
        return 404, _err(f"unknown control endpoint: {method} {path}", 404)

    async def _chat(
        self, method: str, path: str, headers: dict, raw: bytes, conn: _Conn, writer: asyncio.StreamWriter, keep: bool
    ) -> bool:
        """Record a chat-completions request, choose its reply, and send it."""
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        ok = isinstance(body, dict)
        rec = RecordedRequest(
            method,
            path,
            headers,
            body if ok else None,
            raw,
            body.get("model") if ok else None,
            bool(ok and body.get("stream")),
            time.time(),
            connection=conn.number,
        )
        with self._lock:
            self._requests.append(rec)
        if not ok:
            rec.completed = True
            _write(writer, 400, _err("request body is not a JSON object", 400), keep)
            await writer.drain()
            return keep
        rec.reply = reply = self._choose(rec)
        # Send while a watcher reads ahead, so a client that hangs up is noticed at once
        # and the pending sleep (latency or chunk delay) is cancelled.
        sender = asyncio.ensure_future(self._emit(rec, reply, writer, keep))
        watcher = asyncio.ensure_future(conn.watch_eof())
        try:
            await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also runs on server shutdown
            if not sender.done():
                if watcher.done() and not watcher.cancelled():
                    rec.disconnected, rec.disconnected_at = True, watcher.result()
                sender.cancel()
            watcher.cancel()
            await asyncio.gather(sender, watcher, return_exceptions=True)
        exc = None if sender.cancelled() else sender.exception()
        if isinstance(exc, ConnectionError):
            rec.disconnected, rec.disconnected_at, rec.completed = True, time.time(), False
        elif exc is not None:
            raise exc
        return rec.completed and keep and not conn.eof

    async def _emit(self, rec: RecordedRequest, reply: Reply, writer: asyncio.StreamWriter, keep: bool) -> None:
        """Write the scripted response; ``rec.completed`` is set just before the last byte."""
        if reply.latency > 0:
            await asyncio.sleep(reply.latency)
        if rec.stream and reply.status == 200 and not reply.malformed:
            return await self._stream(rec, reply, writer, keep)
        if reply.malformed:
            payload = b'{"choices": ['
        elif reply.error_body is not None:
            payload = json.dumps({"error": reply.error_body}).encode()
        else:
            payload = json.dumps(self._completion(rec, reply)).encode()
        cut = len(payload)  # truncate_after: announce len(payload) bytes, send fewer, hang up
        if reply.truncate_after is not None:
            cut = max(0, min(reply.truncate_after, len(payload) - 1))
        rec.completed = cut == len(payload)  # before writing: the client may look at once
        _write(writer, reply.status, payload[:cut], keep, reply.headers, len(payload))
        await writer.drain()

    async def _stream(self, rec: RecordedRequest, reply: Reply, writer: asyncio.StreamWriter, keep: bool) -> None:
        """Send the reply as an SSE chat-completion stream in chunked transfer encoding."""
        out = bytearray(
            _head(
                200,
                "text/event-stream",
                reply.headers,
                {"Transfer-Encoding": "chunked", "Cache-Control": "no-cache"},
                keep,
            )
        )
        base = {
            "id": _new_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": reply.model or rec.model,
        }

        async def flush() -> None:
            writer.write(out)
            out.clear()
            await writer.drain()

        async def event(data: Any, delay: bool = True) -> None:
            """Queue one SSE event; a paced stream sleeps first and sends it at once."""
            if delay and reply.chunk_delay > 0:
                await asyncio.sleep(reply.chunk_delay)
            frame = f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()
            out.extend(b"%x\r\n%s\r\n" % (len(frame), frame))
            if reply.chunk_delay > 0:
                await flush()  # unpaced streams go out in one write: far less CPU under load

        size = max(1, reply.chunk_size)
        pieces = [reply.content[i : i + size] for i in range(0, len(reply.content), size)] or [""]
        error_after = reply.stream_error_after
        if error_after is None and reply.error_body is not None:
            error_after = 0  # an HTTP-200 error body becomes a lone SSE error event
        for i in range(len(pieces) + 1):
            if reply.truncate_after is not None and i >= reply.truncate_after:
                return await flush()  # the caller hangs up: no [DONE], no chunked terminator
            if error_after is not None and i >= error_after:
                err = reply.error_body or {"message": "scripted mid-stream provider error", "code": 502}
                await event({"error": err})
                break
            if i == len(pieces):
                for n, call in enumerate(reply.tool_calls or []):  # each call whole, in one delta
                    delta = {"tool_calls": [{"index": n, **call}]}
                    await event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
                await event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": _finish_reason(reply)}]})
                await event({**base, "choices": [], "usage": self._usage(rec, reply)}, delay=False)
                await event("[DONE]", delay=False)
                break
            delta = {"role": "assistant", "content": pieces[i]} if i == 0 else {"content": pieces[i]}
            await event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}, delay=i > 0)
            rec.chunks_sent += 1
        out.extend(b"0\r\n\r\n")
        rec.completed = True
        await flush()

    def _completion(self, rec: RecordedRequest, reply: Reply) -> dict:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        return {
            "id": _new_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model or rec.model,
            "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(reply)}],
            "usage": self._usage(rec, reply),
        }

    @staticmethod
    def _usage(rec: RecordedRequest, reply: Reply) -> dict:
        """``reply.usage`` verbatim, else a rough count: tokens = chars // 4 (at least 1)."""
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


def _head(status: int, ctype: str, extra: dict, framing: dict, keep: bool) -> bytes:
    """Status line and headers of a response."""
    lines = [
        f"HTTP/1.1 {status} {_PHRASES.get(status, 'Unknown')}",
        f"Content-Type: {ctype}",
        f"Connection: {'keep-alive' if keep else 'close'}",
    ]
    lines += [f"{k}: {v}" for k, v in {**framing, **extra}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _write(
    writer: asyncio.StreamWriter,
    status: int,
    payload: Any,
    keep: bool,
    extra: dict | None = None,
    length: int | None = None,
) -> None:
    """Write a whole JSON response; ``payload`` is bytes or an object to serialise."""
    if not isinstance(payload, bytes):
        payload = json.dumps(payload).encode()
    framing = {"Content-Length": str(len(payload) if length is None else length)}
    writer.write(_head(status, "application/json", extra or {}, framing, keep) + payload)


def _err(message: str, code: int) -> dict:
    return {"error": {"message": message, "code": code}}


def _new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


async def _main(argv: list[str] | None = None) -> None:
    """Command line: serve until SIGTERM/SIGINT, announcing the base URL as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--script",
        help='JSON file: a list of Reply dicts, or {"replies": [...], "model": ..., "default": {...}, "models": [...]}',
    )
    parser.add_argument("--default-text", help="answer with this text when nothing is scripted")
    args = parser.parse_args(argv)
    srv = ScriptedModelServer(args.host, args.port)
    if args.default_text is not None:
        srv.default = Reply.text(args.default_text)
    if args.script:
        spec = json.loads(Path(args.script).read_text(encoding="utf-8"))
        spec = {"replies": spec} if isinstance(spec, list) else spec
        srv.script(*map(Reply.from_dict, spec.get("replies", [])), model=spec.get("model"))
        if "default" in spec:
            srv.default = Reply.from_dict(spec["default"])
        srv.models = spec.get("models", srv.models)
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, done.set)
    await srv.astart()
    print(json.dumps({"base_url": srv.base_url}), flush=True)
    await done.wait()
    await srv.astop()


if __name__ == "__main__":
    asyncio.run(_main())
