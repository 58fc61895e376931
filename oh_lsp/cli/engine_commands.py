"""The CLI's commands that run an engine in this process: `run-engine` (the queue's tasks) and `generate-tests` (one
task, waited for), with their live progress."""

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
from oh_lsp.cli.render import task_report
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
    view = ProgressView(sys.stdout, json_lines=args.json)
    engine.subscribe(view.on_event)
    try:
        await run_until_stopped(engine, until_idle=args.until_idle, duration=args.duration)
    finally:
        view.close()
    return EXIT_FAILED if view.failed else EXIT_OK


async def run_until_stopped(engine: Any, *, until_idle: bool = False, duration: float | None = None) -> None:
    """Run `engine` until SIGINT or SIGTERM, `duration` seconds, or (with `until_idle`) an empty queue; then stop
    it (running tasks finish or go back to the queue) and close it."""
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
        engine.close()
    if engine.halted:  # its store was lost: what it held is in the log (and on disk, for delivered results)
        raise StoreError(engine.halted)


def generate_tests(args: argparse.Namespace) -> int:
    root = root_of(args)
    target = python_target(root, args.file)
    config = config_of(root, args)
    start_logging(root, config, args.verbose)
    return asyncio.run(_generate_tests(root, config, target, args))


async def _generate_tests(root: Path, config: OpenHandsConfig, target: Path, args: argparse.Namespace) -> int:
    from oh_lsp.engine import ExecutionEngine

    engine = ExecutionEngine(
        config, 1, project_root=root, submitter=SUBMITTER, apply_edits=True, overwrite=args.overwrite
    )
    view = ProgressView(sys.stderr if args.json else sys.stdout, json_lines=False)
    engine.subscribe(view.on_event)
    await engine.start()
    started = time.monotonic()
    try:
        task_id = await engine.submit_task(
            QueuedTask(
                task_type="unit_test",
                description=args.description,
                target_file=target,
                priority=TaskPriority.parse(args.priority),
                submitter=SUBMITTER,
            )
        )
        await engine.wait_for(task_id)
        await engine.stop()  # lets the worker finish writing the result to disk
        task = await engine.get_task_status(task_id)
        assert task is not None
    finally:
        await engine.stop()
        engine.close()
        view.close()
    if args.json:
        print_json({**task.summary(), "elapsed_seconds": round(time.monotonic() - started, 2)})
    else:
        say(task_report(task))
    return EXIT_OK if task.status is TaskStatus.COMPLETED else EXIT_FAILED
