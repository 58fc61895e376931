"""The P3 benchmark (bench/llm_client_overhead.py) still runs: a smoke run of our client against the raw floor.

The comparison with the openai SDK and litellm needs the bench dependency group and is run by hand; its figures are
in docs/benchmarks.md. This only keeps the script from rotting, and checks that every answer it timed was complete.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "llm_client_overhead.py"


def test_smoke_run_prints_the_overhead_table() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--clients", "raw,ours"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.startswith("  ")}
    assert {"raw", "ours"} <= rows.keys(), done.stdout
    assert float(rows["ours"][2]) > 0  # median wall time in ms, measured
    assert "no client connected to or looked up anything outside the loopback" in done.stdout


def test_the_network_watch_records_only_what_leaves_the_loopback(tmp_path: Path) -> None:
    # In a subprocess: an audit hook cannot be removed. sys.audit raises the events without sending anything.
    code = f"""
import sys
sys.path.insert(0, {str(BENCH.parent)!r})
import llm_client_overhead as bench
outside = []
bench._watch_network(outside)
sys.audit("socket.connect", None, ("127.0.0.1", 8000))
sys.audit("socket.getaddrinfo", "localhost", 80, 0, 0, 0)
sys.audit("socket.connect", None, ("203.0.113.5", 443))
sys.audit("socket.getaddrinfo", "api.openai.com", 443, 0, 0, 0)
print(outside)
"""
    # the suite's own network audit sees these simulated events too: give it this process's own log
    env = {**os.environ, "TEST_NET_AUDIT_LOG": str(tmp_path / "reached.log")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['connect 203.0.113.5:443', \"lookup 'api.openai.com'\"]"
