"""What one attempt at a task does: read the target, ask the model, take the code out, place it, check it.

`run_model_task` is the engine's default executor. It returns an `Outcome` and never raises for the task's own
failures; the engine writes the outcome to the queue. It writes nothing into the project.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from oh_lsp import events as ev
from oh_lsp.config import OpenHandsConfig
from oh_lsp.errors import MissingApiKeyError, TargetError
from oh_lsp.metrics import ExecutionMetrics
from oh_lsp.tasks import QueuedTask

if TYPE_CHECKING:
    from oh_lsp.llm.gateway import ModelGateway

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    status: Literal["completed", "failed", "retry"]
    result: dict[str, Any] | None = None
    error: str | None = None
    model: str | None = None
    metrics: ExecutionMetrics | None = None
    delay: float = 0.0


@dataclass
class TaskContext:
    """What an executor gets besides the task: settings, the project, the model gateway and an event sink."""

    config: OpenHandsConfig
    root: Path
    emit: Callable[..., None]
    gateway_factory: Callable[[], ModelGateway]
    exclude: list[Path] = field(default_factory=list)

    @property
    def gateway(self) -> ModelGateway:
        return self.gateway_factory()


def retry_delay(attempt: int, hint: float | None = None) -> float:
    """Task-layer backoff: the server's hint if it gave one (a daily reset may be hours away), else exponential,
    capped at 60 s; plus up to 25% jitter, at most 30 s."""
    base = hint if hint is not None else min(60.0, 2.0 ** max(attempt, 1))
    return base + random.uniform(0.0, min(0.25 * base, 30.0))


async def run_model_task(task: QueuedTask, ctx: TaskContext) -> Outcome:
    from oh_lsp.extract import ExtractionError
    from oh_lsp.kinds.base import CheckEnv, get_kind, load_target
    from oh_lsp.llm.errors import ModelCallError

    started = time.monotonic()
    try:
        kind = get_kind(task.task_type)
        target = load_target(ctx.root, task)
    except TargetError as exc:
        return Outcome("failed", error=str(exc))
    metrics = ExecutionMetrics(task_id=task.task_id, model_id="", task_type=task.task_type, attempt=task.attempts)
    chunks = 0

    def on_delta(text: str) -> None:
        nonlocal chunks
        chunks += 1
        ctx.emit(ev.TOKENS, chunks=chunks)

    try:
        answer = await ctx.gateway.complete(task, kind.build_messages(target, task), emit=ctx.emit,
                                            on_delta=on_delta)
    except MissingApiKeyError as exc:
        return Outcome("failed", error=str(exc))
    except ModelCallError as exc:
        metrics.model_id = exc.model or ""
        metrics.error = str(exc)
        metrics.duration_seconds = time.monotonic() - started
        if exc.fatal:
            return Outcome("failed", error=str(exc), model=exc.model, metrics=metrics)
        return Outcome("retry", error=str(exc), model=exc.model, metrics=metrics,
                       delay=retry_delay(task.attempts, exc.retry_after))
    model = metrics.model_id = answer.model
    metrics.prompt_tokens = answer.prompt_tokens
    metrics.completion_tokens = answer.completion_tokens
    metrics.tokens_used = answer.total_tokens
    metrics.cost = answer.cost or 0.0
    ctx.emit(ev.TOKENS, chunks=chunks, tokens=answer.total_tokens, cost=metrics.cost, final=True)
    try:
        candidate = kind.make_candidate(answer.content, target, task)
    except ExtractionError as exc:
        metrics.error = str(exc)
        metrics.duration_seconds = time.monotonic() - started
        return Outcome("failed", error=str(exc), model=model, metrics=metrics,
                       result={"kind": task.task_type, "answer": answer.content[:20000]})
    ctx.emit(ev.VALIDATING, step="checks", output_file=candidate.output_file)
    env = CheckEnv(root=ctx.root, config=ctx.config, exclude=ctx.exclude,
                   progress=lambda text: ctx.emit(ev.VALIDATING, step=text))
    verdict = await kind.check(candidate, target, env)
    metrics.validation_passed = verdict.passed
    metrics.success = verdict.passed
    metrics.quality_score = round(5.0 * verdict.score, 3)
    metrics.duration_seconds = time.monotonic() - started
    result = {
        "kind": task.task_type,
        "target_file": target.path.as_posix(),
        "target_sha256": target.sha256,
        "output_file": candidate.output_file,
        "content": candidate.content,
        "edit": candidate.edit.to_dict(),
        "validation": verdict.to_dict(),
        "score": verdict.score,
        "coverage": verdict.details.get("coverage"),
        "execution_result": verdict.details.get("execution_result"),
        "model": model,
        "tokens": metrics.tokens_used,
        "cost": metrics.cost,
        **candidate.extra,
    }
    if verdict.passed:
        return Outcome("completed", result=result, model=model, metrics=metrics)
    metrics.error = verdict.summary()
    result["rejected_edit"] = result.pop("edit")  # kept for inspection; never delivered
    return Outcome("failed", result=result, error=f"validation {verdict.summary()}", model=model, metrics=metrics)
