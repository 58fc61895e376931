"""The `workspace/executeCommand` commands of the editor contract (ids in `ids.py`): their arguments (one object,
checked field by field so that a bad call gets a message a person can act on), and what each one does.

Each command is a plain async function of the session and its parsed arguments. Task-starting commands answer at
once with `{taskId, progressToken}`; the work goes on in the engine.
"""

from __future__ import annotations

import re
import types
import typing
from typing import TYPE_CHECKING, Any, Literal

import attrs

from oh_lsp.lsp import reports
from oh_lsp.lsp.ids import (
    CANCEL_TASK,
    DOCUMENT,
    GENERATE_TESTS,
    LIST_MODELS,
    LIST_TASKS,
    QUEUE_STATS,
    REFACTOR,
    RETRY_TASK,
    SELECT_MODEL,
    SET_API_KEY,
    SET_MODEL,
    SHOW_METRICS,
)

if TYPE_CHECKING:
    from oh_lsp.lsp.session import Session
    from oh_lsp.tasks import QueuedTask

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_MISSING = object()
_UNIONS = (typing.Union, types.UnionType)


class CommandError(ValueError):
    """Bad arguments, or a target oh-lsp cannot work on. Sent to the editor as InvalidParams with this message."""


# --- arguments -----------------------------------------------------------------------------------------------------
@attrs.frozen
class Position:
    line: int  # 0-based, in the editor's position encoding (UTF-16 unless negotiated otherwise)
    character: int


Symbol = str | Position  # a dotted name (`Class.method`) or the symbol at a position


def arg(key: str | None = None, default: Any = _MISSING) -> Any:
    """An argument field; `key` is its name in the JSON object when it differs from the attribute's."""
    metadata = {"key": key}
    return attrs.field(metadata=metadata) if default is _MISSING else attrs.field(default=default, metadata=metadata)


@attrs.frozen
class TargetArgs:
    uri: str = arg()
    symbol: Symbol | None = arg(default=None)
    description: str = arg(default="")


@attrs.frozen
class DocumentArgs:
    uri: str = arg()
    symbol: Symbol | None = arg(default=None)


@attrs.frozen
class RefactorArgs:
    uri: str = arg()
    symbol: Symbol = arg()
    instruction: str = arg()


@attrs.frozen
class CancelArgs:
    task_id: str | None = arg("taskId", None)
    progress_token: str | None = arg("progressToken", None)


@attrs.frozen
class RetryArgs:
    task_id: str = arg("taskId")
    with_feedback: bool = arg("withFeedback", False)


@attrs.frozen
class NoArgs:
    pass


@attrs.frozen
class ListTasksArgs:
    status: Literal["pending", "running", "completed", "failed", "cancelled"] | None = arg(default=None)


@attrs.frozen
class SelectModelArgs:
    category: Literal["unit_test", "documentation", "refactoring"] = arg()
    complexity: Literal["simple", "moderate", "complex"] | None = arg(default=None)
    quality_threshold: float | None = arg("qualityThreshold", None)


@attrs.frozen
class SetModelArgs:
    name: str | None = arg()  # null gives the choice back to the selector


@attrs.frozen
class ApiKeyArgs:
    api_key: str = arg("apiKey")  # never echoed in an error message


def _key(field: attrs.Attribute) -> str:
    return field.metadata.get("key") or field.name


def _type_text(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in _UNIONS:
        return " | ".join(_type_text(a) for a in args)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if annotation is Position:
        return "{line, character}"
    return {str: "string", bool: "boolean", float: "number", int: "integer", type(None): "null"}.get(
        annotation, str(annotation)
    )


def usage(cls: type) -> str:
    hints = typing.get_type_hints(cls)
    parts = []
    for field in attrs.fields(cls):
        optional = field.default is not attrs.NOTHING
        parts.append(f"{_key(field)}{'?' if optional else ''}: {_type_text(hints[field.name])}")
    return "{" + ", ".join(parts) + "}"


def _check(value: Any, annotation: Any, key: str) -> tuple[Any, str | None]:
    """(the value as the field holds it, or a problem)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in _UNIONS:
        problems = []
        for option in args:
            converted, problem = _check(value, option, key)
            if problem is None:
                return converted, None
            if option is not type(None):
                problems.append(problem)
        return None, problems[0] if len(problems) == 1 else f"{key} must be {_type_text(annotation)}"
    if annotation is type(None):
        return (None, None) if value is None else (None, f"{key} must be null")
    if origin is Literal:
        return (
            (value, None)
            if value in args
            else (None, f"{key} must be one of {', '.join(map(repr, args))}, not {value!r}")
        )
    if annotation is str:
        if not isinstance(value, str) or not value.strip():
            return None, f"{key} must be a non-empty string"
        return value, None
    if annotation is bool:
        return (value, None) if isinstance(value, bool) else (None, f"{key} must be true or false, not {value!r}")
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return (float(value), None) if ok else (None, f"{key} must be a number, not {value!r}")
    if annotation is Position:
        if (
            isinstance(value, dict)
            and set(value) == {"line", "character"}
            and all(isinstance(value[k], int) and not isinstance(value[k], bool) and value[k] >= 0 for k in value)
        ):
            return Position(value["line"], value["character"]), None
        return None, f"{key} must be a dotted name such as 'Class.method' or {{line, character}} (0-based)"
    raise TypeError(f"unsupported argument type {annotation!r}")


def parse(cls: type, command: str, arguments: tuple[Any, ...] | list[Any]) -> Any:
    """Check the arguments of `command` against `cls`; raises `CommandError` saying what is wrong and what it takes."""
    hints = typing.get_type_hints(cls)
    fields = attrs.fields(cls)
    expected = f"{command} takes one object argument {usage(cls)}"
    if not arguments and all(f.default is not attrs.NOTHING for f in fields):
        return cls()
    if len(arguments) != 1 or not isinstance(arguments[0], dict):
        raise CommandError(
            f"{expected}; it got {len(arguments)} argument(s)"
            + ("" if len(arguments) != 1 else f" of type {type(arguments[0]).__name__}")
        )
    data = arguments[0]
    keys = {_key(f): f for f in fields}
    problems = [f"unknown argument {name!r}" for name in data if name not in keys]
    values: dict[str, Any] = {}
    for key, field in keys.items():
        if key not in data:
            if field.default is attrs.NOTHING:
                problems.append(f"{key} is missing")
            continue
        value, problem = _check(data[key], hints[field.name], key)
        if problem is None and isinstance(value, str) and key == "symbol" and not _DOTTED.match(value):
            problem = f"symbol must be a dotted name such as 'Class.method', not {value!r}"
        if problem:
            problems.append(problem)
        else:
            values[field.name] = value
    if cls is CancelArgs and not problems and not (values.get("task_id") or values.get("progress_token")):
        problems.append("give taskId or progressToken")
    if (
        cls is SelectModelArgs
        and values.get("quality_threshold") is not None
        and not 0 <= values["quality_threshold"] <= 1
    ):
        problems.append("qualityThreshold must be between 0 and 1")
    if problems:
        raise CommandError(f"{command}: {'; '.join(problems)}. {expected}.")
    return cls(**values)


# --- commands ------------------------------------------------------------------------------------------------------
async def generate_tests(session: Session, args: TargetArgs) -> dict[str, Any]:
    target = await session.resolve_target(args.uri, args.symbol, GENERATE_TESTS)
    what = target.symbol.qualname if target.symbol else target.module
    instruction = f"Write unit tests for {what} in module {target.module}."
    if args.description.strip():
        instruction += f"\n{args.description.strip()}"
    return await session.submit(target, "unit_test", instruction)


async def document(session: Session, args: DocumentArgs) -> dict[str, Any]:
    session.require_kind("documentation", DOCUMENT)
    target = await session.resolve_target(args.uri, args.symbol, DOCUMENT)
    what = target.symbol.qualname if target.symbol else f"module {target.module}"
    return await session.submit(target, "documentation", f"Add or complete the docstrings of {what}.")


async def refactor(session: Session, args: RefactorArgs) -> dict[str, Any]:
    session.require_kind("refactoring", REFACTOR)
    target = await session.resolve_target(args.uri, args.symbol, REFACTOR)
    return await session.submit(target, "refactoring", args.instruction.strip())


async def cancel_task(session: Session, args: CancelArgs) -> dict[str, Any]:
    task_id = args.task_id
    if task_id is None:
        task_id = session.task_for_token(str(args.progress_token))
        if task_id is None:
            raise CommandError(f"{CANCEL_TASK}: no task has the progress token {args.progress_token!r} in this session")
    return {"cancelled": await session.cancel(task_id, CANCEL_TASK)}


def feedback_text(task: QueuedTask) -> str:
    """What went wrong last time, for the model: the findings (errors first), trimmed, else the error."""
    validation = (task.result or {}).get("validation") or {}
    lines = [
        f"- {f.get('code')}: {f.get('message')}"
        for f in [*validation.get("errors", []), *validation.get("warnings", [])]
    ][:12]
    if not lines and task.error:
        lines = [f"- {task.error}"]
    text = "\n".join(line if len(line) <= 400 else line[:400] + "…" for line in lines)
    return f"A previous attempt was rejected by the checks:\n{text}\nDo not repeat these mistakes." if text else ""


async def retry_task(session: Session, args: RetryArgs) -> dict[str, Any]:
    folder, task = await session.find_task(args.task_id, RETRY_TASK)
    instruction = task.metadata.get("instruction") or task.description  # without an earlier attempt's feedback
    feedback = feedback_text(task) if args.with_feedback else ""
    target = await session.resolve_task_target(folder, task)
    return await session.submit(target, task.task_type, instruction, feedback, retry_of=task.task_id)


async def show_metrics(session: Session, _args: NoArgs) -> dict[str, Any]:
    return await reports.metrics(session)


async def queue_stats(session: Session, _args: NoArgs) -> dict[str, Any]:
    return await reports.queue_stats(session)


async def list_tasks(session: Session, args: ListTasksArgs) -> list[dict[str, Any]]:
    return await reports.list_tasks(session, args.status)


async def select_model(session: Session, args: SelectModelArgs) -> dict[str, Any]:
    from oh_lsp.llm.errors import ModelCallError
    from oh_lsp.tasks import QueuedTask

    metadata: dict[str, Any] = {"category": args.category}
    if args.complexity:
        metadata["complexity"] = args.complexity
    if args.quality_threshold is not None:
        metadata["quality_threshold"] = args.quality_threshold
    try:
        selection = await session.gateway().select(QueuedTask(task_type=args.category, metadata=metadata))
        model = selection.model
    except (ModelCallError, ValueError) as exc:  # no model qualifies: say which constraint excluded which
        return {"model": None, "why": str(exc)}
    return {"model": model.name, "why": selection.why, "chain": [m.name for m in selection.chain]}


async def list_models(session: Session, _args: NoArgs) -> list[dict[str, Any]]:
    return await reports.list_models(session)


async def set_model(session: Session, args: SetModelArgs) -> dict[str, Any]:
    return await session.set_model(args.name)


async def set_api_key(session: Session, args: ApiKeyArgs) -> dict[str, Any]:
    await session.set_api_key(args.api_key)
    return {}


# id -> (argument class, function). ohLsp.refactorPrompt is not here: editors implement it.
COMMANDS: dict[str, tuple[type, Any]] = {
    GENERATE_TESTS: (TargetArgs, generate_tests),
    DOCUMENT: (DocumentArgs, document),
    REFACTOR: (RefactorArgs, refactor),
    CANCEL_TASK: (CancelArgs, cancel_task),
    RETRY_TASK: (RetryArgs, retry_task),
    SHOW_METRICS: (NoArgs, show_metrics),
    QUEUE_STATS: (NoArgs, queue_stats),
    LIST_TASKS: (ListTasksArgs, list_tasks),
    SELECT_MODEL: (SelectModelArgs, select_model),
    LIST_MODELS: (NoArgs, list_models),
    SET_MODEL: (SetModelArgs, set_model),
    SET_API_KEY: (ApiKeyArgs, set_api_key),
}
