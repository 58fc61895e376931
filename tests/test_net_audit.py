"""The suite's network audit (tests/netaudit/sitecustomize.py) sees what a process started by a test reaches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# sys.audit raises the events without sending anything, so nothing leaves the machine
REACH_OUT = """
import sys
sys.audit("socket.connect", None, ("127.0.0.1", 8000))
sys.audit("socket.connect", None, ("::1", 8000, 0, 0))
sys.audit("socket.connect", None, "/run/some.sock")
sys.audit("socket.getaddrinfo", "localhost", 80, 0, 0, 0)
sys.audit("socket.connect", None, ("203.0.113.5", 443))
sys.audit("socket.getaddrinfo", "openrouter.ai", 443, 0, 0, 0)
"""


def test_a_child_process_reaching_beyond_the_loopback_is_recorded(tmp_path: Path) -> None:
    log = tmp_path / "reached.log"
    env = {**os.environ, "TEST_NET_AUDIT_LOG": str(log)}  # this test's own log, not the suite's
    assert "netaudit" in env["PYTHONPATH"]  # the suite passes the audit on to every Python process it starts
    subprocess.run([sys.executable, "-c", REACH_OUT], env=env, check=True, timeout=60)
    lines = log.read_text().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == ["connect 203.0.113.5:443", "getaddrinfo openrouter.ai"]
