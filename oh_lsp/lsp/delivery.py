"""Delivering a finished task's edit to the editor (README.md#in-the-editor-oh-lsp-serve, "Results as edits"; only the
front end that submitted a task delivers it: docs/fleet.md#who-writes-the-files).

- The client can apply it (`workspace.applyEdit`, and `resourceOperations` holding `create` when a file is created):
  send `workspace/applyEdit` with a label; a new file is a `CreateFile` plus a `TextDocumentEdit`, a change to a
  file is `TextEdit`s. The user can undo it. A rejection (or an error answer) is reported as "not applied".
- Review (the `reviewEdits` setting, on by default): when the client supports change annotations, every change
  carries one annotation that `needsConfirmation`, so the editor shows the edit for review (VS Code: its refactor
  preview) before it lands. Clients without annotation support get the edit as it is.
- Otherwise: write the files to disk, then show the result with `window/showDocument` if the client advertises
  it, and say what was written with a log message.

Edits are bound to the text they were made from: each file change is rebased on the open buffer's text (else the
file on disk) with `oh_lsp.edits.rebase`, recomputed by the task's kind when that text moved on, or refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types as t

from oh_lsp.edits import Edit, FileEdit, FileOutcome, rebase

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer
    from pygls.workspace import PositionCodec

    from oh_lsp.tasks import QueuedTask

log = logging.getLogger(__name__)


@dataclass
class Bound:
    """One file change bound to the text it will be applied to."""

    change: FileEdit
    current: str | None  # None: the file does not exist
    uri: str
    version: int | None = None  # the open buffer's version


@dataclass
class Delivery:
    applied: bool
    how: str  # applyEdit | disk | none
    files: list[FileOutcome] = field(default_factory=list)
    reason: str = ""

    @property
    def state(self) -> str:
        """What the store records."""
        return "applied" if self.applied else f"not applied: {self.reason}"

    def summary(self) -> str:
        if not self.applied:
            return f"not applied: {self.reason}"
        notes = [f"{f.path}: {f.message}" for f in self.files if f.message and f.action != "unchanged"]
        how = {"applyEdit": "applied in the editor", "disk": "written to disk"}.get(self.how, "already up to date")
        return how + (f"; {'; '.join(notes)}" if notes else "")


def can_apply(capabilities: t.ClientCapabilities, creates: bool) -> bool:
    """Whether the client can take this edit as `workspace/applyEdit` (Neovim applies `documentChanges` without
    advertising them, so only `resourceOperations` decides for new files)."""
    workspace = capabilities.workspace
    if not (workspace and workspace.apply_edit):
        return False
    if not creates:
        return True
    operations = (workspace.workspace_edit and workspace.workspace_edit.resource_operations) or []
    return t.ResourceOperationKind.Create in operations


def bind(
    edit: Edit, recompute: Any, text_of: Callable[[str], tuple[str | None, int | None]], uri_of: Callable[[str], str]
) -> tuple[list[Bound], list[FileOutcome]]:
    """Rebase each file change on the file's current text. Returns (changes to make, outcome of every file)."""
    bound: list[Bound] = []
    outcomes: list[FileOutcome] = []
    for change in edit.files:
        current, version = text_of(change.path)
        rebased = rebase(change, current, recompute=recompute)
        outcomes.append(rebased.outcome)
        if rebased.change is not None:
            bound.append(Bound(rebased.change, current, uri_of(change.path), version))
    return bound, outcomes


def _text_edits(bound: Bound, codec: PositionCodec) -> list[t.TextEdit]:
    """The change's edits in the client's position units (edits hold code-point positions of `current`)."""
    if bound.current is None:
        return [t.TextEdit(range=t.Range(t.Position(0, 0), t.Position(0, 0)), new_text=bound.change.new_text)]
    lines = bound.current.split("\n")
    edits = []
    for e in bound.change.edits:
        start = codec.position_to_client_units(lines, t.Position(e.start_line, e.start_character))
        end = codec.position_to_client_units(lines, t.Position(e.end_line, e.end_character))
        edits.append(t.TextEdit(range=t.Range(start, end), new_text=e.new_text))
    return edits


REVIEW = "oh-lsp.review"  # the change annotation that asks the editor to show the edit before applying it


def can_annotate(capabilities: t.ClientCapabilities) -> bool:
    """Whether the client honours change annotations (LSP 3.16; VS Code shows `needsConfirmation` as a preview)."""
    workspace_caps = capabilities.workspace and capabilities.workspace.workspace_edit
    return bool(workspace_caps and workspace_caps.change_annotation_support is not None)


def workspace_edit(
    bound: list[Bound], codec: PositionCodec, capabilities: t.ClientCapabilities, label: str = "", review: bool = False
) -> t.WorkspaceEdit:
    """The `WorkspaceEdit` for the bound changes: `documentChanges` when a file is created, the client takes them or
    the changes are annotated for review, else the plain `changes` map. With `review` (and a client that honours
    annotations) every change carries the annotation `REVIEW`, which needs confirmation."""
    workspace_caps = capabilities.workspace and capabilities.workspace.workspace_edit
    creates = any(b.current is None for b in bound)
    annotate = review and can_annotate(capabilities)
    if (
        not creates
        and not annotate
        and not (workspace_caps and (workspace_caps.document_changes or workspace_caps.resource_operations))
    ):
        return t.WorkspaceEdit(changes={b.uri: _text_edits(b, codec) for b in bound})
    annotation = REVIEW if annotate else None
    changes: list[Any] = []
    for b in bound:
        if b.current is None:
            changes.append(
                t.CreateFile(
                    uri=b.uri,
                    options=t.CreateFileOptions(overwrite=False, ignore_if_exists=True),
                    annotation_id=annotation,
                )
            )
            if not b.change.new_text:
                continue  # an empty new file (a package's __init__.py)
        edits: list[Any] = _text_edits(b, codec)
        if annotation:
            edits = [t.AnnotatedTextEdit(range=e.range, new_text=e.new_text, annotation_id=annotation) for e in edits]
        changes.append(
            t.TextDocumentEdit(
                text_document=t.OptionalVersionedTextDocumentIdentifier(uri=b.uri, version=b.version), edits=edits
            )
        )
    if not annotate:
        return t.WorkspaceEdit(document_changes=changes)
    review_note = t.ChangeAnnotation(
        label=label or "oh-lsp",
        needs_confirmation=True,
        description="checked by oh-lsp (the tests were run); review it before it is applied",
    )
    return t.WorkspaceEdit(document_changes=changes, change_annotations={REVIEW: review_note})


def _refused(outcomes: list[FileOutcome]) -> list[FileOutcome]:
    return [o for o in outcomes if o.action == "refused"]


async def deliver(
    ls: LanguageServer,
    root: Path,
    task: QueuedTask,
    text_of: Callable[[str], tuple[str | None, int | None]],
    uri_of: Callable[[str], str],
    *,
    review: bool,
) -> Delivery:
    """Deliver the edit of the completed `task` to the client of `ls` (or to disk). `review`: the `reviewEdits`
    setting (see the module's docstring)."""
    from oh_lsp.kinds.registry import recompute_for

    result = task.result or {}
    if "edit" not in result:
        return Delivery(False, "none", reason="the task has no edit to deliver")
    edit = Edit.from_dict(result["edit"])
    recompute = recompute_for(result)
    bound, outcomes = bind(edit, recompute, text_of, uri_of)
    refused = _refused(outcomes)
    if refused:
        return Delivery(False, "none", outcomes, reason="; ".join(f"{o.path}: {o.message}" for o in refused))
    if not bound:
        return Delivery(True, "none", outcomes)
    capabilities = ls.client_capabilities
    if can_apply(capabilities, creates=any(b.current is None for b in bound)):
        return await _apply(ls, edit.label, bound, outcomes, review)
    return await _write(ls, root, task, uri_of)


async def _apply(
    ls: LanguageServer, label: str, bound: list[Bound], outcomes: list[FileOutcome], review: bool
) -> Delivery:
    change = workspace_edit(bound, ls.workspace.position_codec, ls.client_capabilities, label, review)
    try:
        answer = await ls.workspace_apply_edit_async(t.ApplyWorkspaceEditParams(edit=change, label=label))
    except Exception as exc:  # noqa: BLE001 - some clients answer with an error instead of applied: false
        return Delivery(False, "applyEdit", outcomes, reason=f"the editor refused the edit: {exc}")
    if not answer.applied:
        return Delivery(
            False,
            "applyEdit",
            outcomes,
            reason=f"the editor did not apply the edit: {answer.failure_reason or 'no reason given'}",
        )
    return Delivery(True, "applyEdit", outcomes)


async def _write(ls: LanguageServer, root: Path, task: QueuedTask, uri_of: Callable[[str], str]) -> Delivery:
    """The client cannot apply the edit: write it to disk as the CLI does, then show or name the file."""
    from oh_lsp.engine import deliver_task

    report = await asyncio.to_thread(deliver_task, root, task)
    if not report.applied:
        return Delivery(
            False, "disk", report.files, reason="; ".join(f"{o.path}: {o.message}" for o in _refused(report.files))
        )
    output = (task.result or {}).get("output_file")
    ls.window_log_message(
        t.LogMessageParams(type=t.MessageType.Info, message=f"oh-lsp wrote {report.summary()} in {root}")
    )
    window = ls.client_capabilities.window
    if output and window and window.show_document and window.show_document.support:
        try:
            await ls.window_show_document_async(t.ShowDocumentParams(uri=uri_of(output), take_focus=False))
        except Exception as exc:  # noqa: BLE001 - showing the file is a courtesy; it was written
            log.info("showDocument failed: %s", exc)
    return Delivery(True, "disk", report.files)
