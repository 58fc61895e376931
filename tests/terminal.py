"""Running a command with its stderr on a pseudo-terminal, as a user at a terminal would (stdout stays piped)."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path


def run_on_a_terminal(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> tuple[int, str, str]:
    """Run `args` with stderr on a pseudo-terminal: its exit code, what the terminal received, and stdout."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=follower, text=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the other end closed (Linux answers EIO)
            break
        if not data:
            break
        chunks.append(data.decode("utf-8", "replace"))
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    proc.wait(timeout=timeout)
    os.close(leader)
    return proc.returncode, "".join(chunks), stdout
