"""`run_agent_task`: the engine's executor for the OpenHands runtime (``OH_LSP_RUNTIME=openhands``).

The same attempt contract (`oh_lsp.attempt`) as the direct runtime (`oh_lsp.pipeline.run_model_task`): the kind's
prompt, the same target, the kind's candidate and the kind's checks. Only who writes the code differs: an OpenHands
SDK agent with the file editor and terminal tools, run by `worker.py` in the agent environment (Python >= 3.12), in a
sandboxed copy of the project in the scratch directory (under bubblewrap when it is available: the real project is
not even visible).

After each run of the conversation the copy is compared with the project; the kind's output file (for unit_test the
test module, for documentation and refactoring the target) becomes the kind's candidate, placed where the direct
runtime would place it, and our own validation decides. Failed checks go back to the agent as the next message (the
repair loop). Nothing is written into the project: the result carries an edit, as always.

Models come from our selector's chain (the first answers, the rest are the SDK's fallbacks); every model response's
tokens and cost (the SDK's own accounting, priced from our catalog) are recorded in our store, so budgets and
metrics count them; the conversation is stopped once its cost passes a budget cap. What the agent is told and what
is taken from the copy is in `exchange.py`.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oh_lsp import events as ev
from oh_lsp.agent.exchange import (
    WORKER_FILE,
    agent_message,
    agent_output,
    agent_output_path,
    changed_files,
    estimate_tokens,
    fence,
    prepare_copy,
    run_spec,
)
from oh_lsp.attempt import (
    Outcome,
    TaskContext,
    answer_limit,
    attempt_outcome,
    model_error_outcome,
    report_checked,
    retry_delay,
    task_threshold,
)
from oh_lsp.errors import MissingApiKeyError, OhLspError, TargetError
from oh_lsp.records import ExecutionMetrics
from oh_lsp.tasks import QueuedTask

log = logging.getLogger(__name__)
MAX_FALLBACKS = 3
DOCKER_CHECK_TIMEOUT = 20.0
UNTRUSTED = (
    "not run: workspace not trusted. The OpenHands agent runs commands in a copy of the project, so it runs"
    " only in a trusted workspace (set ohLsp.trusted, or OH_LSP_TRUSTED=true), or use the direct runtime"
    " (OH_LSP_RUNTIME=direct)"
)


class AgentRuntimeError(OhLspError):
    """The OpenHands runtime cannot run here (Docker requested but missing, ...). The message says what to do."""


@dataclass
class AgentRun:
    """What one task's agent conversation has cost and said so far."""

    chain: list[Any]  # ModelInfo, best first
    metrics: ExecutionMetrics
    calls: int = 0
    budget_kind: str | None = None  # the tighter cap when the run started: "per-task" or "daily"
    budget_stop: str | None = None
    error: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def model_for(self, litellm_name: str) -> Any:
        ident = litellm_name.removeprefix("openai/")
        return next((m for m in self.chain if m.id == ident or m.name == ident), self.chain[0])


async def run_agent_task(task: QueuedTask, ctx: TaskContext) -> Outcome:
    """Run `task` through an OpenHands agent and validate its work with the kind's own checks."""
    from oh_lsp.agent.environment import AgentEnvironmentError, agent_python
    from oh_lsp.kinds.base import load_target
    from oh_lsp.kinds.registry import get_kind
    from oh_lsp.llm.errors import ModelCallError
    from oh_lsp.llm.selector import NoModelError
    from oh_lsp.validation.sandbox import SandboxError

    started = time.monotonic()
    config = ctx.config
    if not config.trusted:
        return Outcome("failed", error=UNTRUSTED)
    try:
        kind = get_kind(task.kind)
        target = load_target(ctx.root, task)
        if config.use_docker_runtime:
            await require_docker()
        env_dir = config.openhands_env
        environment = await asyncio.to_thread(agent_python, ctx.root / env_dir if env_dir else None)
    except (TargetError, AgentEnvironmentError, AgentRuntimeError) as exc:
        return Outcome("failed", error=str(exc))
    metrics = ExecutionMetrics(task_id=task.task_id, model_id="", task_type=task.kind, attempt=task.attempts)
    try:
        api_key = config.require_api_key()
        selection = await ctx.gateway.select(task)
        chain = selection.chain[: 1 + MAX_FALLBACKS] or [selection.model]  # .model says why none is available now
        messages = kind.build_messages(target, task, chain[0].context_length)
        await ctx.gateway.budget.check(task.task_id, chain[0], estimate_tokens(messages), config.max_tokens)
        budget = await ctx.gateway.budget.remaining(task.task_id)
    except MissingApiKeyError as exc:
        return Outcome("failed", error=str(exc))
    except ModelCallError as exc:
        return model_error_outcome(task, exc, metrics)
    except NoModelError as exc:  # every qualifying model is cooling down or its breaker is open
        return Outcome("retry", error=str(exc), delay=retry_delay(task.attempts, exc.retry_after))
    run = AgentRun(chain=chain, metrics=metrics, budget_kind=budget[1] if budget else None)
    ctx.emit(
        ev.MODEL_CHOSEN,
        model=chain[0].name,
        id=chain[0].id,
        why=f"OpenHands agent; {selection.why}".strip(),
        runtime="openhands",
        fallbacks=[m.name for m in chain[1:]],
    )
    try:
        return await _converse(task, ctx, kind, target, environment, messages, run, api_key, budget, started)
    except SandboxError as exc:
        return Outcome("failed", error=str(exc))


async def _converse(
    task: QueuedTask,
    ctx: TaskContext,
    kind: Any,
    target: Any,
    environment: Any,
    messages: list[dict[str, Any]],
    run: AgentRun,
    api_key: str | None,
    budget: tuple[float, str] | None,
    started: float,
) -> Outcome:
    from oh_lsp.agent.process import AgentProcess
    from oh_lsp.kinds.base import CheckEnv
    from oh_lsp.paths import workspace_dir
    from oh_lsp.repair import Attempt, feedback_message
    from oh_lsp.validation.pytest_runner import interpreter_paths
    from oh_lsp.validation.sandbox import Sandbox, scrubbed_env

    config = ctx.config
    threshold, iterations = task_threshold(task, config), answer_limit(task, config)
    check_env = CheckEnv(
        root=ctx.root, config=config, exclude=ctx.exclude, progress=lambda text: ctx.emit(ev.VALIDATING, step=text)
    )
    output = agent_output_path(task.kind, ctx.root, target)
    scratch = await asyncio.to_thread(workspace_dir, ctx.root, config.workspace_path)
    async with Sandbox(
        ctx.root, scratch, secrets=config.secrets(), exclude=ctx.exclude, mode=config.sandbox, network=True
    ) as box:
        workspace = box.inside_root
        await asyncio.to_thread(prepare_copy, box, output)
        tmux_dir = Path("/tmp") if box.isolated else Path(tempfile.mkdtemp(prefix="oh-lsp-tmux-"))
        env = scrubbed_env(
            box.home,
            config.secrets(),
            {
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "OPENHANDS_SUPPRESS_BANNER": "1",
                "LITELLM_LOG": "ERROR",
                "LOG_LEVEL": "WARNING",
                "TMUX_TMPDIR": str(tmux_dir),
                "TMPDIR": "/tmp" if box.isolated else str(box.home),
                "NO_COLOR": "1",
            },
        )
        spec = run_spec(
            config,
            run.chain,
            api_key,
            budget,
            workspace,
            agent_message(kind, target, task, messages, workspace, output),
        )
        # A terminal needs a pseudo-terminal: the namespaces give the agent a private one (and /tmp for tmux). Under
        # Landlock alone the only ones are the machine's, which it may not open (it could read another terminal's
        # keystrokes): then the agent works with the file editor alone.
        spec["terminal"] = box.isolated or not box.layers.landlock
        command = box.command(
            [str(environment.python), str(box.tools / WORKER_FILE)],
            readable=await interpreter_paths(environment.python, box.project_root),
        )
        ctx.emit(
            ev.PROGRESS,
            message=f"starting the OpenHands agent ({'isolated copy' if box.isolated else 'copy'}"
            f" of the project; model {run.chain[0].name}"
            + ("" if spec["terminal"] else "; no terminal: this sandbox (Landlock alone) has no private one")
            + ")",
            runtime="openhands",
            isolated=box.isolated,
        )
        history: list[Attempt] = []
        best: Attempt | None = None
        agent: AgentProcess | None = None
        try:
            try:
                agent = await AgentProcess.start(command, cwd=box.root, env=env, spec=spec, secrets=config.secrets())
            except OSError as exc:
                return Outcome(
                    "failed",
                    error=f"could not start the OpenHands agent with {environment.python}: {exc}."
                    " Run `oh-lsp openhands setup --force`",
                )
            async for event in agent.events():
                if event["event"] != "idle":
                    await _on_event(event, ctx, run, agent, workspace, task)
                    continue
                if run.budget_stop or run.error:
                    break
                iteration = len(history) + 1
                attempt = await _judge(kind, target, task, box.root, output, check_env, iteration, ctx, iterations)
                report_checked(ctx.emit, attempt, iterations, threshold)
                history.append(attempt)
                if best is None or attempt.rank > best.rank:
                    best = attempt
                if (attempt.verdict.passed and attempt.verdict.score >= threshold) or iteration >= iterations:
                    break
                ctx.emit(
                    ev.PROGRESS,
                    message=f"repair iteration {iteration} of {iterations - 1}: sending the findings back to the agent",
                    iteration=iteration + 1,
                    repair=iteration,
                    of=iterations - 1,
                )
                await agent.send({"cmd": "message", "text": feedback_message(attempt, history, threshold)})
            code = await agent.close()
        finally:  # a cancel or a timeout lands here too: nothing of the agent outlives the task
            await asyncio.shield(_reap(agent, tmux_dir, box.isolated))
    run.metrics.duration_seconds = time.monotonic() - started
    if run.budget_stop:
        run.metrics.error = run.budget_stop
        return Outcome("failed", error=run.budget_stop, model=run.metrics.model_id or None, metrics=run.metrics)
    if best is None:
        return await _no_result(task, ctx, run, agent, code)
    outcome = attempt_outcome(task, target, best, history, threshold, run.metrics, started)
    if outcome.result is not None:
        outcome.result.update(runtime="openhands", agent_notes=run.notes[-20:])
    return outcome


async def _on_event(
    event: dict[str, Any], ctx: TaskContext, run: AgentRun, agent: Any, workspace: Path, task: QueuedTask
) -> None:
    kind = event["event"]
    if kind == "ready":
        ctx.emit(
            ev.PROGRESS,
            message=f"OpenHands SDK {event.get('sdk_version')} loaded in {event.get('import_seconds', 0):.1f}s",
            runtime="openhands",
            pid=agent.pid,
        )
    elif kind == "llm_call":
        await _account(event, ctx, run, agent, task)
    elif kind == "retry":
        ctx.emit(
            ev.PROGRESS,
            message=f"the agent's model call is retried ({event.get('attempt')} of"
            f" {event.get('max')}): {agent.redact(str(event.get('error') or ''))}",
        )
    elif kind == "action":
        path = str(event.get("path") or "")
        shown = path.removeprefix(str(workspace)).lstrip("/") if path else ""
        words = " ".join(w for w in (event.get("tool"), event.get("command"), shown) if w)
        ctx.emit(ev.PROGRESS, message=f"agent: {words}", runtime="openhands", tool=event.get("tool"))
    elif kind == "message":
        ctx.emit(ev.PROGRESS, message=f"agent says: {agent.redact(str(event.get('text', '')))}")
    elif kind == "agent_error":
        detail = agent.redact(str(event.get("detail", "")))
        if event.get("code") == "MaxBudgetReached" and not run.budget_stop:
            run.budget_stop = _budget_message(run, run.budget_kind)
        run.notes.append(f"{event.get('code')}: {detail}")
        ctx.emit(ev.PROGRESS, message=f"agent error ({event.get('code')}): {detail}")
    elif kind == "error":
        run.error = {**event, "message": agent.redact(str(event.get("message", "")))}


async def _account(event: dict[str, Any], ctx: TaskContext, run: AgentRun, agent: Any, task: QueuedTask) -> None:
    """One model response of the agent: into our metrics and the store (budgets, totals); a passed cap stops it."""
    from oh_lsp.records import ModelCall

    model = run.model_for(str(event.get("model") or ""))
    previous = run.metrics.model_id or run.chain[0].name
    if previous != model.name:
        ctx.emit(
            ev.PROGRESS,
            message=f"switching model: {previous} -> {model.name} (the SDK's fallback)",
            rotation={"from": previous, "to": model.name, "reason": "openhands fallback"},
        )
        ctx.emit(ev.MODEL_CHOSEN, model=model.name, id=model.id, why="the SDK's fallback", runtime="openhands")
    prompt, completion = int(event.get("prompt_tokens") or 0), int(event.get("completion_tokens") or 0)
    cost = float(event.get("cost") or 0.0)
    metrics = run.metrics
    metrics.model_id = model.name
    metrics.prompt_tokens += prompt
    metrics.completion_tokens += completion
    metrics.tokens_used += prompt + completion
    metrics.cost += cost
    run.calls += 1
    await ctx.gateway.health.record_call(
        ModelCall(
            model=model.name,
            outcome="ok",
            task_id=task.task_id,
            task_kind=task.kind,
            latency_ms=float(event.get("latency") or 0.0) * 1000,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=cost,
            cost_source="openhands-sdk",
        )
    )
    ctx.emit(ev.TOKENS, tokens=metrics.tokens_used, cost=metrics.cost, calls=run.calls, final=True)
    left = await ctx.gateway.budget.remaining(task.task_id)
    if left is not None and left[0] <= 0 and not run.budget_stop:
        run.budget_stop = _budget_message(run, left[1])
        await agent.send({"cmd": "stop", "reason": run.budget_stop})
        ctx.emit(ev.PROGRESS, message=f"stopping the agent: {run.budget_stop}")


def _budget_message(run: AgentRun, which: str | None) -> str:
    setting = {"per-task": "OH_LSP_BUDGET_PER_TASK_USD", "daily": "OH_LSP_BUDGET_PER_DAY_USD"}.get(
        which or "", "OH_LSP_BUDGET_PER_TASK_USD or OH_LSP_BUDGET_PER_DAY_USD"
    )
    return (
        f"{which or 'a'} budget reached: the OpenHands conversation was stopped after {run.calls} model"
        f" call(s) costing ${run.metrics.cost:.6f} (the SDK's own accounting). Nothing was delivered. Raise"
        f" {setting} to let it go on"
    )


async def _judge(
    kind: Any,
    target: Any,
    task: QueuedTask,
    copy: Path,
    output: str,
    env: Any,
    iteration: int,
    ctx: TaskContext,
    iterations: int,
) -> Any:
    """The agent's work as the kind's candidate, checked by the kind's own checks."""
    from oh_lsp.extract import ExtractionError
    from oh_lsp.repair import Attempt, no_code_verdict

    changes = await asyncio.to_thread(changed_files, ctx.root, copy)
    text, path = agent_output(task.kind, target, changes, output)
    if text is None:
        found = ", ".join(sorted(changes)) or "no file"
        return Attempt(
            iteration,
            f"(the agent changed {found})",
            None,
            no_code_verdict(f"the agent finished without writing {output} (it changed {found})"),
        )
    answer = fence(text)
    try:
        candidate = kind.make_candidate(answer, target, task)
    except ExtractionError as exc:
        return Attempt(iteration, answer, None, no_code_verdict(f"{path}: {exc}"))
    ctx.emit(
        ev.VALIDATING,
        step="checks",
        output_file=candidate.output_file,
        iteration=iteration,
        of=iterations,
        runtime="openhands",
    )
    verdict, candidate = await kind.check(candidate, target, env)
    return Attempt(iteration, answer, candidate, verdict)


async def _no_result(task: QueuedTask, ctx: TaskContext, run: AgentRun, agent: Any, code: int | None) -> Outcome:
    """The agent never reached the point of handing in work: a model failure, or the worker itself failed."""
    from oh_lsp.llm.errors import ErrorKind, ModelCallError, classify_status
    from oh_lsp.records import ModelCall

    metrics = run.metrics
    error = run.error
    if error is None:
        detail = agent.stderr_tail() or "no output"
        metrics.error = f"the OpenHands agent exited with code {code} before finishing: {detail}"
        return Outcome(
            "retry",
            error=metrics.error,
            model=metrics.model_id or None,
            metrics=metrics,
            delay=retry_delay(task.attempts),
        )
    model = run.model_for(metrics.model_id or run.chain[0].id)
    message = f"{error.get('type')}: {error.get('message')}"
    if isinstance(error.get("status"), int):
        failure = classify_status(error["status"], {}, {"error": {"message": message}}, model=model.name)
    elif "Timeout" in str(error.get("type")) or "Connection" in str(error.get("type")):
        failure = ModelCallError(ErrorKind.TRANSIENT, message, model=model.name)
    else:
        failure = ModelCallError(
            ErrorKind.BAD_REQUEST, f"the OpenHands agent failed: {message}", model=model.name, fatal=False
        )
    await ctx.gateway.health.record_call(
        ModelCall(model=model.name, outcome=failure.kind.value, task_id=task.task_id, task_kind=task.kind)
    )
    return model_error_outcome(task, failure, metrics)


# --- Docker and tmux -------------------------------------------------------------------------------------------------
async def require_docker() -> None:
    """Raise `AgentRuntimeError` unless a Docker engine answers (OPENHANDS_USE_DOCKER_RUNTIME=true needs one)."""
    docker = shutil.which("docker")
    if docker is None:
        raise AgentRuntimeError(
            "OPENHANDS_USE_DOCKER_RUNTIME=true, but Docker is not available: there is no"
            " `docker` command on PATH. Install and start Docker, or set"
            " OPENHANDS_USE_DOCKER_RUNTIME=false to run the agent on a sandboxed local copy"
        )
    proc = await asyncio.create_subprocess_exec(
        docker,
        "info",
        "--format",
        "{{.ServerVersion}}",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), DOCKER_CHECK_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        out, err = b"", f"`docker info` did not answer within {DOCKER_CHECK_TIMEOUT:.0f}s".encode()
    if proc.returncode != 0 or not out.strip():
        reason = (err or out).decode("utf-8", "replace").strip().splitlines()
        raise AgentRuntimeError(
            "OPENHANDS_USE_DOCKER_RUNTIME=true, but Docker is not available: "
            f"{reason[-1] if reason else 'docker info failed'}. Start the Docker engine, or set"
            " OPENHANDS_USE_DOCKER_RUNTIME=false to run the agent on a sandboxed local copy"
        )


async def _reap(agent: Any, tmux_dir: Path, isolated: bool) -> None:
    if agent is not None:
        agent.kill()
        await agent.wait()
    await _stop_tmux(tmux_dir, isolated)


async def _stop_tmux(tmux_dir: Path, isolated: bool) -> None:
    """End the terminal tool's tmux servers (they leave the agent's process group; under bubblewrap its PID
    namespace ends them anyway)."""
    tmux = shutil.which("tmux")
    if isolated or tmux is None:
        return
    for socket in tmux_dir.glob("tmux-*/*"):
        if socket.is_socket():
            proc = await asyncio.create_subprocess_exec(
                tmux,
                "-S",
                str(socket),
                "kill-server",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
    await asyncio.to_thread(shutil.rmtree, tmux_dir, True)
