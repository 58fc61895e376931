"""The CLI's commands on single tasks: `submit-task`, `get-status`, `cancel-task` and `list-tasks`."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oh_lsp.cli import render
from oh_lsp.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    SUBMITTER,
    UsageError,
    ask_queue,
    config_of,
    open_queue,
    print_json,
    root_of,
    show,
)
from oh_lsp.errors import TaskIdError
from oh_lsp.paths import python_target
from oh_lsp.tasks import QueuedTask, TaskPriority, TaskStatus

if TYPE_CHECKING:
    from oh_lsp.queue import TaskQueue


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
    root = root_of(args)
    targets = ([args.target_file] if args.target_file else []) + list(args.files)
    if not targets:
        staged = _staged_python_files(root)
        if staged is None:
            raise UsageError(
                f"a {args.kind} task needs a target: give --target-file or files (no git"
                " repository here to take staged files from)"
            )
        if not staged:
            message = "no staged Python files: nothing to submit"
            print_json({"submitted": [], "message": message}) if args.json else print(message)
            return EXIT_OK
        targets = staged
    relative = [python_target(root, t) for t in targets]  # refuse bad targets before queueing any
    config = config_of(root, args)
    metadata: dict[str, Any] = {}
    if args.complexity:
        metadata["complexity"] = args.complexity
    if args.quality_threshold is not None:
        metadata["quality_threshold"] = args.quality_threshold
    if args.no_cache:
        metadata["no_cache"] = True
    queue = open_queue(root, config)
    submitted = []
    try:
        for target in relative:
            task = QueuedTask(
                task_type=args.kind,
                description=args.description,
                target_file=target,
                priority=TaskPriority.parse(args.priority),
                metadata=dict(metadata),
                submitter=SUBMITTER,
                max_retries=config.max_retries,
            )
            task_id, created, _position = asyncio.run(queue.submit(task))
            submitted.append({"task_id": task_id, "target_file": target.as_posix(), "new": created})
    finally:
        queue.close()
    if args.json:
        print_json({"submitted": submitted})
    else:
        for item in submitted:
            note = "" if item["new"] else " (already queued)"
            print(f"Task submitted: {item['task_id']}  {args.kind} {item['target_file']}{note}")
    return EXIT_OK


def get_status(args: argparse.Namespace) -> int:
    async def find(queue: TaskQueue) -> QueuedTask | None:
        return await queue.get_task(await queue.find_id(args.task_id))

    task = ask_queue(args, find)
    if task is None:
        raise TaskIdError(f"no task {args.task_id} in the store of {root_of(args)}")
    return show(args, task, render.task_report, task.summary())


def cancel_task(args: argparse.Namespace) -> int:
    async def cancel(queue: TaskQueue) -> tuple[str, TaskStatus | None]:
        task_id = await queue.find_id(args.task_id)
        return task_id, await queue.cancel(task_id)

    task_id, status = ask_queue(args, cancel)
    if status is None:
        raise TaskIdError(f"no task {args.task_id} in the store of {root_of(args)}")
    cancelled = status in (TaskStatus.PENDING, TaskStatus.RUNNING)
    message = {
        TaskStatus.PENDING: "cancelled",
        TaskStatus.RUNNING: "cancel requested: its engine stops it at its next heartbeat",
    }.get(status, f"not cancelled: the task is already {status.value}")
    print_json({"task_id": task_id, "cancelled": cancelled, "message": message}) if args.json else print(
        f"{task_id}: {message}"
    )
    return EXIT_OK if cancelled else EXIT_FAILED


def list_tasks(args: argparse.Namespace) -> int:
    status = TaskStatus(args.status) if args.status else None
    tasks = ask_queue(args, lambda queue: queue.list_tasks(status, args.limit))
    rows = [
        {
            "task_id": t.task_id,
            "kind": t.kind,
            "target": str(t.target_file or ""),
            "status": t.status.value,
            "model": t.model,
            "cost": t.cost,
        }
        for t in tasks
    ]
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            print(f"{row['task_id']}  {row['status']:<9}  {row['kind']:<13}  {row['target']}")
    return EXIT_OK
