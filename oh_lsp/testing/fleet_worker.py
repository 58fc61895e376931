"""A worker process of a fleet, for tests and benchmarks: the real `ExecutionEngine` on a shared queue, with the model
call and the checks replaced by `stub_executor` (no model, no pytest), so that only the queue and the engine are
exercised.

    python -m oh_lsp.testing.fleet_worker --queue-url postgresql://... --workers 4 --until-idle

A task's ``metadata["seconds"]`` makes its stub attempt take that long (default: none). On exit the process
prints one JSON line: the ids of the tasks it completed, how many attempts it started, and the store's round trips.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any

from oh_lsp import events as ev
from oh_lsp.attempt import Outcome, TaskContext
from oh_lsp.records import ExecutionMetrics
from oh_lsp.tasks import QueuedTask

DEFAULT_SECONDS = 0.0


async def stub_executor(task: QueuedTask, ctx: TaskContext) -> Outcome:
    """Stands in for the model call and the checks: emits the usual events, waits `metadata["seconds"]`, completes."""
    ctx.emit(ev.MODEL_CHOSEN, model="stub", why="benchmark")
    ctx.emit(ev.TOKENS, chunks=1, tokens=30, cost=0.0, final=True)
    seconds = float(task.metadata.get("seconds", DEFAULT_SECONDS))
    if seconds > 0:
        await asyncio.sleep(seconds)
    metrics = ExecutionMetrics(
        task_id=task.task_id,
        model_id="stub",
        task_type=task.kind,
        success=True,
        tokens_used=30,
        cost=0.0001,
        validation_passed=True,
        quality_score=5.0,
        attempt=task.attempts,
    )
    return Outcome("completed", result={"kind": task.kind}, model="stub", metrics=metrics)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from oh_lsp import ExecutionEngine, OpenHandsConfig
    from oh_lsp.cli.engine_commands import run_until_stopped

    config = OpenHandsConfig(
        model="stub",
        base_url="http://127.0.0.1:9/v1",
        queue_url=args.queue_url,
        lease_seconds=args.lease_seconds,
        heartbeat_seconds=args.heartbeat_seconds,
        queue_max_size=args.max_size,
    )
    engine = ExecutionEngine(
        config, args.workers, project_root=args.project_root, executor=stub_executor, poll_interval=args.poll_interval
    )
    completed: list[str] = []
    started = 0

    def count(event: ev.Event) -> None:
        nonlocal started
        if event.kind == ev.STARTED:
            started += 1
        elif event.kind == ev.COMPLETED:
            completed.append(event.task_id)

    engine.subscribe(count)
    late = 0.0
    if args.start_at:  # several workers start together (benchmarks)
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
        late = time.time() - args.start_at
    await run_until_stopped(engine, until_idle=args.until_idle, duration=args.duration)  # as `oh-lsp run-engine` does
    return {
        "completed": completed,
        "started": started,
        "late_seconds": late,
        "round_trips": getattr(engine.queue.store, "round_trips", None),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--project-root", default=".")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--until-idle", action="store_true")
    parser.add_argument("--duration", type=float)
    parser.add_argument("--lease-seconds", type=float, default=30.0)
    parser.add_argument("--heartbeat-seconds", type=float, default=2.0)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--max-size", type=int, default=100_000)
    parser.add_argument("--start-at", type=float, help="epoch time at which to start taking tasks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
