"""P8: fleet throughput on one PostgreSQL queue, with 1, 2 and 4 worker processes.

Each worker process is the real engine (`oh_lsp.testing.fleet_worker`) with the model call stubbed (zero latency)
and validation off, so this measures the queue and the engine, not a model or pytest. For each fleet size: a fresh
schema, N tasks submitted up front, then the processes start together and run until the queue is empty.

- throughput: tasks / (last finish - first start), both read from the database's own clock;
- scaling efficiency: throughput(N processes) / (N x throughput(1 process));
- round trips per task: counted by the stores of the worker processes (each store operation is one round trip),
  and cross-checked with the server's committed transactions (`pg_stat_database.xact_commit`).

Run:  uv run python bench/postgres_throughput.py [--tasks 2000] [--workers 4] [--repeat 5] [--queue-url URL]
Without --queue-url it starts a throwaway server with PostgreSQL's default (durable) settings; `--fast` turns fsync
and synchronous commit off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from oh_lsp import QueuedTask, TaskQueue
from oh_lsp.store.postgres import PostgresStore
from oh_lsp.testing.postgres_server import TemporaryPostgres

ROOT = Path(__file__).resolve().parent.parent
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


def query(url: str, sql: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(sql).fetchone() or {}


def commits(url: str) -> int:
    return int(query(url, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")["xact_commit"])


async def submit(url: str, root: str, tasks: int) -> tuple[float, int]:
    store = PostgresStore(url)
    queue = TaskQueue(max_size=tasks + 1, store=store, project_root=root)
    started = time.perf_counter()
    for i in range(tasks):
        await queue.enqueue(QueuedTask(task_type="unit_test", description=f"task {i}"))
    seconds = time.perf_counter() - started
    queue.close()
    return tasks / seconds, store.round_trips


def one_run(server_url: str, processes: int, tasks: int, workers: int, root: str) -> dict[str, float]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{server_url}{'&' if '?' in server_url else '?'}options=-csearch_path%3D{schema}"
    try:
        submit_rate, submit_trips = asyncio.run(submit(url, root, tasks))
        before = commits(server_url)
        start_at = time.time() + 6.0  # time for every process to import and connect
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "oh_lsp.testing.fleet_worker",
                    "--queue-url",
                    url,
                    "--project-root",
                    root,
                    "--workers",
                    str(workers),
                    "--until-idle",
                    "--poll-interval",
                    "0.05",
                    "--start-at",
                    str(start_at),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            for _ in range(processes)
        ]
        outs = []
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise SystemExit(f"a worker failed:\n{err}")
            outs.append(json.loads(out.strip().splitlines()[-1]))
        time.sleep(0.5)  # exited backends flush their statistics
        transactions = commits(server_url) - before
        span = query(
            url,
            "SELECT count(*) AS done, extract(epoch FROM max(finished_at) - min(started_at))::float8"
            " AS seconds FROM oh_lsp_tasks WHERE status = 'completed'",
        )
        if span["done"] != tasks:
            raise SystemExit(f"only {span['done']} of {tasks} tasks completed")
        late = max(out["late_seconds"] for out in outs)
        if late > 0.1:
            print(f"  warning: a worker process started {late:.1f}s late", file=sys.stderr)
        trips = sum(out["round_trips"] for out in outs)
        return {
            "per_s": tasks / span["seconds"],
            "trips": trips / tasks,
            "commits": transactions / tasks,
            "submit_per_s": submit_rate,
            "submit_trips": submit_trips / tasks,
        }
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4, help="worker coroutines per process")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--queue-url", help="a PostgreSQL server to use (default: start a throwaway one)")
    parser.add_argument("--fast", action="store_true", help="throwaway server without fsync/synchronous commit")
    args = parser.parse_args()
    sizes = [int(n) for n in args.processes.split(",")]
    server = None
    url = args.queue_url
    if url is None:
        server = TemporaryPostgres(settings=None if args.fast else DURABLE)
        url = server.start()
    try:
        version = query(url, "SHOW server_version")["server_version"]
        settings = query(url, "SELECT current_setting('fsync') AS f, current_setting('synchronous_commit') AS s")
        runs: dict[int, list[dict[str, float]]] = {n: [] for n in sizes}
        with tempfile.TemporaryDirectory() as root:
            for _ in range(args.repeat):  # interleaved, so that a change in the machine's load hits every size
                for n in sizes:
                    runs[n].append(one_run(url, n, args.tasks, args.workers, root))
                    print(f"  run: {n} processes, {runs[n][-1]['per_s']:.0f} tasks/s", file=sys.stderr)
        results = {n: {k: statistics.median(r[k] for r in runs[n]) for k in runs[n][0]} for n in sizes}
    finally:
        if server is not None:
            server.stop()
    base = results[sizes[0]]["per_s"] / sizes[0]
    print(
        f"P8 fleet throughput on PostgreSQL {version} (fsync={settings['f']}, synchronous_commit={settings['s']}):"
        f" {args.tasks} tasks, {args.workers} workers per process, median of {args.repeat} interleaved runs"
    )
    print(f"  {'processes':>9}  {'tasks/s':>8}  {'scaling':>8}  {'round trips/task':>16}  {'commits/task':>12}")
    for n in sizes:
        r = results[n]
        print(
            f"  {n:>9}  {r['per_s']:>8.0f}  {r['per_s'] / (n * base):>8.0%}  {r['trips']:>16.2f}  {r['commits']:>12.2f}"
        )
    first = results[sizes[0]]
    print(f"  submit: {first['submit_per_s']:.0f} tasks/s, {first['submit_trips']:.2f} round trips per task")


if __name__ == "__main__":
    main()
