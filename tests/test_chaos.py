"""Provider chaos: 200 tasks against a scripted server that answers with random faults. Every task ends in a
definite state within its timeout, the server's request log matches the engine's attempts, and the cost recorded
equals the sum of `usage.cost` of the answers that arrived whole."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

from pydantic import SecretStr

from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask, TaskStatus
from oh_lsp.attempt import Outcome, TaskContext, model_error_outcome
from oh_lsp.llm.errors import ModelCallError
from oh_lsp.paths import state_dir
from oh_lsp.pipeline import ask_model
from oh_lsp.records import ExecutionMetrics
from oh_lsp.testing.model_server import Reply
from tests.conftest import SENTINEL_KEY

TASKS = 200
ANSWER = "def test_ok():\n    assert True\n"


def chaos(seed: int):
    rng = random.Random(seed)
    lock = threading.Lock()
    good_costs: dict[int, float] = {}  # id(request) -> usage.cost of a whole, good answer

    def responder(request) -> Reply:
        with lock:
            roll = rng.random()
            cost = round(rng.uniform(0.0001, 0.01), 6)
        usage = {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60, "cost": cost}
        if roll < 0.15:
            return Reply.rate_limited(retry_after=1)
        if roll < 0.17:
            return Reply.rate_limited()  # no Retry-After: a 30 s cooldown, rotate
        if roll < 0.26:
            return Reply.http_error(503 if roll < 0.22 else 500, "overloaded")
        if roll < 0.31:
            return Reply.text(ANSWER, usage=usage, truncate_after=2, chunk_size=4)  # cut mid-body
        if roll < 0.35:
            return Reply.text(ANSWER, usage=usage, malformed=True)
        if roll < 0.39:
            return Reply.error_in_body("upstream failed", code=502)
        if roll < 0.43:
            return Reply.text(ANSWER, usage=usage, stream_error_after=1, chunk_size=4)
        reply = Reply.text(ANSWER, usage=usage, latency=1.0 if roll > 0.95 else 0.0)  # some with a slow first byte
        with lock:
            good_costs[id(request)] = cost
        return reply

    return responder, good_costs


async def one_call(task: QueuedTask, ctx: TaskContext) -> Outcome:
    """The model part of a task, with validation off: this test is about the provider, not the checks."""
    metrics = ExecutionMetrics(task_id=task.task_id, model_id="", task_type=task.task_type, attempt=task.attempts)
    started = time.monotonic()
    try:
        answer = await ask_model(task, ctx, [{"role": "user", "content": f"task {task.task_id}"}], metrics)
    except ModelCallError as exc:
        return model_error_outcome(task, exc, metrics, started)
    assert answer.content == ANSWER, "a broken answer never passes for a good one"
    metrics.success = metrics.validation_passed = True
    return Outcome("completed", result={"content": answer.content}, model=answer.model, metrics=metrics)


async def test_two_hundred_tasks_under_random_faults_reconcile(project: Path, model_server) -> None:
    responder, good_costs = chaos(seed=7)
    model_server.responder = responder
    model_server.models = [{"id": name} for name in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta")]
    config = OpenHandsConfig(
        api_key=SecretStr(SENTINEL_KEY),
        base_url=model_server.base_url,
        timeout_seconds=60,
        max_retries=6,
        heartbeat_seconds=0.5,
        lease_seconds=10,
        breaker_open_seconds=3,
    )  # breakers do open here; let them probe again soon
    engine = ExecutionEngine(config, 20, project_root=project, executor=one_call, poll_interval=0.05)
    ids = [await engine.submit_task(QueuedTask(task_type="unit_test", description=f"chaos {i}")) for i in range(TASKS)]
    await engine.start()
    started = time.monotonic()
    await engine.run_until_idle(timeout=600)
    elapsed = time.monotonic() - started
    await engine.stop()
    tasks = [await engine.get_task_status(i) for i in ids]
    summary = engine.get_metrics_summary()
    engine.close()

    assert all(t.status in (TaskStatus.COMPLETED, TaskStatus.FAILED) for t in tasks), "every task ends definitely"
    completed = [t for t in tasks if t.status is TaskStatus.COMPLETED]
    assert len(completed) >= TASKS * 0.9, f"only {len(completed)} of {TASKS} completed in {elapsed:.0f}s"
    for task in tasks:
        assert task.finished_at - task.created_at < 600

    chat_requests = [r for r in model_server.requests if r.path.endswith("/chat/completions")]
    with sqlite3.connect(state_dir(project) / "oh-lsp.sqlite3") as db:
        attempts = db.execute("SELECT count(*) FROM model_calls").fetchone()[0]
        outcomes = dict(db.execute("SELECT outcome, count(*) FROM model_calls GROUP BY outcome").fetchall())
    assert attempts == len(chat_requests), f"request log {len(chat_requests)} vs engine attempts {attempts}"
    assert outcomes.get("ok") == len(completed)
    delivered = sum(good_costs[id(r)] for r in chat_requests if id(r) in good_costs and r.completed)
    assert abs(summary["system"]["total_cost"] - delivered) < 1e-9
    assert summary["system"]["successful"] == len(completed)
    kinds = set(outcomes) - {"ok"}
    assert {"rate_limit", "transient"} <= kinds, outcomes
