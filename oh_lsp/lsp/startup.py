"""What the session does once, when the server is `initialized`: load the heavy modules off the event loop, find the
workspace folders' roots, and set up the log file."""

from __future__ import annotations

import asyncio
import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pygls.uris import to_fs_path

if TYPE_CHECKING:
    from pygls.workspace import Workspace

# What a server with no running task needs: the settings and the engine (its queue and store). The model gateway
# (httpx, aiohttp), the pipeline and the task kinds load when the first task runs (P5, docs/benchmarks.md).
HEAVY_MODULES = ("oh_lsp.config", "oh_lsp.engine")


async def load_heavy_modules() -> None:
    """Import the engine, pydantic and httpx on a thread, so that the event loop stays free meanwhile."""
    await asyncio.to_thread(lambda: [importlib.import_module(m) for m in HEAVY_MODULES])


def roots_of(workspace: Workspace) -> list[Path]:
    """The workspace folders' directories (else the root path of a client without folders)."""
    roots = [folder_root(uri) for uri in workspace.folders]
    if not roots and workspace.root_path:
        roots = [Path(workspace.root_path)]
    return [r.resolve() for r in roots if r.is_dir()]


def folder_root(uri: str) -> Path:
    """The directory of a workspace folder's URI."""
    path = to_fs_path(uri)
    if path is None:
        raise ValueError(f"the workspace folder {uri} is not a directory on disk; oh-lsp works on files on disk")
    return Path(path)


def start_logging(roots: list[Path], secrets: list[str], verbose: bool) -> None:
    """Log to the state directory of the first folder, with `secrets` redacted."""
    from oh_lsp.logs import setup_logging
    from oh_lsp.paths import state_dir

    if roots:
        setup_logging(state_dir(roots[0]), secrets, verbose=verbose)
        if not verbose:
            logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every message it sends at INFO
