"""A usage meter for the quality benchmark: a pass-through HTTP proxy on 127.0.0.1 in front of an OpenAI-compatible
endpoint, which records every chat completion that goes through it.

Both tools of bench/quality.py (oh-lsp and CoverUp) talk to the endpoint through a meter of their own, so that their
tokens are counted by one procedure, not by each tool's own report (CoverUp reports only a cost, priced by litellm):

- tokens are the endpoint's `usage` where the answer carries one (a JSON answer, or a stream's usage chunk);
- where it carries none (llama-cpp-python's streams), they are estimated after the run as oh-lsp itself estimates
  them (oh_lsp.llm.tokens: the endpoint's own tokenizer, else characters / 4), and the call is marked estimated;
- the text of every answer is kept, so that the benchmark can count the tests the model proposed.

Requests and answers pass through unchanged (answers decoded: no content-encoding is passed on). The meter never logs
a header: the key the tools send goes only to the endpoint.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlparse

import httpx

from oh_lsp.llm.tokens import EndpointTokenizer, endpoint_root, estimate_usage

HOP_BY_HOP = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "accept-encoding", "upgrade"}
ANSWER_HEADERS_DROPPED = {"content-length", "connection", "keep-alive", "transfer-encoding", "content-encoding"}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class MeteredCall:
    """One chat-completions exchange as it went through the meter."""

    status: int
    stream: bool
    seconds: float
    messages: list[dict[str, Any]] = field(default_factory=list)
    answer: str = ""  # the answer's text, with any tool call's arguments
    prompt_tokens: int | None = None  # None until settled, when the answer carried no usage
    completion_tokens: int | None = None
    estimated: bool = False
    finish_reason: str | None = None  # the answer's last one; None when it gave none (a stream cut short)
    error: str = ""

    @property
    def tokens(self) -> int:
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)

    def summary(self) -> dict[str, Any]:
        """What the benchmark's JSON keeps of the call (not the prompt, not the answer's text)."""
        return {
            "status": self.status,
            "stream": self.stream,
            "seconds": round(self.seconds, 1),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "estimated": self.estimated,
            "finish_reason": self.finish_reason,
            "answer_chars": len(self.answer),
            **({"error": self.error} if self.error else {}),
        }


class UsageMeter:
    """``with UsageMeter("http://127.0.0.1:8000/v1") as meter:`` point a tool at ``meter.base_url``; then
    ``meter.settle()`` (estimates what had no usage) and read ``meter.calls`` / ``meter.totals()``."""

    def __init__(self, upstream: str, *, timeout: float = 900.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.timeout = timeout
        self.calls: list[MeteredCall] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        local = (urlparse(self.upstream).hostname or "") in LOOPBACK
        # a remote endpoint may need the user's HTTP(S)_PROXY; a loopback one never goes through it
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=30.0), trust_env=not local)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the meter first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def upstream_url(self, path: str) -> str:
        """The endpoint's URL for a path asked of the meter: under /v1 it maps to the endpoint's base URL, anything
        else (a tokenizer, llama.cpp's /props) to the server's root beside it."""
        if path == "/v1" or path.startswith("/v1/"):
            return self.upstream + path[3:]
        return endpoint_root(self.upstream) + path

    def start(self) -> Self:
        meter: UsageMeter = self

        class Handler(_Forwarder):
            owner = meter

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="usage-meter", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._http.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self, call: MeteredCall) -> None:
        with self._lock:
            self.calls.append(call)

    def settle(self, api_key: str | None = None) -> None:
        """Estimate the tokens of the calls whose answer carried no usage, as oh-lsp does (module docstring)."""
        missing = [c for c in self.calls if c.status == 200 and c.prompt_tokens is None]
        if missing:
            asyncio.run(self._estimate(missing, api_key))

    async def _estimate(self, calls: list[MeteredCall], api_key: str | None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        local = (urlparse(self.upstream).hostname or "") in LOOPBACK
        async with httpx.AsyncClient(timeout=30.0, trust_env=not local) as http:
            tokenizer = EndpointTokenizer(http, self.upstream, headers)
            for call in calls:
                call.prompt_tokens, call.completion_tokens, _ = await estimate_usage(
                    tokenizer, call.messages, call.answer
                )
                call.estimated = True

    def totals(self) -> dict[str, Any]:
        with self._lock:
            calls = list(self.calls)
        return {
            "calls": len(calls),
            "failed_calls": sum(1 for c in calls if c.status != 200 or c.error),
            "prompt_tokens": sum(c.prompt_tokens or 0 for c in calls),
            "completion_tokens": sum(c.completion_tokens or 0 for c in calls),
            "tokens": sum(c.tokens for c in calls),
            "estimated_calls": sum(1 for c in calls if c.estimated),
            "seconds_in_calls": round(sum(c.seconds for c in calls), 1),
        }


class _Forwarder(BaseHTTPRequestHandler):
    owner: UsageMeter
    protocol_version = "HTTP/1.0"  # one exchange per connection: a streamed answer ends when the meter hangs up

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing is logged: a request line is harmless, but the habit of logging requests is not."""

    def do_GET(self) -> None:
        self._forward(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._forward(self.rfile.read(length) if length else b"")

    def _forward(self, body: bytes | None) -> None:
        chat = self.path.split("?", 1)[0].endswith("/chat/completions") and body is not None
        request: dict[str, Any] = {}
        if chat:
            try:
                request = json.loads(body or b"{}")
            except ValueError:
                request = {}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        started = time.monotonic()
        received = bytearray()
        status, error, streamed = 502, "", False
        try:
            with self.owner._http.stream(
                self.command, self.owner.upstream_url(self.path), content=body, headers=headers
            ) as answer:
                status = answer.status_code
                streamed = "text/event-stream" in answer.headers.get("content-type", "")
                self.send_response(status)
                for name, value in answer.headers.items():
                    if name.lower() not in ANSWER_HEADERS_DROPPED:
                        self.send_header(name, value)
                if streamed:
                    self.end_headers()
                    for chunk in answer.iter_bytes():
                        received += chunk
                        self.wfile.write(chunk)
                        self.wfile.flush()
                else:
                    data = answer.read()
                    received += data
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            if status == 502 and not received:
                message = json.dumps({"error": {"message": f"usage meter: the endpoint failed: {error}"}}).encode()
                try:
                    self.send_response(502)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(message)))
                    self.end_headers()
                    self.wfile.write(message)
                except OSError:
                    pass
        except OSError as exc:  # the tool hung up mid-answer
            error = f"client hung up: {exc}"
        if chat:
            call = MeteredCall(status=status, stream=streamed, seconds=time.monotonic() - started, error=error)
            call.messages = list(request.get("messages") or [])
            _read_answer(call, bytes(received), streamed)
            self.owner.record(call)


def _read_answer(call: MeteredCall, data: bytes, streamed: bool) -> None:
    """The answer's text and its usage, from one JSON body or from a stream's `data:` events."""
    bodies: list[Any] = []
    text = data.decode("utf-8", errors="replace")
    if streamed:
        for line in text.splitlines():
            if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
                try:
                    bodies.append(json.loads(line[5:]))
                except ValueError:
                    continue
    else:
        try:
            bodies.append(json.loads(text))
        except ValueError:
            return
    parts: list[str] = []
    for body in bodies:
        if not isinstance(body, dict):
            continue
        for choice in body.get("choices") or []:
            message = choice.get("delta" if streamed else "message") or {}
            parts.append(message.get("content") or "")
            call.finish_reason = choice.get("finish_reason") or call.finish_reason
            for tool_call in message.get("tool_calls") or []:
                parts.append((tool_call.get("function") or {}).get("arguments") or "")
        usage = body.get("usage")
        if isinstance(usage, dict) and usage.get("prompt_tokens") is not None:
            call.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            call.completion_tokens = int(usage.get("completion_tokens") or 0)
    call.answer = "".join(parts)
