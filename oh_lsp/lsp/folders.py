"""Workspace folders: one project root each, with its own engine, store and submitter name; started, reconfigured
and stopped together. Also the model gateway that session-wide questions about models use."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oh_lsp import events as ev
from oh_lsp.errors import OhLspError

if TYPE_CHECKING:
    from oh_lsp.config import OpenHandsConfig
    from oh_lsp.engine import ExecutionEngine

STOP_GRACE_SECONDS = 1.0


@dataclass
class Folder:
    """A workspace folder: a project root with its own engine, store and submitter name."""

    root: Path
    engine: ExecutionEngine | None = None
    error: str | None = None  # why no engine could start here

    @property
    def submitter(self) -> str:
        return f"lsp:{self.root}"


class Folders:
    """The session's workspace folders by root. Each running engine's events go to `on_event(folder, event)`."""

    def __init__(self, on_event: Callable[[Folder, ev.Event], None]) -> None:
        self.by_root: dict[Path, Folder] = {}
        self._on_event = on_event
        self._spare_gateway: Any = None  # for model questions before any folder runs

    def __iter__(self) -> Iterator[Folder]:
        return iter(list(self.by_root.values()))

    def roots(self) -> list[Path]:
        return list(self.by_root)

    def engines(self) -> list[ExecutionEngine]:
        return [f.engine for f in self.by_root.values() if f.engine is not None]

    def holding(self, path: Path) -> Folder | None:
        """The innermost folder that holds `path`."""
        resolved = path.resolve()
        holders = [f for f in self.by_root.values() if resolved == f.root or f.root in resolved.parents]
        return max(holders, key=lambda f: len(f.root.parts), default=None)

    async def add(self, root: Path, config: Callable[[], OpenHandsConfig], workers: int) -> Folder:
        """Start an engine for `root` with the configuration `config()` gives. When that fails, the folder is kept
        without an engine and `folder.error` says why."""
        if root in self.by_root:
            return self.by_root[root]
        from oh_lsp.engine import ExecutionEngine

        folder = Folder(root)
        self.by_root[root] = folder
        try:
            settings = config()
            redact(settings)
            # every store call on the store's thread: this event loop answers the editor
            folder.engine = ExecutionEngine(
                settings, workers, project_root=root, submitter=folder.submitter, inline_store_calls=False
            )
            folder.engine.subscribe(functools.partial(self._on_event, folder))
            await folder.engine.start()
        except (OhLspError, ValueError) as exc:
            folder.error = f"oh-lsp cannot run tasks in {root}: {exc}"
            folder.engine = None
        return folder

    def reconfigure(self, configs: dict[Path, OpenHandsConfig], workers: int) -> None:
        """Each folder's engine takes its new configuration for its next task."""
        for root, config in configs.items():
            redact(config)
            folder = self.by_root.get(root)
            if folder is not None and folder.engine is not None:
                folder.engine.reconfigure(config, workers)

    async def remove(self, root: Path) -> None:
        folder = self.by_root.pop(root, None)
        if folder and folder.engine:
            await folder.engine.stop(STOP_GRACE_SECONDS)
            folder.engine.close()

    async def close(self) -> None:
        """Stop every engine: running tasks get `STOP_GRACE_SECONDS` to finish, then go back to the queue."""
        for root in list(self.by_root):
            await self.remove(root)
        if self._spare_gateway is not None:
            await self._spare_gateway.aclose()
            self._spare_gateway.store.close()

    def first_config(self) -> OpenHandsConfig | None:
        """The configuration of the first folder that runs."""
        engines = self.engines()
        return engines[0].config if engines else None

    def gateway(self, config: Callable[[], OpenHandsConfig]) -> Any:
        """The model gateway of the first folder that runs; else one of its own, made with `config()`."""
        for engine in self.engines():
            return engine.gateway()
        if self._spare_gateway is None:
            from oh_lsp.llm.gateway import ModelGateway
            from oh_lsp.store import open_store

            settings = config()
            self._spare_gateway = ModelGateway(settings, store=open_store(Path.cwd(), settings.queue_url))
        return self._spare_gateway


def redact(config: OpenHandsConfig) -> None:
    """Keep the keys a configuration holds out of every log line."""
    from oh_lsp.logs import redact_also

    for secret in config.secrets():
        redact_also(secret)
