"""One language-server session: a small facade over the parts that each do one job.

- `folders.py`: an engine and a store per workspace folder;
- `configuration.py`: the settings and run-time overrides those engines run with;
- `targets.py`: what a command points at; `tracking.py`: the tasks shown, with their progress;
- `task_events.py`: engine events to progress, and `handover.py`: finished tasks delivered or explained;
- `status.py`: the `ohLsp/status` notification.

The engine knows nothing about LSP: the session subscribes to its events. Heavy modules (the engine, pydantic,
httpx) are imported after `initialized`, on a thread, so the `initialize` answer stays fast and the event loop free.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types as t

from oh_lsp.lsp import editor, startup
from oh_lsp.lsp.actions import actions_at
from oh_lsp.lsp.arguments import CandidateArgs, SymbolArg, parse
from oh_lsp.lsp.candidates import candidate_document
from oh_lsp.lsp.configuration import Configuration
from oh_lsp.lsp.diagnostics import DiagnosticStore
from oh_lsp.lsp.folders import Folder, Folders
from oh_lsp.lsp.handover import Handover
from oh_lsp.lsp.ids import CANDIDATE_REQUEST, STATUS_NOTIFICATION
from oh_lsp.lsp.progress import Progress
from oh_lsp.lsp.status import Debouncer, SessionCounts, collect_status
from oh_lsp.lsp.targets import CommandTarget, require_kind, resolve_target, target_of_task
from oh_lsp.lsp.task_events import TaskEvents
from oh_lsp.lsp.tracking import Tracker

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from oh_lsp.config import OpenHandsConfig
    from oh_lsp.engine import ExecutionEngine
    from oh_lsp.tasks import QueuedTask

log = logging.getLogger(__name__)


class Session:
    def __init__(self, ls: LanguageServer) -> None:
        self.ls = ls
        self.kinds: list[str] = []
        self.configuration = Configuration(ls)
        self.diagnostics = DiagnosticStore()
        self.counts = SessionCounts()
        self.folders = Folders(on_event=lambda folder, event: self.events.on_event(folder, event))
        self.tracker = Tracker(self.folders, Progress(ls))
        self.handover = Handover(ls, self.diagnostics, review=lambda: self.configuration.review_edits)
        self.events = TaskEvents(ls, self.tracker, self.handover, self.counts, self.poke_status)
        self._status = Debouncer(self.send_status)
        self._poller: asyncio.Task[None] | None = None
        self._stopped = False

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def initialize(self, options: Any) -> None:
        self.configuration.initialize(options)

    async def start(self) -> None:
        """Start an engine per workspace folder (called once the server is `initialized`). Problems are shown to the
        user; the server stays up either way."""
        try:
            await startup.load_heavy_modules()
            from oh_lsp.kinds.registry import available_kinds

            self.kinds = available_kinds()
            roots = startup.roots_of(self.ls.workspace)
            startup.start_logging(roots, self.configuration.secrets(), getattr(self.ls, "verbose", False))
            for problem in self.configuration.early_problems:
                editor.show(self.ls, problem, t.MessageType.Error)
            for warning in self.configuration.early_warnings:
                editor.show(self.ls, f"oh-lsp: {warning}", t.MessageType.Warning)
            for root in roots:
                await self.add_folder(root)
            self._poller = asyncio.ensure_future(self.handover.poll_undelivered(self.folders))
            self.poke_status()
        except Exception as exc:
            log.exception("oh-lsp could not start its engines")
            editor.show(self.ls, f"oh-lsp could not start: {exc}", t.MessageType.Error)

    async def add_folder(self, root: Path) -> None:
        if root in self.folders.by_root:
            return
        folder = await self.folders.add(root, lambda: self.configuration.for_folder(root), self.configuration.workers)
        if folder.error:
            editor.show(self.ls, folder.error, t.MessageType.Error)

    async def change_folders(self, added: list[str], removed: list[str]) -> None:
        """Workspace folders the editor added and removed (their URIs)."""
        for uri in removed:
            await self.folders.remove(startup.folder_root(uri).resolve())
        for uri in added:
            await self.add_folder(startup.folder_root(uri).resolve())

    async def stop(self) -> None:
        """Stop every engine: running tasks get a moment to finish, then go back to the queue."""
        if self._stopped:
            return
        self._stopped = True
        if self._poller:
            self._poller.cancel()
        await self.folders.close()
        await self._status.aclose()

    # --- what commands ask ---------------------------------------------------------------------------------------
    def code_actions(self, uri: str, cursor: t.Position, context: t.CodeActionContext) -> list[t.CodeAction]:
        return actions_at(self.ls, self.folders, self.diagnostics, self.kinds, uri, cursor, context)

    def require_kind(self, kind: str, command: str) -> None:
        require_kind(self.kinds, kind, command)

    def resolve_target(self, uri: str, symbol: SymbolArg | None, command: str) -> CommandTarget:
        return resolve_target(self.ls, self.folders, uri, symbol, command)

    def target_of_task(self, folder: Folder, task: QueuedTask, command: str) -> CommandTarget:
        return target_of_task(self.ls, self.folders, folder, task, command)

    async def candidate(self, params: Any) -> dict[str, Any]:
        """The `ohLsp/candidate` request: `{uri, text}` of a failed task's rejected candidate. Raises
        `CommandError` for bad params, an unknown task, or a task without one."""
        args = parse(CandidateArgs, CANDIDATE_REQUEST, [] if params is None else [params])
        _folder, task = await self.tracker.find_task(args.task_id, CANDIDATE_REQUEST)
        return candidate_document(task, args.attempt, args.segment)

    def uri_of(self, folder: Folder, relative: str | Path) -> str:
        return editor.uri_of(folder.root, relative)

    def engines(self) -> list[ExecutionEngine]:
        return self.folders.engines()

    def config(self) -> OpenHandsConfig:
        """The configuration of the first folder that runs (for session-wide answers such as selectModel)."""
        return self.folders.first_config() or self.configuration.build(Path.cwd())

    def gateway(self) -> Any:
        """The model gateway of the first folder that runs (for session-wide questions about models)."""
        return self.folders.gateway(self.config)

    # --- status --------------------------------------------------------------------------------------------------
    def poke_status(self) -> None:
        if not self._stopped:
            self._status.poke()

    async def status(self) -> dict[str, Any]:
        """The `ohLsp/status` payload: this session's counts and every folder's store."""
        return await collect_status(self.counts, self.engines())

    async def send_status(self) -> None:
        self.ls.protocol.notify(STATUS_NOTIFICATION, await self.status())

    # --- configuration -------------------------------------------------------------------------------------------
    async def change_settings(self, raw: Any) -> None:
        """New settings from the editor: applied to every folder for its next task, or refused with a message."""
        configs = self.configuration.change(raw, self.folders.roots())
        if configs is not None:
            self._apply(configs)

    def _apply(self, configs: dict[Path, OpenHandsConfig]) -> None:
        self.folders.reconfigure(configs, self.configuration.workers)
        self.poke_status()

    async def set_model(self, name: str | None) -> dict[str, Any]:
        self._apply(self.configuration.override(self.folders.roots(), model=name))
        return {"model": self.config().model, "selectedBy": "session" if name else "settings"}

    async def set_api_key(self, key: str) -> None:
        self._apply(self.configuration.override(self.folders.roots(), api_key=key))
