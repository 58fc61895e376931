"""P1: durable no-op throughput, oh-lsp's engine beside huey 3.5 (SQLite storage), in one run.

oh-lsp: the real `ExecutionEngine` on the project's SQLite store, 5 workers, the model call and the checks stubbed
in-process (`fleet_worker.stub_executor`), validation off. This measures the queue and the engine: a durable submit,
a claim with a lease, the events, the completion with its metrics row.

huey: `SqliteHuey` (huey's own SQLite storage) and its consumer with 5 worker threads, running a task that does
nothing; twice: with its defaults (WAL, SQLite's default `synchronous = FULL`: every commit waits for an fsync, so
a task also survives a power cut) and with `fsync=False` (`synchronous = OFF`: a commit is handed to the operating
system, as oh-lsp's `synchronous = NORMAL` in WAL mode does).

Every side puts each submitted task in a SQLite file before `submit`/`enqueue` returns, so a submitted task survives
kill -9 of the process; the ratios are given against each huey. Each side runs in its own process; the runs alternate
(ours, huey, ours, huey, ...) so that machine noise hits both alike. "submit" is tasks/s of one caller submitting them
one after another, each awaited (as the CLI and the language server submit); "run" is tasks/s from the start of the
workers until the last task is done (on both sides what the workers import is imported before the clock starts:
the run is the steady state, not a process's start-up). "CPU us/task" is the process's CPU time (all its
threads) per task in each phase: it depends less on the machine's load than the rates do.

Run:  uv run --group bench python bench/engine_throughput.py [--tasks 5000] [--workers 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SIDES = ("oh-lsp", "huey", "huey-nofsync")


async def ours(tasks: int, workers: int, folder: str) -> dict[str, float]:
    # What running a task imports (the model gateway, the task kind), before the clock starts, as huey's side imports
    # its consumer: an engine loads them once, with its first task (about 0.7 s here), not with each task.
    import oh_lsp.kinds.unit_test
    import oh_lsp.llm.gateway  # noqa: F401
    from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask
    from oh_lsp.events import Event
    from oh_lsp.testing.fleet_worker import stub_executor  # the model call and the checks, stubbed in-process

    os.environ["OH_LSP_STATE_DIR"] = str(Path(folder, "state"))
    config = OpenHandsConfig(model="stub", base_url="http://127.0.0.1:9/v1", queue_max_size=tasks + 1)
    engine = ExecutionEngine(config, workers, project_root=folder, executor=stub_executor, poll_interval=0.05)
    events = 0

    def count(_event: Event) -> None:
        nonlocal events
        events += 1

    engine.subscribe(count)
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(tasks):
        await engine.submit_task(QueuedTask(task_type="unit_test", description=f"task {i}"))
    submitted, cpu_submitted = time.perf_counter(), time.process_time()
    await engine.start()
    await engine.run_until_idle()
    finished, cpu_finished = time.perf_counter(), time.process_time()
    await engine.stop()
    summary = engine.get_metrics_summary()
    engine.close()
    assert summary["system"]["successful"] == tasks, summary["system"]
    return {
        "submit_per_s": tasks / (submitted - started),
        "run_per_s": tasks / (finished - submitted),
        "submit_cpu_us": (cpu_submitted - cpu_started) / tasks * 1e6,
        "run_cpu_us": (cpu_finished - cpu_submitted) / tasks * 1e6,
        "events_per_task": events / tasks,
    }


def huey_side(tasks: int, workers: int, folder: str, fsync: bool | None) -> dict[str, float]:
    import logging

    from huey import SqliteHuey
    from huey.consumer import Consumer

    logging.getLogger("huey").setLevel(logging.ERROR)
    huey = SqliteHuey("bench", filename=str(Path(folder, "huey.db")), fsync=fsync)
    done = 0
    all_done = threading.Event()
    lock = threading.Lock()

    def count_one(i: int) -> None:
        nonlocal done
        with lock:
            done += 1
            if done == tasks:
                all_done.set()

    noop = huey.task()(count_one)  # a task that does nothing but count itself

    class ThreadedConsumer(Consumer):  # type: ignore[misc]
        def _set_signal_handlers(self) -> None:  # signals are for a consumer on the main thread; this one is not
            pass

    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(tasks):
        noop(i)
    submitted, cpu_submitted = time.perf_counter(), time.process_time()
    consumer = ThreadedConsumer(huey, workers=workers, worker_type="thread", periodic=False, initial_delay=0.001)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    assert all_done.wait(600), f"huey ran {done} of {tasks} tasks"
    finished, cpu_finished = time.perf_counter(), time.process_time()
    consumer.stop(graceful=True)
    return {
        "submit_per_s": tasks / (submitted - started),
        "run_per_s": tasks / (finished - submitted),
        "submit_cpu_us": (cpu_submitted - cpu_started) / tasks * 1e6,
        "run_cpu_us": (cpu_finished - cpu_submitted) / tasks * 1e6,
    }


def child(side: str, tasks: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if side == "oh-lsp":
            figures = asyncio.run(ours(tasks, workers, folder))
        else:
            figures = huey_side(tasks, workers, folder, fsync=False if side == "huey-nofsync" else None)
    print(json.dumps(figures))


def run_side(side: str, tasks: int, workers: int) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", side, "--tasks", str(tasks), "--workers", str(workers)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the {side} run failed:\n{proc.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.tasks, args.workers)
        return
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    load = os.getloadavg()[0]
    for round_ in range(args.repeat):
        for side in SIDES[round_ % len(SIDES) :] + SIDES[: round_ % len(SIDES)]:  # each side leads in turn
            runs[side].append(run_side(side, args.tasks, args.workers))
    med: dict[str, dict[str, Any]] = {
        side: {key: statistics.median(r[key] for r in results) for key in results[0]} for side, results in runs.items()
    }
    print(
        f"P1 durable no-op throughput: {args.tasks} tasks, {args.workers} workers, {args.repeat} runs each,"
        f" interleaved (median); load average {load:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    print(f"  {'':<14}{'run tasks/s':>14}{'submit tasks/s':>16}{'CPU us/task: run':>20}{'submit':>8}")
    for side in SIDES:
        figures = med[side]
        print(
            f"  {side:<14}{figures['run_per_s']:>14.0f}{figures['submit_per_s']:>16.0f}"
            f"{figures['run_cpu_us']:>20.0f}{figures['submit_cpu_us']:>8.0f}"
        )
    for side in SIDES[1:]:
        run_ratio = med["oh-lsp"]["run_per_s"] / med[side]["run_per_s"]
        submit_ratio = med["oh-lsp"]["submit_per_s"] / med[side]["submit_per_s"]
        verdict = "met" if min(run_ratio, submit_ratio) >= 1.0 else "missed"
        print(f"  oh-lsp / {side}: run {run_ratio:.2f}x, submit {submit_ratio:.2f}x; target >= 1x on both: {verdict}")
    print(f"  oh-lsp events published per task: {med['oh-lsp']['events_per_task']:.1f}")
    print(f"  oh-lsp absolute: run {med['oh-lsp']['run_per_s']:.0f} tasks/s; target >= 1000 tasks/s")


if __name__ == "__main__":
    main()
