"""What a task is: its kind, priority and status, and the record the queue keeps for it.

These are plain dataclasses and enums (no pydantic) so that the language server and the queue's hot path stay cheap.
"""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast


class TaskPriority(enum.IntEnum):
    """Higher runs first; within one priority, first in, first out."""

    LOW = 1
    NORMAL = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, value: str | int | TaskPriority) -> TaskPriority:
        if isinstance(value, TaskPriority):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[value.strip().upper()]
        except KeyError:
            names = ", ".join(p.name.lower() for p in cls)
            raise ValueError(f"unknown priority {value!r}: use one of {names}") from None


class TaskStatus(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class TaskCategory(str, enum.Enum):
    """The kinds of work oh-lsp does. `QueuedTask.task_type` takes one of these values."""

    UNIT_TEST = "unit_test"
    DOCUMENTATION = "documentation"
    REFACTORING = "refactoring"

    @classmethod
    def parse(cls, value: str | TaskCategory) -> TaskCategory:
        if isinstance(value, TaskCategory):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            names = ", ".join(c.value for c in cls)
            raise ValueError(f"unknown task type {value!r}: use one of {names}") from None


@dataclass
class QueuedTask:
    """A unit of work, as submitted and as stored.

    Build it as the usage guide does: ``QueuedTask(task_type="unit_test", description=..., target_file=Path(...),
    priority=TaskPriority.HIGH, metadata={...})``. The queue fills in the rest.
    """

    task_type: str
    description: str = ""
    target_file: Path | None = None
    priority: TaskPriority = TaskPriority.NORMAL
    metadata: dict[str, Any] = field(default_factory=dict)
    task_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: TaskStatus = TaskStatus.PENDING
    submitter: str = "api"
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    max_retries: int | None = None  # None: the engine's setting (OH_LSP_MAX_RETRIES, default 2)
    result: dict[str, Any] | None = None
    error: str | None = None
    model: str | None = None
    tokens: int = 0
    cost: float = 0.0
    target_sha256: str | None = None
    not_before: float = 0.0
    note: str | None = None
    delivery: str | None = None
    lease_id: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.task_type = TaskCategory.parse(self.task_type).value
        self.priority = TaskPriority.parse(self.priority)
        self.status = TaskStatus(self.status)
        # Callers the type checker does not see (tests/test_guide_snippets.py, JSON) pass a str path or metadata=None.
        if self.target_file is not None:
            self.target_file = Path(self.target_file)
        if cast("dict[str, Any] | None", self.metadata) is None:
            self.metadata = {}

    @property
    def kind(self) -> str:
        """The task kind (`unit_test`, `documentation`, `refactoring`): the one name used inside oh-lsp, in the store
        and in the editors. `task_type` is the usage guide's name for it and stays the constructor's argument
        (docs/guide-compat.md#queuedtask-taskpriority-taskcategory-taskstatus)."""
        return self.task_type

    @property
    def category(self) -> TaskCategory:
        return TaskCategory(self.task_type)

    @property
    def written(self) -> bool:
        """Whether the result's edit landed (on disk, or applied in the editor). False for a task that did not
        complete, for an edit not delivered yet or refused, and for one the Python API returned without applying."""
        return self.status is TaskStatus.COMPLETED and self.delivery == "applied"

    def summary(self) -> dict[str, Any]:
        """A JSON-ready view of the task (what `get-status --json` prints)."""
        return {
            "task_id": self.task_id,
            "kind": self.task_type,
            "task_type": self.task_type,  # the usage guide's name for `kind` (docs/guide-compat.md)
            "status": self.status.value,
            "priority": self.priority.name.lower(),
            "description": self.description,
            "target_file": str(self.target_file) if self.target_file else None,
            "submitter": self.submitter,
            "attempts": self.attempts,  # runs of the task (the queue's); the model's answers are `answers`
            "answers": (self.result or {}).get("iterations"),
            "max_retries": self.max_retries,
            "model": self.model,
            "tokens": self.tokens,
            "cost": self.cost,
            "error": self.error,
            "note": self.note,
            "delivery": self.delivery,
            "written": self.written,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "metadata": self.metadata,
            "result": None if self.result is None else {**self.result, "written": self.written},
        }
