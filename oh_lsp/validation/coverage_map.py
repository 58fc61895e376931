"""Line and branch coverage of one file, per test: what each test ran, what the tests together leave uncovered, and
those gaps in words.

A branch is an arc of coverage.py's branch measure: from a line with two or more possible exits to one of them. A
negative destination `-n` is an exit from the code object that starts at line n (the function returns): it reads
"exit". The empty test name `""` holds what ran outside any test (collection, module imports).

Everything here is pure: the measure itself is made by `run_pytest(..., cover_map=[...])` (see baseline.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Arc = tuple[int, int]
OUTSIDE_TESTS = ""


@dataclass
class FileCoverage:
    """One file's statements and branch arcs, and the lines and branch arcs each test ran."""

    statements: set[int] = field(default_factory=set)
    branches: set[Arc] = field(default_factory=set)
    lines_by_test: dict[str, set[int]] = field(default_factory=dict)
    arcs_by_test: dict[str, set[Arc]] = field(default_factory=dict)

    @classmethod
    def from_dump(cls, raw: dict[str, Any] | None) -> FileCoverage:
        """From coverage_dump.py's entry for the file (None when it was not measured)."""
        if not raw:
            return cls()
        contexts = raw.get("contexts", {})
        return cls(
            statements=set(raw.get("statements", [])),
            branches={(a, b) for a, b in raw.get("branches", [])},
            lines_by_test={name: set(c.get("lines", [])) for name, c in contexts.items()},
            arcs_by_test={name: {(a, b) for a, b in c.get("arcs", [])} for name, c in contexts.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        tests = sorted(set(self.lines_by_test) | set(self.arcs_by_test))
        return {
            "statements": sorted(self.statements),
            "branches": sorted([a, b] for a, b in self.branches),
            "contexts": {
                name: {
                    "lines": sorted(self.lines_by_test.get(name, ())),
                    "arcs": sorted([a, b] for a, b in self.arcs_by_test.get(name, ())),
                }
                for name in tests
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileCoverage:
        return cls.from_dump(data)

    def tests(self) -> set[str]:
        """The tests that ran anything of the file (not the outside-tests entry)."""
        return (set(self.lines_by_test) | set(self.arcs_by_test)) - {OUTSIDE_TESTS}

    def lines_of(self, tests: Iterable[str] | None = None) -> set[int]:
        """Statements run by `tests` (all tests when None) or outside any test."""
        names = self._names(tests)
        return {line for name in names for line in self.lines_by_test.get(name, ())} & self.statements

    def branches_of(self, tests: Iterable[str] | None = None) -> set[Arc]:
        names = self._names(tests)
        return {arc for name in names for arc in self.arcs_by_test.get(name, ())} & self.branches

    def _names(self, tests: Iterable[str] | None) -> set[str]:
        chosen = set(self.lines_by_test) | set(self.arcs_by_test) if tests is None else set(tests)
        return chosen | {OUTSIDE_TESTS}

    def tests_covering(self, lines: Iterable[int]) -> set[str]:
        """The tests that ran any of `lines`."""
        wanted = set(lines)
        return {name for name, ran in self.lines_by_test.items() if name != OUTSIDE_TESTS and ran & wanted}

    def restricted(self, tests: Iterable[str]) -> FileCoverage:
        """The same file with only `tests` (and what ran outside tests) kept."""
        keep = set(tests) | {OUTSIDE_TESTS}
        return FileCoverage(
            self.statements,
            self.branches,
            {k: v for k, v in self.lines_by_test.items() if k in keep},
            {k: v for k, v in self.arcs_by_test.items() if k in keep},
        )

    def merged(self, other: FileCoverage) -> FileCoverage:
        """Both measures of the same file together (for example, existing tests and new ones, run apart)."""
        lines = {k: set(v) for k, v in self.lines_by_test.items()}
        arcs = {k: set(v) for k, v in self.arcs_by_test.items()}
        for name, ran_lines in other.lines_by_test.items():
            lines.setdefault(name, set()).update(ran_lines)
        for name, ran_arcs in other.arcs_by_test.items():
            arcs.setdefault(name, set()).update(ran_arcs)
        return FileCoverage(self.statements | other.statements, self.branches | other.branches, lines, arcs)


@dataclass(frozen=True)
class Totals:
    """Coverage figures of a set of tests: coverage.py's line+branch percent is
    (statements run + branch arcs taken) / (statements + branch arcs)."""

    statements: int
    covered_lines: int
    branches: int
    covered_branches: int

    @property
    def fraction(self) -> float:
        total = self.statements + self.branches
        return (self.covered_lines + self.covered_branches) / total if total else 1.0

    @property
    def percent(self) -> float:
        return round(100.0 * self.fraction, 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "statements": self.statements,
            "covered_lines": self.covered_lines,
            "branches": self.branches,
            "covered_branches": self.covered_branches,
            "percent": self.percent,
        }


def totals(coverage: FileCoverage, tests: Iterable[str] | None = None) -> Totals:
    return Totals(
        len(coverage.statements),
        len(coverage.lines_of(tests)),
        len(coverage.branches),
        len(coverage.branches_of(tests)),
    )


@dataclass(frozen=True)
class Gap:
    """Something no test runs: a range of statements, or a branch arc whose source line ran."""

    kind: str  # "lines" | "branch"
    line: int  # first line (for a branch: the line it leaves)
    end_line: int  # last line (for a branch: the same line)
    target: int | None = None  # a branch's destination line; None for "exit"
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _arc_text(arc: Arc) -> str:
    source, destination = arc
    return f"{source}→{destination if destination > 0 else 'exit'}"


def gaps(coverage: FileCoverage, tests: Iterable[str] | None = None) -> list[Gap]:
    """What `tests` leave uncovered, in line order: runs of missing statements (no statement that ran between them),
    then each untaken branch whose source line did run (a branch out of a missing line is part of that line's gap)."""
    ran = coverage.lines_of(tests)
    missing = sorted(coverage.statements - ran)
    found: list[Gap] = []
    statements = sorted(coverage.statements)
    position = {line: i for i, line in enumerate(statements)}
    start: int | None = None
    previous = 0
    for line in [*missing, None]:
        if start is not None and (line is None or position[line] != position[previous] + 1):
            words = f"line {start} is never run" if start == previous else f"lines {start}–{previous} are never run"
            found.append(Gap("lines", start, previous, text=words))
            start = None
        if line is not None:
            start = line if start is None else start
            previous = line
    taken = coverage.branches_of(tests)
    for arc in sorted(coverage.branches - taken):
        if arc[0] in ran:
            target = arc[1] if arc[1] > 0 else None
            found.append(Gap("branch", arc[0], arc[0], target, f"the branch {_arc_text(arc)} is never taken"))
    return sorted(found, key=lambda g: (g.line, g.kind != "lines", g.target or 0))


def gaps_in_words(found: list[Gap], source: str, *, limit: int = 30) -> str:
    """The gaps as prompt text: one line each, with the source line it starts at."""
    lines = source.splitlines()
    out = []
    for gap in found[:limit]:
        code = lines[gap.line - 1].strip() if 0 < gap.line <= len(lines) else ""
        out.append(f"- {gap.text}: `{code}`" if code else f"- {gap.text}")
    if len(found) > limit:
        out.append(f"- and {len(found) - limit} more")
    return "\n".join(out)
