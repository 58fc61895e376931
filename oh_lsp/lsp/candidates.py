"""A failed task's rejected candidate, as the editors open it: the read-only document
`oh-lsp://candidate/<taskId>/<attempt>/<path>` (the `ohLsp/candidate` request), and the locations of failure messages
pointed into it.

The candidate is what the checks ran: the files of the best attempt's edit (`rejected_edit` in the task's result; a
test module, or the target rewritten), kept with the task when nothing was delivered. Its line numbers are the ones
the findings and tracebacks cite, which the file on disk (never written) does not have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from oh_lsp.lsp.errors import CommandError
from oh_lsp.lsp.ids import CANDIDATE_REQUEST as REQUEST

if TYPE_CHECKING:
    from oh_lsp.tasks import QueuedTask

SCHEME = "oh-lsp"


def candidate_uri(task_id: str, attempt: int, path: str) -> str:
    """`oh-lsp://candidate/<taskId>/<attempt>/<path>` (`path` relative to the project root, POSIX)."""
    return f"{SCHEME}://candidate/{quote(task_id, safe='')}/{attempt}/{quote(path)}"


@dataclass(frozen=True)
class Candidate:
    task_id: str
    attempt: int  # the repair-loop attempt (1 = the first answer) whose answer this is
    main: str  # the file the task is about (the test module, the target): what opens by default
    files: dict[str, str]  # path -> text, for every file of the candidate

    def uri(self, path: str | None = None) -> str:
        return candidate_uri(self.task_id, self.attempt, path or self.main)

    def point_into(self, text: str) -> str:
        """`text` with each `path:line` location of a candidate file written as a location in the candidate's
        document (`oh-lsp://candidate/…/path:line`)."""
        paths = sorted((p for p in self.files if p), key=len, reverse=True)
        if not paths or not text:
            return text
        location = re.compile(r"(?<![\w/.:-])(" + "|".join(re.escape(p) for p in paths) + r")(?=:\d)")
        return location.sub(lambda m: self.uri(m.group(1)), text)


def stored_candidate(task: QueuedTask) -> Candidate | None:
    """The rejected candidate kept with `task`, or None: the task did not fail, or its answer held no code."""
    result = task.result or {}
    if task.status.value != "failed" or not result.get("output_file") or result.get("content") is None:
        return None
    main = str(result["output_file"])
    files: dict[str, str] = {}
    for change in (result.get("rejected_edit") or {}).get("files") or []:
        if isinstance(change, dict) and isinstance(change.get("path"), str):
            files[change["path"]] = str(change.get("new_text") or "")
    files[main] = str(result["content"])
    attempt = result.get("attempt")
    return Candidate(task.task_id, attempt if isinstance(attempt, int) and attempt > 0 else 1, main, files)


def candidate_document(task: QueuedTask, attempt: int | None, segment: str | None) -> dict[str, Any]:
    """The `ohLsp/candidate` answer `{uri, text}`: one file (`segment`, a path relative to the project root; by
    default the file the task is about) of the task's rejected candidate. Raises `CommandError` saying why there is
    none."""
    task_id = task.task_id
    candidate = stored_candidate(task)
    if candidate is None:
        status = task.status.value
        why = {
            "completed": "it completed, and its result was delivered",
            "cancelled": "it was cancelled",
            "pending": "it has not run yet",
            "running": "it is still running",
        }.get(status, "its model's answer held no code to check")
        raise CommandError(f"{REQUEST}: task {task_id} has no rejected candidate: {why}")
    if attempt is not None and attempt != candidate.attempt:
        raise CommandError(
            f"{REQUEST}: task {task_id} keeps only the candidate of attempt {candidate.attempt}, not of"
            f" attempt {attempt}"
        )
    path = segment or candidate.main
    if path not in candidate.files:
        raise CommandError(
            f"{REQUEST}: the candidate of task {task_id} has no file {path!r}; its files: {', '.join(candidate.files)}"
        )
    return {"uri": candidate.uri(path), "text": candidate.files[path]}
