"""The CLI's commands. Each takes the parsed arguments and returns an exit code."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from oh_lsp.cli import EXIT_FAILED, EXIT_OK
from oh_lsp.config import OpenHandsConfig
from oh_lsp.errors import OhLspError, TargetError
from oh_lsp.paths import project_root, python_target, state_dir
from oh_lsp.tasks import QueuedTask, TaskPriority, TaskStatus

SUBMITTER = "cli"
T = TypeVar("T")


class UsageError(OhLspError):
    """Wrong use of a command (exit 2)."""


def _root(args: argparse.Namespace) -> Path:
    return project_root(args.project_root)


def _config(root: Path, args: argparse.Namespace | None = None) -> OpenHandsConfig:
    """Settings from the environment and the project's .env; `--queue-url` wins over OPENHANDS_QUEUE_URL."""
    url = getattr(args, "queue_url", None)
    return OpenHandsConfig.from_env(env_file=root / ".env", **({"queue_url": url} if url else {}))


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def show(args: argparse.Namespace, value: Any, report: str, json_value: Any = None) -> int:
    """Print `value` as JSON with --json, else through the human report `render.<report>`."""
    if args.json:
        _print_json(value if json_value is None else json_value)
    else:
        from oh_lsp.cli import render

        print(getattr(render, report)(value))
    return EXIT_OK


def _queue(root: Path, config: OpenHandsConfig):
    from oh_lsp.queue import TaskQueue

    queue = TaskQueue(
        config.queue_max_size, project_root=root, lease_seconds=config.lease_seconds, queue_url=config.queue_url
    )
    _notices(queue.store)
    return queue


def _notices(store: Any) -> None:
    """Tell the user what the store had to do on opening (e.g. a corrupted file moved aside)."""
    if getattr(store, "recovered", None):
        print(f"oh-lsp: warning: {store.recovered}", file=sys.stderr)


def _ask(args: argparse.Namespace, call: Callable[[Any], Awaitable[T]]) -> T:
    """Run one query against the project's queue, then close it."""
    root = _root(args)
    queue = _queue(root, _config(root, args))
    try:
        return asyncio.run(call(queue))
    finally:
        queue.close()


def _logging(root: Path, config: OpenHandsConfig, verbose: bool) -> Path:
    from oh_lsp.logs import setup_logging

    return setup_logging(state_dir(root), config.secrets(), verbose=verbose)


# --- submit-task ---------------------------------------------------------------------------------------------------
def _staged_python_files(root: Path) -> list[str] | None:
    """Staged .py files that are not tests (None when `root` is not in a git repository)."""
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        names = subprocess.run(
            ["git", "diff", "--cached", "--name-only", "--diff-filter=ACMR", "-z"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\0")
    except (OSError, subprocess.CalledProcessError):
        return None
    files = []
    for name in filter(None, names):
        path = Path(top, name)
        if path.suffix != ".py" or _looks_like_test(path):
            continue
        try:
            files.append(path.resolve().relative_to(root).as_posix())
        except ValueError:
            continue  # staged, but outside this project root
    return files


def _looks_like_test(path: Path) -> bool:
    return path.name.startswith("test_") or path.name.endswith("_test.py") or path.name == "conftest.py"


def submit_task(args: argparse.Namespace) -> int:
    root = _root(args)
    targets = ([args.target_file] if args.target_file else []) + list(args.files)
    if not targets:
        staged = _staged_python_files(root)
        if staged is None:
            raise UsageError(
                f"a {args.task_type} task needs a target: give --target-file or files (no git"
                " repository here to take staged files from)"
            )
        if not staged:
            message = "no staged Python files: nothing to submit"
            _print_json({"submitted": [], "message": message}) if args.json else print(message)
            return EXIT_OK
        targets = staged
    relative = [python_target(root, t) for t in targets]  # refuse bad targets before queueing any
    config = _config(root, args)
    metadata: dict[str, Any] = {"category": args.task_type}
    if args.complexity:
        metadata["complexity"] = args.complexity
    if args.quality_threshold is not None:
        metadata["quality_threshold"] = args.quality_threshold
    queue = _queue(root, config)
    submitted = []
    try:
        for target in relative:
            task = QueuedTask(
                task_type=args.task_type,
                description=args.description,
                target_file=target,
                priority=TaskPriority.parse(args.priority),
                metadata=dict(metadata),
                submitter=SUBMITTER,
                max_retries=config.max_retries,
            )
            task_id, created = asyncio.run(queue.submit(task))
            submitted.append({"task_id": task_id, "target_file": target.as_posix(), "new": created})
    finally:
        queue.close()
    if args.json:
        _print_json({"submitted": submitted})
    else:
        for item in submitted:
            note = "" if item["new"] else " (already queued)"
            print(f"Task submitted: {item['task_id']}  {args.task_type} {item['target_file']}{note}")
    return EXIT_OK


# --- read-only commands --------------------------------------------------------------------------------------------
def get_status(args: argparse.Namespace) -> int:
    root = _root(args)
    task = _ask(args, lambda queue: queue.get_task(args.task_id))
    if task is None:
        raise TargetError(f"no task {args.task_id} in the store of {root}")
    return show(args, task, "task_report", task.summary())


def cancel_task(args: argparse.Namespace) -> int:
    root = _root(args)
    status = _ask(args, lambda queue: queue.cancel(args.task_id))
    if status is None:
        raise TargetError(f"no task {args.task_id} in the store of {root}")
    cancelled = status in (TaskStatus.PENDING, TaskStatus.RUNNING)
    message = {
        TaskStatus.PENDING: "cancelled",
        TaskStatus.RUNNING: "cancel requested: its engine stops it at its next heartbeat",
    }.get(status, f"not cancelled: the task is already {status.value}")
    _print_json({"task_id": args.task_id, "cancelled": cancelled, "message": message}) if args.json else print(
        f"{args.task_id}: {message}"
    )
    return EXIT_OK if cancelled else EXIT_FAILED


def queue_stats(args: argparse.Namespace) -> int:
    stats = _ask(args, lambda queue: queue.get_stats())
    return show(args, stats, "stats_report")


def metrics(args: argparse.Namespace) -> int:
    from oh_lsp.llm.budget import Budget
    from oh_lsp.metrics import MetricsCollector
    from oh_lsp.store import open_store

    root = _root(args)
    config = _config(root, args)
    store = open_store(root, config.queue_url)
    _notices(store)
    try:
        summary = MetricsCollector(store).get_summary()
        summary["budget"] = Budget(config, store).status()
    finally:
        store.close()
    return show(args, summary, "metrics_report")


def list_tasks(args: argparse.Namespace) -> int:
    status = TaskStatus(args.status) if args.status else None
    tasks = _ask(args, lambda queue: queue.list_tasks(status, args.limit))
    rows = [
        {
            "task_id": t.task_id,
            "kind": t.task_type,
            "target": str(t.target_file or ""),
            "status": t.status.value,
            "model": t.model,
            "cost": t.cost,
        }
        for t in tasks
    ]
    if args.json:
        _print_json(rows)
    else:
        for row in rows:
            print(f"{row['task_id']}  {row['status']:<9}  {row['kind']:<13}  {row['target']}")
    return EXIT_OK


def queue(args: argparse.Namespace) -> int:
    """`queue migrate`: create or upgrade the queue's tables (SQLite stores also migrate whenever they are opened)."""
    from oh_lsp.store import migrate_store

    root = _root(args)
    done = migrate_store(root, _config(root, args).queue_url)
    if done["before"] == done["after"]:
        message = f"{done['location']}: schema version {done['after']}, up to date"
    else:
        message = f"{done['location']}: migrated from schema version {done['before']} to {done['after']}"
    _print_json({**done, "message": message}) if args.json else print(message)
    return EXIT_OK


# --- running -------------------------------------------------------------------------------------------------------
def run_engine(args: argparse.Namespace) -> int:
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be positive")
    root = _root(args)
    config = _config(root, args)
    _logging(root, config, args.verbose)
    return asyncio.run(_run_engine(root, config, args))


async def _run_engine(root: Path, config: OpenHandsConfig, args: argparse.Namespace) -> int:
    from oh_lsp.cli.progress import ProgressView
    from oh_lsp.engine import ExecutionEngine

    engine = ExecutionEngine(
        config, args.workers, project_root=root, submitter=SUBMITTER, apply_edits=True, overwrite=args.overwrite
    )
    _notices(engine.queue.store)
    view = ProgressView(sys.stdout, json_lines=args.json)
    engine.subscribe(view.on_event)
    try:
        await serve(engine, until_idle=args.until_idle, duration=args.duration)
    finally:
        view.close()
    return EXIT_FAILED if view.failed else EXIT_OK


async def serve(engine: Any, *, until_idle: bool = False, duration: float | None = None) -> None:
    """Run `engine` until SIGINT or SIGTERM, `duration` seconds, or (with `until_idle`) an empty queue; then stop
    it (running tasks finish or go back to the queue) and close it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await engine.start()
    try:
        waiters = [asyncio.create_task(stop.wait())]
        if until_idle:
            waiters.append(asyncio.create_task(engine.run_until_idle()))
        await asyncio.wait(waiters, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
    finally:
        await engine.stop()
        engine.close()


def generate_tests(args: argparse.Namespace) -> int:
    root = _root(args)
    target = python_target(root, args.file)
    config = _config(root, args)
    _logging(root, config, args.verbose)
    return asyncio.run(_generate_tests(root, config, target, args))


async def _generate_tests(root: Path, config: OpenHandsConfig, target: Path, args: argparse.Namespace) -> int:
    from oh_lsp.cli.progress import ProgressView
    from oh_lsp.cli.render import task_report
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
                metadata={"category": "unit_test"},
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
        _print_json({**task.summary(), "elapsed_seconds": round(time.monotonic() - started, 2)})
    else:
        print(task_report(task))
    return EXIT_OK if task.status is TaskStatus.COMPLETED else EXIT_FAILED


# The model commands live in their own module; `main` finds every command here by name.
from oh_lsp.cli.agent_commands import openhands  # noqa: E402,F401
from oh_lsp.cli.model_commands import logs, models, select_model  # noqa: E402,F401
