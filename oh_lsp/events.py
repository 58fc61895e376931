"""Engine events. The engine publishes them; front ends (CLI progress, language server) subscribe.

The engine knows nothing about its subscribers: a subscriber is any callable taking an `Event`. It is called on the
engine's event loop and must not block.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

QUEUED = "queued"
STARTED = "started"
MODEL_CHOSEN = "model_chosen"
PROGRESS = "progress"
WARNING = "warning"  # data: message; shown before what it warns about (e.g. code about to run unsandboxed)
TOKENS = "tokens"
VALIDATING = "validating"  # data: step ("checks" with iteration/of for an answer's checks, else a stage's text)
CHECKED = "checked"  # data: iteration, of, passed, score, code (the first finding's), summary; kept/dropped (tests)
RETRYING = "retrying"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
HALTED = "halted"  # data: message; the engine cannot go on (its store was deleted or replaced) and stopped
FINAL = frozenset({COMPLETED, FAILED, CANCELLED})


@dataclass(frozen=True)
class Event:
    kind: str
    task_id: str
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    @property
    def is_final(self) -> bool:
        return self.kind in FINAL


Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber) if subscriber in self._subscribers else None

    def publish(self, kind: str, task_id: str, /, **data: Any) -> None:
        event = Event(kind, task_id, data)
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # a broken front end must not break the engine
                log.exception("event subscriber %r failed on %s", subscriber, kind)
