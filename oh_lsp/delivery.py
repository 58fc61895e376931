"""Putting a finished task's edit on disk (the CLI's way, and the API's with `apply_edits=True`)."""

from __future__ import annotations

from pathlib import Path

from oh_lsp.edits import DeliveryReport, Edit, FileOutcome, apply_to_disk
from oh_lsp.tasks import QueuedTask, TaskStatus


def deliver_task(root: Path, task: QueuedTask, *, overwrite: bool = False) -> DeliveryReport:
    """Write the edit of a completed task under `root`. Safe to repeat: files already up to date are left alone."""
    result = task.result or {}
    if task.status is not TaskStatus.COMPLETED or "edit" not in result:
        report = DeliveryReport()
        report.files.append(FileOutcome(str(task.target_file or "?"), "refused", "the task has no result to deliver"))
        return report
    from oh_lsp.kinds.registry import recompute_for

    return apply_to_disk(root, Edit.from_dict(result["edit"]), overwrite=overwrite, recompute=recompute_for(result))
