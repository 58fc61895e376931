"""The progress of the tasks an engine runs in this process (`run-engine`, `generate-tests`), always on stderr: stdout
carries only the result, as with git and uv.

- stderr is a terminal: a live display (rich), one row per task with its stage, redrawn in place;
- otherwise: one plain line per stage (no streaming counts, no repeated line), no terminal codes;
- `--json` on `run-engine`: one JSON object a line per event (no streamed chunks).

Stages are worded by `oh_lsp.progress_text` (at most 60 characters). A warning (code about to run unsandboxed) is
shown whole, before what it warns about. Every text is redacted (`oh_lsp.redaction`). rich is imported only for the
live display, never by `oh-lsp serve`.
"""

from __future__ import annotations

import json
import os
from typing import Any, TextIO

from oh_lsp import events as ev
from oh_lsp.progress_text import MAX_CHARS, event_text, warning_text
from oh_lsp.redaction import redact

ID_CHARS = 8  # of a task's id, before its lines when several tasks run


def wants_live(out: TextIO) -> bool:
    """Whether `out` is a terminal that can redraw (not TERM=dumb)."""
    try:
        return out.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False


class ProgressView:
    """An engine event subscriber. `several`: tasks may run side by side (their lines carry the task's id)."""

    def __init__(self, out: TextIO, *, json_lines: bool = False, several: bool = True) -> None:
        self.out = out
        self.json_lines = json_lines
        self.several = several
        self.failed = 0
        self.completed = 0
        self.finished: list[str] = []  # the ids of the tasks that ended, in order
        self._last: dict[str, str] = {}  # task id -> its last plain line
        self._model: dict[str, str] = {}  # task id -> the line of the model it uses (said again only when it changes)
        self._live: Any = None
        if not json_lines and wants_live(out):
            from oh_lsp.cli.live import LiveDisplay

            self._live = LiveDisplay(out)

    @property
    def live(self) -> bool:
        return self._live is not None

    def on_event(self, event: ev.Event) -> None:
        if event.is_final:
            self.finished.append(event.task_id)
            self.failed += event.kind == ev.FAILED
            self.completed += event.kind == ev.COMPLETED
        if self.json_lines:
            self._json(event)
        elif event.kind == ev.HALTED:  # said whole by the log as it happens (stderr), and by the CLI as it exits
            return
        elif self._live is not None:
            self._live.update(event)
        elif event.kind != ev.TOKENS or event.data.get("final"):
            self._line(event)

    def _json(self, event: ev.Event) -> None:
        if event.kind != ev.TOKENS or event.data.get("final"):
            data = {k: v for k, v in event.data.items() if k != "result"}
            line = json.dumps({"event": event.kind, "task_id": event.task_id, **data}, default=str)
            self.out.write(redact(line) + "\n")
            self.out.flush()

    def _line(self, event: ev.Event) -> None:
        if event.kind == ev.WARNING:  # shown whole: the user must read it before the run
            self.out.write(redact(warning_text(event)) + "\n")
            self.out.flush()
            return
        prefix = f"{event.task_id[:ID_CHARS]} " if self.several else ""
        text = event_text(event, MAX_CHARS - len(prefix))
        if text is None or self._last.get(event.task_id) == text:
            return
        if event.kind == ev.MODEL_CHOSEN:
            if self._model.get(event.task_id) == text:
                return
            self._model[event.task_id] = text
        self._last[event.task_id] = text
        self.out.write(redact(prefix + text) + "\n")
        self.out.flush()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
