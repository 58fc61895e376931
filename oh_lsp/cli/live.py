"""The live display of `ProgressView` on a terminal (rich): one row per task, with a spinner (its mark once it
ended), the kind and target, its stage (`oh_lsp.progress_text`, at most 60 characters) and the time it has taken.

Imported only when stderr is a terminal, never by `oh-lsp serve`.
"""

from __future__ import annotations

from typing import Any, TextIO

from rich.console import Console
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from oh_lsp import events as ev
from oh_lsp.progress_text import fit, fit_path, stage_text, warning_text
from oh_lsp.redaction import redact

MARKS = {ev.COMPLETED: "[green]✓", ev.FAILED: "[red]✗", ev.CANCELLED: "[yellow]–"}


class MarkColumn(ProgressColumn):
    """The spinner while a task runs, its mark (✓ completed, ✗ failed, – cancelled) once it ended."""

    def __init__(self) -> None:
        super().__init__()
        self.spinner = SpinnerColumn()

    def render(self, task: Task) -> Any:
        if task.finished:
            return Text.from_markup(task.fields.get("mark") or "–")
        return self.spinner.render(task)


class LiveDisplay:
    def __init__(self, out: TextIO) -> None:
        self.console = Console(file=out, highlight=False)
        self.progress = Progress(
            MarkColumn(),
            # the names and stages are plain text: "[redacted]" or "list[int]" in them is not markup
            TextColumn("{task.description}", style="bold", markup=False),
            TextColumn("{task.fields[stage]}", markup=False),
            TimeElapsedColumn(),
            console=self.console,
            redirect_stdout=False,  # stdout is the result's
            redirect_stderr=True,  # log lines (-v, warnings) print above the display
        )
        self.rows: dict[str, Any] = {}  # task id -> its row
        self.names: dict[str, str] = {}  # task id -> its row's name
        self.progress.start()

    def update(self, event: ev.Event) -> None:
        if event.kind == ev.WARNING:  # shown whole, above the display: the user must read it before the run
            self.console.print(Text(redact(warning_text(event)), style="yellow"))
            return
        stage = stage_text(event)
        if stage is None:
            return
        stage = redact(stage)
        row = self.rows.get(event.task_id)
        if row is None:
            self.names[event.task_id] = redact(describe(event))
            row = self.rows[event.task_id] = self.progress.add_task(
                self.names[event.task_id], total=1, stage="", mark=""
            )
        if event.data.get("delivered"):  # the row keeps its last stage, and says where the result went
            written = redact(fit_path(str(event.data.get("output_file")), 40))
            self.progress.update(row, description=f"{self.names[event.task_id]} → {written}")
        elif event.is_final:
            self.progress.update(row, stage=stage, completed=1, mark=MARKS.get(event.kind, "–"))
        else:
            self.progress.update(row, stage=stage)

    def stop(self) -> None:
        self.progress.stop()


def describe(event: ev.Event) -> str:
    """A row's name: the task's kind and target (its id when the event does not say)."""
    kind, target = event.data.get("kind"), event.data.get("target")
    if not kind:
        return event.task_id[:8]
    return fit(f"{kind} {fit_path(str(target or ''), 40)}".strip(), 52)
