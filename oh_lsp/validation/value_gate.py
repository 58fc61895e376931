"""The per-test value gate: which generated tests are kept (contract: "What is delivered when validation is mixed").

A generated test is kept when it runs, passes 3 runs with different seeds, asserts something, and adds value over the
project's existing tests plus the tests kept so far: a line or a branch of the target that nothing covered, or a
mutant that nothing killed. (Staying inside its sandbox is issue 13's check, applied before this one.)

"Asserts something" is read from the test's AST: an `assert`, a `raise`, a call of `pytest.raises`, `pytest.warns`,
`pytest.deprecated_call` or `pytest.fail`, or of anything named `assert…` (`self.assertEqual`, a mock's
`assert_called_once_with`, `numpy.testing.assert_allclose`) or `self.fail`, in the test or in a function of the same
module that it calls (module-level helpers, and methods of its own class through `self`/`cls`). A bare comparison
(`x == pytest.approx(1)` on its own line) asserts nothing. When the test module's coverage was measured too, the
runtime check also asks that at least one of those asserting lines ran in that test (`assertion_ran`).

Value is chosen greedily, so that the outcome depends on the set of candidates, not on their order: among the tests
not yet kept, take the one that adds the most (new lines + new branches + newly killed mutants, each counting 1) over
the baseline and the tests already kept, ties going to the smaller node id; keep it, add what it covers and kills,
and repeat until no test adds anything. The others add nothing (`adds-nothing`). All of it is pure: the measures come
in as data.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from oh_lsp.validation import findings as F
from oh_lsp.validation.coverage_map import Arc

_PYTEST_ASSERTING = {"raises", "warns", "deprecated_call", "fail"}


# --- asserts something ---------------------------------------------------------------------------------------------
def _find_test(
    tree: ast.Module, name: str
) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, ast.ClassDef | None] | None:
    """`test_x` or `TestA::test_b` (a node id's last parts, parameters stripped)."""
    parts = name.split("[", 1)[0].split("::")
    scope: list[ast.stmt] = tree.body
    owner: ast.ClassDef | None = None
    for part in parts[:-1]:
        owner = next((n for n in scope if isinstance(n, ast.ClassDef) and n.name == part), None)
        if owner is None:
            return None
        scope = owner.body
    found = next(
        (n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == parts[-1]), None
    )
    return (found, owner) if found else None


def _is_asserting(node: ast.AST) -> bool:
    if isinstance(node, (ast.Assert, ast.Raise)):
        return True
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute):
        if func.attr.startswith("assert"):
            return True
        if isinstance(func.value, ast.Name):
            if func.value.id == "pytest" and func.attr in _PYTEST_ASSERTING:
                return True
            if func.value.id == "self" and func.attr == "fail":
                return True
    return isinstance(func, ast.Name) and (func.id.startswith("assert") or func.id in ("raises", "warns"))


def asserting_lines(tree: ast.Module, name: str) -> set[int] | None:
    """The lines of the test `name` and of the helpers it calls in the same module that assert something; None when
    the module has no such test."""
    found = _find_test(tree, name)
    if found is None:
        return None
    test, owner = found
    functions = {
        n.name: n
        for n in tree.body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and not n.name.startswith("test")
    }
    methods = {
        n.name: n for n in (owner.body if owner else []) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    lines: set[int] = set()
    seen: set[int] = set()
    todo: list[ast.AST] = [test]
    while todo:
        function = todo.pop()
        if id(function) in seen:
            continue
        seen.add(id(function))
        for node in ast.walk(function):
            if _is_asserting(node):
                lines.add(node.lineno)  # type: ignore[attr-defined]
            if isinstance(node, ast.Call):
                callee = node.func
                if isinstance(callee, ast.Name) and callee.id in functions:
                    todo.append(functions[callee.id])
                elif (
                    isinstance(callee, ast.Attribute)
                    and isinstance(callee.value, ast.Name)
                    and callee.value.id in ("self", "cls")
                    and callee.attr in methods
                ):
                    todo.append(methods[callee.attr])
    return lines


def asserts_something(tree: ast.Module, name: str) -> bool:
    return bool(asserting_lines(tree, name))


def assertion_ran(asserting: set[int], executed: set[int]) -> bool:
    """The runtime check: at least one asserting line ran during the test (its lines of the test module)."""
    return bool(asserting & executed)


# --- the gate -------------------------------------------------------------------------------------------------------
@dataclass
class CandidateTest:
    """What was measured of one generated test."""

    nodeid: str
    outcomes: list[str]  # per seeded run: passed | failed | error | skipped | timeout (fewer when runs were skipped)
    asserts: bool  # the static check
    assertion_ran: bool | None = None  # the runtime check, when the test module's lines were measured
    lines: set[int] = field(default_factory=set)  # statements of the target it runs
    branches: set[Arc] = field(default_factory=set)  # branch arcs of the target it takes
    kills: set[str] = field(default_factory=set)  # mutant ids it kills (among those still alive)
    message: str = ""  # the failure's message, when it failed


@dataclass
class GateVerdict:
    nodeid: str
    kept: bool
    code: str = ""  # the finding code when dropped
    reason: str = ""
    new_lines: list[int] = field(default_factory=list)
    new_branches: list[Arc] = field(default_factory=list)
    new_kills: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"test": self.nodeid, "kept": self.kept}
        if self.kept:
            out["adds"] = {
                "lines": self.new_lines,
                "branches": [list(a) for a in self.new_branches],
                "mutants": self.new_kills,
            }
        else:
            out.update(code=self.code, reason=self.reason)
        return out


def _run_verdict(test: CandidateTest) -> GateVerdict | None:
    """Dropped for how it ran or what it asserts (None: it may go on to the value step)."""
    first = test.outcomes[0] if test.outcomes else "error"
    if first != "passed":
        code = F.TEST_FAILED if first == "failed" else F.TEST_ERROR
        return GateVerdict(test.nodeid, False, code, f"{first} on its first run: {test.message}".rstrip(": "))
    for run, outcome in enumerate(test.outcomes[1:], start=2):
        if outcome != "passed":
            return GateVerdict(test.nodeid, False, F.FLAKY_TEST, f"passed, then {outcome} on run {run}")
    if not test.asserts:
        return GateVerdict(test.nodeid, False, F.NO_ASSERTION, "asserts nothing: it cannot fail whatever the code does")
    if test.assertion_ran is False:
        return GateVerdict(test.nodeid, False, F.NO_ASSERTION, "its assertions never ran")
    return None


def choose_tests(
    candidates: Iterable[CandidateTest],
    covered_lines: set[int],
    covered_branches: set[Arc],
    killed: set[str],
    *,
    runs: int = 3,
) -> list[GateVerdict]:
    """The gate's verdict on each candidate, in node id order (module docstring). `covered_lines`,
    `covered_branches` and `killed` are what the existing tests and the tests kept in earlier attempts already do."""
    verdicts: dict[str, GateVerdict] = {}
    eligible: dict[str, CandidateTest] = {}
    for test in candidates:
        dropped = _run_verdict(test)
        if dropped is None and len(test.outcomes) < runs:
            dropped = GateVerdict(test.nodeid, False, F.TEST_ERROR, f"ran {len(test.outcomes)} of {runs} times")
        if dropped is None:
            eligible[test.nodeid] = test
        else:
            verdicts[test.nodeid] = dropped
    lines, branches, kills = set(covered_lines), set(covered_branches), set(killed)
    kept_names: list[str] = []
    while eligible:
        gains = {name: (t.lines - lines, t.branches - branches, t.kills - kills) for name, t in eligible.items()}
        best = min(eligible.values(), key=lambda t: (-sum(len(part) for part in gains[t.nodeid]), t.nodeid))
        new_lines, new_branches, new_kills = gains[best.nodeid]
        if not (new_lines or new_branches or new_kills):
            break
        verdicts[best.nodeid] = GateVerdict(
            best.nodeid,
            True,
            new_lines=sorted(new_lines),
            new_branches=sorted(new_branches),
            new_kills=sorted(new_kills),
        )
        lines |= new_lines
        branches |= new_branches
        kills |= new_kills
        kept_names.append(best.nodeid.rsplit("::", 1)[-1])
        del eligible[best.nodeid]
    over = "the existing tests" + (f" and the kept {', '.join(kept_names)}" if kept_names else "")
    for test in eligible.values():
        verdicts[test.nodeid] = GateVerdict(
            test.nodeid, False, F.NO_VALUE, f"adds no line, branch or killed mutant over {over}"
        )
    return [verdicts[name] for name in sorted(verdicts)]
