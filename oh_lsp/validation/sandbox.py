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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from oh_lsp.redaction import known_secrets, redact

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


class SandboxError(RuntimeError):
    """The sandbox the settings ask for cannot be had here (then generated code is not run)."""


class NoSandboxError(SandboxError):
    """No sandbox layer can be made on this machine, and running unsandboxed was not chosen."""


NONE_WARNING = (
    "The sandbox is off (OH_LSP_SANDBOX=none, or the setting ohLsp.sandbox: none): the generated code now runs"
    " WITHOUT a sandbox, with your rights. It can read, change or delete your files, reach the network, and read your"
    " API key (from oh-lsp's /proc/<pid>/environ). Set the sandbox back to auto to run it sandboxed."
)
HOW_TO_GET_ONE = (
    "Generated code runs only in a sandbox, and none can be made here ({why}). Any one of these gives one: a Linux"
    " kernel with Landlock (5.13 or later, with landlock in its lsm= list); unprivileged user namespaces"
    " (sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1, and on Ubuntu"
    " kernel.apparmor_restrict_unprivileged_userns=0); or bubblewrap (apt-get install bubblewrap). To run it"
    " without a sandbox anyway, knowing it can then read your API key and change your files, set OH_LSP_SANDBOX=none."
)


@dataclass(frozen=True)
class Layers:
    """The sandbox layers one run gets: `namespaces` ("bubblewrap", "namespaces" or None) and `landlock` (its ABI,
    0 for none). `why` says what could not be had, for messages."""

    namespaces: str | None
    landlock: int
    why: str = ""

    @property
    def names(self) -> list[str]:
        return [n for n in (self.namespaces, f"landlock (ABI {self.landlock})" if self.landlock else None) if n]

    def __str__(self) -> str:
        return " + ".join(self.names) or "none"


_probe: dict[str, Any] | None = None
_bwrap_ok: bool | None = None


def launcher_python() -> Path:
    """The interpreter that runs the launcher: oh-lsp's own, by its real path (so the launcher works without the
    virtual environment, which the sandbox may hide)."""
    return Path(os.path.realpath(sys.executable))


def probe_kernel() -> dict[str, Any]:
    """What this kernel allows: {"landlock": ABI, "namespaces": None or why not} (asked once per process)."""
    global _probe
    if _probe is None:
        import json
        import subprocess

        try:
            done = subprocess.run(
                [str(launcher_python()), "-I", "-S", str(LAUNCHER), "--probe"], capture_output=True, timeout=30
            )
            _probe = json.loads(done.stdout)
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            _probe = {"landlock": 0, "namespaces": f"the probe failed: {exc}"}
    return _probe


def bwrap_available() -> bool:
    """Whether bubblewrap is on PATH and can create its namespaces here (checked once per process)."""
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


def choose_layers(mode: str) -> Layers:
    """The layers for `mode`: "auto" takes every layer this machine has (bubblewrap when it is installed and works,
    else the built-in namespaces; plus Landlock); "bwrap" requires bubblewrap; "namespaces" and "landlock" take just
    that one (used to measure each layer); "none" takes nothing."""
    if mode == "none":
        return Layers(None, 0, "OH_LSP_SANDBOX=none")
    kernel = probe_kernel()
    landlock = int(kernel.get("landlock") or 0) if mode in ("auto", "bwrap", "landlock") else 0
    namespaces: str | None = None
    why = []
    if mode in ("auto", "bwrap") and bwrap_available():
        namespaces = "bubblewrap"
    elif mode == "bwrap":
        raise SandboxError(
            "the sandbox setting is 'bwrap' but bubblewrap is not usable here: install it"
            " (apt-get install bubblewrap) or set OH_LSP_SANDBOX=auto"
        )
    elif mode in ("auto", "namespaces"):
        if kernel.get("namespaces") is None:
            namespaces = "namespaces"
        else:
            why.append(f"user namespaces: {kernel['namespaces']}")
    if not landlock and mode in ("auto", "landlock"):
        why.append("Landlock: not in this kernel")
    layers = Layers(namespaces, landlock, "; ".join(why))
    if not layers.names:
        raise NoSandboxError(HOW_TO_GET_ONE.format(why=layers.why or f"mode {mode!r}"))
    return layers


SYSTEM_READABLE = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc", "/opt", "/proc", "/sys")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/ptmx", "/dev/pts", "/dev/tty")
_HERE = Path(__file__).resolve().parent.parent / "sandbox"
LAUNCHER = _HERE / "launch.py"
AUDIT_PLUGIN = _HERE / "audit_plugin.py"


class Sandbox:
    """``async with Sandbox(root, scratch, secrets=...) as box:`` -> `box.root` is a private copy of the project.

    The layers (see `choose_layers` and docs/sandbox.md): with namespaces (bubblewrap, or the built-in ones) the code
    sees a read-only machine with the copy mounted *at the real project's path*, its own /tmp, HOME and PID namespace
    and no network but a private loopback (`isolated` is True); with Landlock it can write only in the copy and its
    temporary folders and read only the system and its interpreter. No layer at all raises `NoSandboxError`, unless
    `mode` is "none" (the user's explicit choice): then `warn` is called with `NONE_WARNING` before anything runs.
    Every text a run gives back is redacted for every secret oh-lsp knows.
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
        warn: Callable[[str], None] | None = None,
    ) -> None:
        if mode not in ("auto", "bwrap", "none", "namespaces", "landlock"):
            raise SandboxError(f"unknown sandbox mode {mode!r}: use auto, bwrap or none")
        self.project_root = project_root.resolve()
        self.scratch = scratch.resolve()
        self.secrets = known_secrets(secrets)
        self.hidden = [p.resolve() for p in (exclude or [])]
        self.exclude = [*self.hidden, self.scratch]
        self.mode = mode
        self.layers = Layers(None, 0)
        self.memory_bytes = memory_bytes
        self.network = network  # an agent must reach its model; generated tests never get the network
        self.warn = warn or (lambda _text: None)
        name = f"{os.getpid()}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"  # pid first: see cleanup
        self.base = self.scratch / "sandboxes" / name
        self.root = self.base / "project"
        self.home = self.base / "home"
        self.tmp = self.base / "tmp"
        self.tools = self.base / "tools"

    @property
    def isolated(self) -> bool:
        """Namespaces: the copy at the real project's path, a /tmp and a PID namespace of its own."""
        return self.layers.namespaces is not None

    @property
    def sandboxed(self) -> bool:
        """At least one layer (namespaces or Landlock) stands between the code and the user's machine."""
        return bool(self.layers.names)

    @property
    def inside_root(self) -> Path:
        """Where the running code sees the copy: the real project's path when isolated, else the copy's."""
        return self.project_root if self.isolated else self.root

    @property
    def inside_tmp(self) -> Path:
        return Path("/tmp") if self.isolated else self.tmp

    async def __aenter__(self) -> Self:
        self.layers = await asyncio.to_thread(choose_layers, self.mode)
        if not self.sandboxed:
            self.warn(NONE_WARNING)
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
        for folder in (self.home, self.tmp, self.tools):
            folder.mkdir()
        shutil.copytree(self.project_root, self.root, ignore=self._ignore, symlinks=True)
        shutil.copyfile(LAUNCHER, self.tools / "oh_lsp_launch.py")

    async def reset(self) -> None:
        """A fresh copy of the project (after a test changed the copy: the next runs must not pay for it)."""

        def recopy() -> None:
            shutil.rmtree(self.root, ignore_errors=True)
            shutil.copytree(self.project_root, self.root, ignore=self._ignore, symlinks=True)

        await asyncio.to_thread(recopy)

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

    def _readable(self, readable: list[Path]) -> list[Path]:
        """`readable`, the launcher's interpreter, and the folders of PATH (a covered one is bound back)."""
        python = launcher_python()
        on_path = [Path(p).resolve() for p in os.environ.get("PATH", "").split(os.pathsep) if os.path.isabs(p)]
        return [
            *readable,
            python.parent.parent,
            Path(sys.base_prefix).resolve(),
            *[p for p in on_path if os.path.isdir(p)],
        ]

    def mount_plan(self, readable: list[Path]) -> list[list[Any]]:
        """The namespaces' view, as ["tmpfs", path] and ["bind", source, target, writable] steps in order: /tmp,
        HOME and the hidden folders covered, the copy bound over the real project, the sandbox folder bound at its
        own path, and each folder the interpreter needs bound back read-only if a step covered it."""
        covered = [Path("/tmp")]
        home = Path.home().resolve()
        if home != Path("/") and not _below_any(home, [Path("/tmp"), self.project_root]):
            covered.append(home)
        for hidden in (*self.hidden, self.scratch):
            if os.path.exists(hidden) and not _below_any(hidden, [*covered, self.project_root]):
                covered.append(hidden)
        plan: list[list[Any]] = [["tmpfs", str(c)] for c in covered]
        plan.append(["bind", str(self.root), str(self.project_root), True])
        plan.append(["bind", str(self.base), str(self.base), True])
        roots = [*covered, self.project_root]
        for path in sorted(set(self._readable(readable)), key=lambda p: len(p.parts)):
            if os.path.exists(path) and _below_any(path, roots):
                plan.append(["bind", str(path), str(path), False])
        return plan

    def landlock_rules(self, readable: list[Path]) -> dict[str, Any]:
        """What Landlock lets the code read and write (paths as the code sees them)."""
        writable = [self.base, *DEVICES]
        if self.isolated:
            writable += [self.project_root, Path("/tmp"), Path("/dev/shm")]
        else:
            writable.append(Path("/dev/shm"))  # shared here; POSIX semaphores (multiprocessing) need it
        read = [*SYSTEM_READABLE, "/dev", *self._readable(readable)]
        if (
            not self.isolated
        ):  # the machine's /proc: its own entry only (Landlock alone lets /proc/<pid>/environ be read)
            read = [p for p in read if p != "/proc"] + ["/proc/self"]
        return {
            "read": [str(p) for p in read],
            "listable": [] if self.isolated else ["/proc"],
            "write": [str(p) for p in writable if self.isolated or not str(p).startswith(("/dev/pt", "/dev/tty"))],
            "deny_tcp": not self.network and not self.isolated,
        }

    def spec(self, readable: list[Path], cpu_seconds: int | None = None) -> dict[str, Any]:
        """What the launcher sets up (see oh_lsp/sandbox/launch.py)."""
        spec: dict[str, Any] = {
            "reap": True,  # without a PID namespace, the launcher ends what the command leaves behind
            "limits": {"cpu": cpu_seconds, "memory": self.memory_bytes},
            "chdir": str(self.inside_root),
            "network": self.network,
        }
        if self.layers.namespaces == "namespaces":
            plan = self.mount_plan(readable)
            writable = [str(self.project_root), str(self.base), "/tmp", "/dev/shm"]
            spec["namespaces"] = {"plan": [*plan, ["tmpfs", "/dev/shm"], ["devpts"]], "writable": writable}
        if self.layers.landlock:
            spec["landlock"] = self.landlock_rules(readable)
        return spec

    def _bwrap(self, readable: list[Path]) -> list[str]:
        args = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for step in self.mount_plan(readable):
            if step[0] == "tmpfs":
                args += ["--tmpfs", step[1]]
            else:
                args += ["--bind" if step[3] else "--ro-bind", step[1], step[2]]
        return [
            *args,
            "--unshare-all",
            *(["--share-net"] if self.network else []),
            "--cap-drop",  # run by root, bubblewrap would otherwise leave it every capability (measured)
            "ALL",
            "--die-with-parent",
            "--new-session",
            "--chdir",
            str(self.project_root),
            "--",
        ]

    def command(self, args: list[str], readable: list[Path] | None = None, cpu_seconds: int | None = None) -> list[str]:
        """`args` as the sandbox runs them: through the launcher (rlimits, namespaces, Landlock), itself behind
        bubblewrap when that is the namespace layer."""
        import json

        readable = readable or []
        launch = [str(launcher_python()), "-I", "-S", str(self.tools / "oh_lsp_launch.py")]
        launch += [json.dumps(self.spec(readable, cpu_seconds)), "--", *args]
        return [*self._bwrap(readable), *launch] if self.layers.namespaces == "bubblewrap" else launch

    async def run(
        self, args: list[str], *, timeout: float, env: dict[str, str] | None = None, readable: list[Path] | None = None
    ) -> RunResult:
        """Run `args` in the copy. Never raises for the program's own failure; a timeout kills the process group.
        The output comes back redacted.

        `readable` are host paths the program needs that the sandbox would otherwise hide (an interpreter that
        lives in /tmp or inside the project, such as the project's `.venv`)."""
        extra = {"PYTHONPATH": self.python_path(), "TMPDIR": str(self.inside_tmp), **(env or {})}
        full_env = scrubbed_env(self.home, self.secrets, extra)
        command = self.command(args, readable, cpu_seconds=int(timeout) + 10)
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=self.root,
            env=full_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
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
        return RunResult(
            proc.returncode,
            redact(_text(out), self.secrets),
            redact(_text(err), self.secrets),
            timed_out,
            time.monotonic() - started,
        )


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


def _below_any(path: Path, roots: list[Path]) -> bool:
    return any(root == path or root in path.parents for root in roots)


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _text(data: bytes) -> str:
    return data[-OUTPUT_LIMIT:].decode("utf-8", "replace")


async def sandbox_refusal(mode: str) -> str | None:
    """Why generated code may not run here (no sandbox can be made and `none` was not chosen), else None."""
    try:
        await asyncio.to_thread(choose_layers, mode)
    except SandboxError as exc:
        return str(exc)
    return None
