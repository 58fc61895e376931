"""Incremental work of a unit_test task (issue 14; docs/caching.md#incremental-work): when the module changed since
the last completed task on it, only its changed functions are asked about, and the tests kept earlier for the rest
are checked again instead of asked for.

What is remembered of a completed task, per target (`Remembered`, kept in the store by the engine's `TaskMemory`):

- a fingerprint of each unit of the module the task was about: each function, method and class (a class without
  its methods: its bases, decorators, attributes) and the module-level code, by the AST of its source without
  positions, so that lines moving, comments and blank lines change nothing;
- the tests it kept (the generated module), and for each the units it runs (from the coverage of the kept tests).

The next task on the target (`plan`): the units whose fingerprint differs, or that are new, are *changed* (none: the
task is a plain one, what the existing tests leave is asked for). A test kept
earlier whose units are all unchanged is *carried*: the session checks it again with the value gate (real pytest, no
model) and it counts like a kept test. A test already in the project's test module (delivered) is neither: the
baseline measures it. The units of the tests that cannot be carried are asked about again. Only then is the model
asked, about the gaps of the units asked and the lines still untested anywhere (`to_ask`), with a prompt that shows those units' source and the rest of
the module by its signatures (`outline`) and of the existing tests only those that name them (`tests_about`).

All of it is pure: sources in, data out.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from oh_lsp.kinds.placement import filter_generated
from oh_lsp.kinds.unit_test_gaps import Left, definition_nodes, definitions, first_line, smallest

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
MODULE_LEVEL = "module-level code"  # the unit of what is not in a function or class
FORMAT = 1  # of a remembered entry


def _fingerprint(node: ast.AST) -> str:
    return hashlib.sha256(ast.dump(node, include_attributes=False).encode()).hexdigest()[:24]


def units(source: str) -> dict[str, str]:
    """Unit name (`f`, `Class`, `Class.method`, `MODULE_LEVEL`) -> fingerprint of `source`'s units (module
    docstring)."""
    tree = ast.parse(source)
    found: dict[str, str] = {}
    for name, node in definition_nodes(tree):
        if isinstance(node, ast.ClassDef):  # a class without its methods (and inner classes): each is a unit
            node = copy.copy(node)
            node.body = [n for n in node.body if not isinstance(n, _DEFS)]
        found[name] = _fingerprint(node)
    module = [
        n
        for i, n in enumerate(tree.body)
        if not isinstance(n, _DEFS)
        and not (i == 0 and isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))  # the docstring
    ]
    found[MODULE_LEVEL] = _fingerprint(ast.Module(body=module, type_ignores=[]))
    return found


def owner(found: list[tuple[int, int, str]], line: int) -> str:
    """The unit `line` belongs to: the smallest function or class holding it (`found` is `definitions(tree)`)."""
    holding = smallest(found, line)
    return holding[2] if holding else MODULE_LEVEL


def units_run(source: str, lines: set[int]) -> list[str]:
    """The functions and methods whose bodies run some of `lines` (the statements a test runs). What runs when the
    module is imported (a `def` line, a class attribute, module-level code) says nothing of what a test is about."""
    in_body: dict[int, str] = {}
    for name, node in definition_nodes(ast.parse(source)):  # an enclosing function first, what it holds after
        if not isinstance(node, ast.ClassDef) and node.body:
            in_body.update(dict.fromkeys(range(node.body[0].lineno, (node.end_lineno or node.lineno) + 1), name))
    return sorted({in_body[line] for line in lines if line in in_body})


def to_ask(
    left: Left, source: str, asked: tuple[str, ...], *, every_mutant: bool = False
) -> tuple[Left, tuple[str, ...]]:
    """What incremental work asks about, and the units it is in: every line no test runs, wherever it is (the tests
    kept earlier are spared, never untested code), and the mutants that survive in the units `asked` (changed, or
    whose earlier tests no longer apply). The mutants that survive in the other units survived the earlier task on
    this code, which was asked about them: they are asked about again only `every_mutant` (when the change leaves
    nothing else to ask)."""
    found = definitions(ast.parse(source))
    mutants = [r for r in left.mutants if every_mutant or owner(found, r.mutant.line) in asked]
    kept = Left(list(left.gaps), mutants)
    open_gaps = {owner(found, g.line) for g in kept.gaps} | {owner(found, r.mutant.line) for r in kept.mutants}
    return kept, tuple(sorted(set(asked) | {unit for unit in open_gaps if unit}))


def functions_count(found: dict[str, str]) -> int:
    return len([name for name in found if name != MODULE_LEVEL])


# --- what is remembered ------------------------------------------------------------------------------------------
@dataclass
class Remembered:
    """What a completed task on a target leaves for the next one (module docstring)."""

    task_id: str
    description: str
    units: dict[str, str]  # the units the task was about -> their fingerprint then
    source: str = ""  # the kept tests, as one module (their names as the gate kept them)
    tests: dict[str, list[str]] = field(default_factory=dict)  # kept test -> the units it runs

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "task_id": self.task_id,
            "description": self.description,
            "units": self.units,
            "source": self.source,
            "tests": self.tests,
        }

    @classmethod
    def from_json(cls, value: Any) -> Remembered | None:
        """The entry `value` holds; None when it is not one (of another format, or damaged)."""
        try:
            if not isinstance(value, dict) or value.get("format") != FORMAT:
                return None
            found = cls(
                task_id=str(value["task_id"]),
                description=str(value["description"]),
                units={str(k): str(v) for k, v in dict(value["units"]).items()},
                source=str(value["source"]),
                tests={str(k): [str(u) for u in list(v)] for k, v in dict(value["tests"]).items()},
            )
            if found.source.strip():
                ast.parse(found.source)
            return found
        except (KeyError, TypeError, ValueError, SyntaxError):
            return None


# --- the next task ------------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """What the next task reuses and what it asks about again."""

    now: dict[str, str]  # the module's units now -> fingerprint
    changed: list[str]  # units changed or new since the remembered task (or never asked about)
    carry: str = ""  # the tests to check again, as one module ("" when there are none)
    carried: list[str] = field(default_factory=list)  # their names
    lost: dict[str, list[str]] = field(default_factory=dict)  # remembered tests not carried -> their units
    present: list[str] = field(default_factory=list)  # remembered tests already in the project's test module

    units_of: dict[str, list[str]] = field(default_factory=dict)  # carried test -> its units

    def asked(self, dropped: list[str] | None = None) -> set[str]:
        """The units to ask about: the changed ones, and those of the tests that cannot be reused (not carried, or
        carried and then dropped by the gate: `dropped`)."""
        again = [*self.lost.values(), *(self.units_of.get(name, []) for name in dropped or [])]
        return set(self.changed) | {unit for ran in again for unit in ran if unit in self.now}


def plan(previous: Remembered, source: str, existing_tests: str) -> Plan:
    """What to reuse of `previous` for a task on `source` now, whose project test module reads `existing_tests`."""
    now = units(source)
    changed = [name for name, fp in now.items() if previous.units.get(name) != fp]
    unchanged = {name for name in now if name not in changed}
    present = _present(previous.source, existing_tests)
    carried, lost, units_of = [], {}, {}
    for name, ran in previous.tests.items():
        if name.split("::", 1)[0] in present:
            continue
        if set(ran) <= unchanged:
            carried.append(name)
            units_of[name] = ran
        else:
            lost[name] = [u for u in ran if u in now]
    drop = set(previous.tests) - set(carried)
    carry = ""
    if carried:
        carry = filter_generated(previous.source, drop) if drop else previous.source
    return Plan(now, changed, carry, sorted(carried), lost, sorted(present), units_of)


def _present(source: str, existing: str) -> set[str]:
    """The top-level tests of `source` that the project's test module `existing` holds already (the same code,
    whatever its name there)."""
    if not source.strip() or not existing.strip():
        return set()
    try:
        theirs = {_body_dump(n) for n in ast.parse(existing).body if isinstance(n, _DEFS)}
        return {n.name for n in ast.parse(source).body if isinstance(n, _DEFS) and _body_dump(n) in theirs}
    except SyntaxError:
        return set()


def _body_dump(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str:
    return ast.dump(ast.Module(body=node.body, type_ignores=[]), include_attributes=False)


# --- the prompt of an incremental task ----------------------------------------------------------------------------
def outline(source: str, asked: set[str]) -> str:
    """`source` numbered as the gaps name its lines, showing in full the units `asked` and the module-level code
    (imports, constants), and of the other functions and classes those the asked units use (by name), by their
    signature (a class: with its attributes)."""
    tree = ast.parse(source)
    shown: set[int] = set()
    nodes = definition_nodes(tree)
    used = {n.id for _, node in nodes if _ in asked for n in ast.walk(node) if isinstance(n, ast.Name)}
    used |= {n.attr for _, node in nodes if _ in asked for n in ast.walk(node) if isinstance(n, ast.Attribute)}
    holders = {name.rsplit(".", i)[0] for name in asked for i in range(1, name.count(".") + 1)}  # classes around them
    seen: set[str] = set()  # the definitions shown (a method only shows inside its class)

    def span(first: int, last: int) -> None:
        shown.update(range(first, last + 1))

    for i, node in enumerate(tree.body):
        if not isinstance(node, _DEFS) and not (i == 0 and isinstance(node, ast.Expr)):
            span(node.lineno, node.end_lineno or node.lineno)
    elided: set[int] = set()  # the last line of a signature whose body is not shown
    for name, node in nodes:
        end = node.end_lineno or node.lineno
        if name in asked and not isinstance(node, ast.ClassDef):
            span(first_line(node), end)
            seen.add(name)
            continue
        parent = name.rpartition(".")[0]
        if (name not in asked and name not in holders and node.name not in used) or (parent and parent not in seen):
            continue
        seen.add(name)
        body_start = node.body[0].lineno if node.body else end + 1
        span(first_line(node), max(node.lineno, body_start - 1))  # decorators and the signature
        if isinstance(node, ast.ClassDef):
            for child in node.body:  # attributes, fields: what constructing one needs
                if not isinstance(child, _DEFS) and not (child is node.body[0] and isinstance(child, ast.Expr)):
                    span(child.lineno, child.end_lineno or child.lineno)
        else:
            elided.add(max(node.lineno, body_start - 1))
    text = source.splitlines()
    lines = sorted(n for n in shown if n <= len(text))
    width = len(str(lines[-1])) if lines else 1
    out: list[str] = []
    for previous, number in zip([0, *lines], lines, strict=False):
        if previous and number > previous + 1 and previous not in elided:
            out.append(" " * width + "  ...")
        out.append(f"{number:>{width}}: {text[number - 1]}" + (" ..." if number in elided else ""))
    return "\n".join(out)


def tests_about(existing: str, names: set[str]) -> str:
    """Of the project's test module `existing`, what is not a test (imports, fixtures, helpers) and the tests that
    name one of `names` (the functions asked about), its `from` imports without the names nothing kept uses; all of it
    when it does not parse."""
    try:
        tree = ast.parse(existing)
    except SyntaxError:
        return existing
    lines = existing.split("\n")
    gone: set[int] = set()
    for node in tree.body:
        if isinstance(node, _DEFS) and node.name.lower().startswith("test"):
            mentioned = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            mentioned |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            if not mentioned & names:
                gone.update(range(first_line(node), (node.end_lineno or node.lineno) + 1))
    instead = _imports_used(tree, lines, gone) if gone else {}
    kept = [instead.get(number, line) for number, line in enumerate(lines, start=1) if number not in gone]
    text = "\n".join(line for line in kept if line is not None)
    return re.sub(r"\n{4,}", "\n\n\n", text).strip("\n") + "\n"


def _imports_used(tree: ast.Module, lines: list[str], gone: set[int]) -> dict[int, str | None]:
    """Line number -> its new text (None: removed) for the top-level `from` imports of a test module, narrowed to the
    names that its lines not in `gone` use (by word, so that a name used only in a string or a decorator counts)."""
    instead: dict[int, str | None] = {}
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
            continue
        own = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        rest = "\n".join(line for number, line in enumerate(lines, start=1) if number not in gone | own)
        words = set(re.findall(r"\w+", rest))
        used = [a for a in node.names if a.name == "*" or (a.asname or a.name) in words]
        if len(used) == len(node.names):
            continue
        text = ast.unparse(ast.ImportFrom(node.module, used, node.level)) if used else None
        instead.update(dict.fromkeys(own, None))
        instead[node.lineno] = text
    return instead
