#!/usr/bin/env python3
"""Print every import cycle in a Python package and exit non-zero if there is one.

    python scripts/import_cycles.py [PACKAGE_DIR ...]     (default: oh_lsp/ next to this script's folder)

An import counts wherever it is written: at module level and inside functions or methods, because either one runs
the other module and can find it half-initialised. Imports under `if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`) do
not count: they never run. `importlib.import_module("a.b")` with a literal name counts like `import a.b`.

How an import is resolved to a module of the package:
- `import a.b.c` is an edge to `a.b.c`;
- `from a.b import c` is an edge to the module `a.b.c` when that is a module of the package (a submodule imported by
  name), else to `a.b` (a name defined in `a.b`, for a package in its `__init__.py`);
- relative imports are resolved against the importing module's package (an `__init__.py` is its own package).
The parent packages that Python initialises on the way (`a` and `a.b` for `import a.b.c`) are not edges: a parent is
always initialised first, and a child importing it by name is an explicit `from a import x`, which is one.

Each cycle is a strongly connected component of the import graph (modules that all reach each other), printed with
the imports inside it (file:line) so that it is clear which one to cut, and the shortest cycle through it.
Exit status: 0 no cycle, 1 at least one cycle, 2 bad arguments or a file that does not parse.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path


def shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    path: Path
    line: int


def module_names(package_dir: Path) -> dict[str, Path]:
    """Every module of the package, by dotted name; a package's name maps to its `__init__.py`."""
    root = package_dir.name
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [root, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        if all(part.isidentifier() for part in parts):
            modules[".".join(parts)] = path
    return modules


def is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


class ImportCollector(ast.NodeVisitor):
    """The (line, dotted name, imported names) of every import that can run, relative ones made absolute."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[tuple[int, str, list[str]]] = []

    def visit_If(self, node: ast.If) -> None:
        if is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((node.lineno, alias.name, []))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            if node.level - 1 >= len(parts):
                return  # beyond the top of the package: Python raises ImportError, nothing to link
            anchor = ".".join(parts[: len(parts) - (node.level - 1)])
            base = f"{anchor}.{base}" if base else anchor
        self.found.append((node.lineno, base, [alias.name for alias in node.names]))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("import_module", "__import__") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and not first.value.startswith("."):
                self.found.append((node.lineno, first.value, []))
        self.generic_visit(node)


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    collector = ImportCollector(module, is_package=path.name == "__init__.py")
    collector.visit(tree)
    edges: list[Import] = []
    for line, base, names in collector.found:
        targets: list[str] = []
        for name in names:
            if f"{base}.{name}" in modules:
                targets.append(f"{base}.{name}")  # from pkg import submodule
            elif base in modules:
                targets.append(base)  # from module import name (or *)
        if not names:  # import a.b.c: the deepest of a.b.c, a.b, a that is a module of the package
            parts = base.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()
            if parts:
                targets.append(".".join(parts))
        for target in dict.fromkeys(targets):
            if target != module:
                edges.append(Import(module, target, path, line))
    return edges


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; the components with more than one module, each sorted, in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def shortest_cycle(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """The shortest cycle through the component's first module (breadth-first, inside the component)."""
    inside = set(members)
    start = members[0]
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & inside):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    return [start]  # unreachable for a component of two or more


def check(package_dir: Path) -> tuple[int, list[str]]:
    """(number of cycles, report lines) for one package."""
    modules = module_names(package_dir)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    edges: list[Import] = []
    for name, path in modules.items():
        for edge in imports_of(name, path, modules):
            graph[name].add(edge.target)
            edges.append(edge)
    components = strongly_connected(graph)
    lines: list[str] = []
    for number, members in enumerate(components, 1):
        lines.append(f"cycle {number}: {' -> '.join(shortest_cycle(graph, members))}")
        lines.append(f"  {len(members)} modules import each other: {', '.join(members)}")
        lines.append("  imports inside the cycle:")
        inside = set(members)
        for edge in sorted(edges, key=lambda e: (e.source, e.target, e.line)):
            if edge.source in inside and edge.target in inside:
                lines.append(f"    {shown(edge.path)}:{edge.line}: {edge.source} -> {edge.target}")
    if not components:
        lines.append(f"no import cycle in {package_dir.name} ({len(modules)} modules, {len(edges)} imports)")
    else:
        lines.append(f"{len(components)} import cycle(s) in {package_dir.name}")
    return len(components), lines


def main(argv: list[str]) -> int:
    default = Path(__file__).resolve().parent.parent / "oh_lsp"
    packages = [Path(arg) for arg in argv] or [default]
    found = 0
    for package_dir in packages:
        if not package_dir.is_dir():
            print(f"import_cycles: {package_dir} is not a directory", file=sys.stderr)
            return 2
        try:
            count, lines = check(package_dir)
        except SyntaxError as exc:
            print(f"import_cycles: cannot parse {exc.filename}:{exc.lineno}: {exc.msg}", file=sys.stderr)
            return 2
        print("\n".join(lines))
        found += count
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
