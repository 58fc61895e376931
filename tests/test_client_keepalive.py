"""`ChatClient` keeps its connection alive between calls (found by the P3 benchmark, bench/llm_client_overhead.py).

Leaving a streamed response at `data: [DONE]` without reading the end of its chunked body made httpx close the
connection, so every call paid a new TCP connect (and, against a real provider, a new TLS handshake).
"""

from __future__ import annotations

from pydantic import SecretStr

from oh_lsp.config import OpenHandsConfig
from oh_lsp.llm.client import ChatClient
from oh_lsp.testing.model_server import Reply
from tests.conftest import SENTINEL_KEY


async def test_sequential_streamed_calls_reuse_one_connection(model_server) -> None:
    model_server.script(Reply.text("first answer"), Reply.text("second answer"), Reply.text("third", chunk_size=1))
    client = ChatClient(OpenHandsConfig(model="m", base_url=model_server.base_url, api_key=SecretStr(SENTINEL_KEY)))
    try:
        answers = [(await client.chat("m", [{"role": "user", "content": "hi"}])).content for _ in range(3)]
    finally:
        await client.aclose()
    assert answers == ["first answer", "second answer", "third"]
    requests = model_server.requests
    assert all(r.completed and not r.disconnected for r in requests)
    assert {r.connection for r in requests} == {requests[0].connection}, "each call opened a new connection"
