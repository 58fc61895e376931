"""What the editor sees of a workspace folder: a file's URI, its text as the editor has it (the open buffer, else the
disk), and the messages shown to the user or written to the editor's log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types as t
from pygls.uris import from_fs_path

from oh_lsp.redaction import redact

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer


def uri_of(root: Path, relative: str | Path) -> str:
    return from_fs_path(str(root / relative)) or (root / relative).as_uri()


def text_of(ls: LanguageServer, root: Path, relative: str | Path) -> tuple[str | None, int | None]:
    """A file's text and the open buffer's version (None: read from disk); (None, None) when it does not exist."""
    document = ls.workspace.text_documents.get(uri_of(root, relative))
    if document is not None:
        return document.source, document.version
    try:
        return (root / relative).read_text(encoding="utf-8"), None
    except (OSError, UnicodeDecodeError):
        return None, None


def show(ls: LanguageServer, message: str, level: t.MessageType = t.MessageType.Info) -> None:
    """A message for the user (`window/showMessage`), every secret oh-lsp knows taken out."""
    ls.window_show_message(t.ShowMessageParams(type=level, message=redact(message)))


def log(ls: LanguageServer, message: str, level: t.MessageType = t.MessageType.Info) -> None:
    """A line of the editor's log (`window/logMessage`), every secret oh-lsp knows taken out."""
    ls.window_log_message(t.LogMessageParams(type=level, message=redact(message)))
