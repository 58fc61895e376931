"""What a finished task's result says, as plain data, for every front end: the tests kept, the tests dropped (each
with its reason), and coverage and mutation score before → after.

`progress_text.outcome_text` words these facts; the language server sends them to the editors (`ohLsp/taskEnded`).
They are read here once, from the result the task kind wrote (its `validation.details`, its findings, its `coverage`
and `mutation` figures), so that both say the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dropped:
    name: str
    reason: str


@dataclass(frozen=True)
class ResultFacts:
    kept: list[str]
    dropped: list[Dropped]
    coverage: dict[str, float] | None  # line coverage of the target in percent: {before, after}
    mutation: dict[str, float | None] | None  # mutants of the target detected, in percent: {before, after}


def _findings(validation: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in [*validation.get("errors", []), *validation.get("warnings", [])] if isinstance(f, dict)]


def _reason(name: str, findings: list[dict[str, Any]]) -> str:
    """Why the test `name` was dropped: its finding's message (without the test's name), else its code."""
    last = name.rsplit("::", 1)[-1]
    for finding in findings:
        raw = str(finding.get("test") or "")
        test = raw.split("[", 1)[0]
        if test and (test == name or test.rsplit("::", 1)[-1] == last):
            message = str(finding.get("message") or finding.get("code") or "dropped")
            for prefix in (f"{raw} ", f"{test} ", f"{last} "):
                if message.startswith(prefix):
                    return message[len(prefix) :]
            return message
    return "dropped"


def _number(value: Any, scale: float) -> float | None:
    return round(value * scale, 2) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _coverage(figures: Any) -> dict[str, float] | None:
    """Line coverage before → after, in percent (both ends known), from the result's `coverage`."""
    if not isinstance(figures, dict):
        return None
    before, after = _number(figures.get("before"), 1.0), _number(figures.get("after"), 1.0)
    return {"before": before, "after": after} if before is not None and after is not None else None


def _mutation(figures: Any) -> dict[str, float | None] | None:
    """Mutation score before → after, in percent, from the result's `mutation` (scores 0–1; `before` is null when
    the existing tests were not analysed)."""
    if not isinstance(figures, dict) or _number(figures.get("after"), 100.0) is None:
        return None
    return {"before": _number(figures.get("before"), 100.0), "after": _number(figures.get("after"), 100.0)}


def result_facts(status: str, result: dict[str, Any] | None) -> ResultFacts:
    """The facts of a task that ended with `status` and `result` (None: it has none)."""
    result = result or {}
    validation = result.get("validation") or {}
    details = validation.get("details") or {}
    findings = _findings(validation)
    dropped = details.get("dropped")
    if dropped is None:
        dropped = sorted({str(f["test"]) for f in validation.get("errors", []) if f.get("test")})
    kept = details.get("kept")
    if kept is None:
        kept = [name for name in result.get("tests") or [] if name not in dropped] if status == "completed" else []
    return ResultFacts(
        kept=[str(name) for name in kept],
        dropped=[Dropped(str(name), _reason(str(name), findings)) for name in dropped],
        coverage=_coverage(result.get("coverage")),
        mutation=_mutation(result.get("mutation") or details.get("mutation")),
    )
