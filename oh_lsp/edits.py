"""Edits: how a finished task hands its result to a front end, and how the CLI puts one on disk.

The engine never writes into the project. A task's result carries an `Edit`: file changes, each bound to a hash of
the text it was computed against. The CLI (here) and the language server (as `workspace/applyEdit`) deliver it.
If the file changed since, the change is recomputed against the new text by the task kind, or refused.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oh_lsp.paths import confine, sha256_text


@dataclass
class TextEdit:
    """Replace the range [start, end) with `new_text`. Lines and characters are 0-based, as in LSP."""

    start_line: int
    start_character: int
    end_line: int
    end_character: int
    new_text: str


@dataclass
class FileEdit:
    """One file's change. `base_sha256` is None when the file is to be created (it must not exist)."""

    path: str  # relative to the project root, POSIX separators
    new_text: str
    base_sha256: str | None = None
    edits: list[TextEdit] = field(default_factory=list)

    @property
    def creates(self) -> bool:
        return self.base_sha256 is None


@dataclass
class Edit:
    label: str
    files: list[FileEdit] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Edit:
        files = [
            FileEdit(
                path=f["path"],
                new_text=f["new_text"],
                base_sha256=f.get("base_sha256"),
                edits=[TextEdit(**e) for e in f.get("edits", [])],
            )
            for f in data.get("files", [])
        ]
        return cls(label=data.get("label", ""), files=files)


def whole_file_edit(path: str, old_text: str | None, new_text: str) -> FileEdit:
    """A change that replaces all of `old_text` (or creates the file when `old_text` is None)."""
    if old_text is None:
        return FileEdit(path=path, new_text=new_text, edits=[TextEdit(0, 0, 0, 0, new_text)])
    lines = old_text.split("\n")
    return FileEdit(
        path=path,
        new_text=new_text,
        base_sha256=sha256_text(old_text),
        edits=[TextEdit(0, 0, len(lines) - 1, len(lines[-1]), new_text)],
    )


# Recomputes one file's change against the file's current text; returns None to refuse.
Recompute = Callable[[FileEdit, str], "FileEdit | None"]


@dataclass
class FileOutcome:
    path: str
    action: str  # created | updated | unchanged | refused
    message: str = ""


@dataclass
class DeliveryReport:
    files: list[FileOutcome] = field(default_factory=list)

    @property
    def applied(self) -> bool:
        return all(f.action != "refused" for f in self.files)

    @property
    def delivery_state(self) -> str:
        """What the store records: "applied", or "refused: <why>"."""
        return "applied" if self.applied else "refused: " + self.summary()

    def summary(self) -> str:
        return "; ".join(f"{f.action} {f.path}" + (f" ({f.message})" if f.message else "") for f in self.files)


@dataclass
class Rebased:
    """A file change bound to the file's current text: the change to make (None: nothing to write) and why."""

    change: FileEdit | None
    outcome: FileOutcome


def rebase(
    change: FileEdit, current: str | None, *, overwrite: bool = False, recompute: Recompute | None = None
) -> Rebased:
    """Bind `change` to `current`, the file's text now (None when it does not exist).

    A change made against other text is recomputed by the kind, or refused; a file to create that exists now is
    replaced only with `overwrite`. Used by every front end that delivers an edit (disk, `workspace/applyEdit`)."""
    if current is not None and current == change.new_text:
        return Rebased(None, FileOutcome(change.path, "unchanged", "already up to date"))
    if current is None and not change.creates:
        return Rebased(None, FileOutcome(change.path, "refused", "the file was deleted since the edit was made"))
    final: FileEdit | None = change
    if current is not None and not (overwrite and change.creates) and change.base_sha256 != sha256_text(current):
        final = recompute(change, current) if recompute else None
        if final is None:
            why = "it exists" if change.creates else "it changed since the edit was made"
            return Rebased(None, FileOutcome(change.path, "refused", why))
    action = "created" if current is None else "updated"
    note = "recomputed against the current file" if final is not change else ""
    return Rebased(final, FileOutcome(change.path, action, note))


def apply_to_disk(
    root: Path, edit: Edit, *, overwrite: bool = False, recompute: Recompute | None = None, dry_run: bool = False
) -> DeliveryReport:
    """Write `edit` under `root`. Idempotent: a file that already holds the intended text is left as is.

    A file to create that exists now is overwritten only with `overwrite`; otherwise the change is recomputed against
    it (e.g. tests added to the module through its AST) or refused. A file to change whose text moved on is
    recomputed or refused the same way.
    """
    report = DeliveryReport()
    for change in edit.files:
        relative = confine(root, change.path, must_exist=False, what="output file")
        path = root / relative
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        rebased = rebase(change, current, overwrite=overwrite, recompute=recompute)
        if rebased.outcome.action == "refused" and current is not None:
            rebased.outcome.message += "; use --overwrite to replace it"
        if rebased.change is not None and not dry_run:
            atomic_write(path, rebased.change.new_text)
        report.files.append(rebased.outcome)
    return report


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
