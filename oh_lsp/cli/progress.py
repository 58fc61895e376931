"""Live progress of `run-engine`: one redrawn line per task on a terminal, one line per step otherwise."""

from __future__ import annotations

import json
import time
from typing import TextIO

from oh_lsp import events as ev

_REDRAW_EVERY = 0.1


class ProgressView:
    def __init__(self, out: TextIO, *, json_lines: bool = False) -> None:
        self.out = out
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
        if self.json_lines:
            if event.kind != ev.TOKENS or event.data.get("final"):
                data = {k: v for k, v in event.data.items() if k != "result"}
                self.out.write(json.dumps({"event": event.kind, "task_id": event.task_id, **data}, default=str) + "\n")
                self.out.flush()
            return
        text = describe(event)
        if text is None:
            return
        if self.live:
            self.lines[event.task_id] = text
            if event.is_final or time.monotonic() - self.last_draw > _REDRAW_EVERY:
                self._redraw()
        elif event.kind != ev.TOKENS:
            self.out.write(f"{event.task_id[:8]}  {text}\n")
            self.out.flush()

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


def describe(event: ev.Event) -> str | None:
    d = event.data
    if event.kind == ev.QUEUED:
        return f"queued (position {d.get('position')}) {d.get('kind')} {d.get('target') or ''}".rstrip()
    if event.kind == ev.STARTED:
        return f"started {d.get('kind')} {d.get('target') or ''} (attempt {d.get('attempt')})"
    if event.kind == ev.MODEL_CHOSEN:
        return f"model {d.get('model')} ({d.get('why')})"
    if event.kind == ev.TOKENS:
        return (
            f"streaming: {d.get('chunks', 0)} chunks"
            if not d.get("final")
            else f"answer received: {d.get('tokens')} tokens, ${d.get('cost', 0):.6f}"
        )
    if event.kind == ev.VALIDATING:
        return f"validating: {d.get('step')}"
    if event.kind == ev.PROGRESS:
        return str(d.get("message"))
    if event.kind == ev.RETRYING:
        return f"will retry in {d.get('delay', 0):.1f}s: {d.get('error')}"
    if event.kind == ev.COMPLETED:
        result = d.get("result") or {}
        return f"completed: {result.get('output_file')} (score {result.get('score', 0):.2f}, ${d.get('cost', 0):.6f})"
    if event.kind == ev.FAILED:
        return f"failed: {d.get('error')}"
    if event.kind == ev.CANCELLED:
        return f"cancelled: {d.get('reason', '')}"
    return None
