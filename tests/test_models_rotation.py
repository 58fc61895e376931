"""Rotation, cooldowns, fail-fast errors and the circuit breaker, against the scripted server, through the real engine
and the real gateway. State lives in the store, so another process (`oh-lsp metrics`) sees it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import pytest

from oh_lsp import ExecutionEngine, TaskStatus
from oh_lsp import events as ev
from oh_lsp.llm.errors import ErrorKind, ModelCallError
from oh_lsp.testing.model_server import Reply
from tests.conftest import GOOD_TESTS, OH_LSP, SENTINEL_KEY, cli_env, fenced
from tests.models_support import MESSAGES, Events, LogFile, ab_config, gateway_for, requested, task


def run_cli(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*OH_LSP, *args], cwd=project, env=env, capture_output=True, text=True, timeout=60)


async def run_task(engine: ExecutionEngine, description: str):
    seen: list[ev.Event] = []
    unsubscribe = engine.subscribe(seen.append)
    try:
        task_id = await engine.submit_task(_unit(description))
        final = await engine.wait_for(task_id, timeout=60)
    finally:
        unsubscribe()
    return final, [e for e in seen if e.task_id == final.task_id]


def _unit(description: str):
    from oh_lsp import QueuedTask

    return QueuedTask(task_type="unit_test", description=description, target_file=Path("pkg/calc.py"))


async def test_429_rotates_to_b_then_a_is_preferred_again_after_its_cooldown(
    project: Path, model_server, tmp_path: Path
) -> None:
    a_limited = True
    model_server.responder = lambda rec: (
        Reply.rate_limited(retry_after=2) if rec.model == "model-a" and a_limited else None
    )
    model_server.default = Reply.text(fenced(GOOD_TESTS))
    log = LogFile(project)
    engine = ExecutionEngine(ab_config(model_server, tmp_path), 1, project_root=project, poll_interval=0.05)
    await engine.start()
    try:
        first, events = await run_task(engine, "first")
        assert first.status is TaskStatus.COMPLETED, first.error
        assert first.model == "model-b" and first.attempts == 1
        assert requested(model_server) == ["model-a", "model-b"]
        chosen = [e.data for e in events if e.kind == ev.MODEL_CHOSEN]
        assert [c["model"] for c in chosen] == ["model-a", "model-b"]
        assert chosen[1]["why"].startswith("rotated from model-a: rate limited: HTTP 429, retry after 2s")
        assert any("switching model: model-a -> model-b" in str(e.data.get("message")) for e in events)

        cooled = engine.queue.store.model_states()["model-a"]
        limited_at = model_server.requests[0].received_at
        assert 2.0 <= cooled.cooldown_until - limited_at <= 2.35  # Retry-After 2 plus a little jitter
        summary = engine.get_metrics_summary()
        assert summary["rotations"] == 1 and summary["model_state"]["model-a"]["rotations_away"] == 1
        assert summary["model_state"]["model-b"]["rotations_to"] == 1

        # once the cooldown is over, A is preferred again (and now answers)
        a_limited = False
        await asyncio.sleep(max(0.0, cooled.cooldown_until - time.time()))
        second, _ = await run_task(engine, "second")
        assert second.model == "model-a" and requested(model_server)[2:] == ["model-a"]
    finally:
        await engine.stop()
        engine.close()
        log_text = log.text()
        log.close()
    assert "rotation: model-a -> model-b (rate limited: HTTP 429, retry after 2s)" in log_text
    assert "cooldown: model-a for 2." in log_text and " INFO oh_lsp.models: " in log_text
    assert SENTINEL_KEY not in log_text

    # another process sees the rotation in the metrics, and the log lines through `oh-lsp logs`
    env = cli_env(project, model_server.base_url)
    metrics = json.loads(run_cli(project, env, "metrics", "--json").stdout)
    assert metrics["rotations"] == 1 and metrics["model_state"]["model-a"]["rotations_away"] == 1
    assert "429" in metrics["model_state"]["model-a"]["last_error"]
    logs = run_cli(project, env, "logs", "-n", "100")
    assert "rotation: model-a -> model-b" in logs.stdout
    assert run_cli(project, env, "logs").stdout.strip() == str(log.path)


async def test_a_cooldown_is_visible_with_seconds_left_from_another_process(
    project: Path, model_server, tmp_path: Path
) -> None:
    model_server.script(Reply.rate_limited(retry_after=30), model="model-a")
    model_server.default = Reply.text("ok")
    gateway = gateway_for(ab_config(model_server, tmp_path), project)
    events = Events()
    try:
        result = await gateway.complete(task(), MESSAGES, emit=Events())
        # while A cools down, the next request goes straight to B without asking A
        again = await gateway.complete(task(), MESSAGES, emit=events)
    finally:
        await gateway.aclose()
        gateway.store.close()
    assert result.model == "model-b" and again.model == "model-b"
    assert requested(model_server) == ["model-a", "model-b", "model-b"]
    assert "model-a is cooling down" in events.why()[0]
    env = cli_env(project, model_server.base_url)
    state = json.loads(run_cli(project, env, "metrics", "--json").stdout)["model_state"]["model-a"]
    assert 25 < state["cooldown_seconds_left"] <= 33 and "HTTP 429" in state["cooldown_reason"]
    human = run_cli(project, env, "metrics").stdout
    assert "model-a: breaker closed, cooling down" in human and "rotated away 1x" in human
    assert "forgot the cooldowns" in run_cli(project, env, "models", "reset").stdout
    state = json.loads(run_cli(project, env, "metrics", "--json").stdout)["model_state"]
    assert "model-a" not in state


async def test_a_429_with_no_other_model_waits_retry_after_and_then_retries(
    project: Path, model_server, tmp_path: Path
) -> None:
    model_server.script(Reply.rate_limited(retry_after=1), Reply.text("answer"), model="model-a")
    config = ab_config(model_server, tmp_path, models={"model-a": {"quality": 4}})
    gateway = gateway_for(config, project)
    try:
        result = await gateway.complete(task(), MESSAGES, emit=Events())
    finally:
        await gateway.aclose()
    first, second = model_server.requests
    assert result.content == "answer" and result.model == "model-a"
    assert 1.0 <= second.received_at - first.received_at < 1.6  # Retry-After 1 + jitter, recomputed per error


async def test_429_without_headers_cools_down_30s_and_waits_never_pass_the_task_timeout(
    project: Path, model_server, tmp_path: Path
) -> None:
    model_server.default = Reply(status=429, error_body={"message": "Rate limit exceeded", "code": 429})
    config = ab_config(model_server, tmp_path, models={"model-a": {"quality": 4}}, timeout_seconds=5)
    gateway = gateway_for(config, project)
    started = time.monotonic()
    try:
        with pytest.raises(ModelCallError) as caught:
            await gateway.complete(task(), MESSAGES, emit=Events())
        state = gateway.store.model_states()["model-a"]
    finally:
        await gateway.aclose()
    assert time.monotonic() - started < 2.0 and len(model_server.requests) == 1
    assert caught.value.kind is ErrorKind.RATE_LIMIT and not caught.value.fatal
    assert 29 <= caught.value.retry_after <= 33.1  # for the task layer's re-queue
    assert 30 <= state.cooldown_until - time.time() <= 33 and "no reset header" in state.cooldown_reason


async def test_daily_cap_is_not_retried_until_the_reset_and_the_user_is_told_why(
    project: Path, model_server, tmp_path: Path
) -> None:
    reset_ms = int((time.time() + 90) * 1000)
    model_server.default = Reply.rate_limited(daily=True, reset=reset_ms)
    config = ab_config(model_server, tmp_path, models={"model-a": {"quality": 4}})
    engine = ExecutionEngine(config, 1, project_root=project, poll_interval=0.05)
    await engine.start()
    try:
        task_id = await engine.submit_task(_unit("first"))
        waiting = await _until(lambda: _pending_with_note(engine, task_id))
        other_id = await engine.submit_task(_unit("second"))
        other = await _until(lambda: _pending_with_note(engine, other_id))
    finally:
        await engine.stop()
        engine.close()
    assert len(model_server.requests) == 1, "A is not asked again before its reset"
    assert waiting.not_before >= reset_ms / 1000 - 1 and other.not_before >= reset_ms / 1000 - 1
    for pending in (waiting, other):
        assert pending.status is TaskStatus.PENDING
        assert "waiting for rate-limit reset at" in pending.note and "daily rate limit" in pending.note
    env = cli_env(project, model_server.base_url)
    status = run_cli(project, env, "get-status", "--task-id", task_id).stdout
    assert "waiting for rate-limit reset at" in status


async def test_daily_cap_on_a_rotates_to_b_at_once(project: Path, model_server, tmp_path: Path) -> None:
    model_server.script(Reply.rate_limited(daily=True, reset=int(time.time() + 7200)), model="model-a")
    model_server.default = Reply.text("from b")
    gateway = gateway_for(ab_config(model_server, tmp_path), project)
    try:
        result = await gateway.complete(task(), MESSAGES, emit=Events())
        state = gateway.store.model_states()["model-a"]
    finally:
        await gateway.aclose()
    assert result.model == "model-b" and requested(model_server) == ["model-a", "model-b"]
    assert 7190 < state.cooldown_until - time.time() < 7210 and "daily rate limit" in state.cooldown_reason


async def _pending_with_note(engine: ExecutionEngine, task_id: str):
    current = await engine.get_task_status(task_id)
    return current if current.status is TaskStatus.PENDING and current.note and current.attempts else None


async def _until(probe, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


@pytest.mark.parametrize(
    "status, words", [(402, ("out of credits", "Add credits")), (401, ("OPENROUTER_API_KEY", "OPENHANDS_BASE_URL"))]
)
async def test_402_and_401_fail_fast_with_actionable_messages(
    project: Path, model_server, tmp_path: Path, status: int, words: tuple[str, str]
) -> None:
    model_server.default = Reply.http_error(status, "Insufficient credits" if status == 402 else "No auth")
    engine = ExecutionEngine(ab_config(model_server, tmp_path), 1, project_root=project, poll_interval=0.05)
    await engine.start()
    try:
        final = await engine.wait_for(await engine.submit_task(_unit("x")), timeout=30)
    finally:
        await engine.stop()
        engine.close()
    assert final.status is TaskStatus.FAILED and final.attempts == 1
    assert len(model_server.requests) == 1, "no retry, no rotation"
    assert all(w in final.error for w in words)


async def test_402_cools_the_provider_down_until_midnight(project: Path, model_server, tmp_path: Path) -> None:
    model_server.default = Reply.http_error(402, "Insufficient credits")
    gateway = gateway_for(ab_config(model_server, tmp_path), project)
    try:
        with pytest.raises(ModelCallError) as first:
            await gateway.complete(task(), MESSAGES, emit=Events())
        with pytest.raises(ModelCallError) as second:
            await gateway.complete(task(), MESSAGES, emit=Events())
    finally:
        await gateway.aclose()
    assert first.value.kind is ErrorKind.CREDITS and first.value.fatal
    assert second.value.kind is ErrorKind.CREDITS and "oh-lsp models reset" in str(second.value)
    assert len(model_server.requests) == 1, "nothing is sent to an endpoint out of credits"
    env = cli_env(project, model_server.base_url)
    states = json.loads(run_cli(project, env, "metrics", "--json").stdout)["model_state"]
    provider = next(v for k, v in states.items() if k.startswith("provider:"))
    assert provider["cooldown_seconds_left"] > 0 and "402" in provider["cooldown_reason"]


async def test_auth_errors_do_not_cool_the_model_down(project: Path, model_server, tmp_path: Path) -> None:
    model_server.default = Reply.http_error(403, "Forbidden")
    gateway = gateway_for(ab_config(model_server, tmp_path), project)
    try:
        with pytest.raises(ModelCallError, match="OPENROUTER_API_KEY"):
            await gateway.complete(task(), MESSAGES, emit=Events())
        states = gateway.store.model_states()
    finally:
        await gateway.aclose()
    assert len(model_server.requests) == 1 and not states["model-a"].cooling(time.time())


async def test_five_500s_open_the_breaker_calls_skip_a_then_a_probe_closes_it(
    project: Path, model_server, tmp_path: Path
) -> None:
    a_failing = True
    model_server.responder = lambda rec: (
        Reply.http_error(500, "boom", headers={"Retry-After": "0"}) if rec.model == "model-a" and a_failing else None
    )
    model_server.default = Reply.text("fine")
    config = ab_config(model_server, tmp_path, breaker_failures=5, breaker_open_seconds=0.5)
    gateway = gateway_for(config, project)
    log = LogFile(project)
    try:
        # 1: A fails 3 times (1 + 2 retries), then B answers; A's breaker holds 3 failures
        assert (await gateway.complete(task(), MESSAGES, emit=Events())).model == "model-b"
        assert requested(model_server) == ["model-a"] * 3 + ["model-b"]
        assert gateway.store.model_states()["model-a"].breaker == "closed"
        # 2: the 5th failure in a row opens it: no third try on A
        assert (await gateway.complete(task(), MESSAGES, emit=Events())).model == "model-b"
        assert requested(model_server)[4:] == ["model-a", "model-a", "model-b"]
        assert gateway.store.model_states()["model-a"].breaker == "open"
        # 3: calls skip A while it is open
        events = Events()
        assert (await gateway.complete(task(), MESSAGES, emit=events)).model == "model-b"
        assert requested(model_server)[7:] == ["model-b"] and "circuit breaker open" in events.why()[0]
        assert gateway.store.metrics_summary()["model_state"]["model-a"]["breaker"] == "open"
        # 4: after the timeout, a half-open probe goes to A; it succeeds and the breaker closes
        a_failing = False
        await asyncio.sleep(0.6)
        assert (await gateway.complete(task(), MESSAGES, emit=Events())).model == "model-a"
        assert requested(model_server)[8:] == ["model-a"]
        assert gateway.store.model_states()["model-a"].breaker == "closed"
        text = log.text()
    finally:
        log.close()
        await gateway.aclose()
    assert "circuit breaker model-a: closed -> open after 5 failures" in text
    assert "circuit breaker model-a: open -> half_open" in text
    assert "circuit breaker model-a: half_open -> closed after 1 successful probe(s)" in text


async def test_the_breaker_can_be_turned_off(project: Path, model_server, tmp_path: Path) -> None:
    model_server.responder = lambda rec: (
        Reply.http_error(500, "boom", headers={"Retry-After": "0"}) if rec.model == "model-a" else None
    )
    model_server.default = Reply.text("fine")
    config = ab_config(model_server, tmp_path, breaker_failures=2, enable_circuit_breaker=False)
    gateway = gateway_for(config, project)
    try:
        for _ in range(2):
            assert (await gateway.complete(task(), MESSAGES, emit=Events())).model == "model-b"
        state = gateway.store.model_states()["model-a"]
    finally:
        await gateway.aclose()
    assert requested(model_server) == ["model-a"] * 3 + ["model-b"] + ["model-a"] * 3 + ["model-b"]
    assert state.breaker == "closed"


async def test_a_pinned_model_is_used_as_is(project: Path, model_server, tmp_path: Path) -> None:
    model_server.default = Reply.text("ok")
    gateway = gateway_for(ab_config(model_server, tmp_path), project)
    events = Events()
    try:
        result = await gateway.complete(task(model="model-b"), MESSAGES, emit=events)
    finally:
        await gateway.aclose()
    assert result.model == "model-b" and requested(model_server) == ["model-b"]
    assert "pinned by the task's metadata" in events.why()[0]


async def test_no_qualifying_model_fails_the_task_with_the_reasons(project: Path, model_server, tmp_path: Path) -> None:
    gateway = gateway_for(ab_config(model_server, tmp_path), project)
    try:
        with pytest.raises(ModelCallError) as caught:
            await gateway.complete(task(quality_threshold=0.95), MESSAGES, emit=Events())
    finally:
        await gateway.aclose()
    assert caught.value.kind is ErrorKind.NO_MODEL and caught.value.fatal
    assert "model-a: quality 4.5/5 is below the threshold 0.95" in str(caught.value)
    assert not model_server.requests


async def test_context_length_retries_smaller_then_moves_to_a_larger_context(
    project: Path, model_server, tmp_path: Path
) -> None:
    too_long = Reply.http_error(400, "This model's maximum context length is 32000 tokens")
    model_server.script(too_long, too_long, model="model-a")
    model_server.default = Reply.text("fits")
    gateway = gateway_for(ab_config(model_server, tmp_path), project)
    try:
        result = await gateway.complete(task(), MESSAGES, emit=Events())
    finally:
        await gateway.aclose()
    assert result.model == "model-b"
    sent = [(r.model, r.body["max_tokens"]) for r in model_server.requests]
    assert sent == [("model-a", 4096), ("model-a", 2048), ("model-b", 4096)]
