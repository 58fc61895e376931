"""The log of every task's life: queued, started, the model and the long "why" of its choice, each answer's verdict,
retries, delivery, the end and its reason. Every engine subscribes one `TaskLog` to its events, so the log file
(`oh-lsp logs`) tells a task's story whichever front end ran it.

Lines are INFO (the default level; the steps of the checks are DEBUG, shown with `-v`). Each text is redacted for
every secret oh-lsp knows before it is logged, besides the log handlers' own filter (`oh_lsp.logs`), because a
program using the Python API may log to handlers of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from oh_lsp import events as ev
from oh_lsp.progress_text import count, money, outcome_text
from oh_lsp.redaction import redact

log = logging.getLogger("oh_lsp.tasks")


class TaskLog:
    """An event subscriber that logs each task's life. `secrets()` gives the secrets to take out of each line."""

    def __init__(self, secrets: Callable[[], list[str]] = list) -> None:
        self.secrets = secrets
        self._models: dict[str, tuple[Any, Any]] = {}  # task id -> the model chosen last, and why

    def __call__(self, event: ev.Event) -> None:
        if event.is_final:
            self._models.pop(event.task_id, None)
        if (event.kind == ev.TOKENS and not event.data.get("final")) or not log.isEnabledFor(logging.INFO):
            return  # streamed chunks: the answer's totals are logged once it is complete
        level, text = self._line(event)
        if text is not None and log.isEnabledFor(level):
            log.log(level, "task %s %s", event.task_id, redact(text, self.secrets()))

    def _line(self, event: ev.Event) -> tuple[int, str | None]:
        d = event.data
        kind = event.kind
        if kind == ev.QUEUED:
            where = f"position {d.get('position')}" if d.get("position") else "no longer pending"
            again = "already queued" if d.get("duplicate") else "queued"
            return logging.INFO, f"{again}: {d.get('kind')} {d.get('target') or ''} ({where})"
        if kind == ev.STARTED:
            return logging.INFO, f"started: {d.get('kind')} {d.get('target') or ''}, attempt {d.get('attempt')}"
        if kind == ev.MODEL_CHOSEN:
            return self._model(event)
        if kind == ev.TOKENS:
            estimated = f" (estimated by {d.get('estimated_by')})" if d.get("estimated") else ""
            cost = "local: no cost" if d.get("cost_source") == "local" else money(d.get("cost") or 0.0)
            return logging.INFO, f"answer received: {count(d.get('tokens') or 0)} tokens so far{estimated}, {cost}"
        if kind == ev.VALIDATING:
            return logging.DEBUG, f"validating: {d.get('step')}" + (
                f" (answer {d.get('iteration')})" if d.get("step") == "checks" else ""
            )
        if kind == ev.CHECKED:
            return logging.INFO, f"answer {d.get('iteration')} of at most {d.get('of')}: {d.get('summary')}"
        if kind in (ev.PROGRESS, ev.WARNING):
            return logging.INFO, f"{'warning: ' if kind == ev.WARNING else ''}{d.get('message')}"
        if kind == ev.RETRYING:
            return logging.INFO, f"back to the queue, retried in {d.get('delay', 0):.1f}s: {d.get('error')}"
        if kind == ev.COMPLETED:
            text = outcome_text("completed", d.get("result"), cost=d.get("cost") or 0.0)
            return logging.INFO, f"completed with {d.get('model')}: {text}"
        if kind == ev.FAILED:
            return logging.INFO, f"failed: {d.get('error')}"
        if kind == ev.CANCELLED:
            return logging.INFO, f"cancelled: {d.get('reason', '')}"
        return logging.DEBUG, None

    def _model(self, event: ev.Event) -> tuple[int, str | None]:
        """The choice and its why, once per task and again when it changes (each repair asks again)."""
        choice = (event.data.get("model"), event.data.get("why"))
        if self._models.get(event.task_id) == choice:
            return logging.DEBUG, f"model {choice[0]} again"
        self._models[event.task_id] = choice
        return logging.INFO, f"model {choice[0]}; why: {choice[1]}"
