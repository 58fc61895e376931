"""The CLI's commands that run an engine in this process: `run-engine` (the queue's tasks) and `generate-tests` (one
task, waited for). Their progress goes to stderr (`cli/progress.py`); stdout carries only the result: the report of
each task that ended (`--json`: as JSON)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oh_lsp.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_WAITING,
    SUBMITTER,
    UsageError,
    config_of,
    print_json,
    root_of,
    say,
    start_logging,
    warn_recovered,
)
from oh_lsp.cli.progress import ProgressView
from oh_lsp.cli.render import task_line, task_report
from oh_lsp.cli.waiting import waiting, waiting_report
from oh_lsp.errors import StoreError
from oh_lsp.paths import python_target
from oh_lsp.tasks import QueuedTask, TaskPriority, TaskStatus

if TYPE_CHECKING:
    from oh_lsp.config import OpenHandsConfig


def run_engine(args: argparse.Namespace) -> int:
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be positive")
    root = root_of(args)
    config = config_of(root, args)
    start_logging(root, config, args.verbose)
    return asyncio.run(_run_engine(root, config, args))


async def _run_engine(root: Path, config: OpenHandsConfig, args: argparse.Namespace) -> int:
    from oh_lsp.engine import ExecutionEngine

    engine = ExecutionEngine(
        config, args.workers, project_root=root, submitter=SUBMITTER, apply_edits=True, overwrite=args.overwrite
    )
    warn_recovered(engine.queue.store)
    view = ProgressView(sys.stderr, json_lines=args.json)
    engine.subscribe(view.on_event)
    try:
        await run_until_stopped(engine, until_idle=args.until_idle, duration=args.duration, close=False)
        found = await waiting(engine) if args.until_idle and not engine.halted else None
        tasks = [] if engine.halted else await _tasks(engine.queue, view.finished)
    finally:
        view.close()
        engine.close()
    if engine.halted:  # its store was lost: what it held is in the log (and on disk, for delivered results)
        raise StoreError(engine.halted)
    waits = found if found and found["tasks"] else None  # idle, yet tasks wait: for a reset that is not soon
    if args.json:
        summary = {"tasks": [task.summary() for task in tasks], "completed": view.completed, "failed": view.failed}
        print_json({**summary, "waiting": waits} if waits else summary)
    else:
        say("\n".join(task_line(task) for task in tasks) or "no task ended")
    if waits:
        say(waiting_report(waits), err=True)
    if view.failed:
        return EXIT_FAILED
    return EXIT_WAITING if waits else EXIT_OK


async def _tasks(queue: Any, task_ids: list[str]) -> list[QueuedTask]:
    """The tasks `task_ids` as the store has them now (delivered or not)."""
    found = [await queue.get_task(task_id) for task_id in dict.fromkeys(task_ids)]
    return [task for task in found if task is not None]


async def run_until_stopped(
    engine: Any, *, until_idle: bool = False, duration: float | None = None, close: bool = True
) -> None:
    """Run `engine` until SIGINT or SIGTERM, `duration` seconds, (with `until_idle`) a queue where nothing can run
    now, or until it halts; then stop it (running tasks finish or go back to the queue) and close it (unless not
    `close`). Raises `StoreError` when it halted (its store was lost)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await engine.start()
    try:
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(engine.wait_halted())]
        if until_idle:
            waiters.append(asyncio.create_task(engine.run_until_idle()))
        await asyncio.wait(waiters, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
    finally:
        await engine.stop()
        if close:
            engine.close()
    if engine.halted and close:  # its store was lost: what it held is in the log (and on disk, if delivered)
        raise StoreError(engine.halted)


def generate_tests(args: argparse.Namespace) -> int:
    import oh_lsp.engine
    import oh_lsp.logs
    import oh_lsp.store.sqlite
    from oh_lsp.kinds.registry import get_kind

    # the modules every run of this command uses (its task kind runs a miss and delivers a hit) are loaded with
    # the program; `elapsed_seconds` is the command's own time from here, without the process's start
    get_kind("unit_test")
    started = time.monotonic()
    root = root_of(args)
    target = python_target(root, args.file)
    config = config_of(root, args)
    start_logging(root, config, args.verbose)
    return asyncio.run(_generate_tests(root, config, target, args, oh_lsp.engine.ExecutionEngine, started))


async def _generate_tests(
    root: Path, config: OpenHandsConfig, target: Path, args: argparse.Namespace, engine_class: Any, started: float
) -> int:
    from oh_lsp import events as ev
    from oh_lsp.engine import IDLE_HORIZON_SECONDS

    engine = engine_class(config, 1, project_root=root, submitter=SUBMITTER, apply_edits=True, overwrite=args.overwrite)
    view = ProgressView(sys.stderr, several=False)
    engine.subscribe(view.on_event)
    postponed = asyncio.Event()  # the task went back to the queue until a rate-limit reset that is not soon

    def on_event(event: ev.Event) -> None:
        if event.kind == ev.RETRYING and float(event.data.get("delay") or 0) > IDLE_HORIZON_SECONDS:
            postponed.set()

    engine.subscribe(on_event)
    await engine.start()
    found = None
    try:
        task_id = await engine.submit_task(
            QueuedTask(
                task_type="unit_test",
                description=args.description,
                target_file=target,
                priority=TaskPriority.parse(args.priority),
                submitter=SUBMITTER,
                metadata={"no_cache": True} if args.no_cache else {},
            )
        )
        done = asyncio.create_task(engine.wait_for(task_id))
        waits = asyncio.create_task(postponed.wait())
        await asyncio.wait({done, waits}, return_when=asyncio.FIRST_COMPLETED)
        waits.cancel()
        if not done.done():  # nothing can run now: say so at once instead of waiting for the reset
            done.cancel()
            await engine.stop()
            found = await waiting(engine)
        else:
            done.result()
            await engine.stop()  # lets the worker finish writing the result to disk
        task = await engine.get_task_status(task_id)
        assert task is not None
    finally:
        await engine.stop()
        engine.close()
        view.close()
    if found is not None:
        if args.json:
            print_json({**task.summary(), "elapsed_seconds": round(time.monotonic() - started, 2), "waiting": found})
        say(waiting_report(found), err=True)
        return EXIT_WAITING
    if args.json:
        print_json({**task.summary(), "elapsed_seconds": round(time.monotonic() - started, 3)})
    else:
        say(task_report(task))
    return EXIT_OK if task.status is TaskStatus.COMPLETED else EXIT_FAILED
