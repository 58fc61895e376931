"""What every task kind shares: the target it works on, the candidate it makes, where its checks run, and the
contract a kind module keeps (`TaskKind`).

A kind is one module (`oh_lsp.kinds.unit_test`, `documentation`, `refactoring`), loaded by name with
`oh_lsp.kinds.registry.get_kind`. A kind that needs more than "ask, check, repair" (unit_test: measures before the
first call, several conversations, results that accumulate) also provides `open_session`, which returns a
`TaskSession`: the pipeline then runs the task through it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from oh_lsp.config import OpenHandsConfig
from oh_lsp.edits import Edit, FileEdit, Recompute, TextEdit
from oh_lsp.errors import TargetError
from oh_lsp.paths import module_name, python_target, sha256_text
from oh_lsp.tasks import QueuedTask

if TYPE_CHECKING:
    from oh_lsp.validation.result import ValidationResult
    from oh_lsp.validation.sandbox import Sandbox


@dataclass
class Target:
    root: Path
    path: Path  # relative to root
    text: str
    module: str
    sha256: str


def load_target(root: Path, task: QueuedTask) -> Target:
    if task.target_file is None:
        raise TargetError(f"a {task.kind} task needs a target file (--target-file or a file argument)")
    relative = python_target(root, task.target_file)
    try:
        text = (root / relative).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TargetError(f"target {relative} is not UTF-8 text") from None
    return Target(root=root, path=relative, text=text, module=module_name(relative), sha256=sha256_text(text))


@dataclass
class Candidate:
    """A proposed result: the edit to deliver, and the text of the file the checks judge."""

    edit: Edit
    output_file: str
    content: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def in_place(
        cls, target: Target, content: str, edits: list[TextEdit], label: str, extra: dict[str, Any]
    ) -> Candidate:
        """A change to the target file itself: `edits` turn its text into `content`."""
        path = target.path.as_posix()
        change = FileEdit(path=path, new_text=content, base_sha256=target.sha256, edits=edits)
        return cls(edit=Edit(label=label, files=[change]), output_file=path, content=content, extra=extra)


class Memory(Protocol):
    """What a kind keeps, in the store, of its last completed task on a target, for the next task on it (unit_test:
    incremental work, kinds/unit_test_increment.py). Shared like the result cache (the CLI, the server, a fleet)."""

    async def recall(self) -> dict[str, Any] | None:
        """What was kept; None when nothing was, when it cannot be read, or when the task asked for a fresh start
        (`--no-cache`, `noCache`, "Regenerate with feedback")."""
        ...

    async def keep(self, value: dict[str, Any]) -> None:
        """Replace what is kept (JSON-serialisable). A store that cannot write it is logged, never raised."""
        ...


@dataclass
class CheckEnv:
    """Where and how checks run: the project, the settings, and a sink for progress text."""

    root: Path
    config: OpenHandsConfig
    exclude: list[Path] = field(default_factory=list)  # directories kept out of sandbox copies (the state dir)
    progress: Callable[[str], None] = lambda _text: None
    warn: Callable[[str], None] = lambda _text: None  # a warning the user must see before what follows it
    memory: Memory | None = None  # what the kind keeps of its last completed task on this target (the engine's)

    @property
    def scratch(self) -> Path:
        from oh_lsp.paths import workspace_dir

        return workspace_dir(self.root, self.config.workspace_path)

    @property
    def python(self) -> Path:
        from oh_lsp.validation.pytest_runner import project_python

        return project_python(self.root, self.config.python)

    def sandbox(self) -> Sandbox:
        """A sandboxed copy of the project to run the checks' tests in, as the settings choose (`warn` hears the
        warning of a run without one, before it starts)."""
        from oh_lsp.validation.sandbox import Sandbox

        config = self.config
        return Sandbox(
            self.root, self.scratch, secrets=config.secrets(), exclude=self.exclude, mode=config.sandbox, warn=self.warn
        )


class TaskKind(Protocol):
    """What a task kind module provides, as module-level names. `oh_lsp.kinds.registry` checks that each kind module
    satisfies it (for a type checker) and returns it from `get_kind`."""

    NAME: str  # the kind's value: the SQL column `kind`, `task_type`, the LSP `kind`
    # Part of the result cache's key: change it when the kind's prompt or checks change what a task returns, so that
    # results made by the earlier version are not reused.
    PROMPT_VERSION: str

    def build_messages(
        self, target: Target, task: QueuedTask, context_tokens: int | None = None
    ) -> list[dict[str, str]]:
        """The chat prompt, fitted to the model's context (`context_tokens`, when known)."""
        ...

    def make_candidate(self, answer: str, target: Target, task: QueuedTask | None = None) -> Candidate:
        """The code taken out of the model's answer, placed as an `Edit`. Raises `ExtractionError` when there is none."""
        ...

    async def check(self, candidate: Candidate, target: Target, env: CheckEnv) -> tuple[ValidationResult, Candidate]:
        """The kind's checks, run for real: the verdict, and the candidate narrowed to what passed them."""
        ...

    def recompute(self, result: dict[str, Any]) -> Recompute:
        """How to redo the edit of a finished task's `result` against a file that changed meanwhile."""
        ...

    def cache_inputs(self, target: Target) -> list[Path]:
        """The project files besides the target (relative to the root) whose text changes what a task on `target`
        returns: part of the result cache's key."""
        ...


@dataclass
class Conversation:
    """One line of questions and answers within a task: about the whole target, or one segment of it."""

    label: str  # what it is about, for progress and the result ("" for the whole target)
    messages: Callable[[int | None], list[dict[str, str]]]  # its first prompt, fitted to a context length
    state: Any = None  # the kind's own
    aims_at: str = ""  # what it asks for, in a few words for progress ("lines 9–12, branch 14→16")


@dataclass
class Turn:
    """A kind's word on one answer of a conversation."""

    verdict: ValidationResult
    candidate: Candidate | None
    feedback: str | None  # the next question; None ends the conversation


@dataclass
class Ending:
    """How a session ends: what is delivered (a completed task) or kept for inspection (a failed one)."""

    status: Literal["completed", "failed"]
    verdict: ValidationResult
    candidate: Candidate | None
    result: dict[str, Any] = field(default_factory=dict)  # the kind's own result fields
    quality: dict[str, tuple[int, int]] = field(default_factory=dict)  # model -> (its tests, of them kept)


class TaskSession(Protocol):
    """A task run by its kind's own rules (`open_session(target, task, env, threshold)`). The pipeline calls
    `prepare` before any model call, asks each conversation's questions (several conversations at once), hands each
    answer to `judge`, and ends with `finish`."""

    async def prepare(self) -> ValidationResult | None:
        """Measures before the first model call. A verdict (failed) ends the task there; `TargetError` too."""
        ...

    def conversations(self, context_tokens: int | None) -> list[Conversation]: ...

    async def judge(self, conversation: Conversation, answer: str, iteration: int, model: str) -> Turn: ...

    @property
    def kept_any(self) -> bool:
        """Whether anything is kept yet (a model that stops answering then ends the task with it)."""
        ...

    async def finish(self) -> Ending: ...
