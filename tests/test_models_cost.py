"""True cost and budgets: the provider's usage.cost, else catalog price x tokens; caps that stop a call before it is
sent; totals per model, task kind and day."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from oh_lsp import ExecutionEngine, QueuedTask, TaskStatus
from oh_lsp.llm.errors import ErrorKind, ModelCallError
from oh_lsp.records import local_day
from oh_lsp.testing.model_server import Reply
from tests.conftest import GOOD_TESTS, OH_LSP, cli_env, fenced
from tests.models_support import MESSAGES, Events, ab_config, gateway_for, requested, task

ONLY_A = {"model-a": {"quality": 4, "price_prompt": 1e-6, "price_completion": 2e-6, "context_length": 32000}}


def usage(prompt: int, completion: int, cost: float | None = None) -> dict:
    data = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return data if cost is None else {**data, "cost": cost}


def unit(description: str) -> QueuedTask:
    return QueuedTask(task_type="unit_test", description=description, target_file=Path("pkg/calc.py"))


async def test_reported_cost_is_the_sum_of_the_servers_usage_cost(project: Path, model_server, tmp_path: Path) -> None:
    model_server.script(
        Reply.http_error(500, "boom", headers={"Retry-After": "0"}),
        Reply.text(fenced(GOOD_TESTS), usage=usage(812, 164, 0.0123)),
        Reply.text(fenced(GOOD_TESTS), usage=usage(700, 150, 0.0031)),
    )
    engine = ExecutionEngine(
        ab_config(model_server, tmp_path, models=ONLY_A), 2, project_root=project, poll_interval=0.05
    )
    await engine.start()
    try:
        ids = [await engine.submit_task(unit("one")), await engine.submit_task(unit("two"))]
        finals = [await engine.wait_for(task_id, timeout=180) for task_id in ids]  # 25-38 s each at load 10
        summary = engine.get_metrics_summary()
    finally:
        await engine.stop()
        engine.close()
    reported = sum(r.reply.usage["cost"] for r in model_server.requests if r.reply.usage)
    assert sorted(final.cost for final in finals) == [0.0031, 0.0123]
    assert summary["system"]["total_cost"] == pytest.approx(reported)
    costs = summary["costs"]
    assert costs["by_model"]["model-a"] == {"calls": 3, "cost": pytest.approx(reported), "tokens": 812 + 164 + 850}
    assert costs["by_kind"]["unit_test"]["cost"] == pytest.approx(reported)
    assert costs["by_day"][local_day()]["cost"] == pytest.approx(reported)
    assert summary["models"]["model-a"]["total_cost"] == pytest.approx(reported)


async def test_without_usage_cost_the_catalog_price_is_used_never_zero(
    project: Path, model_server, tmp_path: Path
) -> None:
    model_server.script(Reply.text("answer", usage=usage(1000, 500)))
    gateway = gateway_for(ab_config(model_server, tmp_path, models=ONLY_A), project)
    try:
        result = await gateway.complete(task(), MESSAGES, emit=Events())
    finally:
        await gateway.aclose()  # the call's record, kept to share a trip with the next write, is written by then
    spent = gateway.store.spent(day=local_day())
    assert result.cost == pytest.approx(1000 * 1e-6 + 500 * 2e-6) and result.cost_source == "catalog"
    assert spent == pytest.approx(result.cost)


async def test_a_per_task_cap_stops_the_call_before_it_is_sent(project: Path, model_server, tmp_path: Path) -> None:
    model_server.default = Reply.text("answer")
    # worst case of the call: ~25 prompt tokens + 4096 completion tokens at $2/M = ~$0.0082
    config = ab_config(model_server, tmp_path, models=ONLY_A, budget_per_task_usd=0.005)
    gateway = gateway_for(config, project)
    try:
        with pytest.raises(ModelCallError) as caught:
            await gateway.complete(task(), MESSAGES, emit=Events())
        states = gateway.store.model_states()
    finally:
        await gateway.aclose()
    assert not model_server.requests, "the server never received the call"
    assert caught.value.kind is ErrorKind.BUDGET and caught.value.fatal
    assert "per-task budget" in str(caught.value) and "OH_LSP_BUDGET_PER_TASK_USD" in str(caught.value)
    # admitting a model whose breaker is closed writes nothing: model-a may have no state row at all
    assert "model-a" not in states or not states["model-a"].cooling(time.time()), "a budget cap cools no model down"


async def test_a_cap_counts_the_call_just_made_though_its_record_waits_to_share_a_trip(
    project: Path, model_server, tmp_path: Path
) -> None:
    """A successful call's record is kept to go to the store with the next write, in one trip with others
    (`ModelHealth.flush`); the budget sends it before it sums what was spent: the task's next call, which could pass
    the cap, is never sent."""
    model_server.default = Reply.text("answer", usage=usage(900, 200, 0.015))
    config = ab_config(model_server, tmp_path, models=ONLY_A, budget_per_task_usd=0.02)
    gateway = gateway_for(config, project)
    asking = task()
    try:
        first = await gateway.complete(asking, MESSAGES, emit=Events())
        with pytest.raises(ModelCallError) as caught:
            await gateway.complete(asking, MESSAGES, emit=Events())
    finally:
        await gateway.aclose()
    assert first.cost == 0.015
    assert caught.value.kind is ErrorKind.BUDGET and "this task has spent $0.015000" in str(caught.value)
    assert requested(model_server) == ["model-a"], "the call that could pass the cap was never sent"


async def test_a_daily_cap_stops_every_task_until_midnight(project: Path, model_server, tmp_path: Path) -> None:
    model_server.default = Reply.text(fenced(GOOD_TESTS), usage=usage(900, 200, 0.015))
    config = ab_config(model_server, tmp_path, models=ONLY_A, budget_per_day_usd=0.02)
    engine = ExecutionEngine(config, 1, project_root=project, poll_interval=0.05)
    await engine.start()
    try:
        first = await engine.wait_for(await engine.submit_task(unit("one")), timeout=60)
        second = await engine.wait_for(await engine.submit_task(unit("two")), timeout=60)
        summary = engine.get_metrics_summary()
    finally:
        await engine.stop()
        engine.close()
    assert first.status is TaskStatus.COMPLETED and first.cost == 0.015
    assert second.status is TaskStatus.FAILED and second.attempts == 1
    assert "daily budget reached" in second.error and "local midnight" in second.error
    assert "OH_LSP_BUDGET_PER_DAY_USD" in second.error
    assert requested(model_server) == ["model-a"], "the call that would pass the cap was never sent"
    assert summary["budget"]["spent_today_usd"] == pytest.approx(0.015)
    assert summary["budget"]["left_today_usd"] == pytest.approx(0.005)
    env = cli_env(project, model_server.base_url, OH_LSP_BUDGET_PER_DAY_USD="0.02")
    metrics = subprocess.run(
        [*OH_LSP, "metrics"], cwd=project, env=env, capture_output=True, text=True, timeout=60
    ).stdout
    assert "Budget: per task none, per day $0.0200, $0.005000 left today" in metrics
    as_json = json.loads(
        subprocess.run(
            [*OH_LSP, "metrics", "--json"], cwd=project, env=env, capture_output=True, text=True, timeout=60
        ).stdout
    )
    assert as_json["budget"]["per_day_usd"] == 0.02


def test_budget_settings_come_from_the_environment() -> None:
    from oh_lsp.config import OpenHandsConfig
    from oh_lsp.errors import ConfigError

    config = OpenHandsConfig.from_env(
        env_file=None, environ={"OH_LSP_BUDGET_PER_TASK_USD": "0.5", "OH_LSP_BUDGET_PER_DAY_USD": "3"}
    )
    assert (config.budget_per_task_usd, config.budget_per_day_usd) == (0.5, 3.0)
    assert OpenHandsConfig.from_env(env_file=None, environ={"OH_LSP_BUDGET_PER_DAY_USD": ""}).budget_per_day_usd is None
    with pytest.raises(ConfigError, match="OH_LSP_BUDGET_PER_DAY_USD"):
        OpenHandsConfig.from_env(env_file=None, environ={"OH_LSP_BUDGET_PER_DAY_USD": "-1"})
