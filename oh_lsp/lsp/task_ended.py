"""The `ohLsp/taskEnded` notification (an extension of the editor protocol, README "In the editor"): how a task this
session started ended, sent just before its progress ends, so that the editor can say it with actions ("Open tests",
"Show details", "Open candidate").

`{taskId, progressToken, kind, status, target, outputFile, outputUri, written, delivery, score, testsKept,
testsDropped: [{name, reason}], coverage: {before, after} | null, mutation: {before, after} | null, cost, model, error,
candidate: {attempt, uri} | null, message}`. Coverage and mutation are percentages of the target (lines run, mutants
detected), before and after the kept tests; the tests kept and dropped come from `oh_lsp.result_facts`, as the
progress's last words do.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oh_lsp.lsp import editor
from oh_lsp.lsp.candidates import stored_candidate
from oh_lsp.result_facts import result_facts

if TYPE_CHECKING:
    from oh_lsp.lsp.delivery import Delivery
    from oh_lsp.tasks import QueuedTask


def task_ended(
    task: QueuedTask, root: Path, progress_token: str | None, delivery: Delivery | None, message: str
) -> dict[str, Any]:
    """The notification's payload for the finished `task` of the folder `root`. `delivery`: what became of a
    completed task's edit; `message`: the progress's last words."""
    status = task.status.value
    result = task.result or {}
    facts = result_facts(status, task.result)
    output = result.get("output_file") if status == "completed" else None
    candidate = stored_candidate(task)
    error = task.error
    if error and candidate is not None:
        error = candidate.point_into(error)
    written = bool(status == "completed" and delivery is not None and delivery.applied)
    return {
        "taskId": task.task_id,
        "progressToken": progress_token,
        "kind": task.kind,
        "status": status,
        "target": task.target_file.as_posix() if task.target_file else None,
        "outputFile": output,
        "outputUri": editor.uri_of(root, output) if output else None,
        "written": written,
        "delivery": delivery.summary() if delivery is not None else None,
        "score": result.get("score") if status != "cancelled" else None,
        "testsKept": facts.kept,
        "testsDropped": [asdict(d) for d in facts.dropped],
        "coverage": facts.coverage,
        "mutation": facts.mutation,
        "cost": task.cost,
        "model": task.model,
        "error": error if status == "failed" else None,
        "candidate": {"attempt": candidate.attempt, "uri": candidate.uri()} if candidate is not None else None,
        "message": message,
    }
