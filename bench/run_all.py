"""Every benchmark of issue 7's table in one command, each in its own process, then one summary table of the lines
that state a target.

    uv run --group bench python bench/run_all.py            # the full figures (several minutes)
    uv run --group bench python bench/run_all.py --smoke    # a quick pass that checks the plumbing

P1 engine throughput, P2 concurrency efficiency, P3 LLM client overhead, P4a start-up, P4b codeAction latency,
P5 memory, and P8, the PostgreSQL fleet (on a throwaway server: it needs PostgreSQL's server programs, see
docs/fleet.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SUITE = [
    ("P1", "engine throughput", ["engine_throughput.py"], ["engine_throughput.py", "--tasks", "500", "--repeat", "1"]),
    ("P2", "concurrency efficiency", ["concurrency.py"], ["concurrency.py", "--seconds", "1", "--workers", "1,8"]),
    ("P3", "LLM client overhead", ["llm_client_overhead.py"], ["llm_client_overhead.py", "--smoke"]),
    ("P4a", "server start-up", ["lsp_startup.py"], ["lsp_startup.py", "--runs", "3"]),
    ("P4b", "codeAction latency", ["lsp_latency.py"], ["lsp_latency.py", "--tasks", "10", "--seconds", "2"]),
    ("P5", "server memory", ["lsp_memory.py"], ["lsp_memory.py", "--tasks", "100"]),
    (
        "P8",
        "PostgreSQL fleet",
        ["postgres_throughput.py", "--fast"],
        ["postgres_throughput.py", "--fast", "--tasks", "200", "--repeat", "1", "--processes", "1,2"],
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="small, quick runs (the figures mean little)")
    args = parser.parse_args()
    rows = []
    for key, name, full, smoke in SUITE:
        argv = smoke if args.smoke else full
        print(f"\n=== {key} {name}: python bench/{' '.join(argv)}", flush=True)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, str(BENCH / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            cwd=BENCH.parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        print(proc.stdout, end="")
        if proc.returncode != 0:
            print(proc.stderr[-3000:], end="")
        targets = [line.strip() for line in proc.stdout.splitlines() if "target" in line.lower()]
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        rows.append((key, name, status, time.monotonic() - started, targets or ["(see output)"]))
    print(f"\n{'=' * 100}\nSummary ({'smoke' if args.smoke else 'full'} run, load average {os.getloadavg()[0]:.2f})")
    for key, name, status, seconds, targets in rows:
        print(f"{key:<4} {name:<24} {status:<7} {seconds:>6.0f}s  {targets[0]}")
        for line in targets[1:]:
            print(f"{'':<45}{line}")
    sys.exit(0 if all(row[2] == "ok" for row in rows) else 1)


if __name__ == "__main__":
    main()
