"""What one attempt at a task takes and gives back, shared by both runtimes (the direct chat call in `pipeline.py`,
the OpenHands agent in `agent/runtime.py`) and the engine that runs them.

An executor takes a task and a `TaskContext` and returns an `Outcome`; it never raises for the task's own failures.
Here too: the task's threshold and answer limit, the task layer's backoff, and how the best attempt or a failed model
call becomes an outcome.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from oh_lsp import events as ev
from oh_lsp.config import OpenHandsConfig, field_bounds
from oh_lsp.records import ExecutionMetrics
from oh_lsp.tasks import QueuedTask

if TYPE_CHECKING:
    from oh_lsp.llm.gateway import ModelGateway


@dataclass
class Outcome:
    """How an attempt ended: completed (with its result), failed, or back to the queue after `delay` seconds."""

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
    preferred_model: str | None = None  # the model its batch's first answer came from (`batching.py`), if any
    memory: Any = None  # what the kind keeps of its last completed task on the target (`kinds.base.Memory`), if any

    @property
    def gateway(self) -> ModelGateway:
        return self.gateway_factory()


Executor = Callable[[QueuedTask, TaskContext], Coroutine[Any, Any, Outcome]]


def retry_delay(attempt: int, hint: float | None = None) -> float:
    """Task-layer backoff: the server's hint if it gave one (a daily reset may be hours away), else exponential,
    capped at 60 s; plus up to 25% jitter, at most 30 s."""
    base = hint if hint is not None else min(60.0, 2.0 ** max(attempt, 1))
    return base + random.uniform(0.0, min(0.25 * base, 30.0))


def task_threshold(task: QueuedTask, config: OpenHandsConfig) -> float:
    """The task's quality threshold: its metadata's when in the setting's range (0-1), else the configured one."""
    value = task.metadata.get("quality_threshold")
    if isinstance(value, (int, float)) and _in_range("quality_threshold", value):
        return float(value)
    return config.quality_threshold


def answer_limit(task: QueuedTask, config: OpenHandsConfig) -> int:
    """How many answers a task gets: the first plus its repair iterations (its metadata's when in the setting's
    range, 0-10, else the configured number)."""
    value = task.metadata.get("max_repair_iterations")
    if isinstance(value, int) and _in_range("max_repair_iterations", value):
        return 1 + value
    return 1 + config.max_repair_iterations


def _in_range(setting: str, value: float) -> bool:
    """Whether a task's own `value` for `setting` keeps the range that `OpenHandsConfig` declares for it."""
    bounds = field_bounds(setting)
    return bounds["ge"] <= value <= bounds["le"]


def model_error_outcome(task: QueuedTask, exc: Any, metrics: ExecutionMetrics, started: float | None = None) -> Outcome:
    """A model call that failed (`exc`, a `ModelCallError`): the task fails (the user must act) or goes back to the
    queue to try later. With `started` (a `time.monotonic()`), the attempt's duration is recorded too."""
    metrics.model_id = metrics.model_id or exc.model or ""
    metrics.error = str(exc)
    if started is not None:
        metrics.duration_seconds = time.monotonic() - started
    if exc.fatal:
        return Outcome("failed", error=str(exc), model=exc.model, metrics=metrics)
    return Outcome(
        "retry", error=str(exc), model=exc.model, metrics=metrics, delay=retry_delay(task.attempts, exc.retry_after)
    )


def session_outcome(
    task: QueuedTask,
    target: Any,
    ending: Any,
    verdict: Any,
    history: list[Any],
    threshold: float,
    metrics: ExecutionMetrics,
    started: float,
) -> Outcome:
    """The outcome of a task a kind's session ran (`ending`, a `kinds.base.Ending`; None when the session ended it
    before any model call with `verdict`). The session decided completed or failed: the threshold is not applied
    again here (a unit_test result below it is completed, with a warning)."""
    extra = dict(ending.result) if ending is not None else {}
    if "mutation" not in extra and "mutation" in verdict.details:
        extra["mutation"] = verdict.details["mutation"]
    candidate = ending.candidate if ending is not None else None
    error = None
    if ending is None or ending.status != "completed":
        error = f"validation {verdict.summary()}"
        if len(history) > 1:  # the answers' own verdicts: the best (first of equals) and the last
            best = max(history, key=lambda attempt: attempt.rank)
            error = failure_text(best, history[-1], len(history), threshold, lambda a: history.index(a) + 1)
    return _outcome(task, target, verdict, error, candidate, history, threshold, metrics, started, extra)


def attempt_outcome(
    task: QueuedTask,
    target: Any,
    best: Any,
    history: list[Any],
    threshold: float,
    metrics: ExecutionMetrics,
    started: float,
) -> Outcome:
    """The task's outcome from its best attempt: completed when its checks passed at the threshold."""
    verdict = final_verdict(best, threshold)
    extra: dict[str, Any] = {"attempt": best.iteration}  # the attempt whose answer (or candidate) this result holds
    if best.candidate is None:
        extra["answer"] = best.answer[:20000]
    error = None if verdict.passed else failure_text(best, history[-1] if history else best, len(history), threshold)
    return _outcome(task, target, verdict, error, best.candidate, history, threshold, metrics, started, extra)


def _outcome(
    task: QueuedTask,
    target: Any,
    verdict: Any,
    error: str | None,
    candidate: Any,
    history: list[Any],
    threshold: float,
    metrics: ExecutionMetrics,
    started: float,
    extra: dict[str, Any],
) -> Outcome:
    """The outcome and its result: what was checked, what it cost, and the candidate (its edit delivered when the
    task completed, that is when there is no `error`; else kept as `rejected_edit`, never delivered)."""
    completed = error is None
    metrics.validation_passed = verdict.passed
    metrics.success = completed
    metrics.quality_score = round(5.0 * verdict.score, 3)
    metrics.duration_seconds = time.monotonic() - started
    model = metrics.model_id or None
    result: dict[str, Any] = {
        "kind": task.kind,
        "target_file": target.path.as_posix(),
        "target_sha256": target.sha256,
        "validation": verdict.to_dict(),
        "score": verdict.score,
        "quality_threshold": threshold,
        "coverage": verdict.details.get("coverage"),
        "execution_result": verdict.details.get("execution_result"),
        "model": model,
        "tokens": metrics.tokens_used,
        "tokens_estimated": metrics.tokens_estimated,
        "cost": metrics.cost,
        "iterations": len(history),  # the answers the model gave (the queue's `attempts` counts runs of the task)
        "last_attempt": history[-1].iteration if history else None,  # the last answer's (its verdict: `attempts[-1]`)
        "attempts": [a.summary() for a in history],
        "written": False,  # an attempt writes nothing; delivery does (`QueuedTask.written`)
        **extra,
    }
    if candidate is not None:
        result.update(
            output_file=candidate.output_file,
            content=candidate.content,
            edit=candidate.edit.to_dict(),
            **candidate.extra,
        )
    used = metrics if metrics.model_id else None  # a task that never asked a model has no metrics to record
    if error is None:
        return Outcome("completed", result=result, model=model, metrics=used)
    metrics.error = error.removeprefix("validation ")
    if "edit" in result:
        result["rejected_edit"] = result.pop("edit")  # kept for inspection or "accept anyway"; never delivered
    return Outcome("failed", result=result, error=error, model=model, metrics=used)


def final_verdict(attempt: Any, threshold: float) -> Any:
    """An attempt's verdict as the task ends on it: checks that passed under the threshold are a failure that says
    why."""
    from oh_lsp.repair import below_threshold

    verdict = attempt.verdict
    return below_threshold(verdict, threshold) if verdict.passed and verdict.score < threshold else verdict


def failure_text(
    best: Any, last: Any, answers: int, threshold: float, number: Callable[[Any], int] | None = None
) -> str:
    """Why a task failed: its best attempt's verdict and, after several answers, its last one's too (the best is the
    first of equals, so the last answer's findings would otherwise go unseen). `number`: an answer's number among all
    the task's answers (by default its iteration; a session asking about several segments numbers them in order)."""
    number = number or (lambda attempt: attempt.iteration)

    def verdict_of(attempt: Any) -> str:
        return str(final_verdict(attempt, threshold).summary())

    if answers <= 1:
        return f"validation {verdict_of(best)}"
    if best is last:
        return f"validation failed after {answers} answers; the last, answer {number(last)}, was the best: " + (
            verdict_of(last)
        )
    return (
        f"validation failed after {answers} answers; best, answer {number(best)}: {verdict_of(best)}"
        f"; last, answer {number(last)}: {verdict_of(last)}"
    )


def report_checked(emit: Callable[..., None], attempt: Any, answers: int, threshold: float) -> None:
    """Publish one attempt's verdict (`events.CHECKED`): the progress shows its numbers, the log its summary."""
    verdict = final_verdict(attempt, threshold)
    details = verdict.details or {}
    kept = details.get("kept")
    emit(
        ev.CHECKED,
        iteration=attempt.iteration,
        of=answers,
        passed=verdict.passed,
        score=verdict.score,
        code=verdict.errors[0].code if verdict.errors else None,
        summary=verdict.summary(),
        **({"kept": len(kept), "dropped": len(details.get("dropped") or [])} if isinstance(kept, list) else {}),
    )
