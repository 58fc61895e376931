"""The arguments of the editor commands (one object each), checked field by field so that a bad call gets a message
a person can act on: what is wrong, and what the command takes."""

from __future__ import annotations

import re
import types
import typing
from typing import Any, Literal

import attrs

from oh_lsp.config import OpenHandsConfig
from oh_lsp.field_rules import rule_of
from oh_lsp.lsp.errors import CommandError, shown

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_MISSING = object()
_UNIONS = (typing.Union, types.UnionType)
_QUALITY = rule_of(OpenHandsConfig.model_fields["quality_threshold"])  # a task's threshold, as the setting's


@attrs.frozen
class Position:
    line: int  # 0-based, in the editor's position encoding (UTF-16 unless negotiated otherwise)
    character: int


SymbolArg = str | Position  # a dotted name (`Class.method`) or the symbol at a position
GAP_KINDS = ("lines", "branch", "mutant")


@attrs.frozen
class Gap:
    """One uncovered range or surviving mutant a task aims at (the "Generate tests for this" action): an LSP range
    (0-based lines), and the gap in words."""

    kind: str  # lines | branch | mutant
    start: Position
    end: Position
    detail: str = ""

    @property
    def lines(self) -> tuple[int, int]:
        """The 1-based lines it spans (a range that ends at a line's first character ends on the line before)."""
        last = self.end.line - 1 if self.end.line > self.start.line and self.end.character == 0 else self.end.line
        return self.start.line + 1, max(last, self.start.line) + 1


def _gap(value: Any, key: str) -> tuple[Gap | None, str | None]:
    words = f"{key} must be {{kind: 'lines' | 'branch' | 'mutant', range: {{start, end}}, detail?: string}}"
    if not isinstance(value, dict) or not {"kind", "range"} <= set(value) or set(value) - {"kind", "range", "detail"}:
        return None, words
    if value["kind"] not in GAP_KINDS:
        return None, f"{key}.kind must be one of {', '.join(map(repr, GAP_KINDS))}, not {shown(value['kind'])}"
    if not isinstance(value.get("detail", ""), str):
        return None, f"{key}.detail must be a string"
    span = value["range"]
    points = []
    for end in ("start", "end"):
        point = span.get(end) if isinstance(span, dict) else None
        position, problem = _check(point, Position, f"{key}.range.{end}")
        if problem or position is None:
            return None, f"{key}.range must be {{start: {{line, character}}, end: {{line, character}}}} (0-based)"
        points.append(position)
    if (points[1].line, points[1].character) < (points[0].line, points[0].character):
        return None, f"{key}.range ends before it starts"
    return Gap(value["kind"], points[0], points[1], value.get("detail", "")), None


def arg(key: str | None = None, default: Any = _MISSING) -> Any:
    """An argument field; `key` is its name in the JSON object when it differs from the attribute's."""
    metadata = {"key": key}
    return attrs.field(metadata=metadata) if default is _MISSING else attrs.field(default=default, metadata=metadata)


@attrs.frozen
class TargetArgs:
    uri: str = arg()
    symbol: SymbolArg | None = arg(default=None)
    description: str = arg(default="")
    no_cache: bool = arg("noCache", False)  # skip the result cache


@attrs.frozen
class GenerateArgs(TargetArgs):
    gap: Gap | None = arg(default=None)


@attrs.frozen
class DocumentArgs:
    uri: str = arg()
    symbol: SymbolArg | None = arg(default=None)
    no_cache: bool = arg("noCache", False)


@attrs.frozen
class RefactorArgs:
    uri: str = arg()
    symbol: SymbolArg = arg()
    instruction: str = arg()
    no_cache: bool = arg("noCache", False)


@attrs.frozen
class CancelArgs:
    task_id: str | None = arg("taskId", None)
    progress_token: str | None = arg("progressToken", None)


@attrs.frozen
class RetryArgs:
    task_id: str = arg("taskId")
    with_feedback: bool = arg("withFeedback", False)


@attrs.frozen
class CandidateArgs:
    task_id: str = arg("taskId")
    attempt: int | None = arg(default=None)  # the repair-loop attempt (1 = the first answer)
    segment: str | None = arg(default=None)  # one file of the candidate, relative to the project root


@attrs.frozen
class NoArgs:
    pass


@attrs.frozen
class ListTasksArgs:
    status: Literal["pending", "running", "completed", "failed", "cancelled"] | None = arg(default=None)


@attrs.frozen
class SelectModelArgs:
    kind: Literal["unit_test", "documentation", "refactoring"] = arg("category")  # the task kind
    complexity: Literal["simple", "moderate", "complex"] | None = arg(default=None)
    quality_threshold: float | None = arg("qualityThreshold", None)


@attrs.frozen
class SetModelArgs:
    name: str | None = arg()  # null gives the choice back to the selector


@attrs.frozen
class ApiKeyArgs:
    api_key: str = arg("apiKey")  # never echoed in an error message


def _key(field: attrs.Attribute[Any]) -> str:
    return field.metadata.get("key") or field.name


def _type_text(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in _UNIONS:
        return " | ".join(_type_text(a) for a in args)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if annotation is Position:
        return "{line, character}"
    if annotation is Gap:
        return "{kind, range, detail?}"
    return {str: "string", bool: "boolean", float: "number", int: "integer ≥ 1", type(None): "null"}.get(
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
            else (None, f"{key} must be one of {', '.join(map(repr, args))}, not {shown(value)}")
        )
    if annotation is str:
        if not isinstance(value, str) or not value.strip():
            return None, f"{key} must be a non-empty string"
        return value, None
    if annotation is bool:
        return (value, None) if isinstance(value, bool) else (None, f"{key} must be true or false, not {shown(value)}")
    if annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        return (value, None) if ok else (None, f"{key} must be a whole number from 1, not {shown(value)}")
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return (float(value), None) if ok else (None, f"{key} must be a number, not {shown(value)}")
    if annotation is Gap:
        return _gap(value, key)
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
    problems = [f"unknown argument {shown(name)}" for name in data if name not in keys]
    values: dict[str, Any] = {}
    for key, field in keys.items():
        if key not in data:
            if field.default is attrs.NOTHING:
                problems.append(f"{key} is missing")
            continue
        value, problem = _check(data[key], hints[field.name], key)
        if problem is None and isinstance(value, str) and key == "symbol" and not _DOTTED.match(value):
            problem = f"symbol must be a dotted name such as 'Class.method', not {shown(value)}"
        if problem:
            problems.append(problem)
        else:
            values[field.name] = value
    if cls is CancelArgs and not problems and not (values.get("task_id") or values.get("progress_token")):
        problems.append("give taskId or progressToken")
    if (
        cls is SelectModelArgs
        and values.get("quality_threshold") is not None
        and not _QUALITY.accepts(values["quality_threshold"])
    ):
        problems.append(f"qualityThreshold must be {_QUALITY.range_words()}")
    if problems:
        raise CommandError(f"{command}: {'; '.join(problems)}. {expected}.")
    return cls(**values)
