"""What one attempt at a task does in the direct runtime: read the target, ask the model, take the code out, place it,
check it, and repair.

`run_model_task` is the engine's executor for the direct runtime (the default; the engine's `default_executor` picks
the configured one). It keeps the attempt contract (`oh_lsp.attempt`): it returns an `Outcome` and never raises for
the task's own failures; the engine writes the outcome to the queue. It writes nothing into the project.

A kind with a session (`open_session`, kinds/base.py: unit_test) runs by its own rules instead (`run_session`): its
measures before the first call, several conversations at once (`CONVERSATIONS_AT_ONCE`), each with its own repair
loop, and an ending the kind decides.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oh_lsp import events as ev
from oh_lsp.attempt import (
    Outcome,
    TaskContext,
    answer_limit,
    attempt_outcome,
    model_error_outcome,
    report_checked,
    session_outcome,
    task_threshold,
)
from oh_lsp.errors import MissingApiKeyError, StoreLostError, TargetError
from oh_lsp.records import ExecutionMetrics
from oh_lsp.tasks import QueuedTask

if TYPE_CHECKING:
    from oh_lsp.kinds.base import Conversation, Target, TaskSession

log = logging.getLogger(__name__)
CONVERSATIONS_AT_ONCE = 3  # of one task's conversations (segments), at most this many ask a model at once


async def run_model_task(task: QueuedTask, ctx: TaskContext) -> Outcome:
    """Ask, place, check; on a failed check send the findings back and ask again (the repair loop), up to
    1 + `max_repair_iterations` answers, stopping as soon as the checks pass with a score at the threshold."""
    from oh_lsp.extract import ExtractionError
    from oh_lsp.kinds.base import CheckEnv, load_target
    from oh_lsp.kinds.registry import get_kind
    from oh_lsp.llm.errors import ModelCallError
    from oh_lsp.llm.prompt_cache import mark_stable
    from oh_lsp.repair import Attempt, feedback_message, no_code_verdict

    started = time.monotonic()
    try:
        kind = get_kind(task.kind)
        target = load_target(ctx.root, task)
    except TargetError as exc:
        return Outcome("failed", error=str(exc))
    threshold = task_threshold(task, ctx.config)
    iterations = answer_limit(task, ctx.config)
    metrics = ExecutionMetrics(task_id=task.task_id, model_id="", task_type=task.kind, attempt=task.attempts)
    env = CheckEnv(
        root=ctx.root,
        config=ctx.config,
        exclude=ctx.exclude,
        progress=lambda text: ctx.emit(ev.VALIDATING, step=text),
        warn=once(lambda text: ctx.emit(ev.WARNING, message=text)),
        memory=ctx.memory,
    )
    open_session = getattr(kind, "open_session", None)
    if open_session is not None:
        session = open_session(target, task, env, threshold)
        try:
            return await run_session(session, task, ctx, target, metrics, started, iterations, threshold)
        except TargetError as exc:
            return Outcome("failed", error=str(exc))
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
                repair=iteration - 1,
                of=iterations - 1,
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
            ctx.emit(
                ev.VALIDATING, step="checks", output_file=candidate.output_file, iteration=iteration, of=iterations
            )
            verdict, candidate = await kind.check(candidate, target, env)
            attempt = Attempt(iteration, answer.content, candidate, verdict)
        report_checked(ctx.emit, attempt, iterations, threshold)
        history.append(attempt)
        if best is None or attempt.rank > best.rank:
            best = attempt
        if attempt.verdict.passed and attempt.verdict.score >= threshold:
            break
        if iteration < iterations:
            messages = [  # the conversation so far stays the prefix: the provider's prompt cache serves it
                *messages,
                mark_stable({"role": "assistant", "content": answer.content}),
                {"role": "user", "content": feedback_message(attempt, history, threshold)},
            ]
    assert best is not None
    return attempt_outcome(task, target, best, history, threshold, metrics, started)


def once(warn: Callable[[str], None]) -> Callable[[str], None]:
    """`warn` for each distinct text once (a task's repair iterations each open a sandbox: one warning is enough)."""
    seen: set[str] = set()

    def warn_once(text: str) -> None:
        if text not in seen:
            seen.add(text)
            warn(text)

    return warn_once


def prompt_refit(kind: Any, target: Any, task: QueuedTask, turns: list[dict[str, Any]]) -> Callable[[int], Any]:
    """How the gateway gets a smaller prompt (a context-length error, a model with a small context): the kind's
    prompt builder fits the project's context into the budget; of the repair conversation (`turns`), the last
    answer and its findings are kept."""
    return refit_with(lambda budget: kind.build_messages(target, task, budget), turns)


def refit_with(build: Callable[[int], list[dict[str, Any]]], turns: list[dict[str, Any]]) -> Callable[[int], Any]:
    """`prompt_refit` for any first-prompt builder `build(context tokens)`."""
    from oh_lsp.kinds.context import ANSWER_RESERVE_TOKENS
    from oh_lsp.llm.tokens import estimate_prompt_tokens

    turns = turns[-2:]

    def refit(tokens: int) -> list[dict[str, Any]]:
        budget = max(tokens - estimate_prompt_tokens(turns), 1) + ANSWER_RESERVE_TOKENS
        return [*build(budget), *turns]

    return refit


async def run_session(
    session: TaskSession,
    task: QueuedTask,
    ctx: TaskContext,
    target: Target,
    metrics: ExecutionMetrics,
    started: float,
    iterations: int,
    threshold: float,
) -> Outcome:
    """A task by its kind's session (module docstring): `prepare`, the conversations, `finish`."""
    from oh_lsp.llm.errors import ModelCallError
    from oh_lsp.llm.prompt_cache import mark_stable
    from oh_lsp.repair import Attempt

    refused = await session.prepare()
    if refused is not None:
        return session_outcome(task, target, None, refused, [], threshold, metrics, started)
    context_tokens = await ctx.gateway.context_tokens(task)
    conversations = session.conversations(context_tokens)
    history: list[Attempt] = []
    at_once = asyncio.Semaphore(CONVERSATIONS_AT_ONCE)
    several = len(conversations) > 1

    async def converse(number: int, conversation: Conversation) -> None:
        async with at_once:
            label = conversation.label
            aim = conversation.aims_at or label
            if aim:
                part = f"part {number}/{len(conversations)}: " if several else ""
                ctx.emit(ev.PROGRESS, message=f"{part}aiming at {aim}", segment=label, aims_at=aim)
            messages = conversation.messages(context_tokens)
            first_prompt = len(messages)
            for iteration in range(1, iterations + 1):
                if iteration > 1:
                    ctx.emit(
                        ev.PROGRESS,
                        message=f"repair iteration {iteration - 1} of {iterations - 1}: asking again"
                        + (f" about {label}" if label else " with the findings"),
                        iteration=iteration,
                        repair=iteration - 1,
                        of=iterations - 1,
                        segment=label,
                    )
                refit = refit_with(conversation.messages, messages[first_prompt:])
                answer = await ask_model(task, ctx, messages, metrics, refit=refit)
                ctx.emit(ev.VALIDATING, step="checks", iteration=iteration, of=iterations, segment=label)
                turn = await session.judge(conversation, answer.content, iteration, answer.model)
                attempt = Attempt(iteration, answer.content, turn.candidate, turn.verdict, segment=label)
                report_checked(ctx.emit, attempt, iterations, threshold)
                history.append(attempt)
                if turn.feedback is None or iteration == iterations:
                    return
                messages = [  # the conversation so far stays the prefix: the provider's prompt cache serves it
                    *messages,
                    mark_stable({"role": "assistant", "content": answer.content}),
                    {"role": "user", "content": turn.feedback},
                ]

    outcomes = await asyncio.gather(
        *(converse(n, c) for n, c in enumerate(conversations, start=1)), return_exceptions=True
    )
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    for failure in failures:
        if isinstance(failure, MissingApiKeyError):
            return Outcome("failed", error=str(failure), metrics=metrics if metrics.model_id else None)
        if not isinstance(failure, ModelCallError):
            raise failure
    if failures and not session.kept_any:
        return model_error_outcome(task, failures[0], metrics, started)
    if failures:
        ctx.emit(ev.PROGRESS, message=f"asking stopped: {failures[0]}")
    ending = await session.finish()
    for model, (generated, kept) in ending.quality.items():
        try:
            await ctx.gateway.record_kept_tests(model, generated, kept)
        except StoreLostError as exc:  # the model's record is lost with the store; the outcome is kept (the engine's)
            log.warning("the share of %s's tests kept could not be recorded: %s", model, exc)
            break
    return session_outcome(task, target, ending, ending.verdict, history, threshold, metrics, started)


async def ask_model(
    task: QueuedTask,
    ctx: TaskContext,
    messages: list[dict[str, Any]],
    metrics: ExecutionMetrics,
    refit: Callable[[int], Any] | None = None,
) -> Any:
    """One answer through the gateway, streamed as token events and added to `metrics` (tokens, cost, model).
    Raises `ModelCallError` when no model could answer."""
    chunks = chars = 0

    def on_delta(text: str) -> None:
        nonlocal chunks, chars
        chunks += 1
        chars += len(text)
        ctx.emit(ev.TOKENS, chunks=chunks, chars=chars)

    answer = await ctx.gateway.complete(
        task, messages, emit=ctx.emit, on_delta=on_delta, refit=refit, prefer=ctx.preferred_model
    )
    metrics.model_id = answer.model
    metrics.prompt_tokens += answer.prompt_tokens
    metrics.completion_tokens += answer.completion_tokens
    metrics.tokens_used += answer.total_tokens
    metrics.tokens_estimated = metrics.tokens_estimated or answer.tokens_estimated is not None
    metrics.cost += answer.cost or 0.0
    metrics.cached_tokens += answer.cached_tokens
    metrics.saved_cost += answer.saved_cost
    ctx.emit(
        ev.TOKENS,
        chunks=chunks,
        tokens=metrics.tokens_used,
        cost=metrics.cost,
        final=True,
        estimated=metrics.tokens_estimated,
        estimated_by=answer.tokens_estimated,
        cost_source=answer.cost_source,
        cached_tokens=metrics.cached_tokens,
        saved=metrics.saved_cost,
    )
    return answer
