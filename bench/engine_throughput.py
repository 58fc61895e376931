"""P1: engine throughput through the durable SQLite queue, with the model call stubbed in-process and validation off.

This measures the queue and the engine (claim, lease, events, completion with its metrics row), not HTTP and not
pytest. Run:  uv run python bench/engine_throughput.py [--tasks 5000] [--workers 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask
from oh_lsp.events import Event
from oh_lsp.testing.fleet_worker import stub_executor  # the model call and the checks, stubbed in-process


async def one_run(tasks: int, workers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["OH_LSP_STATE_DIR"] = str(Path(tmp, "state"))
        config = OpenHandsConfig(model="stub", base_url="http://127.0.0.1:9/v1", queue_max_size=tasks + 1)
        engine = ExecutionEngine(config, workers, project_root=tmp, executor=stub_executor, poll_interval=0.05)
        events = 0

        def count(_event: Event) -> None:
            nonlocal events
            events += 1

        engine.subscribe(count)
        started = time.perf_counter()
        for i in range(tasks):
            await engine.submit_task(QueuedTask(task_type="unit_test", description=f"task {i}"))
        submitted = time.perf_counter()
        await engine.start()
        await engine.run_until_idle()
        finished = time.perf_counter()
        await engine.stop()
        summary = engine.get_metrics_summary()
        engine.close()
        assert summary["system"]["successful"] == tasks, summary["system"]
        run_seconds = finished - submitted
        return {
            "submit_per_s": tasks / (submitted - started),
            "run_per_s": tasks / run_seconds,
            "overhead_us": 1e6 * run_seconds / tasks,
            "events": events,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = [asyncio.run(one_run(args.tasks, args.workers)) for _ in range(args.repeat)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"P1 engine throughput: {args.tasks} tasks, {args.workers} workers, {args.repeat} runs (median)")
    print(f"  {'run (claim -> complete)':<28}{med['run_per_s']:>10.0f} tasks/s   target >= 1000")
    print(f"  {'overhead per task':<28}{med['overhead_us']:>10.0f} us")
    print(f"  {'submit':<28}{med['submit_per_s']:>10.0f} tasks/s")
    print(f"  {'events published per task':<28}{med['events'] / args.tasks:>10.1f}")


if __name__ == "__main__":
    main()
