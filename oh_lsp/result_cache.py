"""The result cache: a completed task's result, served again with 0 tokens and no model call when a task of the same
kind asks for the same thing and nothing it depends on has changed (docs/caching.md).

The key (`cache_key`) is a hash of what decides the result: the target's text; the text of the other project files
the kind names (`cache_inputs`: for unit_test, its test module, the tests that import it and their conftest files,
and the local modules whose signatures the prompt shows); the kind and its `PROMPT_VERSION`; the task's `symbol`,
`gap` and description (the instruction); the model asked for (the task's own, the configured one, or "chosen by the
selector") and the endpoint; and the settings that change the outcome (quality threshold, repair iterations, trust,
sandbox, mutation analysis, runtime, answer size, seeds, interpreter).

The entries live in the store, so the CLI, the language server and every worker of a PostgreSQL fleet share them;
there are at most `result_cache_entries` (OH_LSP_RESULT_CACHE_ENTRIES), the oldest go first. A task with
``metadata["no_cache"]`` (`--no-cache`, the editors' `noCache: true`, "Regenerate with feedback") is not served from
it, and its result replaces the entry. An entry that cannot be read is ignored, and replaced by the next result; a
cache that cannot be written is logged and does not fail the task.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Protocol

from oh_lsp.attempt import Outcome, answer_limit, task_threshold
from oh_lsp.config import OpenHandsConfig
from oh_lsp.errors import OhLspError
from oh_lsp.records import CachedResult, ExecutionMetrics
from oh_lsp.tasks import QueuedTask

log = logging.getLogger(__name__)
KEY_VERSION = "1"  # the layout of the key itself
BYPASS = "no_cache"  # the task metadata flag that skips the lookup
CACHE_MODEL = "result-cache"  # the metrics' model of an attempt served from the cache (no model answered it)
# the task metadata that changes the result (the rest, such as "source" or "retry_of", does not)
_METADATA = ("symbol", "gap", "model", "complexity", "max_latency_ms", "max_cost_per_call", "context_tokens")


def cache_key(task: QueuedTask, root: Path, config: OpenHandsConfig) -> str | None:
    """The key of `task`'s inputs now; None when the result cache does not serve it (no target, or turned off)."""
    if task.target_file is None or not config.result_cache:
        return None
    from oh_lsp.kinds.base import load_target
    from oh_lsp.kinds.registry import get_kind

    try:
        kind = get_kind(task.kind)
        target = load_target(root, task)
        inputs = {path.as_posix(): _file_digest(root / path) for path in kind.cache_inputs(target)}
    except (OhLspError, OSError, SyntaxError, ValueError) as exc:
        log.debug("no result cache key for task %s: %s", task.task_id, exc)
        return None
    parts: dict[str, Any] = {
        "key": KEY_VERSION,
        "kind": task.kind,
        "prompt": kind.PROMPT_VERSION,
        "target": target.path.as_posix(),
        "target_sha256": target.sha256,
        "inputs": inputs,
        "description": task.description.strip(),
        "metadata": {name: task.metadata.get(name) for name in _METADATA},
        "model": config.model if config.model_was_set else None,
        "endpoint": config.base_url,
        "settings": {
            "threshold": task_threshold(task, config),
            "answers": answer_limit(task, config),
            "trusted": config.trusted,
            "sandbox": config.sandbox,
            "mutation": config.mutation,
            "mutation_seconds": config.mutation_seconds,
            "runtime": config.runtime,
            "max_tokens": config.max_tokens,
            "seeds": config.test_seeds,
            "python": str(config.python) if config.python else None,
        },
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "absent"


def bypassed(task: QueuedTask) -> bool:
    return bool(task.metadata.get(BYPASS))


def served(task: QueuedTask, entry: CachedResult) -> Outcome:
    """The outcome of `task` served from `entry`: the result as it was, marked ``from_cache``, at no cost."""
    result = dict(entry.result)
    result["from_cache"] = {
        "task_id": entry.task_id,
        "created_at": entry.created_at,
        "tokens": entry.tokens,
        "cost": entry.cost,
    }
    result.update(tokens=0, tokens_estimated=False, cost=0.0)
    score = float(result.get("score") or 0.0)
    metrics = ExecutionMetrics(
        task_id=task.task_id,
        model_id=CACHE_MODEL,
        task_type=task.kind,
        success=True,
        validation_passed=True,
        quality_score=round(5.0 * score, 3),
        attempt=task.attempts,
        from_cache=True,
        saved_cost=entry.cost,
    )
    return Outcome("completed", result=result, model=result.get("model"), metrics=metrics)


def entry_of(task: QueuedTask, key: str, outcome: Outcome) -> CachedResult | None:
    """What to keep of a completed attempt (None: nothing, e.g. a result with no edit to deliver)."""
    result = outcome.result
    if outcome.status != "completed" or not result or "edit" not in result or "from_cache" in result:
        return None
    metrics = outcome.metrics
    return CachedResult(
        key=key,
        kind=task.kind,
        task_id=task.task_id,
        result=result,
        target_file=task.target_file.as_posix() if task.target_file else None,
        tokens=metrics.tokens_used if metrics else 0,
        cost=metrics.cost if metrics else 0.0,
    )


class TaskMemory:
    """What a kind keeps of its last completed task on a target (`kinds.base.Memory`), in the result cache's table
    under a key of its own (kind and target path), so that it is shared, bounded and damage-proof the same way. A
    task that bypasses the result cache (`bypassed`) does not read it, and what it completes replaces it."""

    def __init__(self, store: CacheStore, task: QueuedTask, limit: int) -> None:
        self.store = store
        self.task = task
        self.limit = limit
        target = task.target_file.as_posix() if task.target_file else ""
        text = json.dumps({"memory": KEY_VERSION, "kind": task.kind, "target": target}, sort_keys=True)
        self.key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    async def recall(self) -> dict[str, Any] | None:
        if bypassed(self.task):
            return None
        try:
            entry = await self.store.cache_get(self.key)
        except Exception as exc:  # noqa: BLE001 - it is only a cache: the task starts afresh
            log.warning("what the last %s task on %s kept cannot be read (%s)", self.task.kind, self.target, exc)
            return None
        return entry.result if entry is not None else None

    async def keep(self, value: dict[str, Any]) -> None:
        entry = CachedResult(
            key=self.key,
            kind=self.task.kind,
            task_id=self.task.task_id,
            result={**value, "kind": self.task.kind},
            target_file=self.target,
        )
        try:
            await self.store.cache_put(entry, self.limit)
        except Exception as exc:  # noqa: BLE001 - it is only a cache
            log.warning(
                "what task %s kept for the next task on %s could not be written (%s); the task is not affected",
                self.task.task_id,
                self.target,
                exc,
            )

    @property
    def target(self) -> str | None:
        return self.task.target_file.as_posix() if self.task.target_file else None


class CacheStore(Protocol):
    """The store's result cache, as the engine's queue offers it (on its store thread)."""

    async def cache_get(self, key: str) -> CachedResult | None: ...

    async def cache_put(self, entry: CachedResult, limit: int) -> None: ...


def describe(entry: CachedResult) -> str:
    """A progress line for a result served from the cache."""
    return f"from cache: the result of task {entry.task_id[:8]} (no model call)"
