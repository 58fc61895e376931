"""The agent environment: a Python >= 3.12 virtual environment holding openhands-sdk and openhands-tools, pinned to
one version, in which the OpenHands agent runs as a subprocess (oh-lsp itself runs on 3.11+).

`oh-lsp openhands setup` finds an interpreter (see `find_python`), creates the environment and installs the pinned
packages (with uv when it is on PATH, else with pip); nothing else downloads a Python. `agent_python` finds a ready
environment at task time without starting any process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oh_lsp.errors import OhLspError

OPENHANDS_VERSION = "1.58.2"  # openhands-sdk and openhands-tools, always the same version (as in pyproject.toml)
PACKAGES = ("openhands-sdk", "openhands-tools")
DOCKER_PACKAGES = ("openhands-workspace",)  # DockerWorkspace (OPENHANDS_USE_DOCKER_RUNTIME=true)
MIN_PYTHON = (3, 12)
MARKER = "oh-lsp-openhands.json"
PROBE_TIMEOUT = 15.0


class AgentEnvironmentError(OhLspError):
    """No usable agent environment (or no Python >= 3.12 to make one). The message says what to do."""


@dataclass
class Interpreter:
    path: Path
    version: tuple[int, int, int]

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


def default_env_dir() -> Path:
    """Where `setup` puts the environment unless told otherwise: oh-lsp's cache directory, one per pinned version."""
    from oh_lsp.paths import cache_dir

    return cache_dir() / f"openhands-{OPENHANDS_VERSION}"


def env_python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def probe(python: str | Path) -> Interpreter | None:
    """The interpreter at `python` and its version, or None when it does not run (a pyenv shim without that
    version fails here, for instance)."""
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print(sys.executable); print(*sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.split("\n")
    if out.returncode != 0 or len(lines) < 2:
        return None
    try:
        major, minor, micro = (int(part) for part in lines[1].split()[:3])
    except ValueError:  # not three numbers
        return None
    return Interpreter(Path(lines[0].strip() or str(python)), (major, minor, micro))


def candidate_pythons() -> list[str]:
    """Where a Python >= 3.12 may be, best guesses first: this interpreter, uv's (`uv python find`, no download),
    pyenv's versions, then `python3.N` on PATH."""
    found: list[str] = [sys.executable]
    uv = shutil.which("uv")
    if uv:
        for spec in (">=3.12",):
            try:
                out = subprocess.run(
                    [uv, "python", "find", "--no-python-downloads", spec],
                    capture_output=True,
                    text=True,
                    timeout=PROBE_TIMEOUT,
                    stdin=subprocess.DEVNULL,
                )
            except (OSError, subprocess.TimeoutExpired):
                continue
            if out.returncode == 0 and out.stdout.strip():
                found.append(out.stdout.strip())
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    versions = pyenv_root / "versions"
    if versions.is_dir():
        for entry in sorted(versions.iterdir(), key=_version_key, reverse=True):
            found.append(str(entry / "bin" / "python3"))
    for minor in range(20, MIN_PYTHON[1] - 1, -1):
        path = shutil.which(f"python3.{minor}")
        if path:
            found.append(path)
    return list(dict.fromkeys(found))


def _version_key(path: Path) -> tuple[int, ...]:
    parts = []
    for piece in path.name.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def find_python(configured: Path | None = None, candidates: list[str] | None = None) -> Interpreter:
    """A Python >= 3.12: the configured one (which must qualify), else the first candidate that runs and qualifies.

    Raises `AgentEnvironmentError` saying what was tried."""
    if configured is not None:
        found = probe(configured)
        if found is None:
            raise AgentEnvironmentError(
                f"the configured Python {configured} (OH_LSP_OPENHANDS_PYTHON or --python) does not run"
            )
        if found.version[:2] < MIN_PYTHON:
            raise AgentEnvironmentError(
                f"the configured Python {configured} is {found.version_text}; the OpenHands"
                " SDK needs Python 3.12 or newer"
            )
        return found
    tried = []
    for candidate in candidate_pythons() if candidates is None else candidates:
        found = probe(candidate)
        if found is not None and found.version[:2] >= MIN_PYTHON:
            return found
        tried.append(f"{candidate} ({found.version_text if found else 'does not run'})")
    raise AgentEnvironmentError(
        "no Python 3.12 or newer was found for the OpenHands agent (tried: "
        + ", ".join(tried or ["nothing"])
        + "). Install one (your OS packages, pyenv, or `uv python install 3.12`), then run `oh-lsp openhands setup"
        " --python /path/to/python3.12`, or keep the direct runtime (OH_LSP_RUNTIME=direct)"
    )


@dataclass
class AgentEnvironment:
    env: Path
    python: Path
    version: str


def read_marker(env: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((env / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def agent_python(configured_env: Path | None = None) -> AgentEnvironment:
    """The ready agent environment: the configured one (`OH_LSP_OPENHANDS_ENV`), else the default one made by
    `oh-lsp openhands setup`, else oh-lsp's own interpreter when it is >= 3.12 and has the pinned packages (installed
    as ``oh-lsp[openhands]``). Raises `AgentEnvironmentError` with the command that fixes it."""
    env = configured_env.expanduser() if configured_env is not None else default_env_dir()
    python = env_python(env)
    marker = read_marker(env)
    if configured_env is None and marker is None and _own_interpreter_ready():
        return AgentEnvironment(env=Path(sys.prefix), python=Path(sys.executable), version=OPENHANDS_VERSION)
    if not python.exists() or marker is None:
        where = f"{env} (OH_LSP_OPENHANDS_ENV)" if configured_env is not None else str(env)
        option = f" --env {env}" if configured_env is not None else ""
        raise AgentEnvironmentError(
            f"the OpenHands runtime needs its agent environment (Python >= 3.12 with openhands-sdk"
            f" {OPENHANDS_VERSION}), and there is none at {where}. Run `oh-lsp openhands setup{option}` once, or"
            " use the direct runtime (OH_LSP_RUNTIME=direct)"
        )
    if marker.get("version") != OPENHANDS_VERSION:
        raise AgentEnvironmentError(
            f"the agent environment at {env} holds openhands-sdk {marker.get('version')}, but this oh-lsp needs"
            f" {OPENHANDS_VERSION}: run `oh-lsp openhands setup --force`"
        )
    return AgentEnvironment(env=env, python=python, version=OPENHANDS_VERSION)


def _own_interpreter_ready() -> bool:
    if sys.version_info[:2] < MIN_PYTHON:
        return False
    from importlib.metadata import PackageNotFoundError, version

    try:
        return all(version(name) == OPENHANDS_VERSION for name in PACKAGES)
    except PackageNotFoundError:
        return False


def setup_environment(
    env: Path | None = None,
    python: Path | None = None,
    *,
    docker: bool = False,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> AgentEnvironment:
    """Create (or update) the agent environment and install the pinned packages. Blocking: run it from the CLI or a
    worker thread. Returns the ready environment."""
    env = (env or default_env_dir()).expanduser().resolve()
    packages = [f"{name}=={OPENHANDS_VERSION}" for name in PACKAGES + (DOCKER_PACKAGES if docker else ())]
    marker = read_marker(env)
    if (
        not force
        and marker
        and marker.get("version") == OPENHANDS_VERSION
        and env_python(env).exists()
        and (not docker or marker.get("docker"))
    ):
        log(
            f"the agent environment at {env} is ready (openhands-sdk {OPENHANDS_VERSION}, Python"
            f" {marker.get('python_version')})"
        )
        return AgentEnvironment(env, env_python(env), OPENHANDS_VERSION)
    interpreter = find_python(python)
    log(f"creating the agent environment at {env} with Python {interpreter.version_text} ({interpreter.path})")
    started = time.monotonic()
    if force and env.exists():
        shutil.rmtree(env)
    (env / MARKER).unlink(missing_ok=True)
    uv = shutil.which("uv")
    if uv:
        _run([uv, "venv", "--quiet", "--allow-existing", "--python", str(interpreter.path), str(env)])
        _run([uv, "pip", "install", "--quiet", "--python", str(env_python(env)), *packages])
    else:
        _run([str(interpreter.path), "-m", "venv", str(env)])
        _run([str(env_python(env)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages])
    check = subprocess.run(
        [
            str(env_python(env)),
            "-c",
            "from importlib.metadata import version; print(version('openhands-sdk'), version('openhands-tools'))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check.returncode != 0 or check.stdout.split() != [OPENHANDS_VERSION, OPENHANDS_VERSION]:
        raise AgentEnvironmentError(
            f"the packages in {env} are not openhands-sdk/openhands-tools {OPENHANDS_VERSION}"
            f" after installing: {(check.stdout + check.stderr).strip()[-500:]}"
        )
    seconds = time.monotonic() - started
    (env / MARKER).write_text(
        json.dumps(
            {
                "version": OPENHANDS_VERSION,
                "python": str(interpreter.path),
                "python_version": interpreter.version_text,
                "docker": docker,
                "installed_at": time.time(),
                "install_seconds": round(seconds, 1),
            }
        ),
        encoding="utf-8",
    )
    log(f"installed {' '.join(packages)} in {seconds:.0f}s")
    return AgentEnvironment(env, env_python(env), OPENHANDS_VERSION)


def _run(args: list[str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise AgentEnvironmentError(
            f"`{' '.join(args[:4])} ...` failed (exit {result.returncode}):"
            f" {(result.stderr or result.stdout).strip()[-1500:]}"
        )
