"""Live progress of `run-engine`: one redrawn line per task on a terminal, one line per step otherwise. A warning
(the engine's `warning` event, e.g. code about to run unsandboxed) is printed whole on stderr as it comes, before the
run it warns about."""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from oh_lsp import events as ev
from oh_lsp.progress_text import event_text, warning_text
from oh_lsp.redaction import redact

_REDRAW_EVERY = 0.1


class ProgressView:
    def __init__(self, out: TextIO, *, json_lines: bool = False, warnings: TextIO | None = None) -> None:
        self.out = out
        self.warnings = warnings or sys.stderr
        self.json_lines = json_lines
        self.live = not json_lines and out.isatty()
        self.lines: dict[str, str] = {}
        self.drawn = 0
        self.last_draw = 0.0
        self.failed = 0
        self.completed = 0

    def on_event(self, event: ev.Event) -> None:
        if event.kind == ev.FAILED:
            self.failed += 1
        elif event.kind == ev.COMPLETED:
            self.completed += 1
        if event.kind == ev.WARNING:
            self._warn(warning_text(event))
        if self.json_lines:
            if event.kind != ev.TOKENS or event.data.get("final"):
                data = {k: v for k, v in event.data.items() if k != "result"}
                line = json.dumps({"event": event.kind, "task_id": event.task_id, **data}, default=str)
                self.out.write(redact(line) + "\n")
                self.out.flush()
            return
        text = event_text(event)
        if text is None:
            return
        text = redact(text)
        if self.live:
            self.lines[event.task_id] = text
            if event.is_final or time.monotonic() - self.last_draw > _REDRAW_EVERY:
                self._redraw()
        elif event.kind != ev.TOKENS:
            self.out.write(f"{event.task_id[:8]}  {text}\n")
            self.out.flush()

    def _warn(self, text: str) -> None:
        """`text` on its own line, above the redrawn task lines on a terminal (they are drawn again below it)."""
        if self.live and self.drawn:
            self.out.write(f"\x1b[{self.drawn}F\x1b[J")
            self.out.flush()
            self.drawn = 0
        self.warnings.write(redact(text) + "\n")
        self.warnings.flush()

    def _redraw(self) -> None:
        self.last_draw = time.monotonic()
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F")
        for task_id, text in self.lines.items():
            self.out.write(f"\x1b[2K{task_id[:8]}  {text}\n")
        self.drawn = len(self.lines)
        self.out.flush()

    def close(self) -> None:
        if self.live and self.lines:
            self._redraw()
