"""Tests for oh_lsp.testing.model_server, over real HTTP with httpx."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from oh_lsp.testing.model_server import RecordedRequest, Reply, ScriptedModelServer

REPO_ROOT = Path(__file__).resolve().parents[1]
MSGS = [{"role": "user", "content": "x" * 40}]  # 40 chars -> 10 prompt tokens


@pytest.fixture
def srv():
    with ScriptedModelServer() as server:
        yield server


@pytest.fixture
def client(srv):
    with httpx.Client(base_url=srv.base_url, timeout=10) as c:
        yield c


def chat(client: httpx.Client, model: str = "m", **extra) -> httpx.Response:
    return client.post("/chat/completions", json={"model": model, "messages": MSGS, **extra})


def sse_events(client: httpx.Client, model: str = "m", **extra) -> tuple[httpx.Response, list]:
    """POST a streaming request; return the response and its parsed ``data:`` payloads."""
    events = []
    body = {"model": model, "messages": MSGS, "stream": True, **extra}
    with client.stream("POST", "/chat/completions", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                events.append(data if data == "[DONE]" else json.loads(data))
    return r, events


def wait_for(predicate, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.002)


def content_of(r: httpx.Response) -> str:
    return r.json()["choices"][0]["message"]["content"]


# ---------------------------------------------------------------- lifecycle


def test_base_url_start_idempotent_and_stop():
    server = ScriptedModelServer()
    assert server.start() is server
    port = server.port
    assert port != 0 and server.base_url == f"http://127.0.0.1:{port}/v1"
    assert server.start() is server and server.port == port  # idempotent
    server.default = Reply.text("up")
    assert content_of(httpx.post(server.base_url + "/chat/completions", json={"model": "m"})) == "up"
    server.stop()
    server.stop()  # second stop is harmless
    with pytest.raises(httpx.ConnectError):
        httpx.post(server.base_url + "/chat/completions", json={"model": "m"})


def test_stop_drops_pending_requests_promptly():
    server = ScriptedModelServer().start()
    server.script(Reply.text("never", latency=30))
    errors: list[Exception] = []

    def call() -> None:
        try:
            httpx.post(server.base_url + "/chat/completions", json={"model": "m"}, timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    t.start()
    wait_for(lambda: server.requests)
    t0 = time.perf_counter()
    server.stop()
    t.join(timeout=5)
    assert time.perf_counter() - t0 < 1
    assert len(errors) == 1 and isinstance(errors[0], httpx.RemoteProtocolError)
    assert not server.requests[0].completed


async def test_astart_in_running_loop():
    server = ScriptedModelServer()
    assert await server.astart() is server
    assert await server.astart() is server
    server.script(Reply.text("from the caller's loop"))
    async with httpx.AsyncClient(base_url=server.base_url) as c:
        r = await c.post("/chat/completions", json={"model": "m", "messages": MSGS})
    assert content_of(r) == "from the caller's loop"
    await server.astop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=server.base_url) as c:
            await c.post("/chat/completions", json={"model": "m"})


async def test_thread_server_usable_from_async_test():
    with ScriptedModelServer() as server:  # start() must not need the caller's loop
        server.script(Reply.text("ok", latency=0.05))
        async with httpx.AsyncClient(base_url=server.base_url) as c:
            r = await c.post("/chat/completions", json={"model": "m"})
        assert content_of(r) == "ok"


# ---------------------------------------------------------------- scripting


def test_canned_answers_in_order(srv, client):
    srv.script(Reply.text("one"), Reply.text("two"))
    srv.script(Reply.text("three"))
    assert [content_of(chat(client)) for _ in range(3)] == ["one", "two", "three"]
    r = chat(client)  # queue exhausted -> loud default
    assert r.status_code == 500


def test_completion_shape_and_model_echo(srv, client):
    srv.script(Reply.text("hi"), Reply.text("hi", model="other/model", finish_reason="length"))
    body = chat(client, model="vendor/m1").json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int) and body["model"] == "vendor/m1"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hi"}
    assert body["choices"][0]["finish_reason"] == "stop"
    body = chat(client, model="vendor/m1").json()
    assert body["model"] == "other/model" and body["choices"][0]["finish_reason"] == "length"


def test_per_model_queues(srv, client):
    srv.script(Reply.text("shared-1"), Reply.text("shared-2"))
    srv.script(Reply.text("for-a"), model="a")
    assert content_of(chat(client, model="b")) == "shared-1"
    assert content_of(chat(client, model="a")) == "for-a"  # model queue wins
    assert content_of(chat(client, model="a")) == "shared-2"  # then falls back to shared
    srv.script(Reply.text("b-only"), model="b")
    assert chat(client, model="a").status_code == 500  # b's queue is not used for a
    assert content_of(chat(client, model="b")) == "b-only"


def test_default_reply_and_loud_unscripted_500(srv, client):
    r = chat(client)
    assert r.status_code == 500
    err = r.json()["error"]
    assert "no scripted reply" in err["message"] and err["code"] == 500
    assert "choices" not in r.json()
    srv.default = Reply.text("fallback")
    assert [content_of(chat(client)) for _ in range(2)] == ["fallback", "fallback"]
    srv.script(Reply.text("queued"))
    assert content_of(chat(client)) == "queued"  # queue beats default
    assert content_of(chat(client)) == "fallback"


def test_responder_consulted_first_and_none_falls_through(srv, client):
    seen: list[RecordedRequest] = []

    def responder(req: RecordedRequest):
        seen.append(req)
        return Reply.text("echo:" + req.body["messages"][0]["content"]) if req.model == "echo" else None

    srv.responder = responder
    srv.script(Reply.text("queued"))
    r = client.post("/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "hey"}]})
    assert content_of(r) == "echo:hey"
    assert content_of(chat(client, model="other")) == "queued"
    assert [s.model for s in seen] == ["echo", "other"]

    srv.responder = lambda req: 1 / 0
    r = chat(client)
    assert r.status_code == 500 and "ZeroDivisionError" in r.json()["error"]["message"]


def test_clear(srv, client):
    srv.script(Reply.text("a"))
    srv.script(Reply.text("b"), model="m")
    srv.default = Reply.text("d")
    chat(client, model="zzz")
    assert len(srv.requests) == 1
    srv.clear()
    assert srv.requests == []
    assert chat(client, model="m").status_code == 500  # queues gone, default reset


def test_reply_from_dict():
    r = Reply.from_dict({"content": "x", "latency": 0.1, "headers": {"A": "1"}})
    assert r == Reply(content="x", latency=0.1, headers={"A": "1"})
    with pytest.raises(ValueError, match="bogus"):
        Reply.from_dict({"bogus": 1})


# ---------------------------------------------------------------- failure modes


def test_latency_is_applied(srv, client):
    srv.script(Reply.text("slow", latency=0.3), Reply.text("fast"))
    t0 = time.perf_counter()
    assert content_of(chat(client)) == "slow"
    slow = time.perf_counter() - t0
    t0 = time.perf_counter()
    chat(client)
    fast = time.perf_counter() - t0
    assert 0.3 <= slow < 0.6
    assert fast < 0.1


def test_rate_limited_with_retry_after(srv, client):
    srv.script(Reply.rate_limited(retry_after=2), Reply.rate_limited())
    r = chat(client)
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    assert r.json()["error"]["code"] == 429 and "Rate limit" in r.json()["error"]["message"]
    assert "x-ratelimit-remaining" not in r.headers
    r = chat(client)
    assert r.status_code == 429 and "retry-after" not in r.headers


def test_daily_rate_limit_headers(srv, client):
    srv.script(Reply.rate_limited(daily=True, reset=1767225600000))
    r = chat(client)
    assert r.status_code == 429
    assert r.headers["x-ratelimit-remaining"] == "0"
    assert r.headers["x-ratelimit-reset"] == "1767225600000"
    assert "free-models-per-day" in r.json()["error"]["message"]


@pytest.mark.parametrize("status", [400, 401, 402, 500, 503])
def test_http_errors(srv, client, status):
    srv.script(Reply.http_error(status, "boom", headers={"X-Extra": "yes"}))
    r = chat(client)
    assert r.status_code == status
    assert r.json() == {"error": {"message": "boom", "code": status}}
    assert r.headers["x-extra"] == "yes"


def test_http_error_on_streaming_request_is_plain_json(srv, client):
    srv.script(Reply.http_error(503, "overloaded"))
    r = client.post("/chat/completions", json={"model": "m", "stream": True})
    assert r.status_code == 503 and r.headers["content-type"] == "application/json"
    assert r.json()["error"]["message"] == "overloaded"


def test_error_in_body_non_stream(srv, client):
    srv.script(Reply.error_in_body("upstream died", code=502))
    r = chat(client)
    assert r.status_code == 200
    assert r.json() == {"error": {"message": "upstream died", "code": 502}}


def test_error_in_body_stream(srv, client):
    srv.script(Reply.error_in_body("upstream died"))
    r, events = sse_events(client)
    assert r.status_code == 200 and r.headers["content-type"] == "text/event-stream"
    assert events == [{"error": {"message": "upstream died", "code": 502}}]


def test_malformed_json(srv, client):
    srv.script(Reply.text("x", malformed=True))
    r = chat(client)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_truncated_non_stream(srv, client):
    srv.script(Reply.text("hello world", truncate_after=10))
    with pytest.raises(httpx.RemoteProtocolError):
        chat(client)
    wait_for(lambda: srv.requests and not srv.requests[0].completed)
    srv.script(Reply.text("after"))
    assert content_of(chat(client)) == "after"  # the client recovers on a new connection


# ---------------------------------------------------------------- streaming


def test_streaming_reassembles_content_with_usage_and_done(srv, client):
    text = "The quick brown fox jumps over the lazy dog."  # 44 chars -> 6 chunks of 8
    srv.script(Reply.text(text, chunk_size=8))
    r, events = sse_events(client, model="vendor/m")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream"
    assert r.headers["transfer-encoding"] == "chunked"
    assert events[-1] == "[DONE]"
    *chunks, finish, usage_evt, _ = events
    assert len(chunks) == 6
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "vendor/m" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "role" not in chunks[1]["choices"][0]["delta"]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == text
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert usage_evt["choices"] == []
    assert usage_evt["usage"] == {"prompt_tokens": 10, "completion_tokens": 11, "total_tokens": 21, "cost": 0.000032}
    rec = srv.requests[0]
    assert rec.stream and rec.completed and rec.chunks_sent == 6 and not rec.disconnected


def test_stream_chunk_delay_paces_events(srv, client):
    srv.script(Reply.text("a" * 16, chunk_size=4, chunk_delay=0.05))  # 4 chunks + finish
    arrivals = []
    with client.stream("POST", "/chat/completions", json={"model": "m", "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.perf_counter())
    assert len(arrivals) == 7
    assert arrivals[4] - arrivals[0] >= 0.19  # 4 gaps of 50 ms up to the finish chunk


def test_mid_stream_error_event(srv, client):
    srv.script(Reply.text("abcdefgh" * 5, stream_error_after=2))
    r, events = sse_events(client)
    assert r.status_code == 200
    assert len(events) == 3 and "[DONE]" not in events
    assert [e["choices"][0]["delta"]["content"] for e in events[:2]] == ["abcdefgh", "abcdefgh"]
    assert events[2]["error"]["code"] == 502 and events[2]["error"]["message"]
    assert srv.requests[0].chunks_sent == 2


def test_truncated_stream(srv, client):
    srv.script(Reply.text("abcdefgh" * 5, truncate_after=2))
    events = []
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("POST", "/chat/completions", json={"model": "m", "stream": True}) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.append(line)
    assert len(events) == 2 and "data: [DONE]" not in events
    rec = srv.requests[0]
    assert rec.chunks_sent == 2
    wait_for(lambda: not rec.completed)


def test_explicit_usage_sent_verbatim(srv, client):
    srv.script(
        Reply.text("hi", usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}),
        Reply.text("hi", usage={"prompt_tokens": 1, "cost": 0.5}),
    )
    assert chat(client).json()["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    _, events = sse_events(client)
    assert events[-2]["usage"] == {"prompt_tokens": 1, "cost": 0.5}


def test_default_usage_computation(srv, client):
    srv.script(Reply.text("y" * 20), Reply.text(""))
    msgs = [{"role": "system", "content": "s" * 20}, {"role": "user", "content": [{"type": "text", "text": "t" * 20}]}]
    usage = client.post("/chat/completions", json={"model": "m", "messages": msgs}).json()["usage"]
    assert usage == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "cost": 0.00002}
    usage = client.post("/chat/completions", json={"model": "m"}).json()["usage"]
    assert usage["prompt_tokens"] == 1 and usage["completion_tokens"] == 1  # minimum of 1


# ---------------------------------------------------------------- tool calls (OpenAI function calling)


def test_tool_call_non_streaming(srv, client):
    srv.script(Reply.tool_call("file_editor", {"command": "create", "path": "/w/t.py"}, call_id="call_1"))
    body = chat(client, tools=[{"type": "function", "function": {"name": "file_editor"}}]).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == ""
    call = choice["message"]["tool_calls"][0]
    assert call["id"] == "call_1" and call["type"] == "function" and call["function"]["name"] == "file_editor"
    assert json.loads(call["function"]["arguments"]) == {"command": "create", "path": "/w/t.py"}
    assert body["usage"]["completion_tokens"] == len(json.dumps(call)) // 4  # the call counts as output
    assert srv.requests[0].body["tools"][0]["function"]["name"] == "file_editor"  # recorded as sent


def test_tool_call_streaming(srv, client):
    srv.script(Reply.tool_call("finish", {"message": "done"}, content="ok"))
    _r, events = sse_events(client)
    assert events[-1] == "[DONE]"
    *chunks, finish, usage_evt, _ = events
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "ok"
    calls = [c["choices"][0]["delta"]["tool_calls"] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    assert len(calls) == 1 and calls[0][0]["index"] == 0
    assert calls[0][0]["function"]["name"] == "finish"
    assert json.loads(calls[0][0]["function"]["arguments"]) == {"message": "done"}
    assert finish["choices"][0]["finish_reason"] == "tool_calls"
    assert usage_evt["usage"]["completion_tokens"] > 0


def test_tool_calls_from_dict_and_explicit_finish_reason(srv, client):
    call = {"id": "c", "type": "function", "function": {"name": "terminal", "arguments": "{}"}}
    srv.script(Reply.from_dict({"tool_calls": [call], "finish_reason": "length"}))
    choice = chat(client).json()["choices"][0]
    assert choice["message"]["tool_calls"] == [call] and choice["finish_reason"] == "length"


# ---------------------------------------------------------------- recording


def test_request_recording(srv, client):
    srv.script(Reply.text("r1"))
    before = time.time()
    r = client.post(
        "/chat/completions?x=1",
        headers={"Authorization": "Bearer sk-test", "X-Title": "oh-lsp", "HTTP-Referer": "https://example.org"},
        json={"model": "vendor/m", "messages": MSGS, "temperature": 0.2},
    )
    assert r.status_code == 200
    [rec] = srv.requests
    assert rec.method == "POST" and rec.path == "/v1/chat/completions"
    assert rec.headers["authorization"] == "Bearer sk-test"
    assert rec.headers["x-title"] == "oh-lsp" and rec.headers["http-referer"] == "https://example.org"
    assert rec.body == {"model": "vendor/m", "messages": MSGS, "temperature": 0.2}
    assert json.loads(rec.raw_body) == rec.body
    assert rec.model == "vendor/m" and rec.stream is False
    assert before <= rec.received_at <= time.time()
    assert rec.reply == Reply.text("r1")
    assert rec.completed and not rec.disconnected and rec.disconnected_at is None


def test_request_recorded_before_reply_is_chosen(srv, client):
    counts = []
    srv.responder = lambda req: counts.append(len(srv.requests)) or None
    srv.default = Reply.text("d")
    chat(client)
    chat(client)
    assert counts == [1, 2]


def test_disconnect_detection(srv):
    srv.script(Reply.text("abcdefgh" * 40, chunk_delay=0.05))
    with (
        httpx.Client(timeout=10) as c,
        c.stream("POST", srv.base_url + "/chat/completions", json={"model": "m", "stream": True}) as r,
    ):
        seen = 0
        for line in r.iter_lines():
            seen += line.startswith("data: ")
            if seen == 3:
                break
        closed_at = time.time()
        # leaving the block closes the half-read response -> httpx drops the connection
    rec = srv.requests[0]
    wait_for(lambda: rec.disconnected, timeout=1)
    assert rec.disconnected_at is not None
    assert -0.005 <= rec.disconnected_at - closed_at < 0.05
    assert 3 <= rec.chunks_sent <= 4
    assert not rec.completed
    time.sleep(0.2)  # the server stopped sending: no more chunks after the close
    assert rec.chunks_sent <= 4


def test_disconnect_during_latency(srv):
    srv.script(Reply.text("never", latency=5))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(srv.base_url + "/chat/completions", json={"model": "m"}, timeout=0.2)
    rec = srv.requests[0]
    wait_for(lambda: rec.disconnected, timeout=1)
    assert not rec.completed and rec.disconnected_at - rec.received_at < 0.5


# ---------------------------------------------------------------- HTTP details


def test_alternate_chat_paths(srv):
    srv.default = Reply.text("ok")
    origin = srv.base_url.removesuffix("/v1")
    for path in ("/v1/chat/completions", "/chat/completions", "/api/v1/chat/completions"):
        r = httpx.post(origin + path, json={"model": "m"})
        assert content_of(r) == "ok", path
    assert [q.path for q in srv.requests] == ["/v1/chat/completions", "/chat/completions", "/api/v1/chat/completions"]


def test_models_endpoint(srv, client):
    assert client.get("/models").json()["data"] == []
    srv.models = [{"id": "vendor/a", "context_length": 8192}, {"id": "vendor/b"}]
    assert client.get("/models").json()["data"] == srv.models
    assert srv.requests == []  # only chat completions are recorded


def test_unknown_path_404_and_bad_json_400(srv, client):
    r = client.get("/nope")
    assert r.status_code == 404 and "error" in r.json()
    r = client.get("/chat/completions")  # wrong method on a known path
    assert r.status_code == 404
    r = client.post("/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()
    [rec] = srv.requests
    assert rec.body is None and rec.raw_body == b"{not json" and rec.reply is None


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_chunked_request_body_gets_411(srv):
    req = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    out = raw_exchange(srv.port, req)
    assert out.startswith(b"HTTP/1.1 411 ")


def test_keep_alive_and_connection_close(srv):
    srv.default = Reply.text("ok")
    body = b'{"model": "m"}'
    keep = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    close = keep.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(keep)  # first request keeps the connection open...
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ") and b"Connection: keep-alive" in first
        s.sendall(keep + close)  # ...then two pipelined requests on the same socket
        out = b""
        while chunk := s.recv(65536):  # returns b"" only because the server honours close
            out += chunk
    assert out.count(b"HTTP/1.1 200 ") == 2 and b"Connection: close" in out
    assert len(srv.requests) == 3


def test_httpx_reuses_connections(srv, client):
    srv.default = Reply.text("ok")
    ports = set()
    for _ in range(5):
        r = chat(client)
        ports.add(r.extensions["network_stream"].get_extra_info("client_addr")[1])
    assert len(ports) == 1


# ---------------------------------------------------------------- out-of-process use


def test_control_endpoints(srv):
    origin = srv.base_url.removesuffix("/v1")
    with httpx.Client(base_url=origin) as c:
        r = c.post(
            "/__script",
            json={
                "replies": [
                    {"content": "one"},
                    {
                        "status": 429,
                        "headers": {"Retry-After": "3"},
                        "error_body": {"message": "slow down", "code": 429},
                    },
                ]
            },
        )
        assert r.json() == {"ok": True, "queued": 2}
        c.post("/__script", json={"replies": [{"content": "for x"}], "model": "x"})
        c.post("/__default", json={"content": "dflt"})
        assert content_of(c.post("/v1/chat/completions", json={"model": "x"})) == "for x"
        assert content_of(c.post("/v1/chat/completions", json={"model": "m"})) == "one"
        r = c.post("/v1/chat/completions", json={"model": "m"})
        assert r.status_code == 429 and r.headers["retry-after"] == "3"
        assert content_of(c.post("/v1/chat/completions", json={"model": "m", "messages": MSGS})) == "dflt"
        reqs = c.get("/__requests").json()
        assert [q["model"] for q in reqs] == ["x", "m", "m", "m"]
        assert reqs[3]["body"] == {"model": "m", "messages": MSGS} and "raw_body" not in reqs[3]
        assert reqs[3]["reply"]["content"] == "dflt" and reqs[3]["completed"] is True
        assert c.post("/__script", json={"replies": [{"bogus": 1}]}).status_code == 400
        assert c.post("/__clear").json() == {"ok": True}
        assert c.get("/__requests").json() == []
        assert c.post("/v1/chat/completions", json={"model": "m"}).status_code == 500
        assert c.get("/__nope").status_code == 404
    # the control endpoints also answer under the /v1 base URL
    srv.script(Reply.text("x"))
    assert httpx.post(srv.base_url + "/__clear").json() == {"ok": True}
    assert httpx.get(srv.base_url + "/__requests").json() == []
    assert httpx.post(srv.base_url + "/chat/completions", json={"model": "m"}).status_code == 500


def test_module_entry_point(tmp_path):
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"content": "scripted"}]))
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "oh_lsp.testing.model_server",
            "--port",
            "0",
            "--script",
            str(script),
            "--default-text",
            "fallback",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            line = proc.stdout.readline()
            base = json.loads(line)["base_url"]  # exactly one JSON line, flushed at startup
            assert base.startswith("http://127.0.0.1:") and base.endswith("/v1")
            post = lambda: httpx.post(base + "/chat/completions", json={"model": "m"})  # noqa: E731
            assert content_of(post()) == "scripted"
            assert content_of(post()) == "fallback"
        finally:
            proc.terminate()
        assert proc.wait(timeout=10) == 0  # SIGTERM is a clean shutdown
        assert proc.stdout.read() == ""


# ---------------------------------------------------------------- throughput


# One AsyncClient per simulated user: a single shared httpx client is itself the bottleneck
# at this concurrency (httpcore's pool bookkeeping is quadratic, encode/httpcore#1035), which
# would hide what these tests measure -- the server.


async def test_64_concurrent_requests_are_not_serialized(srv):
    clients = [httpx.AsyncClient(base_url=srv.base_url, timeout=10, verify=False) for _ in range(64)]
    try:
        srv.default = Reply.text("warm")
        await asyncio.gather(*(c.post("/chat/completions", json={"model": "m"}) for c in clients))
        srv.clear()
        srv.default = Reply.text("ok", latency=0.2)
        gc.collect()
        t0 = time.perf_counter()
        responses = await asyncio.gather(
            *(c.post("/chat/completions", json={"model": "m", "messages": MSGS}) for c in clients)
        )
        elapsed = time.perf_counter() - t0
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    assert all(content_of(r) == "ok" for r in responses)
    assert len(srv.requests) == 64
    assert elapsed < 1.5, elapsed  # concurrent: serialized would be 12.8 s (efficiency is measured in bench/, P2)


async def test_sustained_keep_alive_throughput(srv):
    """64 users x 4 back-to-back streamed requests at 200 ms each on keep-alive connections.

    Ideal is 0.8 s. A minimal asyncio client is used so the measurement is the server's
    overhead, not httpx's (whose per-request CPU shares this process and its GIL).
    """
    srv.default = Reply.text("token " * 20, latency=0.2)
    body = json.dumps({"model": "m", "messages": MSGS, "stream": True}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
        b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )

    async def user() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        for _ in range(4):  # the same connection for every request
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ") and b"Connection: keep-alive" in head
            assert (await reader.readuntil(b"0\r\n\r\n")).endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
        writer.close()

    gc.collect()  # garbage left by earlier tests (e.g. 64 httpx clients) would skew the timing
    t0 = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(64)))
    elapsed = time.perf_counter() - t0
    assert len(srv.requests) == 256 and all(r.completed for r in srv.requests)
    assert elapsed < 3.2, elapsed  # concurrent: serialized would be 51 s (efficiency is measured in bench/, P2)
