"""The engine end to end in one process: scripted model -> edit -> real pytest -> store, events and metrics."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from pydantic import SecretStr

from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask, TaskPriority, TaskStatus
from oh_lsp import events as ev
from oh_lsp.testing.model_server import Reply
from tests.conftest import FAILING_TESTS, GOOD_TESTS, SENTINEL_KEY, fenced


def make_config(server, **kw) -> OpenHandsConfig:
    values = {
        "api_key": SecretStr(SENTINEL_KEY),
        "model": "test-model",
        "base_url": server.base_url,
        "heartbeat_seconds": 0.2,
        "python": Path(os.environ["OH_LSP_PYTHON"]),
    }
    values.update(kw)
    return OpenHandsConfig(**values)


def unit_test_task(**kw) -> QueuedTask:
    values = {
        "task_type": "unit_test",
        "description": "Generate tests for calc",
        "target_file": Path("pkg/calc.py"),
        "priority": TaskPriority.HIGH,
    }
    values.update(kw)
    return QueuedTask(**values)


async def run_one(project: Path, config: OpenHandsConfig, task: QueuedTask, **engine_kw):
    engine = ExecutionEngine(config, 2, project_root=project, poll_interval=0.05, **engine_kw)
    seen: list[ev.Event] = []
    engine.subscribe(seen.append)
    await engine.start()
    try:
        task_id = await engine.submit_task(task)
        await engine.wait_for(task_id, timeout=60)
        await engine.stop()  # a completed task's edit is delivered after its status is: let the worker finish
        final = await engine.get_task_status(task_id)
    finally:
        await engine.stop()
        engine.close()
    return final, seen


async def test_completed_task_carries_a_validated_edit_and_writes_nothing(project: Path, model_server) -> None:
    model_server.script(
        Reply.text(
            fenced(GOOD_TESTS),
            usage={"prompt_tokens": 300, "completion_tokens": 120, "total_tokens": 420, "cost": 0.00123},
        )
    )
    final, seen = await run_one(project, make_config(model_server), unit_test_task())
    assert final.status is TaskStatus.COMPLETED, final.error
    result = final.result
    assert result["output_file"] == "tests/pkg/test_calc.py"
    assert result["validation"]["passed"] and result["coverage"]["after"] == 100.0
    assert result["mutation"]["after"] == round(5 / 7, 4)  # calc's 7 mutants: 5 noticed (test_unit_test_kind.py)
    assert result["score"] == round(0.5 * 1.0 + 0.5 * 5 / 7, 4)
    assert result["execution_result"]["passed"] == 3 and result["execution_result"]["failed"] == 0
    paths = [f["path"] for f in result["edit"]["files"]]
    assert paths == ["tests/__init__.py", "tests/pkg/__init__.py", "tests/pkg/test_calc.py"]
    assert not (project / "tests").exists(), "the API engine must not write into the project"
    assert (final.tokens, final.cost, final.model) == (420, 0.00123, "test-model")
    kinds = [e.kind for e in seen]
    for kind in (ev.QUEUED, ev.STARTED, ev.MODEL_CHOSEN, ev.TOKENS, ev.VALIDATING, ev.COMPLETED):
        assert kind in kinds
    assert kinds.index(ev.STARTED) < kinds.index(ev.VALIDATING) < kinds.index(ev.COMPLETED)
    # the model was really asked, with the selected model, the key and the target's source
    request = model_server.requests[0]
    assert request.body["model"] == "test-model" and request.body["stream"] is True
    assert request.headers["authorization"] == f"Bearer {SENTINEL_KEY}"
    assert "def divide(a, b):" in request.body["messages"][-1]["content"]


async def test_apply_edits_writes_the_files_like_the_cli(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    final, _ = await run_one(project, make_config(model_server), unit_test_task(), apply_edits=True)
    assert final.status is TaskStatus.COMPLETED
    assert (project / "tests/pkg/test_calc.py").read_text() == GOOD_TESTS
    assert (project / "tests/__init__.py").exists() and (project / "tests/pkg/__init__.py").exists()
    assert final.delivery == "applied"


async def test_failing_test_fails_the_task_and_names_the_test(project: Path, model_server) -> None:
    model_server.default = Reply.text(fenced(FAILING_TESTS))  # and again on each repair iteration
    final, seen = await run_one(project, make_config(model_server), unit_test_task(), apply_edits=True)
    assert final.status is TaskStatus.FAILED
    assert "test_add_is_wrong" in final.error
    errors = final.result["validation"]["errors"]
    failed = [e for e in errors if e["code"] == "test-failed"]
    assert failed and failed[0]["test"] == "test_add_is_wrong" and failed[0]["line"] == 4
    assert "edit" not in final.result and "rejected_edit" in final.result
    assert not (project / "tests").exists(), "nothing that looks like success is left behind"
    assert seen[-1].kind == ev.FAILED


async def test_garbage_answer_fails_clearly(project: Path, model_server) -> None:
    model_server.default = Reply.text("I am sorry, I cannot write tests today.")
    final, _ = await run_one(project, make_config(model_server), unit_test_task())
    assert final.status is TaskStatus.FAILED
    assert "holds no Python code" in final.error


async def test_target_outside_the_project_is_refused(project: Path, model_server, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.py"
    outside.write_text("x = 1\n")
    final, _ = await run_one(project, make_config(model_server), unit_test_task(target_file=outside))
    assert final.status is TaskStatus.FAILED and "outside the project root" in final.error
    assert not model_server.requests


async def test_server_errors_are_retried_by_the_queue_then_succeed(project: Path, model_server) -> None:
    # the request layer tries the only model 3 times (1 + 2 retries); then the attempt goes back to the queue
    overloaded = Reply.http_error(503, "overloaded", headers={"Retry-After": "0"})
    model_server.script(overloaded, overloaded, overloaded, Reply.text(fenced(GOOD_TESTS)))
    config = make_config(model_server)
    engine = ExecutionEngine(config, 1, project_root=project, poll_interval=0.05)
    await engine.start()
    try:
        task_id = await engine.submit_task(unit_test_task())
        # the first attempt fails with 503 and goes back to the queue with a delay
        deadline = time.monotonic() + 30
        while (await engine.get_task_status(task_id)).attempts < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        final = await engine.wait_for(task_id, timeout=60)
    finally:
        await engine.stop()
        engine.close()
    assert final.status is TaskStatus.COMPLETED and final.attempts == 2
    assert len(model_server.requests) == 4


async def test_auth_error_fails_fast_with_an_actionable_message(project: Path, model_server) -> None:
    model_server.script(Reply.http_error(401, "invalid key"))
    final, _ = await run_one(project, make_config(model_server), unit_test_task())
    assert final.status is TaskStatus.FAILED and final.attempts == 1
    assert "OPENROUTER_API_KEY" in final.error
    assert len(model_server.requests) == 1


async def test_cancel_pending_and_running_tasks(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS), latency=30))
    engine = ExecutionEngine(make_config(model_server), 1, project_root=project, poll_interval=0.05)
    seen: list[ev.Event] = []
    engine.subscribe(seen.append)
    await engine.start()
    try:
        running = await engine.submit_task(unit_test_task())
        pending = await engine.submit_task(unit_test_task(description="another", priority=TaskPriority.LOW))
        deadline = time.monotonic() + 10
        while not model_server.requests and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert (await engine.get_task_status(running)).status is TaskStatus.RUNNING
        assert await engine.cancel_task(pending)
        assert await engine.cancel_task(running)
        final_running = await engine.wait_for(running, timeout=5)
        final_pending = await engine.wait_for(pending, timeout=5)
    finally:
        await engine.stop()
        engine.close()
    assert final_running.status is TaskStatus.CANCELLED
    assert final_pending.status is TaskStatus.CANCELLED
    assert len(model_server.requests) == 1, "the cancelled pending task never reached the model"
    await asyncio.sleep(0.1)
    assert model_server.requests[0].disconnected, "cancel closes the HTTP connection"
    assert {e.task_id for e in seen if e.kind == ev.CANCELLED} == {running, pending}


async def test_cancel_from_another_process_reaches_the_running_task_at_its_heartbeat(
    project: Path, model_server
) -> None:
    from oh_lsp.queue import TaskQueue

    model_server.script(Reply.text(fenced(GOOD_TESTS), latency=30))
    engine = ExecutionEngine(make_config(model_server), 1, project_root=project, poll_interval=0.05)
    await engine.start()
    other = TaskQueue(project_root=project)  # stands for `oh-lsp cancel-task` in another process
    try:
        task_id = await engine.submit_task(unit_test_task())
        while not model_server.requests:
            await asyncio.sleep(0.02)
        started = time.monotonic()
        assert await other.cancel(task_id) is TaskStatus.RUNNING
        final = await engine.wait_for(task_id, timeout=5)
        assert final.status is TaskStatus.CANCELLED
        assert time.monotonic() - started < 2.0  # heartbeat every 0.2 s here
    finally:
        other.close()
        await engine.stop()
        engine.close()


async def test_stop_returns_running_tasks_to_the_queue(project: Path, model_server) -> None:
    model_server.script(Reply.text(fenced(GOOD_TESTS), latency=30))
    engine = ExecutionEngine(make_config(model_server), 1, project_root=project, poll_interval=0.05)
    await engine.start()
    task_id = await engine.submit_task(unit_test_task())
    while not model_server.requests:
        await asyncio.sleep(0.02)
    await engine.stop(grace=0.2)
    task = await engine.get_task_status(task_id)
    engine.close()
    assert task.status is TaskStatus.PENDING and task.attempts == 0
    assert "engine stopped" in task.note


async def test_task_timeout_is_retried_then_failed(project: Path, model_server) -> None:
    model_server.default = Reply.text(fenced(GOOD_TESTS), latency=10)
    config = make_config(model_server, timeout_seconds=1, max_retries=0)
    final, _ = await run_one(project, config, unit_test_task())
    assert final.status is TaskStatus.FAILED and "timed out after 1s" in final.error


async def test_metrics_summary_is_numeric(project: Path, model_server) -> None:
    model_server.script(
        Reply.text(
            fenced(GOOD_TESTS), usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "cost": 0.5}
        )
    )
    config = make_config(model_server)
    engine = ExecutionEngine(config, 1, project_root=project, poll_interval=0.05)
    await engine.start()
    try:
        await engine.wait_for(await engine.submit_task(unit_test_task()), timeout=60)
        summary = engine.get_metrics_summary()
    finally:
        await engine.stop()
        engine.close()
    assert summary["system"]["executions"] == 1 and summary["system"]["total_cost"] == 0.5
    assert summary["models"]["test-model"]["success_rate"] == 1.0
    assert summary["system"]["avg_quality_score"] == round(5.0 * round(0.5 + 0.5 * 5 / 7, 4), 3)  # 5 x the score
