"""`ExecutionEngine`: N worker coroutines taking tasks from the durable queue, each under a lease kept alive by a
heartbeat, a timeout, and cancellation that reaches the running attempt.

The engine knows nothing about its front ends. It publishes `Event`s; the CLI and the language server subscribe.
With `apply_edits` it also puts finished tasks' edits on disk (`deliver_task`, the CLI's way).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oh_lsp import events as ev
from oh_lsp import result_cache
from oh_lsp.attempt import Executor, Outcome, TaskContext, retry_delay
from oh_lsp.batching import Batches
from oh_lsp.config import OpenHandsConfig, check_workers
from oh_lsp.edits import DeliveryReport, Edit, FileOutcome, apply_to_disk
from oh_lsp.errors import StoreError, StoreLostError, StoreUnavailableError
from oh_lsp.kinds.registry import recompute_for
from oh_lsp.llm.errors import SOON_SECONDS
from oh_lsp.paths import project_root as resolve_root
from oh_lsp.paths import state_base, state_dir
from oh_lsp.pipeline import run_model_task
from oh_lsp.queue import TaskQueue
from oh_lsp.redaction import known_secrets, remember
from oh_lsp.store.base import Heartbeat
from oh_lsp.task_log import TaskLog
from oh_lsp.tasks import QueuedTask, TaskStatus

log = logging.getLogger(__name__)

# Pending tasks due later than this (waiting for a rate-limit reset that is not "soon") do not keep us busy: nothing
# can run now, and front ends say what waits (`oh-lsp run-engine --until-idle` exits 3).
IDLE_HORIZON_SECONDS = SOON_SECONDS
NOTIFIED_POLL_SECONDS = 2.0  # idle poll when the store wakes us (PostgreSQL): for work that gets ready with time only


def default_executor(config: OpenHandsConfig) -> Executor:
    """The executor of the configured runtime: the direct chat call, or an OpenHands agent (``runtime``)."""
    if config.runtime == "openhands":
        from oh_lsp.agent.runtime import run_agent_task

        return run_agent_task
    return run_model_task


def deliver_task(root: Path, task: QueuedTask, *, overwrite: bool = False) -> DeliveryReport:
    """Write the edit of a completed task under `root` (the CLI's way; the language server's when its client cannot
    apply edits). Safe to repeat: files already up to date are left alone."""
    result = task.result or {}
    if task.status is not TaskStatus.COMPLETED or "edit" not in result:
        report = DeliveryReport()
        report.files.append(FileOutcome(str(task.target_file or "?"), "refused", "the task has no result to deliver"))
        return report
    return apply_to_disk(root, Edit.from_dict(result["edit"]), overwrite=overwrite, recompute=recompute_for(result))


class ExecutionEngine:
    """Runs queued tasks. ``ExecutionEngine(config, max_concurrent_tasks=5)``, then ``await engine.start()``.

    `submitter` names the front end (``"api"``, ``"cli"``, ``"lsp:<folder>"``). With `apply_edits`, the engine
    writes the results of that submitter's tasks to disk as the CLI does; otherwise results stay in the store.
    `inline_store_calls` is `TaskQueue`'s `inline_calls` (off in the language server, whose event loop answers the
    editor).
    """

    def __init__(
        self,
        config: OpenHandsConfig | None = None,
        max_concurrent_tasks: int = 5,
        *,
        project_root: str | Path | None = None,
        queue: TaskQueue | None = None,
        executor: Executor | None = None,
        submitter: str = "api",
        apply_edits: bool = False,
        overwrite: bool = False,
        poll_interval: float = 0.5,
        inline_store_calls: bool = True,
    ) -> None:
        check_workers(max_concurrent_tasks, "max_concurrent_tasks")
        self.config = config if config is not None else OpenHandsConfig.from_env()
        remember(*self.config.secrets())  # every text this engine stores or shows is redacted for them
        self.root = queue.project_root if queue is not None else resolve_root(project_root)
        self.queue = queue or TaskQueue(
            self.config.queue_max_size,
            project_root=self.root,
            lease_seconds=self.config.lease_seconds,
            queue_url=self.config.queue_url,
            inline_calls=inline_store_calls,
        )
        self.max_concurrent_tasks = max_concurrent_tasks
        self.submitter = submitter
        self.apply_edits = apply_edits
        self.overwrite = overwrite
        self.poll_interval = poll_interval
        self.events = ev.EventBus()
        self.batches = Batches(self.config.batch_window_seconds)  # similar tasks to one model, the first ahead
        self.events.subscribe(self.batches.on_event)
        self.events.subscribe(TaskLog(lambda: known_secrets(self.config.secrets())))
        self._executor: Executor = executor or default_executor(self.config)
        self._workers: list[asyncio.Task[None]] = []
        self._jobs: dict[str, asyncio.Task[Outcome]] = {}
        self._cancel_reasons: dict[str, str] = {}
        self._wakeup: asyncio.Event | None = None
        self._unwatch: Callable[[], None] | None = None
        self._idle_wait = poll_interval
        self._stopping = False
        self.halted: str | None = None  # why the engine stopped on its own (its store was lost); see `_halt`
        self._halted = asyncio.Event()
        self._gateway: Any = None
        self._loaded_kinds: set[str] = set()  # task kinds whose modules (and the gateway's) are imported
        self._delivering: set[str] = set()  # completed tasks whose edits this engine is writing now
        self._retired_gateways: list[Any] = []
        self._exclude = [state_dir(self.root), state_base()]  # kept out of sandbox copies, hidden from them

    # --- lifecycle ---------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return bool(self._workers) and not self._stopping

    async def start(self) -> None:
        if self._workers:
            return
        self._stopping = False
        self._wakeup = asyncio.Event()
        self._unwatch = self.queue.watch_for_work(self._wakeup.set)  # other processes' submits wake idle workers
        self._idle_wait = (
            self.poll_interval if self._unwatch is None else max(self.poll_interval, NOTIFIED_POLL_SECONDS)
        )
        await asyncio.to_thread(self._clean_scratch)
        if self.apply_edits:
            await self._deliver_pending()
        self._add_workers()

    def _add_workers(self) -> None:
        self._workers = [w for w in self._workers if not w.done()]
        for i in range(len(self._workers), self.max_concurrent_tasks):
            self._workers.append(asyncio.create_task(self._worker(i), name=f"oh-lsp-worker-{i}"))

    def reconfigure(self, config: OpenHandsConfig, max_concurrent_tasks: int | None = None) -> None:
        """Use `config` from the next task on (running tasks finish with theirs), and change the number of workers:
        extra workers leave once their current task is done."""
        if max_concurrent_tasks is not None:
            check_workers(max_concurrent_tasks, "max_concurrent_tasks")
        self.config = config
        self.batches.window = config.batch_window_seconds
        remember(*config.secrets())
        if self._gateway is not None:  # still used by running tasks: closed when the engine stops
            self._retired_gateways.append(self._gateway)
            self._gateway = None
        if max_concurrent_tasks is not None:
            self.max_concurrent_tasks = max_concurrent_tasks
            if self._workers and not self._stopping:
                self._add_workers()

    def _clean_scratch(self) -> None:
        from oh_lsp.paths import scratch_path
        from oh_lsp.validation.sandbox import remove_stale_sandboxes

        try:
            removed = remove_stale_sandboxes(scratch_path(self.root, self.config.workspace_path))
        except OSError as exc:
            log.warning("could not clean the scratch directory: %s", exc)
            return
        if removed:
            log.info("removed %d sandbox copies left by processes that ended", removed)

    async def stop(self, grace: float = 10.0) -> None:
        """Let running tasks finish within `grace` seconds; give the rest back to the queue."""
        if not self._workers:
            return
        self._stopping = True
        if self._wakeup:
            self._wakeup.set()
        jobs = list(self._jobs.values())
        if jobs:
            await asyncio.wait(jobs, timeout=grace)
        for task_id, job in list(self._jobs.items()):
            if not job.done():
                self._cancel_reasons[task_id] = "stop"
                job.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        for gateway in [*self._retired_gateways, self._gateway]:
            if gateway is not None:
                await gateway.aclose()
        self._gateway, self._retired_gateways = None, []

    def close(self) -> None:
        self.queue.close()

    def subscribe(self, subscriber: ev.Subscriber) -> Callable[[], None]:
        return self.events.subscribe(subscriber)

    # --- the usage guide's API (docs/guide-compat.md#executionengine) ----------------------------------------
    async def submit_task(self, task: QueuedTask) -> str:
        """Queue `task` and return its id (the id of an equal unfinished task, if there is one)."""
        if task.submitter == "api" and self.submitter != "api":
            task.submitter = self.submitter
        if task.max_retries is None:
            task.max_retries = self.config.max_retries
        task_id, created, position = await self.queue.submit(task)
        self.events.publish(
            ev.QUEUED,
            task_id,
            position=position,
            duplicate=not created,
            kind=task.kind,
            target=str(task.target_file) if task.target_file else None,
        )
        if self._wakeup:
            self._wakeup.set()
        return task_id

    async def get_task_status(self, task_id: str) -> QueuedTask | None:
        return await self.queue.get_task(task_id)

    async def cancel_task(self, task_id: str) -> bool:
        """Cancel a pending task, or stop a running one (at once here, at its next heartbeat elsewhere)."""
        before = await self.queue.cancel(task_id)
        job = self._jobs.get(task_id)
        if job is not None and not job.done():
            self._cancel_reasons[task_id] = "cancel"
            job.cancel()
        elif before is TaskStatus.PENDING:
            self.events.publish(ev.CANCELLED, task_id, reason="cancelled before it started")
        return before in (TaskStatus.PENDING, TaskStatus.RUNNING)

    def get_metrics_summary(self) -> dict[str, Any]:
        from oh_lsp.llm.budget import Budget

        summary = self.queue.store.metrics_summary()
        summary["budget"] = Budget(self.config, self.queue.store).status()
        return summary

    async def wait_for(self, task_id: str, timeout: float | None = None) -> QueuedTask:
        """Wait until `task_id` ends (completed, failed or cancelled), whichever process runs it: at once when this
        engine ends it (its final event), else at the next look at the store."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ended = asyncio.Event()

        def watch(event: ev.Event) -> None:
            if event.task_id != task_id:
                return
            if (event.kind == ev.PROGRESS and "delivered" in event.data) or (
                event.is_final and task_id not in self._delivering  # a result this engine writes: once written
            ):
                ended.set()

        unsubscribe = self.events.subscribe(watch)
        try:
            while True:
                if self.halted is not None:
                    raise StoreError(self.halted)
                task = await self.queue.get_task(task_id)
                if task is None:
                    raise KeyError(f"no task {task_id}")
                if task.status.is_final:
                    return task
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"task {task_id} is still {task.status.value}")
                await self._until(ended)
        finally:
            unsubscribe()

    async def run_until_idle(self, timeout: float | None = None) -> None:
        """Return once no task is pending or running (tasks waiting hours for a rate-limit reset do not count)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job_ended = asyncio.Event()  # looks again at once when this engine's last running task ends

        def watch(event: ev.Event) -> None:
            if event.is_final and not self._jobs:
                job_ended.set()

        unsubscribe = self.events.subscribe(watch)
        try:
            while True:
                if self.halted is not None and not self._jobs:
                    return
                try:
                    if not self._jobs and await self.queue.outstanding(IDLE_HORIZON_SECONDS) == 0:
                        return
                except StoreUnavailableError as exc:  # a queue server that is down or restarting: wait for it
                    log.warning("%s", exc)
                if deadline is not None and time.monotonic() > deadline:
                    return
                job_ended.clear()
                await self._until(job_ended)
        finally:
            unsubscribe()

    async def _until(self, event: asyncio.Event) -> None:
        """Until `event` is set, or for the poll interval at most (0.2 s at most): the store is looked at again then."""
        try:
            await asyncio.wait_for(event.wait(), min(self.poll_interval, 0.2))
        except TimeoutError:
            pass

    # --- workers -----------------------------------------------------------------------------------------------
    def gateway(self) -> Any:
        """The model gateway of this engine's configuration (created on first use)."""
        return self._gateway_factory()

    def _gateway_factory(self) -> Any:
        if self._gateway is None:
            from oh_lsp.llm.gateway import ModelGateway

            self._gateway = ModelGateway(
                self.config,
                store=self.queue.store,
                store_thread=self.queue.store_thread,
                states=self.queue.model_states,
            )
        return self._gateway

    async def _worker(self, number: int) -> None:
        assert self._wakeup is not None
        task: QueuedTask | None = None  # the next task, when ending the last one claimed it in the same trip
        while not self._stopping and number < self.max_concurrent_tasks:
            if task is None:
                try:
                    task = await self.queue.claim(self.config.lease_seconds)
                except StoreLostError as exc:
                    self._halt(str(exc))
                    return
                except Exception:
                    log.exception("worker %d could not read the queue; retrying", number)
                    await asyncio.sleep(self.poll_interval)
                    continue
            if task is None:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self._idle_wait)
                except TimeoutError:
                    pass
                self._wakeup.clear()
                continue
            current, task = task, None
            try:
                task = await self._process(current, claim_next=lambda: self._keeps(number))
            except StoreLostError as exc:
                self._halt(str(exc))
                return
            except Exception as exc:  # a bug of ours: never leave the task "running" behind
                log.exception("worker %d failed while handling task %s", number, current.task_id)
                try:
                    await self.queue.retry(
                        current.task_id,
                        f"internal error: {type(exc).__name__}: {exc}",
                        retry_delay(current.attempts),
                        lease=current.lease_id,
                    )
                except Exception:
                    log.exception("could not give task %s back to the queue", current.task_id)
        if task is not None:  # claimed while the engine began to stop: back to the queue, uncharged
            try:
                await self.queue.release(task.task_id, lease=task.lease_id)
            except StoreLostError as exc:  # nothing to give it back to
                self._halt(str(exc))

    def _keeps(self, number: int) -> bool:
        """Whether worker `number` goes on to another task."""
        return not self._stopping and number < self.max_concurrent_tasks

    async def _process(self, task: QueuedTask, claim_next: Callable[[], bool] = lambda: False) -> QueuedTask | None:
        """Run one attempt at `task` and record how it ended. Returns the next task when recording it also claimed
        one (`claim_next()` says whether to)."""
        task_id = task.task_id
        self.events.publish(
            ev.STARTED,
            task_id,
            attempt=task.attempts,
            kind=task.kind,
            target=str(task.target_file) if task.target_file else None,
        )
        choice: dict[str, Any] = {}  # the model chosen last, and why: kept with the result (`get-status`)

        def emit(kind: str, **data: Any) -> None:
            if kind == ev.MODEL_CHOSEN:
                choice.update(model=data.get("model"), why=data.get("why"))
            self.events.publish(kind, task_id, **data)

        context = TaskContext(
            config=self.config, root=self.root, gateway_factory=self._gateway_factory, emit=emit, exclude=self._exclude
        )
        job = asyncio.create_task(self._attempt(task, context), name=f"oh-lsp-task-{task_id[:8]}")
        self._jobs[task_id] = job
        beating: list[asyncio.Task[None]] = []  # the heartbeat, once due: an attempt that ends before costs a timer
        first_beat = asyncio.get_running_loop().call_later(
            self.config.heartbeat_seconds,
            lambda: beating.append(asyncio.create_task(self._heartbeat(task_id, task.lease_id, job))),
        )
        try:
            done, _ = await asyncio.wait({job}, timeout=self.config.timeout_seconds)
            if not done:
                self._cancel_reasons[task_id] = "timeout"
                job.cancel()
                await asyncio.wait({job})
        finally:
            first_beat.cancel()
            for heartbeat in beating:
                heartbeat.cancel()
            self._jobs.pop(task_id, None)
        reason = self._cancel_reasons.pop(task_id, None)
        if job.cancelled():
            await self._after_cancel(task, reason)
            return None
        if isinstance(job.exception(), StoreLostError):  # the model layer's records could not be written
            self._halt(str(job.exception()))
            outcome = Outcome("failed", error=str(job.exception()))
        elif isinstance(job.exception(), StoreUnavailableError):  # the model layer's state lives on the queue's server
            log.warning("task %s: %s; the attempt goes back to the queue", task_id, job.exception())
            outcome = Outcome("retry", error=str(job.exception()), delay=retry_delay(task.attempts))
        elif job.exception() is not None:
            exc = job.exception()
            log.error("task %s crashed", task_id, exc_info=exc)
            outcome = Outcome("failed", error=f"internal error: {type(exc).__name__}: {exc}")
        else:
            outcome = job.result()
        if outcome.result is not None and choice:
            outcome.result["model_choice"] = choice
        return await self._record(task, outcome, claim_next())

    async def _attempt(self, task: QueuedTask, context: TaskContext) -> Outcome:
        """One attempt, under the task's lease, timeout and cancellation: the result cache's answer when it has one
        for these inputs, else the executor's (kept in the cache when it completes), once the task's place in its
        batch of similar tasks allows (`batching.py`)."""
        key = await self._cache_key(task)
        if key is not None and not result_cache.bypassed(task):
            entry = await self.queue.cache_get(key)
            if entry is not None:
                context.emit(ev.PROGRESS, message=result_cache.describe(entry), from_cache=True)
                return result_cache.served(task, entry)
        if task.kind not in self._loaded_kinds:
            await asyncio.to_thread(self._load_runtime, task.kind)
        if self.batches.waits(task):
            context.emit(ev.PROGRESS, message="batched: waiting for its batch's first answer", batched=True)
        context.preferred_model = await self.batches.admit(task)
        if key is not None:  # the result cache's table also keeps what a kind remembers of its last task on a target
            context.memory = result_cache.TaskMemory(self.queue, task, self.config.result_cache_entries)
        outcome = await self._executor(task, context)
        if key is not None and outcome.status == "completed":
            await self._remember(task, key, outcome)
        return outcome

    def _load_runtime(self, kind: str) -> None:
        """Import what running a task needs (the model gateway with its HTTP client, the task kind) on a worker
        thread, once: an idle engine does without them (a language server's memory), and the event loop never waits
        for them."""
        import importlib

        from oh_lsp.kinds.registry import KIND_MODULES

        importlib.import_module("oh_lsp.llm.gateway")
        if kind in KIND_MODULES:
            importlib.import_module(KIND_MODULES[kind])
        self._loaded_kinds.add(kind)

    async def _cache_key(self, task: QueuedTask) -> str | None:
        """The result cache's key of `task`'s inputs now (None: the cache does not serve it)."""
        if task.target_file is None or not self.config.result_cache:
            return None
        return await asyncio.to_thread(result_cache.cache_key, task, self.root, self.config)

    async def _remember(self, task: QueuedTask, key: str, outcome: Outcome) -> None:
        """Keep a completed result in the result cache, if its inputs did not change while it was made. A cache that
        cannot be written is only logged: the task is not affected."""
        entry = result_cache.entry_of(task, key, outcome)
        if entry is None or await self._cache_key(task) != key:
            return
        try:
            await self.queue.cache_put(entry, self.config.result_cache_entries)
        except Exception as exc:  # noqa: BLE001 - it is only a cache
            log.warning("the result cache could not be written (%s); task %s is not affected", exc, task.task_id)

    async def _after_cancel(self, task: QueuedTask, reason: str | None) -> None:
        task_id = task.task_id
        if reason == "cancel":
            await self.queue.finish(task_id, TaskStatus.CANCELLED, lease=task.lease_id)
            self.events.publish(ev.CANCELLED, task_id, reason="cancelled while running")
        elif reason == "timeout":
            await self._record(
                task,
                Outcome(
                    "retry",
                    error=f"timed out after {self.config.timeout_seconds}s (OPENHANDS_TIMEOUT)",
                    delay=retry_delay(task.attempts),
                ),
            )
        elif reason == "lost":
            log.warning("task %s: lease lost to another worker; dropped this attempt", task_id)
        elif self.halted is None:  # engine stopping
            await self.queue.release(task_id, lease=task.lease_id)
            self.events.publish(ev.PROGRESS, task_id, message="re-queued: the engine stopped")

    async def _record(self, task: QueuedTask, outcome: Outcome, claim_next: bool = False) -> QueuedTask | None:
        """Write how the attempt ended and publish it (and deliver it, with `apply_edits`). With `claim_next`, a
        completed or failed task's record also claims the next task (one trip to the store), which is returned.
        When the store is lost meanwhile, the outcome is kept anyway (`_rescue`) and the engine stops."""
        try:
            return await self._write_outcome(task, outcome, claim_next)
        except StoreLostError as exc:
            await self._rescue(task, outcome)
            self._halt(str(exc))
            return None

    async def _write_outcome(self, task: QueuedTask, outcome: Outcome, claim_next: bool) -> QueuedTask | None:
        task_id = task.task_id
        for gateway in (self._gateway, *self._retired_gateways):  # the model calls' records go just ahead
            if gateway is not None:
                gateway.flush_records()
        details = {
            "model": outcome.model,
            "tokens": outcome.metrics.tokens_used if outcome.metrics else 0,
            "tokens_estimated": bool(outcome.metrics and outcome.metrics.tokens_estimated),
            "cost": outcome.metrics.cost if outcome.metrics else 0.0,
        }
        if outcome.status in ("completed", "failed"):
            status = TaskStatus.COMPLETED if outcome.status == "completed" else TaskStatus.FAILED
            done, claimed = await self.queue.finish_then_claim(
                task_id,
                status,
                result=outcome.result,
                error=None if status is TaskStatus.COMPLETED else (outcome.error or "failed"),
                metrics=outcome.metrics,
                model=outcome.model,
                claim=claim_next,
                lease_seconds=self.config.lease_seconds,
                lease=task.lease_id,
            )
            if done and status is TaskStatus.COMPLETED:
                delivers = self.apply_edits and task.submitter == self.submitter
                if delivers:
                    self._delivering.add(task_id)
                self.events.publish(ev.COMPLETED, task_id, result=outcome.result, **details)
                if delivers:
                    await self._deliver(task_id)
            elif done:
                self.events.publish(ev.FAILED, task_id, error=outcome.error, result=outcome.result, **details)
            return claimed
        after = await self.queue.retry(
            task_id,
            outcome.error or "retry",
            outcome.delay,
            metrics=outcome.metrics,
            model=outcome.model,
            result=outcome.result,
            lease=task.lease_id,
        )
        if after is TaskStatus.PENDING:
            self.events.publish(ev.RETRYING, task_id, error=outcome.error, delay=outcome.delay, **details)
        elif after is TaskStatus.FAILED:
            final = await self.queue.get_task(task_id)
            self.events.publish(ev.FAILED, task_id, error=final.error if final else outcome.error, **details)
        return None

    async def _heartbeat(self, task_id: str, lease: str | None, job: asyncio.Task[Outcome]) -> None:
        """Renew the lease of `job`'s task now and every `heartbeat_seconds` until the job ends (started by
        `_process` when the first beat is due)."""
        while not job.done():
            try:
                state = await self.queue.heartbeat(task_id, self.config.lease_seconds, lease=lease)
            except StoreLostError as exc:  # the attempt goes on: its outcome is kept by `_rescue`
                self._halt(str(exc))
            except Exception:
                log.exception("heartbeat for task %s failed", task_id)
            else:
                if state is not Heartbeat.OK and not job.done():
                    self._cancel_reasons[task_id] = "cancel" if state is Heartbeat.CANCEL else "lost"
                    job.cancel()
            await asyncio.sleep(self.config.heartbeat_seconds)

    # --- a lost store ------------------------------------------------------------------------------------------
    def _halt(self, reason: str) -> None:
        """Stop taking tasks: the store is gone (`StoreLostError`). Said once, as a `halted` event and in the log;
        running attempts finish and their outcomes are kept by `_rescue`."""
        if self.halted is not None:
            return
        self.halted = reason
        self._stopping = True
        self._halted.set()
        if self._wakeup:
            self._wakeup.set()
        log.error("%s", reason)
        self.events.publish(ev.HALTED, "", message=reason)

    async def wait_halted(self) -> str:
        """Wait until the engine stops on its own and its running attempts have ended (their outcomes kept by
        `_rescue`); returns why it stopped."""
        await self._halted.wait()
        if self._workers:  # each leaves once its attempt is recorded (or kept)
            await asyncio.wait(list(self._workers))
        return self.halted or ""

    async def _rescue(self, task: QueuedTask, outcome: Outcome) -> None:
        """Keep the outcome of an attempt the lost store could not take: the whole of it in the log (and so on
        stderr), and, for a completed task this engine delivers, its edit written to disk as usual."""
        import json

        from oh_lsp.redaction import redact_data

        kept = redact_data(
            {
                "task_id": task.task_id,
                "kind": task.kind,
                "target": str(task.target_file or ""),
                "status": outcome.status,
                "error": outcome.error,
                "model": outcome.model,
                "result": outcome.result,
            }
        )
        log.error("the store is gone: the outcome of task %s is kept here: %s", task.task_id, json.dumps(kept))
        details = {"model": outcome.model, "cost": outcome.metrics.cost if outcome.metrics else 0.0}
        if outcome.status == "completed":
            self.events.publish(ev.COMPLETED, task.task_id, result=outcome.result, **details)
            if self.apply_edits and task.submitter == self.submitter and outcome.result:
                done = dataclasses.replace(task, status=TaskStatus.COMPLETED, result=outcome.result)
                report = await asyncio.to_thread(deliver_task, self.root, done, overwrite=self.overwrite)
                self._said_delivered(done, report)
        else:
            error = f"not recorded, the store is gone: {outcome.error or outcome.status}"
            self.events.publish(ev.FAILED, task.task_id, error=error, result=outcome.result, **details)

    # --- delivery ----------------------------------------------------------------------------------------------
    async def _deliver(self, task_id: str) -> None:
        try:
            task = await self.queue.get_task(task_id)
            if task is None:
                return
            report = await asyncio.to_thread(deliver_task, self.root, task, overwrite=self.overwrite)
            try:
                await self.queue.set_delivery(task_id, report.delivery_state)
            except StoreLostError as exc:  # delivered all the same; the store that would say so is gone
                self._halt(str(exc))
        finally:
            self._delivering.discard(task_id)
        self._said_delivered(task, report)

    def _said_delivered(self, task: QueuedTask, report: DeliveryReport) -> None:
        self.events.publish(
            ev.PROGRESS,
            task.task_id,
            message=f"{'written' if report.applied else 'not written'}: {report.summary()}",
            delivered=report.applied,
            output_file=(task.result or {}).get("output_file"),
        )

    async def _deliver_pending(self) -> None:
        """Deliver results that finished while no front end of this submitter was there to write them."""
        for task in await self.queue.undelivered(self.submitter):
            await self._deliver(task.task_id)
