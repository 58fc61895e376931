"""`AgentProcess`: the agent worker (`oh_lsp/agent/worker.py`) as an asyncio subprocess, spoken to in JSON lines.

The run's spec, holding the API key, goes in on standard input (never in argv or the environment). Events come back
on standard output; standard error is drained into a short tail (secrets redacted) for error messages. The worker
runs in its own process group (and, with bubblewrap, its own PID namespace): `kill` ends all of it, including the
terminal tool's tmux server.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from oh_lsp.redaction import known_secrets, redact

log = logging.getLogger(__name__)
STDERR_LINES = 60
LINE_LIMIT = 8 * 1024 * 1024  # one event line (an agent message is cut short by the worker long before this)


class AgentProcess:
    def __init__(self, proc: asyncio.subprocess.Process, secrets: list[str]) -> None:
        self.proc = proc
        self.secrets = [s for s in secrets if s]
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._drain = asyncio.create_task(self._read_stderr())

    @classmethod
    async def start(
        cls, command: list[str], *, cwd: Path, env: dict[str, str], spec: dict[str, Any], secrets: list[str]
    ) -> AgentProcess:
        proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=LINE_LIMIT,
        )
        agent = cls(proc, secrets)
        await agent.send(spec)
        return agent

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def send(self, message: dict[str, Any]) -> None:
        """One JSON line to the worker. A worker that has gone away is not an error here: its exit is."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                return
            try:
                event = json.loads(line)
            except ValueError:
                self._stderr.append(self.redact(line.decode("utf-8", "replace").rstrip()))
                continue
            if isinstance(event, dict) and "event" in event:
                yield event

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while True:
            try:
                line = await self.proc.stderr.readline()
            except ValueError:  # a line longer than the limit: skip it
                continue
            if not line:
                return
            self._stderr.append(self.redact(line.decode("utf-8", "replace").rstrip()))

    def redact(self, text: str) -> str:
        """`text` without the agent's secrets nor any other secret oh-lsp knows (`oh_lsp.redaction`)."""
        return redact(text, known_secrets(self.secrets))

    def stderr_tail(self, lines: int = 15) -> str:
        return "\n".join(list(self._stderr)[-lines:])

    async def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, once the worker has ended (None if it is still running after `timeout`)."""
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            return None
        await asyncio.gather(self._drain, return_exceptions=True)
        return code

    def kill(self) -> None:
        """End the worker and everything it started (its process group)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    async def close(self, grace: float = 10.0) -> int | None:
        """Ask the worker to close its conversation and exit; kill it if it does not within `grace` seconds."""
        await self.send({"cmd": "close"})
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        code = await self.wait(grace)
        if code is None:
            log.warning(
                "the OpenHands agent (pid %d) did not exit within %.0fs of being closed; killed it",
                self.proc.pid,
                grace,
            )
        self.kill()  # also ends what it left behind in its group
        return code if code is not None else await self.wait()
