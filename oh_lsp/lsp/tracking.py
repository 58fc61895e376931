"""The tasks this session shows: submitted from a command (or adopted when resumed), each with its progress token;
found again by id or token to cancel or retry them."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from oh_lsp.errors import OhLspError, TaskIdError
from oh_lsp.lsp.errors import CommandError, shown
from oh_lsp.lsp.progress import Progress, Track

if TYPE_CHECKING:
    from oh_lsp.lsp.folders import Folder, Folders
    from oh_lsp.lsp.targets import CommandTarget
    from oh_lsp.tasks import QueuedTask


class Tracker:
    def __init__(self, folders: Folders, progress: Progress) -> None:
        self.folders = folders
        self.progress = progress
        self.tracks: dict[str, Track] = {}  # task id -> its track
        self.tokens: dict[str, str] = {}  # progress token -> task id

    def track(
        self, folder: Folder, task_id: str, kind: str, target: str, symbol: str | None, adopted: bool = False
    ) -> Track:
        """Show the task `task_id` from now on, with a fresh progress token (`adopted`: this session did not start
        it)."""
        track = Track(task_id, folder, kind, target, str(uuid.uuid4()), symbol=symbol, adopted=adopted)
        self.tracks[task_id] = track
        self.tokens[track.token] = task_id
        return track

    def forget(self, track: Track) -> None:
        self.tracks.pop(track.task_id, None)
        self.tokens.pop(track.token, None)

    def get(self, task_id: str) -> Track | None:
        return self.tracks.get(task_id)

    def task_for_token(self, token: str) -> str | None:
        return self.tokens.get(token)

    async def submit(
        self,
        target: CommandTarget,
        kind: str,
        instruction: str,
        feedback: str = "",
        retry_of: str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        no_cache: bool = False,
    ) -> dict[str, Any]:
        """Queue a task of `kind` on `target` (with more `metadata`, such as the gap it aims at); its progress starts
        with the engine's "queued" event. An equal task already pending or running is the answer instead
        (`duplicate: true`). `no_cache`: never served from the result cache."""
        from oh_lsp.tasks import QueuedTask, TaskPriority

        folder = target.folder
        assert folder.engine is not None
        symbol = target.symbol.qualname if target.symbol else None
        task_metadata: dict[str, Any] = {"source": "lsp", "instruction": instruction, **(metadata or {})}
        if symbol:
            task_metadata["symbol"] = symbol
        if retry_of:
            task_metadata["retry_of"] = retry_of
        if no_cache:
            task_metadata["no_cache"] = True
        gap = _gap_label(task_metadata.get("gap"))
        label = f"{target.path.name} {gap}" if gap else symbol
        task = QueuedTask(
            task_type=kind,
            description=f"{instruction}\n\n{feedback}" if feedback else instruction,
            target_file=target.path,
            priority=TaskPriority.HIGH,
            metadata=task_metadata,
            submitter=folder.submitter,
        )
        track = self.track(folder, task.task_id, kind, target.path.as_posix(), label)  # before the "queued" event
        try:
            task_id = await folder.engine.submit_task(task)
        except OhLspError as exc:
            self.forget(track)
            raise CommandError(str(exc)) from None
        if task_id != task.task_id:  # an equal task is already pending or running: that one is the answer
            self.forget(track)
            existing = self.tracks.get(task_id)
            if existing is None:
                existing = self.track(folder, task_id, kind, target.path.as_posix(), label)
                self.progress.begin(existing, "already queued")
            return {"taskId": task_id, "progressToken": existing.token, "duplicate": True}
        return {"taskId": task_id, "progressToken": track.token}

    async def find_task(self, task_id: str, command: str) -> tuple[Folder, QueuedTask]:
        """The task `task_id` names (its whole id, or a unique start of it as the CLI prints it), and its folder."""
        problems: list[str] = []
        for folder in self.folders:
            if folder.engine is not None:
                try:
                    found = await folder.engine.queue.find_id(task_id)
                except TaskIdError as exc:
                    problems.append(str(exc))
                    continue
                task = await folder.engine.get_task_status(found)
                if task is not None:
                    return folder, task
        why = next((p for p in problems if "several" in p), None)
        raise CommandError(f"{command}: " + (why or f"no task {shown(task_id)} in the workspace folders' stores"))

    async def cancel(self, task_id: str, command: str) -> bool:
        folder, task = await self.find_task(task_id, command)
        assert folder.engine is not None
        return await folder.engine.cancel_task(task.task_id)

    async def cancel_by_token(self, token: str) -> None:
        """The client cancelled a progress."""
        task_id = self.tokens.get(token)
        if task_id is not None:
            await self.cancel(task_id, "window/workDoneProgress/cancel")


def _gap_label(gap: Any) -> str | None:
    """How a progress title names the gap a task aims at: "pkg/calc.py lines 9–12"."""
    if not isinstance(gap, dict):
        return None
    first, last = gap.get("line"), gap.get("end_line")
    where = f"line {first}" if first == last else f"lines {first}–{last}"
    return {"branch": f"branch at line {first}", "mutant": f"mutant at line {first}"}.get(str(gap.get("kind")), where)
