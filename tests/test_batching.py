"""Batching similar tasks (issue 14): tasks of one kind on one target that become runnable together go to one model,
the first ahead, so that the provider's prompt cache (here the scripted server's, billed as OpenRouter does) serves
the others. The real engine and pipeline, real pytest runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import SecretStr

from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask
from oh_lsp.testing.model_server import Reply
from oh_lsp.testing.model_server.wire import PRICE_PROMPT, PromptCache
from tests.conftest import GOOD_TESTS, SENTINEL_KEY, fenced

SYMBOLS = ("add", "divide", "add.one", "divide.two")  # four tasks on pkg/calc.py, each a different instruction


def caching_catalog(tmp_path: Path, *names: str) -> Path:
    entry = {"price_prompt": PRICE_PROMPT, "price_completion": 2 * PRICE_PROMPT, "cache_control": True}
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"models": {name: {"id": name, **entry} for name in names}}))
    return path


async def run_batch(project: Path, server, catalog: Path, window: float, workers: int = 4, **config) -> list:
    values = {
        "api_key": SecretStr(SENTINEL_KEY),
        "model": "model-a",
        "base_url": server.base_url,
        "python": Path(os.environ["OH_LSP_PYTHON"]),
        "max_repair_iterations": 0,
        "quality_threshold": 0.0,
        "model_catalog": catalog,
        "batch_window_seconds": window,
        "result_cache": False,
        **config,
    }
    engine = ExecutionEngine(OpenHandsConfig(**values), workers, project_root=project, poll_interval=0.05)
    events: list = []
    engine.subscribe(events.append)
    ids = [
        await engine.submit_task(
            QueuedTask(task_type="unit_test", target_file=Path("pkg/calc.py"), description=f"Tests for {symbol}.")
        )
        for symbol in SYMBOLS
    ]
    await engine.start()
    try:
        tasks = [await engine.wait_for(task_id, timeout=180) for task_id in ids]
    finally:
        await engine.stop()
        engine.close()
    assert all(t.status.value == "completed" for t in tasks), [t.error for t in tasks]
    return events


async def test_the_batch_waits_for_its_first_answer_then_reads_the_cache(
    project: Path, model_server, tmp_path: Path
) -> None:
    model_server.prompt_cache = PromptCache(mode="breakpoints")
    model_server.default = Reply.text(fenced(GOOD_TESTS), latency=0.5)
    events = await run_batch(project, model_server, caching_catalog(tmp_path, "model-a"), window=2.0)
    first, *others = sorted(model_server.requests, key=lambda r: r.received_at)
    assert first.prompt_cache["cached_tokens"] == 0 and first.prompt_cache["cache_write_tokens"] > 0
    assert all(r.received_at >= first.received_at + 0.5 for r in others), "the others waited for the first answer"
    assert all(r.prompt_cache["cached_tokens"] > 0 for r in others), [r.prompt_cache for r in others]
    assert sum(1 for e in events if e.kind == "progress" and e.data.get("batched")) == 3


async def test_without_batching_the_tasks_that_start_together_all_miss_the_cache(
    project: Path, model_server, tmp_path: Path
) -> None:
    model_server.prompt_cache = PromptCache(mode="breakpoints")
    model_server.default = Reply.text(fenced(GOOD_TESTS), latency=0.5)
    await run_batch(project, model_server, caching_catalog(tmp_path, "model-a"), window=0.0)
    assert all(r.prompt_cache["cached_tokens"] == 0 for r in model_server.requests)


async def test_the_batch_follows_the_model_that_answered_its_first_task(
    project: Path, model_server, tmp_path: Path
) -> None:
    # model-a heads the chain, but the leader's call is rate-limited there (briefly) and answered by model-b: the
    # rest of the batch goes to model-b, whose cache is warm, though model-a is free again by then
    model_server.script(Reply.rate_limited(retry_after=0.05), model="model-a")
    model_server.prompt_cache = PromptCache(mode="breakpoints")
    model_server.default = Reply.text(fenced(GOOD_TESTS), latency=0.5)
    events = await run_batch(project, model_server, caching_catalog(tmp_path, "model-a", "model-b"), window=2.0)
    answered = [r.model for r in model_server.requests if r.reply and r.reply.status == 200]
    assert answered == ["model-b"] * 4, answered
    why = [e.data["why"] for e in events if e.kind == "model_chosen" and e.data["model"] == "model-b"]
    assert sum("its batch's first task was answered by it" in w for w in why) == 3, why
