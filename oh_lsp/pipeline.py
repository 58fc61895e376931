"""What one attempt at a task does: read the target, ask the model, take the code out, place it, check it.

`run_model_task` is the engine's executor for the direct runtime (the default; `default_executor` picks the
configured one). It returns an `Outcome` and never raises for the task's own failures; the engine writes the outcome
to the queue. It writes nothing into the project.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

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


def task_threshold(task: QueuedTask, config: OpenHandsConfig) -> float:
    """The task's quality threshold (0-1): its metadata's, else the configured one."""
    value = task.metadata.get("quality_threshold")
    return float(value) if isinstance(value, (int, float)) and 0 <= value <= 1 else config.quality_threshold


def answer_limit(task: QueuedTask, config: OpenHandsConfig) -> int:
    """How many answers a task gets: the first plus its repair iterations."""
    value = task.metadata.get("max_repair_iterations")
    return 1 + (int(value) if isinstance(value, int) and 0 <= value <= 10 else config.max_repair_iterations)


def default_executor(config: OpenHandsConfig) -> Callable[[QueuedTask, TaskContext], Any]:
    """The executor of the configured runtime: the direct chat call, or an OpenHands agent (``runtime``)."""
    if config.runtime == "openhands":
        from oh_lsp.agent.runtime import run_agent_task

        return run_agent_task
    return run_model_task


async def run_model_task(task: QueuedTask, ctx: TaskContext) -> Outcome:
    """Ask, place, check; on a failed check send the findings back and ask again (the repair loop), up to
    1 + `max_repair_iterations` answers, stopping as soon as the checks pass with a score at the threshold."""
    from oh_lsp.extract import ExtractionError
    from oh_lsp.kinds.base import CheckEnv, get_kind, load_target
    from oh_lsp.llm.errors import ModelCallError
    from oh_lsp.repair import Attempt, feedback_message, no_code_verdict

    started = time.monotonic()
    try:
        kind = get_kind(task.task_type)
        target = load_target(ctx.root, task)
    except TargetError as exc:
        return Outcome("failed", error=str(exc))
    threshold = task_threshold(task, ctx.config)
    iterations = answer_limit(task, ctx.config)
    metrics = ExecutionMetrics(task_id=task.task_id, model_id="", task_type=task.task_type, attempt=task.attempts)
    env = CheckEnv(
        root=ctx.root, config=ctx.config, exclude=ctx.exclude, progress=lambda text: ctx.emit(ev.VALIDATING, step=text)
    )
    messages = kind.build_messages(target, task, await ctx.gateway.context_tokens(task))
    first_prompt = len(messages)
    history: list[Attempt] = []
    best: Attempt | None = None
    for iteration in range(1, iterations + 1):
        if iteration > 1:
            ctx.emit(
                ev.PROGRESS,
                message=f"repair iteration {iteration - 1} of {iterations - 1}: asking again with"
                f" the findings of attempt {iteration - 1}",
                iteration=iteration,
            )
        try:
            answer = await ask_model(
                task, ctx, messages, metrics, refit=prompt_refit(kind, target, task, messages[first_prompt:])
            )
        except MissingApiKeyError as exc:
            return Outcome("failed", error=str(exc), metrics=metrics if metrics.model_id else None)
        except ModelCallError as exc:
            if best is not None:  # keep the work done: end the repair loop with the best attempt so far
                ctx.emit(ev.PROGRESS, message=f"repair stopped: {exc}")
                break
            return model_error_outcome(task, exc, metrics, started)
        try:
            candidate = kind.make_candidate(answer.content, target, task)
        except ExtractionError as exc:
            attempt = Attempt(iteration, answer.content, None, no_code_verdict(str(exc)))
        else:
            ctx.emit(ev.VALIDATING, step="checks", output_file=candidate.output_file, iteration=iteration)
            verdict, candidate = await kind.check(candidate, target, env)
            attempt = Attempt(iteration, answer.content, candidate, verdict)
        history.append(attempt)
        if best is None or attempt.rank > best.rank:
            best = attempt
        if attempt.verdict.passed and attempt.verdict.score >= threshold:
            break
        if iteration < iterations:
            messages = [
                *messages,
                {"role": "assistant", "content": answer.content},
                {"role": "user", "content": feedback_message(attempt, history, threshold)},
            ]
    assert best is not None
    return attempt_outcome(task, target, best, history, threshold, metrics, started)


def prompt_refit(kind: Any, target: Any, task: QueuedTask, turns: list[dict[str, Any]]) -> Callable[[int], Any]:
    """How the gateway gets a smaller prompt (a context-length error, a model with a small context): the kind's
    prompt builder fits the project's context into the budget; of the repair conversation (`turns`), the last
    answer and its findings are kept."""
    from oh_lsp.kinds.context import ANSWER_RESERVE_TOKENS
    from oh_lsp.llm.tokens import estimate_prompt_tokens

    turns = turns[-2:]

    def refit(tokens: int) -> list[dict[str, Any]]:
        budget = max(tokens - estimate_prompt_tokens(turns), 1) + ANSWER_RESERVE_TOKENS
        return [*kind.build_messages(target, task, budget), *turns]

    return refit


async def ask_model(
    task: QueuedTask,
    ctx: TaskContext,
    messages: list[dict[str, Any]],
    metrics: ExecutionMetrics,
    refit: Callable[[int], Any] | None = None,
) -> Any:
    """One answer through the gateway, streamed as token events and added to `metrics` (tokens, cost, model).
    Raises `ModelCallError` when no model could answer."""
    chunks = 0

    def on_delta(text: str) -> None:
        nonlocal chunks
        chunks += 1
        ctx.emit(ev.TOKENS, chunks=chunks)

    answer = await ctx.gateway.complete(task, messages, emit=ctx.emit, on_delta=on_delta, refit=refit)
    metrics.model_id = answer.model
    metrics.prompt_tokens += answer.prompt_tokens
    metrics.completion_tokens += answer.completion_tokens
    metrics.tokens_used += answer.total_tokens
    metrics.tokens_estimated = metrics.tokens_estimated or answer.tokens_estimated is not None
    metrics.cost += answer.cost or 0.0
    ctx.emit(
        ev.TOKENS,
        chunks=chunks,
        tokens=metrics.tokens_used,
        cost=metrics.cost,
        final=True,
        estimated=metrics.tokens_estimated,
        estimated_by=answer.tokens_estimated,
        cost_source=answer.cost_source,
    )
    return answer


def model_error_outcome(task: QueuedTask, exc: Any, metrics: ExecutionMetrics, started: float) -> Outcome:
    """A model call that failed: the task fails (the user must act) or goes back to the queue to try later."""
    metrics.model_id = metrics.model_id or exc.model or ""
    metrics.error = str(exc)
    metrics.duration_seconds = time.monotonic() - started
    if exc.fatal:
        return Outcome("failed", error=str(exc), model=exc.model, metrics=metrics)
    return Outcome(
        "retry", error=str(exc), model=exc.model, metrics=metrics, delay=retry_delay(task.attempts, exc.retry_after)
    )


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
    from oh_lsp.repair import below_threshold

    verdict = best.verdict
    if verdict.passed and verdict.score < threshold:
        verdict = below_threshold(verdict, threshold)
    metrics.validation_passed = verdict.passed
    metrics.success = verdict.passed
    metrics.quality_score = round(5.0 * verdict.score, 3)
    metrics.duration_seconds = time.monotonic() - started
    model = metrics.model_id
    result: dict[str, Any] = {
        "kind": task.task_type,
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
        "iterations": len(history),
        "attempts": [a.summary() for a in history],
    }
    if best.candidate is None:
        result["answer"] = best.answer[:20000]
    else:
        result.update(
            output_file=best.candidate.output_file,
            content=best.candidate.content,
            edit=best.candidate.edit.to_dict(),
            **best.candidate.extra,
        )
    if verdict.passed:
        return Outcome("completed", result=result, model=model, metrics=metrics)
    metrics.error = verdict.summary()
    if "edit" in result:
        result["rejected_edit"] = result.pop("edit")  # kept for inspection or "accept anyway"; never delivered
    return Outcome("failed", result=result, error=f"validation {verdict.summary()}", model=model, metrics=metrics)
