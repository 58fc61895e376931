"""Diagnostics from validation findings: where each finding goes, its LSP range, and which task's diagnostics are
current on which file.

A finding's position is Python's (1-based line, 0-based column in code points); LSP wants 0-based lines and columns
in the negotiated encoding (UTF-16 unless the client chose another), so columns are converted on the file's text.

Where findings go (README.md#in-the-editor-oh-lsp-serve, "Diagnostics"; docs/validation.md says what is delivered):
- a completed task: each finding on the file it names (the delivered test file, or the target for a possible bug);
  a dropped test is not in the delivered file, so its finding sits on that file's first line, "dropped: …";
- a failed task (nothing delivered): findings about the generated file are shown on the target source, at the
  function the task was about, else at the function the failing test tests (`under_test.py`), else line 1;
  findings that name a line of the target stay there. Each links to its place in the rejected candidate
  (`oh-lsp://candidate/…`, `candidates.py`), and the locations in its message point there too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types as t

from oh_lsp.lsp import editor
from oh_lsp.lsp.candidates import Candidate, stored_candidate
from oh_lsp.lsp.ids import DIAGNOSTIC_SOURCE as SOURCE
from oh_lsp.lsp.symbols import find_symbol
from oh_lsp.lsp.under_test import function_under_test
from oh_lsp.redaction import redact

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer
    from pygls.workspace import PositionCodec as Codec  # code points -> the client's units

    from oh_lsp.tasks import QueuedTask

_SEVERITY = {
    "error": t.DiagnosticSeverity.Error,
    "warning": t.DiagnosticSeverity.Warning,
    "info": t.DiagnosticSeverity.Information,
}
_EOL = re.compile(r"\r\n|\r|\n")  # line ends as LSP and Python's tokenizer count them


def lsp_range(
    lines: Sequence[str], codec: Codec, line: int, col: int = 0, end_line: int | None = None, end_col: int | None = None
) -> t.Range:
    """The LSP range of a Python position: 1-based `line`, 0-based code-point `col`. Without an end, the range
    runs to the end of the line. Lines past the end of the text are clamped to its last line."""
    last = max(len(lines) - 1, 0)
    start_line = min(max(line - 1, 0), last)
    stop_line = min(max((end_line or line) - 1, start_line), last)
    text = lines[start_line] if lines else ""
    col = min(max(col, 0), len(text))
    stop_text = lines[stop_line] if lines else ""
    stop_col = len(stop_text) if end_col is None else min(max(end_col, 0), len(stop_text))
    if stop_line == start_line and stop_col <= col:
        stop_col = max(col, len(stop_text))
    start = codec.position_to_client_units(lines, t.Position(start_line, col)) if lines else t.Position(0, 0)
    stop = codec.position_to_client_units(lines, t.Position(stop_line, stop_col)) if lines else t.Position(0, 0)
    return t.Range(start=start, end=stop)


def split_lines(text: str) -> list[str]:
    """Lines without their line endings (a final newline does not add a line)."""
    lines = _EOL.split(text)
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines


def finding_range(finding: dict[str, Any], lines: Sequence[str], codec: Codec) -> t.Range:
    """The range a finding names in a file of these `lines`."""
    return lsp_range(
        lines,
        codec,
        int(finding.get("line") or 1),
        int(finding.get("col") or 0),
        finding.get("end_line"),
        finding.get("end_col"),
    )


def to_diagnostic(
    finding: dict[str, Any],
    lines: Sequence[str],
    codec: Codec,
    task_id: str,
    line: int | None = None,
    prefix: str = "",
    candidate: Candidate | None = None,
) -> t.Diagnostic:
    """One finding as a diagnostic. `line` (1-based) anchors it elsewhere than its own line (whole line then).
    With the task's rejected `candidate`, locations in the message point into it, and a finding about one of its
    files links to its own place there (related information)."""
    rng = finding_range(finding, lines, codec) if line is None else lsp_range(lines, codec, line)
    code = str(finding.get("code") or "finding")
    message = prefix + str(finding.get("message") or code)
    related = None
    if candidate is not None:
        message = candidate.point_into(message)
        file = str(finding.get("file") or "")
        if file in candidate.files:
            where = t.Location(candidate.uri(file), finding_range(finding, split_lines(candidate.files[file]), codec))
            related = [
                t.DiagnosticRelatedInformation(where, f"in the rejected candidate (attempt {candidate.attempt})")
            ]
    return t.Diagnostic(
        range=rng,
        message=redact(message),
        source=SOURCE,
        severity=_SEVERITY.get(str(finding.get("severity")), t.DiagnosticSeverity.Error),
        code=code,
        data={"taskId": task_id, "code": code, **({"attempt": candidate.attempt} if candidate else {})},
        related_information=related,
    )


def findings_of(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    validation = (result or {}).get("validation") or {}
    return [*validation.get("errors", []), *validation.get("warnings", [])]


def task_diagnostics(
    task_id: str,
    result: dict[str, Any] | None,
    *,
    completed: bool,
    target: str,
    text_of: Callable[[str], str | None],
    codec: Codec,
    anchor_line: int | None = None,
    candidate: Candidate | None = None,
) -> dict[str, list[t.Diagnostic]]:
    """Diagnostics of one finished task, by file path (relative to the project root, POSIX).

    `text_of(path)` gives a file's text (the open buffer, else the disk; for the generated file, the text that was
    checked). `anchor_line` is the 1-based line of the function the task was about, for a failed task's findings;
    without one, a failing test's finding goes to the function it tests (`under_test.py`). `candidate`: a failed
    task's rejected candidate, which its findings' locations point into."""
    by_file: dict[str, list[t.Diagnostic]] = {}
    output = (result or {}).get("output_file")
    dropped = {
        name.rsplit("::", 1)[-1]
        for name in (((result or {}).get("validation") or {}).get("details") or {}).get("dropped") or []
    }
    for finding in findings_of(result):
        file = str(finding.get("file") or output or target)
        test = str(finding.get("test") or "").split("[", 1)[0]
        if completed and file == output and test in dropped:  # not in the delivered file: say so at its top
            lines = split_lines((result or {}).get("content") or "")
            by_file.setdefault(file, []).append(
                to_diagnostic(finding, lines, codec, task_id, line=1, prefix="dropped: ")
            )
        elif completed or file == target:
            text = (result or {}).get("content") if file == output else text_of(file)
            lines = split_lines(text or "")
            by_file.setdefault(file, []).append(to_diagnostic(finding, lines, codec, task_id, candidate=candidate))
        else:  # nothing was delivered: say it on the target, where the user asked
            source = text_of(target) or ""
            line = anchor_line
            if line is None and finding.get("test"):
                tested = function_under_test(
                    str(finding["test"]), target, source, result or {}, candidate.files.get(file) if candidate else None
                )
                line = tested.line if tested else None
            prefix = f"generated {Path(file).name}: " if file else ""
            by_file.setdefault(target, []).append(
                to_diagnostic(
                    finding, split_lines(source), codec, task_id, line=line or 1, prefix=prefix, candidate=candidate
                )
            )
    return by_file


class DiagnosticStore:
    """The current oh-lsp diagnostics. A slot (a kind of task on one target) holds one task's diagnostics at a time:
    a regenerated result replaces the last one's, and a result without findings clears them."""

    def __init__(self) -> None:
        self._by_task: dict[str, dict[str, list[t.Diagnostic]]] = {}  # task id -> uri -> diagnostics
        self._slots: dict[tuple[str, ...], str] = {}

    def replace(self, slot: tuple[str, ...], task_id: str, by_uri: dict[str, list[t.Diagnostic]]) -> set[str]:
        """Make `task_id`'s diagnostics current for `slot`. Returns the uris whose diagnostics changed."""
        touched = set(by_uri)
        previous = self._slots.get(slot)
        if previous is not None:
            touched |= set(self._by_task.pop(previous, {}))
        self._slots[slot] = task_id
        self._by_task[task_id] = {uri: list(items) for uri, items in by_uri.items() if items}
        return touched

    def for_uri(self, uri: str) -> list[t.Diagnostic]:
        return [d for per_uri in self._by_task.values() for d in per_uri.get(uri, [])]

    def known(self, uri: str, diagnostic: t.Diagnostic) -> t.Diagnostic | None:
        """The diagnostic as sent, for one sent back by a client that drops `data`: matched on code, message and
        range."""
        for per_uri in self._by_task.values():
            for known in per_uri.get(uri, []):
                if (known.code, known.message, known.range) == (diagnostic.code, diagnostic.message, diagnostic.range):
                    return known
        return None

    def with_task_ids(self, uri: str, diagnostics: Iterable[t.Diagnostic]) -> list[t.Diagnostic]:
        """`diagnostics` with their `data` (`taskId`, …) filled in where the client dropped it."""
        out = []
        for diagnostic in diagnostics:
            if diagnostic.source == SOURCE and not isinstance(diagnostic.data, dict):
                known = self.known(uri, diagnostic)
                if known is not None:
                    diagnostic = t.Diagnostic(
                        range=diagnostic.range,
                        message=diagnostic.message,
                        severity=diagnostic.severity,
                        code=diagnostic.code,
                        source=SOURCE,
                        data=known.data,
                    )
            out.append(diagnostic)
        return out


def publish_task_diagnostics(ls: LanguageServer, store: DiagnosticStore, root: Path, task: QueuedTask) -> None:
    """Make the finished `task`'s diagnostics current for its kind and target in the folder `root`, and send every
    file whose diagnostics changed."""
    target = task.target_file.as_posix() if task.target_file else ""
    anchor = None
    if task.metadata.get("symbol"):
        found = find_symbol(editor.text_of(ls, root, target)[0] or "", task.metadata["symbol"])
        anchor = found.line if found else None
    by_file = task_diagnostics(
        task.task_id,
        task.result,
        completed=task.status.value == "completed",
        target=target,
        text_of=lambda p: editor.text_of(ls, root, p)[0],
        codec=ls.workspace.position_codec,
        anchor_line=anchor,
        candidate=stored_candidate(task),
    )
    by_uri = {editor.uri_of(root, path): items for path, items in by_file.items()}
    for uri in store.replace((str(root), task.kind, target), task.task_id, by_uri):
        ls.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri=uri, diagnostics=store.for_uri(uri)))
