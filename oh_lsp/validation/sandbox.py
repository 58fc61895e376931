"""Running generated code: in a throwaway copy of the project, in a subprocess with a timeout, rlimits and an
environment built from an allowlist with every secret removed.

The copy lives in the scratch directory (`OPENHANDS_WORKSPACE_ROOT`) and leaves out `.env` files, `.git`, virtual
environments, caches, the scratch directory itself and the state directory. Subprocesses are awaited
asynchronously; a cancel or a timeout kills the whole process group.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

EXCLUDED_NAMES = {
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "node_modules",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".coverage",
    "htmlcov",
    ".idea",
    ".vscode",
}
MAX_COPIED_FILE_BYTES = 20 * 1024 * 1024
ENV_ALLOWLIST = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT", "TERM")
OUTPUT_LIMIT = 200_000


@dataclass
class RunResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    duration: float

    @property
    def output(self) -> str:
        return (self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr)[-OUTPUT_LIMIT:]


def scrubbed_env(home: Path, secrets: list[str], extra: dict[str, str] | None = None) -> dict[str, str]:
    """An environment from an allowlist, with a private HOME and TMPDIR, and no value containing a secret."""
    env = {name: os.environ[name] for name in ENV_ALLOWLIST if name in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    env.update(
        HOME=str(home), TMPDIR=str(home), PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8"
    )
    env.update(extra or {})
    return {k: v for k, v in env.items() if not any(_reveals(v, s) for s in secrets if s)}


def _reveals(value: str, secret: str) -> bool:
    """A value equal to a secret, or containing one long enough not to turn up by chance in a path."""
    return value == secret or (len(secret) >= 8 and secret in value)


def _limits(cpu_seconds: int, memory_bytes: int) -> Any:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply if sys.platform != "win32" else None


class SandboxError(RuntimeError):
    """A sandbox was required (`sandbox = "bwrap"`) but cannot be had here."""


_bwrap_ok: bool | None = None


def bwrap_available() -> bool:
    """Whether bubblewrap is installed and can create its namespaces here (checked once per process)."""
    global _bwrap_ok
    if _bwrap_ok is None:
        exe = shutil.which("bwrap")
        if exe is None:
            _bwrap_ok = False
        else:
            import subprocess

            probe = subprocess.run(
                [
                    exe,
                    "--ro-bind",
                    "/",
                    "/",
                    "--dev",
                    "/dev",
                    "--proc",
                    "/proc",
                    "--unshare-all",
                    "--die-with-parent",
                    "true",
                ],
                capture_output=True,
                timeout=30,
            )
            _bwrap_ok = probe.returncode == 0
    return _bwrap_ok


class Sandbox:
    """``async with Sandbox(root, scratch, secrets=...) as box:`` -> `box.root` is a private copy of the project.

    With bubblewrap (`mode` "auto" when it is available, or "bwrap") the code runs with a read-only view of the
    machine, no network, its own PID namespace and `/tmp`, and the copy mounted *at the real project's path*, so the
    real project is not visible at all. Without it (`mode` "none", or "auto" with no bwrap) the code runs as a plain
    subprocess in the copy, and `isolated` is False: verdicts then say "not isolated".
    """

    def __init__(
        self,
        project_root: Path,
        scratch: Path,
        *,
        secrets: list[str],
        exclude: list[Path] | None = None,
        mode: str = "auto",
        memory_bytes: int = 4 * 1024**3,
        network: bool = False,
    ) -> None:
        if mode not in ("auto", "bwrap", "none"):
            raise SandboxError(f"unknown sandbox mode {mode!r}: use auto, bwrap or none")
        self.project_root = project_root.resolve()
        self.scratch = scratch.resolve()
        self.secrets = secrets
        self.hidden = [p.resolve() for p in (exclude or [])]
        self.exclude = [*self.hidden, self.scratch]
        self.mode = mode
        self.isolated = False
        self.memory_bytes = memory_bytes
        self.network = network  # an agent must reach its model; generated tests never get the network
        name = f"{os.getpid()}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"  # pid first: see cleanup
        self.base = self.scratch / "sandboxes" / name
        self.root = self.base / "project"
        self.home = self.base / "home"
        self.tools = self.base / "tools"

    @property
    def inside_root(self) -> Path:
        """Where the running code sees the copy: the real project's path when isolated, else the copy's."""
        return self.project_root if self.isolated else self.root

    async def __aenter__(self) -> Self:
        if self.mode != "none":
            self.isolated = await asyncio.to_thread(bwrap_available)
            if self.mode == "bwrap" and not self.isolated:
                raise SandboxError(
                    "the sandbox setting is 'bwrap' but bubblewrap is not usable here: install it"
                    " (apt-get install bubblewrap) or set OH_LSP_SANDBOX=auto"
                )
        await asyncio.to_thread(self._prepare)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(shutil.rmtree, self.base, True)

    def _ignore(self, directory: str, names: list[str]) -> set[str]:
        skipped = set()
        for name in names:
            path = Path(directory, name)
            if (
                name in EXCLUDED_NAMES
                or name == ".env"
                or name.startswith(".env.")
                or name.endswith(".egg-info")
                or any(path.resolve() == ex for ex in self.exclude)
                or (path.is_file() and not path.is_symlink() and path.stat().st_size > MAX_COPIED_FILE_BYTES)
            ):
                skipped.add(name)
        return skipped

    def _prepare(self) -> None:
        self.base.mkdir(parents=True)
        self.home.mkdir()
        self.tools.mkdir()
        shutil.copytree(self.project_root, self.root, ignore=self._ignore, symlinks=True)

    def write(self, relative: str | Path, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def python_path(self) -> str:
        entries = [self.tools, self.inside_root]
        if (self.root / "src").is_dir():
            entries.append(self.inside_root / "src")
        return os.pathsep.join(str(e) for e in entries)

    def _bwrap(self, readable: list[Path]) -> list[str]:
        args = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        tmp = Path("/tmp")
        for hidden in (*self.hidden, self.scratch):
            if (
                hidden.exists()
                and tmp not in hidden.parents
                and hidden != self.project_root
                and self.project_root not in hidden.parents
            ):
                args += ["--tmpfs", str(hidden)]
        args += ["--bind", str(self.root), str(self.project_root), "--bind", str(self.base), str(self.base)]
        for path in readable:
            if path.exists() and any(p in path.parents for p in (tmp, self.project_root, *self.hidden)):
                args += ["--ro-bind", str(path), str(path)]
        return [
            *args,
            "--unshare-all",
            *(["--share-net"] if self.network else []),
            "--die-with-parent",
            "--new-session",
            "--chdir",
            str(self.project_root),
            "--",
        ]

    def command(self, args: list[str], readable: list[Path] | None = None) -> list[str]:
        """`args` as the sandbox runs them: behind bubblewrap when isolated, else as they are."""
        return [*self._bwrap(readable or []), *args] if self.isolated else args

    async def run(
        self, args: list[str], *, timeout: float, env: dict[str, str] | None = None, readable: list[Path] | None = None
    ) -> RunResult:
        """Run `args` in the copy. Never raises for the program's own failure; a timeout kills the process group.

        `readable` are host paths the program needs that the sandbox would otherwise hide (an interpreter that
        lives in /tmp or inside the project, such as the project's `.venv`)."""
        extra = {"PYTHONPATH": self.python_path(), **(env or {})}
        if self.isolated:
            extra.setdefault("TMPDIR", "/tmp")
        full_env = scrubbed_env(self.home, self.secrets, extra)
        command = self.command(args, readable)
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=self.root,
            env=full_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_limits(int(timeout) + 10, self.memory_bytes),
        )
        timed_out = False
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            timed_out = True
            _kill_group(proc)
            out, err = await proc.communicate()
        except asyncio.CancelledError:
            _kill_group(proc)
            await proc.wait()
            raise
        return RunResult(proc.returncode, _text(out), _text(err), timed_out, time.monotonic() - started)


def remove_stale_sandboxes(scratch: Path) -> int:
    """Delete sandbox copies left behind by processes that died (killed mid-validation). Returns how many."""
    removed = 0
    folder = scratch / "sandboxes"
    if not folder.is_dir():
        return 0
    for entry in folder.iterdir():
        pid = entry.name.split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # its process is alive: in use
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _text(data: bytes) -> str:
    return data[-OUTPUT_LIMIT:].decode("utf-8", "replace")
