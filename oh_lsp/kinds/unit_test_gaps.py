"""What a unit_test task aims at, in words a model can act on: the target's gaps (lines and branches no test runs,
mutants no test notices), the part of the target a task is about, and the segments a task splits into.

- An `Aim` is the part of the target a task is about: the whole module, a function or class (`symbol`), or one gap
  the editor's "Generate tests for this" named (`gap`).
- `Left` is what is still to do inside the aim: the coverage gaps (coverage_map.gaps) and the mutants still alive.
- Segments (CoverUp's way): for a module over the prompt's budget, or with many gaps, each gap goes to the smallest
  function or class that holds it, and each of those is one conversation of the task.

All of it is pure: coverage and mutation reports come in as data.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from oh_lsp.validation.coverage_map import FileCoverage, Gap, gaps, gaps_in_words
from oh_lsp.validation.mutation import MutantResult

MANY_GAPS = 12  # more gaps than this (lines, branches and mutants together) split the task into segments
MAX_SEGMENTS = 6  # conversations of one task at most: the segments with the most to do
MAX_MUTANTS_NAMED = 15  # surviving mutants named in one message
GAP_KINDS = ("lines", "branch", "mutant")


@dataclass(frozen=True)
class Aim:
    """The lines of the target a task is about (`first`–`last`; None: the whole module). A gap task also names the
    gap's kind ("lines", "branch" or "mutant") and its words (`detail`)."""

    first: int | None = None
    last: int | None = None
    kind: str | None = None
    detail: str = ""
    label: str = ""  # how progress names it: "Class.method", "lines 9–12"

    def holds(self, line: int, end_line: int | None = None) -> bool:
        if self.first is None or self.last is None:
            return True
        return line <= self.last and (end_line or line) >= self.first

    def takes(self, kind: str) -> bool:
        return self.kind is None or self.kind == kind

    def to_dict(self) -> dict[str, Any]:
        return {"first": self.first, "last": self.last, "kind": self.kind, "detail": self.detail, "label": self.label}


def aim_of(metadata: dict[str, Any], source: str) -> Aim:
    """The aim a task's metadata gives: `gap` ({kind, line, end_line, detail}; 1-based lines), else `symbol` (a
    dotted name in the target), else the whole module. Raises ValueError for a gap or symbol that makes no sense."""
    gap = metadata.get("gap")
    if isinstance(gap, dict):
        kind = gap.get("kind")
        line, end = gap.get("line"), gap.get("end_line", gap.get("line"))
        if kind not in GAP_KINDS or not isinstance(line, int) or not isinstance(end, int) or not 1 <= line <= end:
            raise ValueError(f"a gap is {{kind: lines|branch|mutant, line, end_line, detail}}, not {gap!r}")
        words = "line" if line == end else "lines"
        where = f"{line}" if line == end else f"{line}–{end}"
        label = {"lines": f"{words} {where}", "branch": f"branch at line {line}", "mutant": f"mutant at line {line}"}
        return Aim(line, end, kind, str(gap.get("detail") or ""), label[kind])
    symbol = metadata.get("symbol")
    if isinstance(symbol, str) and symbol:
        node = find_definition(source, symbol)
        if node is None:
            raise ValueError(f"there is no function or class {symbol} in the target")
        return Aim(first_line(node), node.end_lineno or node.lineno, label=symbol)
    return Aim()


def find_definition(source: str, dotted: str) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | None:
    """The function or class `dotted` (`Class.method`) of a module's source."""
    scope: list[ast.stmt] = ast.parse(source).body
    found = None
    for part in dotted.split("."):
        found = next(
            (
                n
                for n in scope
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == part
            ),
            None,
        )
        if found is None:
            return None
        scope = found.body
    return found


def first_line(node: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


# --- what is left ---------------------------------------------------------------------------------------------------
@dataclass
class Left:
    """What no test does yet inside an aim: coverage gaps, and mutants that survived the tests that run them."""

    gaps: list[Gap] = field(default_factory=list)
    mutants: list[MutantResult] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.gaps and not self.mutants

    def count(self) -> int:
        return len(self.gaps) + len(self.mutants)

    def words(self, source: str) -> str:
        """The gaps and the surviving mutants, one line each, with the source line each one starts at."""
        parts = [gaps_in_words(self.gaps, source)] if self.gaps else []
        if self.mutants:
            parts.append(mutants_in_words(self.mutants))
        return "\n".join(parts)

    def names(self, limit: int = 2) -> str:
        """The first gaps by name, for progress: "lines 9–12, branch 14→16 and 3 more"."""
        names = [_gap_name(g) for g in self.gaps] + [f"mutant at line {r.mutant.line}" for r in self.mutants]
        text = ", ".join(names[:limit])
        return text + (f" and {len(names) - limit} more" if len(names) > limit else "")

    def short(self) -> str:
        """A few words for progress and warnings: "3 gaps, 2 mutants alive"."""
        bits = []
        if self.gaps:
            bits.append(f"{len(self.gaps)} gap{'s' if len(self.gaps) != 1 else ''}")
        if self.mutants:
            bits.append(f"{len(self.mutants)} mutant{'s' if len(self.mutants) != 1 else ''} alive")
        return ", ".join(bits) or "nothing"


def _gap_name(gap: Gap) -> str:
    if gap.kind == "branch":
        return f"branch {gap.line}→{gap.target or 'exit'}"
    return f"line {gap.line}" if gap.line == gap.end_line else f"lines {gap.line}–{gap.end_line}"


def mutants_in_words(mutants: list[MutantResult], *, limit: int = MAX_MUTANTS_NAMED) -> str:
    """The surviving mutants as prompt text, a short line each: "- line 53: `<` becomes `<=`". The line itself is
    not quoted again: every prompt shows the source it names with its line numbers (P6b in docs/benchmarks.md)."""
    out = ["No test notices these changes:"]
    out += [f"- line {r.mutant.line}: {r.mutant.description}" for r in mutants[:limit]]
    if len(mutants) > limit:
        out.append(f"- and {len(mutants) - limit} more")
    return "\n".join(out)


def what_is_left(
    coverage: FileCoverage, alive: Iterable[MutantResult], aim: Aim, tests: Iterable[str] | None = None
) -> Left:
    """The gaps `tests` (all measured when None) leave inside `aim`, and the mutants of `alive` that survived there
    (a mutant no test reaches sits on a gap line already)."""
    found = [g for g in gaps(coverage, tests) if aim.holds(g.line, g.end_line) and aim.takes(g.kind)]
    survivors = [
        r
        for r in alive
        if r.status == "survived" and aim.holds(r.mutant.line, r.mutant.end_line) and aim.takes("mutant")
    ]
    return Left(found, sorted(survivors, key=lambda r: (r.mutant.line, r.mutant.col, r.mutant.id)))


# --- segments -------------------------------------------------------------------------------------------------------
@dataclass
class Segment:
    """One conversation of a task: the lines it is about (the whole module: `first` is None) and what is left there."""

    label: str  # "" for the whole module (or the task's own aim), else the function or class: "Week.fromstring"
    aim: Aim
    left: Left


Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def definition_nodes(tree: ast.Module) -> list[tuple[str, Definition]]:
    """(dotted name, node) of every function and class, nested ones too, in the order of the source."""
    found: list[tuple[str, Definition]] = []

    def walk(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{node.name}"
                found.append((name, node))
                walk(node.body, name + ".")
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                walk([n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt)], prefix)

    walk(tree.body, "")
    return found


def definitions(tree: ast.Module) -> list[tuple[int, int, str]]:
    """(first line, last line, dotted name) of every function and class, nested ones too."""
    return [(first_line(node), node.end_lineno or node.lineno, name) for name, node in definition_nodes(tree)]


def smallest(found: list[tuple[int, int, str]], line: int) -> tuple[int, int, str] | None:
    """The smallest of the `definitions` that holds `line` (None: the line is at module level)."""
    holding = [d for d in found if d[0] <= line <= d[1]]
    return min(holding, key=lambda d: (d[1] - d[0], -d[0])) if holding else None


def _weight(left: Left) -> int:
    return sum(g.end_line - g.line + 1 for g in left.gaps) + len(left.mutants)


def segments(source: str, left: Left, aim: Aim, *, fits: bool) -> list[Segment]:
    """The conversations of a task: one for the whole aim when its prompt `fits` the model's budget and has at most
    `MANY_GAPS` gaps; else one per smallest function or class holding gaps (what is at module level makes one of its
    own), the `MAX_SEGMENTS` with the most to do, most first."""
    if left.empty or (fits and left.count() <= MANY_GAPS) or aim.kind is not None:
        return [Segment("", aim, left)]
    found = definitions(ast.parse(source))
    groups: dict[tuple[int, int, str], Left] = {}
    module_level = (0, 0, "")

    def group(line: int) -> Left:
        return groups.setdefault(smallest(found, line) or module_level, Left())

    for gap in left.gaps:
        group(gap.line).gaps.append(gap)
    for mutant in left.mutants:
        group(mutant.mutant.line).mutants.append(mutant)
    if len(groups) == 1 and fits:
        return [Segment("", aim, left)]
    chosen = sorted(groups.items(), key=lambda item: (-_weight(item[1]), item[0][0]))[:MAX_SEGMENTS]
    out = []
    for (first, last, name), part in chosen:
        if not name:  # module-level code: its gaps' own lines
            lines = [g.line for g in part.gaps] + [m.mutant.line for m in part.mutants]
            ends = [g.end_line for g in part.gaps] + [m.mutant.end_line for m in part.mutants]
            first, last, name = min(lines), max(ends), "module-level code"
        out.append(Segment(name, Aim(first, last, label=name), part))
    return out


# --- the target as the prompt shows it ------------------------------------------------------------------------------
def numbered(source: str, first: int = 1, last: int | None = None) -> str:
    """Lines `first`–`last` of `source`, each after its line number, as the gaps name them."""
    lines = source.splitlines()
    last = len(lines) if last is None else min(last, len(lines))
    width = len(str(last))
    return "\n".join(f"{n:>{width}}: {lines[n - 1]}" for n in range(max(first, 1), last + 1))


def excerpt(source: str, aim: Aim) -> str:
    """The module's imports and top-level names, then the aim's lines, numbered (for a module over the budget)."""
    if aim.first is None or aim.last is None:
        return numbered(source)
    tree = ast.parse(source)
    head_end = max(
        [n.end_lineno or n.lineno for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], default=0
    )
    parts = [numbered(source, 1, head_end)] if head_end else []
    if head_end < aim.first - 1:
        parts.append("   ...")
    parts.append(numbered(source, max(aim.first, head_end + 1), aim.last))
    return "\n".join(parts)
