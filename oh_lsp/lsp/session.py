"""One language-server session: an engine and a store per workspace folder, the tasks it shows, and the glue from
engine events to progress, delivery, diagnostics and status.

The engine knows nothing about LSP: the session subscribes to its events. Heavy modules (the engine, pydantic,
httpx) are imported after `initialized`, on a thread, so the `initialize` answer stays fast and the event loop free.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types as t
from pygls.uris import from_fs_path, to_fs_path

from oh_lsp import events as ev
from oh_lsp.errors import OhLspError, TargetError
from oh_lsp.lsp import settings as cfg
from oh_lsp.lsp.arguments import Position
from oh_lsp.lsp.diagnostics import DiagnosticStore, findings_of, task_diagnostics
from oh_lsp.lsp.errors import CommandError
from oh_lsp.lsp.ids import STATUS_NOTIFICATION as STATUS_METHOD
from oh_lsp.lsp.progress import Progress, Track
from oh_lsp.lsp.status import Debouncer, SessionCounts, build_status, model_layer_state
from oh_lsp.lsp.symbols import Symbol, describe_missing, find_symbol, symbol_at
from oh_lsp.paths import module_name, python_target
from oh_lsp.progress_text import outcome_text, stage_text

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from oh_lsp.config import OpenHandsConfig
    from oh_lsp.engine import ExecutionEngine
    from oh_lsp.tasks import QueuedTask

log = logging.getLogger(__name__)
HEAVY_MODULES = ("oh_lsp.config", "oh_lsp.engine", "oh_lsp.pipeline", "oh_lsp.llm.gateway", "oh_lsp.kinds.unit_test")
DELIVERY_POLL_SECONDS = 2.0
STOP_GRACE_SECONDS = 1.0
NOT_TRUSTED = "not-run-untrusted"


@dataclass
class Folder:
    """A workspace folder: a project root with its own engine, store and submitter name."""

    root: Path
    engine: ExecutionEngine | None = None
    error: str | None = None  # why no engine could start here

    @property
    def submitter(self) -> str:
        return f"lsp:{self.root}"


@dataclass
class Target:
    folder: Folder
    path: Path  # relative to the folder's root
    module: str
    symbol: Symbol | None = None


class Session:
    def __init__(self, ls: LanguageServer) -> None:
        self.ls = ls
        self.settings: dict[str, Any] = {}
        self.overrides = cfg.Overrides()
        self.folders: dict[Path, Folder] = {}
        self.kinds: list[str] = []
        self.tracks: dict[str, Track] = {}
        self.tokens: dict[str, str] = {}  # progress token -> task id
        self.progress = Progress(ls)
        self.diagnostics = DiagnosticStore()
        self.counts = SessionCounts()
        self._status = Debouncer(self.send_status)
        self._background: set[asyncio.Task[Any]] = set()
        self._claimed: set[str] = set()  # tasks whose result this session is delivering or has delivered
        self._early_problems: list[str] = []
        self._poller: asyncio.Task[None] | None = None
        self._stopped = False
        self._spare_gateway: Any = None  # for model questions before any folder runs

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def initialize(self, options: Any) -> None:
        """Read `initializationOptions` (cheap: nothing heavy is imported here)."""
        section = cfg.section_of(options)
        if section:
            try:
                self.settings, unknown = cfg.merge_settings({}, section)
            except cfg.SettingsError as exc:
                self._early_problems.append(str(exc))
            else:
                if unknown:
                    log.info("ignoring unknown settings: %s", ", ".join(unknown))

    def _roots(self) -> list[Path]:
        roots = [Path(to_fs_path(uri)) for uri in self.ls.workspace.folders]
        if not roots and self.ls.workspace.root_path:
            roots = [Path(self.ls.workspace.root_path)]
        return [r.resolve() for r in roots if r.is_dir()]

    async def start(self) -> None:
        """Start an engine per workspace folder (called once the server is `initialized`). Problems are shown to the
        user; the server stays up either way."""
        try:
            await asyncio.to_thread(lambda: [importlib.import_module(m) for m in HEAVY_MODULES])
            from oh_lsp.kinds.base import available_kinds

            self.kinds = available_kinds()
            roots = self._roots()
            self._setup_logging(roots)
            for problem in self._early_problems:
                self.show(problem, t.MessageType.Error)
            for root in roots:
                await self.add_folder(root)
            self._warn_not_enforced()
            self._poller = asyncio.ensure_future(self._poll_undelivered())
            self.poke_status()
        except Exception as exc:
            log.exception("oh-lsp could not start its engines")
            self.show(f"oh-lsp could not start: {exc}", t.MessageType.Error)

    def _setup_logging(self, roots: list[Path]) -> None:
        from oh_lsp.logs import setup_logging
        from oh_lsp.paths import state_dir

        if roots:
            secrets = [s for s in (self.overrides.api_key, self.settings.get("apiKey")) if s]
            setup_logging(state_dir(roots[0]), secrets, verbose=getattr(self.ls, "verbose", False))
            if not getattr(self.ls, "verbose", False):
                logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every message it sends at INFO

    async def add_folder(self, root: Path) -> None:
        if root in self.folders:
            return
        from oh_lsp.engine import ExecutionEngine

        folder = Folder(root)
        self.folders[root] = folder
        try:
            config = self._config_for(root)
            _redact(config)
            folder.engine = ExecutionEngine(
                config, cfg.workers(self.settings), project_root=root, submitter=folder.submitter
            )
            folder.engine.subscribe(lambda event, f=folder: self.on_event(f, event))
            await folder.engine.start()
        except (OhLspError, ValueError) as exc:
            folder.error = f"oh-lsp cannot run tasks in {root}: {exc}"
            folder.engine = None
            self.show(folder.error, t.MessageType.Error)

    def _config_for(self, root: Path) -> OpenHandsConfig:
        try:
            return cfg.build_config(root, self.settings, self.overrides)
        except cfg.SettingsError as exc:
            if not self.settings:
                raise
            self.show(f"{exc} Running {root.name} with the default settings.", t.MessageType.Error)
            return cfg.build_config(root, {}, self.overrides)

    async def remove_folder(self, root: Path) -> None:
        folder = self.folders.pop(root, None)
        if folder and folder.engine:
            await folder.engine.stop(STOP_GRACE_SECONDS)
            folder.engine.close()

    async def stop(self) -> None:
        """Stop every engine: running tasks get `STOP_GRACE_SECONDS` to finish, then go back to the queue."""
        if self._stopped:
            return
        self._stopped = True
        if self._poller:
            self._poller.cancel()
        for root in list(self.folders):
            await self.remove_folder(root)
        if self._spare_gateway is not None:
            await self._spare_gateway.aclose()
            self._spare_gateway.store.close()
        await self._status.aclose()

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    # --- messages ----------------------------------------------------------------------------------------------
    def show(self, message: str, level: t.MessageType = t.MessageType.Info) -> None:
        self.ls.window_show_message(t.ShowMessageParams(type=level, message=message))

    def uri_of(self, folder: Folder, relative: str | Path) -> str:
        return from_fs_path(str(folder.root / relative)) or (folder.root / relative).as_uri()

    def text_of(self, folder: Folder, relative: str | Path) -> tuple[str | None, int | None]:
        """A file's text as the editor has it (the open buffer), else on disk; None when it does not exist."""
        document = self.ls.workspace.text_documents.get(self.uri_of(folder, relative))
        if document is not None:
            return document.source, document.version
        path = folder.root / relative
        try:
            return path.read_text(encoding="utf-8"), None
        except (OSError, UnicodeDecodeError):
            return None, None

    # --- targets -----------------------------------------------------------------------------------------------
    def folder_for(self, path: Path) -> Folder | None:
        resolved = path.resolve()
        holders = [f for f in self.folders.values() if resolved == f.root or f.root in resolved.parents]
        return max(holders, key=lambda f: len(f.root.parts), default=None)

    def code_actions(self, uri: str, cursor: t.Position, context: t.CodeActionContext) -> list[t.CodeAction]:
        """What oh-lsp offers at `cursor` in `uri`: nothing outside Python files of a running workspace folder."""
        from oh_lsp.lsp import actions

        path = to_fs_path(uri) if uri.startswith("file:") else None
        folder = self.folder_for(Path(path)) if path and path.endswith(".py") else None
        if folder is None or folder.engine is None:
            return []
        document = self.ls.workspace.get_text_document(uri)
        line = document.position_from_client_units(cursor).line + 1
        symbol = symbol_at(document.source, line)
        module = module_name(Path(path).resolve().relative_to(folder.root))
        found = self.diagnostics.with_task_ids(uri, context.diagnostics)
        return actions.code_actions(uri, module, symbol, self.kinds, found, context.only)

    def require_kind(self, kind: str, command: str) -> None:
        if kind not in self.kinds:
            raise CommandError(
                f"{command}: this version of oh-lsp cannot run {kind} tasks yet (it runs:"
                f" {', '.join(self.kinds) or 'none'})"
            )

    async def resolve_target(self, uri: str, symbol: str | Position | None, command: str) -> Target:
        path = to_fs_path(uri) if uri.startswith("file:") else None
        if not path:
            raise CommandError(f"{command}: {uri!r} is not a file URI (file:///…); oh-lsp works on files on disk")
        folder = self.folder_for(Path(path))
        if folder is None:
            open_folders = ", ".join(str(f.root) for f in self.folders.values()) or "none"
            raise CommandError(
                f"{command}: {path} is outside the workspace folders ({open_folders}); oh-lsp only"
                " works on files inside an open workspace folder"
            )
        if folder.engine is None:
            raise CommandError(f"{command}: {folder.error}")
        try:
            relative = python_target(folder.root, path)
        except TargetError as exc:
            raise CommandError(f"{command}: {exc}") from None
        target = Target(folder, relative, module_name(relative))
        text, version = self.text_of(folder, relative)
        if version is not None and text != (folder.root / relative).read_text(encoding="utf-8", errors="replace"):
            self.show(
                f"{relative} has unsaved changes; oh-lsp works from the saved file. Save it to include them.",
                t.MessageType.Warning,
            )
        if isinstance(symbol, str):
            target.symbol = find_symbol(text or "", symbol)
            if target.symbol is None:
                raise CommandError(f"{command}: {describe_missing(text or '', symbol, relative.as_posix())}")
        elif isinstance(symbol, Position):
            lines = (text or "").split("\n")
            if symbol.line >= len(lines):
                raise CommandError(
                    f"{command}: line {symbol.line} is past the end of {relative} ({len(lines)}"
                    " lines; lines count from 0)"
                )
            at = self.ls.workspace.position_codec.position_from_client_units(
                lines, t.Position(symbol.line, symbol.character)
            )
            target.symbol = symbol_at(text or "", at.line + 1)
            if target.symbol is None:
                raise CommandError(f"{command}: no function or class at line {symbol.line + 1} of {relative}")
        return target

    async def resolve_task_target(self, folder: Folder, task: QueuedTask) -> Target:
        if task.target_file is None:
            raise CommandError(f"task {task.task_id} has no target file to work on again")
        uri = self.uri_of(folder, task.target_file)
        return await self.resolve_target(uri, task.metadata.get("symbol"), "ohLsp.retryTask")

    # --- tasks -------------------------------------------------------------------------------------------------
    async def submit(
        self, target: Target, kind: str, instruction: str, feedback: str = "", retry_of: str | None = None
    ) -> dict[str, Any]:
        from oh_lsp.tasks import QueuedTask, TaskPriority

        folder = target.folder
        assert folder.engine is not None
        metadata: dict[str, Any] = {"category": kind, "source": "lsp", "instruction": instruction}
        if target.symbol:
            metadata["symbol"] = target.symbol.qualname
        if retry_of:
            metadata["retry_of"] = retry_of
        description = f"{instruction}\n\n{feedback}" if feedback else instruction
        task = QueuedTask(
            task_type=kind,
            description=description,
            target_file=target.path,
            priority=TaskPriority.HIGH,
            metadata=metadata,
            submitter=folder.submitter,
        )
        track = Track(
            task.task_id,
            folder,
            kind,
            target.path.as_posix(),
            str(uuid.uuid4()),
            symbol=target.symbol.qualname if target.symbol else None,
        )
        self._track(track)  # before submitting: the "queued" event starts its progress
        try:
            task_id = await folder.engine.submit_task(task)
        except OhLspError as exc:
            self._forget(track)
            raise CommandError(str(exc)) from None
        if task_id != task.task_id:  # an equal task is already pending or running: that one is the answer
            self._forget(track)
            existing = self.tracks.get(task_id)
            if existing is None:
                existing = Track(task_id, folder, kind, target.path.as_posix(), str(uuid.uuid4()), track.symbol)
                self._track(existing)
                self.progress.begin(existing, "already queued")
            return {"taskId": task_id, "progressToken": existing.token, "duplicate": True}
        return {"taskId": task_id, "progressToken": track.token}

    def _track(self, track: Track) -> None:
        self.tracks[track.task_id] = track
        self.tokens[track.token] = track.task_id

    def _forget(self, track: Track) -> None:
        self.tracks.pop(track.task_id, None)
        self.tokens.pop(track.token, None)

    def task_for_token(self, token: str) -> str | None:
        return self.tokens.get(token)

    async def find_task(self, task_id: str, command: str) -> tuple[Folder, QueuedTask]:
        for folder in self.folders.values():
            if folder.engine is not None:
                task = await folder.engine.get_task_status(task_id)
                if task is not None:
                    return folder, task
        raise CommandError(f"{command}: no task {task_id!r} in the workspace folders' stores")

    async def cancel(self, task_id: str, command: str) -> bool:
        folder, _task = await self.find_task(task_id, command)
        assert folder.engine is not None
        return await folder.engine.cancel_task(task_id)

    async def cancel_by_token(self, token: str) -> None:
        """The client cancelled a progress."""
        task_id = self.tokens.get(token)
        if task_id is not None:
            await self.cancel(task_id, "window/workDoneProgress/cancel")

    # --- engine events -----------------------------------------------------------------------------------------
    def on_event(self, folder: Folder, event: ev.Event) -> None:
        if self.counts.on_event(event):
            self.poke_status()
        track = self.tracks.get(event.task_id)
        if event.is_final:
            self._claim(event)
            self._spawn(self._finish(folder, event, track))
        elif track is None:
            if event.kind == ev.STARTED:  # resumed after a restart, or queued by another front end
                self._spawn(self._adopt(folder, event))
        elif event.kind == ev.QUEUED:
            self.progress.begin(track, stage_text(event) or "queued")
        elif event.kind == ev.PROGRESS and str(event.data.get("message", "")).startswith("re-queued"):
            self.progress.end(track, "re-queued: oh-lsp stopped; the task resumes when it starts again")
            self._forget(track)
        else:
            self.progress.update(track, event)

    def _claim(self, event: ev.Event) -> None:
        if event.kind == ev.COMPLETED:
            self._claimed.add(event.task_id)

    async def _adopt(self, folder: Folder, event: ev.Event) -> None:
        """Show progress for a task of this submitter that this session did not start (e.g. after a restart)."""
        assert folder.engine is not None
        task = await folder.engine.get_task_status(event.task_id)
        if (
            task is None
            or task.submitter != folder.submitter
            or task.status.is_final
            or event.task_id in self.tracks
            or task.target_file is None
        ):
            return
        track = Track(
            task.task_id,
            folder,
            task.task_type,
            task.target_file.as_posix(),
            str(uuid.uuid4()),
            symbol=task.metadata.get("symbol"),
        )
        self._track(track)
        self.progress.begin(track, f"resumed: {stage_text(event)}")

    async def _finish(self, folder: Folder, event: ev.Event, track: Track | None) -> None:
        assert folder.engine is not None
        task = await folder.engine.get_task_status(event.task_id)
        track = track or self.tracks.get(event.task_id)
        if task is None or task.submitter != folder.submitter:
            if track:
                self.progress.end(track, stage_text(event) or event.kind)
                self._forget(track)
            return
        try:
            text, level = await self._outcome(folder, event, task)
        except Exception as exc:  # a bug of ours: say so, and still end the progress
            log.exception("could not finish task %s", task.task_id)
            text, level = f"{event.kind}, but oh-lsp could not hand over the result: {exc}", t.MessageType.Error
            self.show(f"oh-lsp: {text}", level)
        if track:
            self.progress.end(track, text, level)
            self._forget(track)
        self.poke_status()

    async def _outcome(self, folder: Folder, event: ev.Event, task: QueuedTask) -> tuple[str, t.MessageType]:
        """Deliver or explain a finished task of this session's submitter; returns the progress's last words."""
        if event.kind == ev.COMPLETED:
            delivery = await self.deliver(folder, task)
            text = outcome_text("completed", task.result, cost=task.cost, delivered=delivery.summary())
            if delivery.applied:
                return text, t.MessageType.Info
            self.show(f"oh-lsp: the result for {task.target_file} was {delivery.summary()}", t.MessageType.Warning)
            return text, t.MessageType.Warning
        if event.kind == ev.FAILED:
            self.publish_task_diagnostics(folder, task)
            self._explain_failure(task)
            return outcome_text("failed", task.result, cost=task.cost, error=task.error), t.MessageType.Error
        return "cancelled", t.MessageType.Info

    def _explain_failure(self, task: QueuedTask) -> None:
        findings = findings_of(task.result)
        if any(f.get("code") == NOT_TRUSTED for f in findings):
            self.show(
                f"oh-lsp did not run the generated tests for {task.target_file}: the workspace is not trusted."
                " To run generated code, set ohLsp.trusted to true (in VS Code: trust the workspace).",
                t.MessageType.Warning,
            )
        elif not findings:
            self.show(f"oh-lsp: {task.task_type} for {task.target_file} failed: {task.error}", t.MessageType.Error)

    async def deliver(self, folder: Folder, task: QueuedTask) -> Any:
        from oh_lsp.lsp.delivery import deliver

        assert folder.engine is not None
        self._claimed.add(task.task_id)
        await folder.engine.queue.set_delivery(task.task_id, "delivering")
        delivery = await deliver(
            self.ls, folder.root, task, lambda p: self.text_of(folder, p), lambda p: self.uri_of(folder, p)
        )
        await folder.engine.queue.set_delivery(task.task_id, delivery.state)
        if delivery.applied:
            self.publish_task_diagnostics(folder, task)
        return delivery

    async def _poll_undelivered(self) -> None:
        """Deliver results of this session's submitter that another process (a CLI `run-engine`) finished."""
        while True:
            for folder in list(self.folders.values()):
                if folder.engine is None:
                    continue
                try:
                    waiting = await folder.engine.queue.undelivered(folder.submitter)
                except Exception:
                    log.exception("could not read undelivered results of %s", folder.root)
                    continue
                for task in waiting:
                    if task.task_id not in self._claimed:
                        self._claimed.add(task.task_id)
                        delivery = await self.deliver(folder, task)
                        self.ls.window_log_message(
                            t.LogMessageParams(
                                type=t.MessageType.Info,
                                message=f"oh-lsp: result of task {task.task_id[:8]} ({task.task_type} {task.target_file},"
                                f" finished elsewhere): {delivery.summary()}",
                            )
                        )
            await asyncio.sleep(DELIVERY_POLL_SECONDS)

    # --- diagnostics -------------------------------------------------------------------------------------------
    def publish_task_diagnostics(self, folder: Folder, task: QueuedTask) -> None:
        target = task.target_file.as_posix() if task.target_file else ""
        anchor = None
        target_text = self.text_of(folder, target)[0] or ""
        if task.metadata.get("symbol"):
            found = find_symbol(target_text, task.metadata["symbol"])
            anchor = found.line if found else None
        by_file = task_diagnostics(
            task.task_id,
            task.result,
            completed=task.status.value == "completed",
            target=target,
            text_of=lambda p: self.text_of(folder, p)[0],
            codec=self.ls.workspace.position_codec,
            anchor_line=anchor,
        )
        by_uri = {self.uri_of(folder, path): items for path, items in by_file.items()}
        touched = self.diagnostics.replace((str(folder.root), task.task_type, target), task.task_id, by_uri)
        for uri in touched:
            self.ls.text_document_publish_diagnostics(
                t.PublishDiagnosticsParams(uri=uri, diagnostics=self.diagnostics.for_uri(uri))
            )

    # --- status ------------------------------------------------------------------------------------------------
    def poke_status(self) -> None:
        if not self._stopped:
            self._status.poke()

    def config(self) -> OpenHandsConfig:
        """The configuration of the first folder that runs (for session-wide answers such as selectModel)."""
        for folder in self.folders.values():
            if folder.engine is not None:
                return folder.engine.config
        return cfg.build_config(Path.cwd(), self.settings, self.overrides)

    def gateway(self) -> Any:
        """The model gateway of the first folder that runs (for session-wide questions about models)."""
        for engine in self.engines():
            return engine.gateway()
        if self._spare_gateway is None:
            from oh_lsp.llm.gateway import ModelGateway
            from oh_lsp.store import open_store

            config = self.config()
            self._spare_gateway = ModelGateway(config, store=open_store(Path.cwd(), config.queue_url))
        return self._spare_gateway

    def engines(self) -> list[ExecutionEngine]:
        return [f.engine for f in self.folders.values() if f.engine is not None]

    async def status(self) -> dict[str, Any]:
        """The `ohLsp/status` payload: this session's counts and every folder's store."""
        engines = self.engines()
        stats = [await e.queue.get_stats() for e in engines]
        metrics = [await asyncio.to_thread(e.get_metrics_summary) for e in engines]
        configured = engines[0].config.model if engines else None
        return build_status(self.counts, stats, metrics, configured, model_layer_state(metrics))

    async def send_status(self) -> None:
        self.ls.protocol.notify(STATUS_METHOD, await self.status())

    # --- configuration -----------------------------------------------------------------------------------------
    async def change_settings(self, raw: Any) -> None:
        """New settings from the editor: checked as a whole, applied to every folder for its next task, or refused
        with a message (the old ones stay)."""
        section = cfg.section_of(raw)
        if section is None:
            return
        try:
            settings, _unknown = cfg.merge_settings(self.settings, section)
            configs = {root: cfg.build_config(root, settings, self.overrides) for root in self.folders}
        except cfg.SettingsError as exc:
            self.show(str(exc), t.MessageType.Error)
            return
        self.settings = settings
        self._apply(configs)
        self._warn_not_enforced()

    def _apply(self, configs: dict[Path, OpenHandsConfig]) -> None:
        for root, config in configs.items():
            _redact(config)
            engine = self.folders[root].engine
            if engine is not None:
                engine.reconfigure(config, cfg.workers(self.settings))
        self.poke_status()

    def _warn_not_enforced(self) -> None:
        ignored = cfg.not_enforced(self.settings)
        if ignored:
            self.show(
                f"oh-lsp: {', '.join(ignored)} cannot be enforced by this version yet; the setting is kept"
                " but has no effect.",
                t.MessageType.Warning,
            )

    async def _override(self, **changes: Any) -> None:
        previous = cfg.Overrides(self.overrides.api_key, self.overrides.model)
        for name, value in changes.items():
            setattr(self.overrides, name, value)
        try:
            configs = {root: cfg.build_config(root, self.settings, self.overrides) for root in self.folders}
        except cfg.SettingsError as exc:
            self.overrides = previous
            raise CommandError(str(exc)) from None
        self._apply(configs)

    async def set_model(self, name: str | None) -> dict[str, Any]:
        await self._override(model=name)
        return {"model": self.config().model, "selectedBy": "session" if name else "settings"}

    async def set_api_key(self, key: str) -> None:
        await self._override(api_key=key)


def _redact(config: OpenHandsConfig) -> None:
    """Keep the keys a configuration holds out of every log line."""
    from oh_lsp.logs import redact_also

    for secret in config.secrets():
        redact_also(secret)
