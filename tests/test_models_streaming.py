"""Streaming: broken answers are failures (never empty successes), progress counts tokens as they arrive, and a
cancel closes the connection before the next chunk."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from oh_lsp import ExecutionEngine, QueuedTask, TaskStatus
from oh_lsp import events as ev
from oh_lsp.llm.client import line_batches
from oh_lsp.llm.errors import ErrorKind, ModelCallError
from oh_lsp.testing.model_server import Reply
from tests.conftest import GOOD_TESTS, fenced
from tests.models_support import MESSAGES, Events, ab_config, gateway_for, task

ONLY_A = {"model-a": {"quality": 4, "price_prompt": 1e-6, "price_completion": 2e-6}}
ANSWER = fenced(GOOD_TESTS)
BROKEN = {
    "HTTP-200 error body": lambda: Reply.error_in_body("upstream provider failed"),
    "mid-stream error event": lambda: Reply.text(ANSWER, stream_error_after=3),
    "truncated stream": lambda: Reply.text(ANSWER, truncate_after=3),
}


@pytest.mark.parametrize("name", list(BROKEN))
async def test_broken_answers_are_failures_never_empty_successes(
    project: Path, model_server, tmp_path: Path, name: str
) -> None:
    model_server.default = BROKEN[name]()
    config = ab_config(model_server, tmp_path, models=ONLY_A)
    gateway = gateway_for(config, project)
    try:
        with pytest.raises(ModelCallError) as caught:
            await gateway.complete(task(), MESSAGES, emit=Events())
        calls = gateway.store.model_call_stats(0)["model-a"]
        state = gateway.store.model_states()["model-a"]
    finally:
        await gateway.aclose()
    assert caught.value.kind is ErrorKind.TRANSIENT and not caught.value.fatal
    assert len(model_server.requests) == 3, "the same model is retried twice, then the request layer gives up"
    assert calls == {"calls": 3, "ok": 0, "avg_latency_ms": None}
    assert len(state.failures) == 3, "each one counts toward the breaker"


@pytest.mark.parametrize("name", list(BROKEN))
async def test_after_a_broken_answer_the_retry_delivers_the_whole_answer(
    project: Path, model_server, tmp_path: Path, name: str
) -> None:
    model_server.script(BROKEN[name](), Reply.text(ANSWER))
    config = ab_config(model_server, tmp_path, models=ONLY_A)
    gateway = gateway_for(config, project)
    try:
        result = await gateway.complete(task(), MESSAGES, emit=Events())
    finally:
        await gateway.aclose()
    assert result.content == ANSWER and result.finish_reason == "stop"
    assert len(model_server.requests) == 2


async def test_cancel_mid_stream_closes_the_connection_before_the_next_chunk(
    project: Path, model_server, tmp_path: Path
) -> None:
    model_server.default = Reply.text(ANSWER * 4, chunk_delay=0.05, chunk_size=4)
    config = ab_config(model_server, tmp_path, models=ONLY_A)
    engine = ExecutionEngine(config, 1, project_root=project, poll_interval=0.05)
    tokens: list[int] = []
    engine.subscribe(lambda e: tokens.append(e.data["chunks"]) if e.kind == ev.TOKENS else None)
    await engine.start()
    try:
        task_id = await engine.submit_task(QueuedTask(task_type="unit_test", target_file=Path("pkg/calc.py")))
        deadline = time.monotonic() + 60  # the baseline's pytest run comes first: slow on a busy machine
        while (not model_server.requests or model_server.requests[0].chunks_sent < 4) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        record = model_server.requests[0]
        sent_before = record.chunks_sent
        cancelled_at = time.time()
        assert await engine.cancel_task(task_id)
        final = await engine.wait_for(task_id, timeout=5)
    finally:
        await engine.stop()
        engine.close()
    assert final.status is TaskStatus.CANCELLED
    assert tokens[:3] == [1, 2, 3], "progress reports tokens as they arrive"
    await asyncio.sleep(0.2)
    assert record.disconnected and not record.completed
    assert record.disconnected_at - cancelled_at < 0.05, "the server saw the hang-up within one chunk interval"
    assert record.chunks_sent <= sent_before + 1, "no further tokens were streamed (and billed)"


async def test_cancelling_the_gateway_call_closes_the_stream_at_once(
    project: Path, model_server, tmp_path: Path
) -> None:
    model_server.default = Reply.text(ANSWER * 4, chunk_delay=0.05, chunk_size=4)
    gateway = gateway_for(ab_config(model_server, tmp_path, models=ONLY_A), project)
    chunks: list[str] = []
    call = asyncio.create_task(gateway.complete(task(), MESSAGES, emit=Events(), on_delta=chunks.append))
    try:
        while len(chunks) < 3:
            await asyncio.sleep(0.005)
        cancelled_at = time.time()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    finally:
        await gateway.aclose()
    await asyncio.sleep(0.2)
    record = model_server.requests[0]
    assert record.disconnected and record.disconnected_at - cancelled_at < 0.05
    assert len(model_server.requests) == 1, "a cancel is not retried"


# --- the stream's lines ---------------------------------------------------------------------------------------------
LINE_BREAKS = re.compile(r"\r\n|\r|\n")


def lines_of(text: str) -> list[str]:
    """The SSE format's lines of `text`: ended by CRLF, LF or CR; a last line without an ending counts too."""
    pieces = LINE_BREAKS.split(text)
    return pieces[:-1] if pieces[-1] == "" else pieces


async def read_lines(parts: list[bytes]) -> list[str]:
    async def chunks() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    return [line async for lines in line_batches(chunks()) for line in lines]


async def test_the_streams_lines_are_the_same_however_the_body_is_cut_into_chunks() -> None:
    """Split on the bytes: a CRLF cut between two chunks is one line break, and a character of several bytes cut
    between two chunks is whole again (each chunk decoded alone would break both)."""
    rng = random.Random(14)
    words = ["data: ", "{}", "é", "漢", "\r", "\n", "\r\n", ": keep-alive", "[DONE]"]
    for _ in range(2000):
        text = "".join(rng.choice(words) for _ in range(rng.randint(0, 25)))
        body = text.encode()
        cuts = sorted(rng.sample(range(len(body) + 1), min(len(body) + 1, rng.randint(0, 6))))
        parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        assert await read_lines(parts) == lines_of(text), (text, parts)
    assert await read_lines([b"data: 1\r", b"\ndata: \xc3", b"\xa9\r", b"data: 3"]) == ["data: 1", "data: é", "data: 3"]
