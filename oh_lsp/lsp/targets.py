"""What an editor command points at, resolved: the workspace folder that holds the file, the file relative to it,
its module, and the function or class it names (a dotted name, or the symbol at a position).

A command that points at something oh-lsp cannot work on gets a `CommandError` that says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types as t
from pygls.uris import to_fs_path

from oh_lsp.errors import TargetError
from oh_lsp.lsp import editor
from oh_lsp.lsp.arguments import Position, SymbolArg
from oh_lsp.lsp.errors import CommandError, shown
from oh_lsp.lsp.symbols import Symbol, describe_missing, find_symbol, symbol_at
from oh_lsp.paths import module_name, python_target

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from oh_lsp.lsp.folders import Folder, Folders
    from oh_lsp.tasks import QueuedTask


@dataclass
class CommandTarget:
    """The file (and maybe the symbol) an editor command works on, in the workspace folder that holds it."""

    folder: Folder
    path: Path  # relative to the folder's root
    module: str
    symbol: Symbol | None = None


def require_kind(kinds: list[str], kind: str, command: str) -> None:
    """Refuse a command whose task kind this version cannot run."""
    if kind not in kinds:
        raise CommandError(
            f"{command}: this version of oh-lsp cannot run {kind} tasks yet (it runs: {', '.join(kinds) or 'none'})"
        )


def resolve_target(
    ls: LanguageServer, folders: Folders, uri: str, symbol: SymbolArg | None, command: str
) -> CommandTarget:
    path = to_fs_path(uri) if uri.startswith("file:") else None
    if not path:
        raise CommandError(f"{command}: {shown(uri)} is not a file URI (file:///…); oh-lsp works on files on disk")
    folder = folders.holding(Path(path))
    if folder is None:
        open_folders = ", ".join(str(f.root) for f in folders) or "none"
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
    target = CommandTarget(folder, relative, module_name(relative))
    text, version = editor.text_of(ls, folder.root, relative)
    if version is not None and text != (folder.root / relative).read_text(encoding="utf-8", errors="replace"):
        editor.show(
            ls,
            f"{relative} has unsaved changes; oh-lsp works from the saved file. Save it to include them.",
            t.MessageType.Warning,
        )
    if isinstance(symbol, str):
        target.symbol = find_symbol(text or "", symbol)
        if target.symbol is None:
            raise CommandError(f"{command}: {describe_missing(text or '', symbol, relative.as_posix())}")
    elif isinstance(symbol, Position):
        target.symbol = _symbol_at_position(ls, text or "", symbol, relative, command)
    return target


def _symbol_at_position(ls: LanguageServer, text: str, position: Position, relative: Path, command: str) -> Symbol:
    lines = text.split("\n")
    if position.line >= len(lines):
        raise CommandError(
            f"{command}: line {position.line} is past the end of {relative} ({len(lines)} lines; lines count from 0)"
        )
    at = ls.workspace.position_codec.position_from_client_units(lines, t.Position(position.line, position.character))
    found = symbol_at(text, at.line + 1)
    if found is None:
        raise CommandError(f"{command}: no function or class at line {position.line + 1} of {relative}")
    return found


def target_of_task(
    ls: LanguageServer, folders: Folders, folder: Folder, task: QueuedTask, command: str
) -> CommandTarget:
    """The target of an earlier task, resolved again (for a retry)."""
    if task.target_file is None:
        raise CommandError(f"task {task.task_id} has no target file to work on again")
    uri = editor.uri_of(folder.root, task.target_file)
    return resolve_target(ls, folders, uri, task.metadata.get("symbol"), command)
