"""Places: the project root, the state directory, the scratch workspace, and confinement of paths to the project.

As README.md#where-oh-lsp-keeps-its-files says: target files are relative to the project root and nothing is read or
written outside it; the state directory holds one store per project root; `OPENHANDS_WORKSPACE_ROOT` is only scratch
space.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from oh_lsp.errors import TargetError

STORE_FILENAME = "oh-lsp.sqlite3"


def project_root(path: str | Path | None = None) -> Path:
    """The resolved project root: `path` if given, else the current directory."""
    root = Path(path) if path is not None else Path.cwd()
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise TargetError(f"project root {root} is not a directory")
    return root


def state_base() -> Path:
    """Where all projects' state directories live: `$OH_LSP_STATE_DIR`, else the user's state dir for oh-lsp."""
    base = os.environ.get("OH_LSP_STATE_DIR")
    if base:
        return Path(base).expanduser()
    from platformdirs import user_state_dir

    return Path(user_state_dir("oh-lsp", appauthor=False))


def state_dir(root: Path) -> Path:
    """The state directory of one project root: `<state base>/projects/<name>-<hash>`."""
    base_dir = state_base()
    resolved = str(root.resolve())
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", root.name or "root")[:40]
    return base_dir / "projects" / f"{name}-{digest}"


def cache_dir() -> Path:
    """Caches shared by every project (the models list of each endpoint): `$OH_LSP_CACHE_DIR`, else a `cache` folder
    in `$OH_LSP_STATE_DIR` when that is set, else the user's cache dir."""
    explicit = os.environ.get("OH_LSP_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    state = os.environ.get("OH_LSP_STATE_DIR")
    if state:
        return Path(state).expanduser() / "cache"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("oh-lsp", appauthor=False))


def store_path(root: Path) -> Path:
    return state_dir(root) / STORE_FILENAME


def scratch_path(root: Path, workspace_path: Path) -> Path:
    """Where the scratch directory is (relative settings are taken from the project root), without creating it."""
    return workspace_path if workspace_path.is_absolute() else root / workspace_path


def workspace_dir(root: Path, workspace_path: Path) -> Path:
    """The scratch directory (`OPENHANDS_WORKSPACE_ROOT`), relative paths taken from the project root.

    It gets a `.gitignore` holding `*` so that scratch files never show up in the user's git status.
    """
    scratch = scratch_path(root, workspace_path)
    scratch.mkdir(parents=True, exist_ok=True)
    ignore = scratch / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# oh-lsp scratch space: sandbox copies and agent runs\n*\n")
    return scratch


def confine(root: Path, target: str | Path, *, must_exist: bool = True, what: str = "target") -> Path:
    """Resolve `target` (relative to `root`, or absolute) and refuse anything that ends up outside `root`.

    Symlinks are resolved before the check, so a link pointing outside the project is refused too.
    Returns the path relative to the root.
    """
    raw = Path(target).expanduser()
    candidate = raw if raw.is_absolute() else root / raw
    resolved = candidate.resolve()
    try:
        relative = resolved.relative_to(root.resolve())
    except ValueError:
        raise TargetError(
            f"{what} {str(target)!r} is outside the project root {root}; oh-lsp only reads and writes inside it"
        ) from None
    if must_exist and not resolved.exists():
        raise TargetError(f"{what} {str(target)!r} does not exist under the project root {root}")
    return relative


def python_target(root: Path, target: str | Path) -> Path:
    """A confined, existing `.py` file, relative to the root."""
    relative = confine(root, target)
    if (root / relative).is_dir():
        raise TargetError(f"target {str(target)!r} is a directory; give a Python file")
    if relative.suffix != ".py":
        raise TargetError(f"target {str(target)!r} is not a Python file (.py)")
    return relative


def module_name(relative: Path) -> str:
    """`pkg/sub/mod.py` -> `pkg.sub.mod`; `src/pkg/mod.py` -> `pkg.mod`; `pkg/__init__.py` -> `pkg`."""
    parts = list(relative.with_suffix("").parts)
    if parts and parts[0] == "src" and len(parts) > 1:
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
