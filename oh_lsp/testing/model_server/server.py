"""The scripted model server itself: listening, one task per connection, and routing each request.

A chat-completions request is recorded, answered by the :class:`ReplyScript` it inherits, and sent by
``respond.py``; ``/models`` lists ``self.models``; the tokenizer endpoints and ``/props`` answer as
``self.tokenizer`` and ``self.props`` say; ``/__*`` goes to ``control.py``. Runs on a private event loop in a
daemon thread (:meth:`ScriptedModelServer.start`) or inside the caller's loop (:meth:`ScriptedModelServer.astart`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from typing import Self

from oh_lsp.testing.model_server.control import control, is_control
from oh_lsp.testing.model_server.framing import Connection, RequestHead, read_head, write_json
from oh_lsp.testing.model_server.respond import send_reply
from oh_lsp.testing.model_server.script import RecordedRequest, ReplyScript
from oh_lsp.testing.model_server.wire import (
    CHAT_PATHS,
    MODELS_PATHS,
    PROPS_PATH,
    TOKENIZE_PATHS,
    error,
    model_list,
    tokenize,
)


class ScriptedModelServer(ReplyScript):
    """OpenAI-compatible HTTP server whose answers are scripted by the test.

    :meth:`start`/:meth:`stop` run it on a private event loop in a daemon thread;
    :meth:`astart`/:meth:`astop` run it inside the caller's event loop instead.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        super().__init__()
        self.host, self.port, self._want_port = host, port, port
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def astart(self) -> Self:
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

    def start(self) -> Self:
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

    # ------------------------------------------------------------------ connections
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection until either side closes it."""
        task = asyncio.current_task()
        assert task is not None  # asyncio runs each connection's handler in a task of its own
        self._tasks.add(task)
        conn = Connection(reader, next(self._connections))
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

    async def _one_request(self, conn: Connection, writer: asyncio.StreamWriter) -> bool:
        """Read and answer one request; return whether to keep the connection open."""
        req = await read_head(conn)
        if req is None:
            return not conn.eof  # tolerate stray CRLF between requests
        keep = req.keep_alive
        if req.chunked:
            write_json(writer, 411, error("chunked request bodies are not supported", 411), False)
            await writer.drain()
            return False
        raw = await conn.readexactly(req.content_length)
        if req.path in CHAT_PATHS and req.method == "POST":
            return await self._chat(req, raw, conn, writer)
        if is_control(req.path):
            status, payload = control(self, req.method, req.path, raw)
        elif req.path in MODELS_PATHS and req.method == "GET":
            status, payload = 200, model_list(self.models)
        elif req.path in TOKENIZE_PATHS and req.method == "POST":
            text = json.loads(raw) if raw else None
            status, payload = tokenize(self.tokenizer, req.path, text)
            if status == 200 and isinstance(text, dict):
                self.tokenized.append(str(text.get("content", text.get("input"))))
        elif req.path == PROPS_PATH and req.method == "GET" and self.props is not None:
            status, payload = 200, self.props
        else:
            status, payload = 404, error(f"not found: {req.method} {req.path}", 404)
        write_json(writer, status, payload, keep)
        await writer.drain()
        return keep

    async def _chat(self, req: RequestHead, raw: bytes, conn: Connection, writer: asyncio.StreamWriter) -> bool:
        """Record a chat-completions request, choose its reply, and send it."""
        keep = req.keep_alive
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        ok = isinstance(body, dict)
        rec = RecordedRequest(
            req.method,
            req.path,
            req.headers,
            body if ok else None,
            raw,
            body.get("model") if ok else None,
            bool(ok and body.get("stream")),
            time.time(),
            connection=conn.number,
        )
        self.record(rec)
        if not ok:
            rec.completed = True
            write_json(writer, 400, error("request body is not a JSON object", 400), keep)
            await writer.drain()
            return keep
        rec.reply = reply = self.choose(rec)
        if self.prompt_cache is not None and reply.status == 200 and reply.error_body is None:
            rec.prompt_cache = self.prompt_cache.account(rec, ready_in=reply.latency)
        # Send while a watcher reads ahead, so a client that hangs up is noticed at once
        # and the pending sleep (latency or chunk delay) is cancelled.
        sender = asyncio.ensure_future(send_reply(rec, reply, writer, keep))
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
