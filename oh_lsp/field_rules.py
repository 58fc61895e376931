"""The rule a configuration field states, read from its pydantic `Field`: the kind of value (whole number, number,
true/false, text, one of some choices), its bounds, whether null is allowed, and its default.

So that a setting's rule is written once, in `config.py`, and every front end checks values and words its messages
from there (`rule_of(OpenHandsConfig.model_fields["max_repair_iterations"]).words()` is "a whole number from 0 to
10"). Light: it reads the `FieldInfo` it is given and imports neither pydantic nor the configuration.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

_UNIONS = (typing.Union, types.UnionType)
_KINDS = {bool: "bool", int: "whole", float: "number", str: "text"}


@dataclass(frozen=True)
class FieldRule:
    kind: str  # whole | number | bool | text | choice | other
    low: float | None = None  # the lowest value allowed (for a whole number, `gt=0` reads as 1)
    high: float | None = None
    low_open: bool = False  # the bound itself is not allowed (only for numbers that need not be whole)
    high_open: bool = False
    nullable: bool = False
    choices: tuple[Any, ...] = ()
    default: Any = None

    def accepts(self, value: Any) -> bool:
        """Whether `value` (as JSON gives it) obeys the rule. Null obeys it only when the field allows null."""
        if value is None:
            return self.nullable
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "text":
            return isinstance(value, str) and bool(value.strip())
        if self.kind == "choice":
            return value in self.choices
        if self.kind not in ("whole", "number"):
            return False
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return False
        if self.kind == "whole" and not float(value).is_integer():
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def words(self, unit: str = "") -> str:
        """What a value must be, for a message: "a whole number of seconds, at least 1", "a number from 0 to 1"."""
        if self.kind == "bool":
            text = "true or false"
        elif self.kind == "text":
            text = "a non-empty string"
        elif self.kind == "choice":
            text = "one of " + ", ".join(map(repr, self.choices))
        else:
            text = ("a whole number" if self.kind == "whole" else "a number") + (f" of {unit}" if unit else "")
            if self.low is not None and self.high is not None and not (self.low_open or self.high_open):
                text += f" from {self.low:g} to {self.high:g}"
            else:
                if self.low is not None:
                    text += f", {'more than' if self.low_open else 'at least'} {self.low:g}"
                if self.high is not None:
                    text += f", {'less than' if self.high_open else 'at most'} {self.high:g}"
        return text + (", or null" if self.nullable else "")

    def range_words(self) -> str:
        """The bounds alone: "between 0 and 1" (for a value whose type was already checked)."""
        return f"between {self.low:g} and {self.high:g}"


def rule_of(field: Any) -> FieldRule:
    """The rule of a pydantic `FieldInfo` (a model's `model_fields[name]`, or a `Field(...)` of its own)."""
    annotation = field.annotation
    nullable = False
    if typing.get_origin(annotation) in _UNIONS:
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(options) < len(typing.get_args(annotation))
        annotation = options[0] if len(options) == 1 else Any
    if typing.get_origin(annotation) is Literal:
        return FieldRule("choice", nullable=nullable, choices=typing.get_args(annotation), default=field.default)
    kind = _KINDS.get(annotation, "other")
    low = high = None
    low_open = high_open = False
    for constraint in field.metadata:  # annotated_types' Ge, Gt, Le, Lt
        if getattr(constraint, "ge", None) is not None:
            low = constraint.ge
        if getattr(constraint, "gt", None) is not None:
            low, low_open = constraint.gt, True
        if getattr(constraint, "le", None) is not None:
            high = constraint.le
        if getattr(constraint, "lt", None) is not None:
            high, high_open = constraint.lt, True
    if kind == "whole":  # a whole number above 0 is at least 1
        if low is not None and low_open:
            low, low_open = math.floor(low) + 1, False
        if high is not None and high_open:
            high, high_open = math.ceil(high) - 1, False
    return FieldRule(kind, low, high, low_open, high_open, nullable, default=field.default)
