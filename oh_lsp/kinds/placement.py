"""Adding generated tests to a test module through its AST, keeping the user's text as it is.

New imports go after the module's last top-level import; new tests and helpers go at the end. Positions come from
the AST of the existing file, never from the model. Test names are never duplicated: a generated test whose name is
taken is renamed (`test_x_2`); a generated helper whose name is taken by different code is left out, with a note.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from oh_lsp.edits import TextEdit

Defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass
class Placement:
    text: str  # the whole resulting module
    edits: list[TextEdit] = field(default_factory=list)  # insertions into the existing text
    tests: list[str] = field(default_factory=list)  # names of the generated tests, as placed
    renamed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # notes on what was left out and why


def is_test_name(name: str) -> bool:
    return name.startswith(("test", "Test"))


def _segment(lines: list[str], node: ast.stmt) -> str:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(lines[first - 1 : node.end_lineno]) + "\n"


def _bound_names(node: ast.stmt) -> set[str]:
    if isinstance(node, Defs):
        return {node.name}
    names: set[str] = set()
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    for target in targets:
        for sub in ast.walk(target) if target is not None else []:
            if isinstance(sub, ast.Name):
                names.add(sub.id)
    return names


def _import_keys(node: ast.stmt) -> list[tuple[str, str, str | None, int]]:
    if isinstance(node, ast.Import):
        return [("import", a.name, a.asname, 0) for a in node.names]
    if isinstance(node, ast.ImportFrom):
        return [(node.module or "", a.name, a.asname, node.level) for a in node.names]
    return []


def _import_line(key: tuple[str, str, str | None, int]) -> str:
    module, name, asname, level = key
    alias = f" as {asname}" if asname else ""
    if module == "import":
        return f"import {name}{alias}\n"
    return f"from {'.' * level}{module} import {name}{alias}\n"


def _rename(source: str, old: str, new: str) -> str:
    return re.sub(
        rf"^(\s*(?:async\s+)?(?:def|class)\s+){re.escape(old)}\b", rf"\g<1>{new}", source, count=1, flags=re.MULTILINE
    )


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__main__" in ast.dump(node.test)


def merge_tests(existing: str, generated: str) -> Placement:
    """Place the tests and helpers of `generated` into `existing` (both must parse; `existing` may be empty)."""
    old_tree = ast.parse(existing)
    new_tree = ast.parse(generated)
    new_lines = generated.split("\n")
    old_lines = existing.split("\n")
    taken: dict[str, str] = {}
    for node in old_tree.body:
        for name in _bound_names(node) if not isinstance(node, (ast.Import, ast.ImportFrom)) else ():
            taken[name] = ast.dump(node)
    have_imports = {k for node in old_tree.body for k in _import_keys(node)}
    result = Placement(text="")
    future: list[str] = []
    imports: list[str] = []
    body: list[str] = []
    for node in new_tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for key in _import_keys(node):
                if key not in have_imports:
                    have_imports.add(key)
                    (future if key[0] == "__future__" else imports).append(_import_line(key))
            continue
        if _is_main_guard(node) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            continue  # `if __name__ == "__main__"` blocks and stray docstrings are not tests
        source = _segment(new_lines, node)
        names = _bound_names(node)
        if isinstance(node, Defs) and is_test_name(node.name):
            name = node.name
            if name in taken:
                n = 2
                while f"{name}_{n}" in taken:
                    n += 1
                result.renamed[name] = f"{name}_{n}"
                name = f"{name}_{n}"
                source = _rename(source, node.name, name)
            taken[name] = ast.dump(node)
            result.tests.append(name)
            body.append(source)
            continue
        clash = sorted(n for n in names if n in taken and taken[n] != ast.dump(node))
        if clash:
            result.skipped.append(f"left out generated {', '.join(clash)}: the name is already defined differently")
            continue
        if names and all(n in taken for n in names):
            continue  # identical helper already there
        for name in names:
            taken[name] = ast.dump(node)
        body.append(source)

    inserts: dict[tuple[int, int], str] = {}

    def insert(line: int, text: str) -> None:
        position = (line, 0)
        if line >= len(old_lines):  # after the last line of a file without a final newline
            position, text = (len(old_lines) - 1, len(old_lines[-1])), "\n" + text
        inserts[position] = inserts.get(position, "") + text

    if future:
        insert(_after_docstring(old_tree), "".join(future))
    if imports:
        insert(_after_imports(old_tree), "".join(imports))
    if body:
        spacer = "\n\n" if existing.strip() else ""
        insert(
            len(old_lines) - 1 if existing.endswith("\n") or not existing else len(old_lines),
            spacer + "\n\n".join(s.rstrip("\n") + "\n" for s in body),
        )
    edits = [TextEdit(line, char, line, char, text) for (line, char), text in inserts.items()]
    result.edits = edits
    result.text = apply_text_edits(existing, edits)
    return result


def _after_docstring(tree: ast.Module) -> int:
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first.end_lineno or 0
    return 0


def _after_imports(tree: ast.Module) -> int:
    last = 0
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            last = node.end_lineno or last
        elif last:
            break
    return last or _after_docstring(tree)


def apply_text_edits(text: str, edits: list[TextEdit]) -> str:
    """Apply non-overlapping edits (0-based line/character positions) to `text`."""
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)

    def offset(line: int, character: int) -> int:
        if line >= len(lines):
            return len(text)
        return min(offsets[line] + character, len(text))

    out = text
    for edit in sorted(edits, key=lambda e: (e.start_line, e.start_character), reverse=True):
        start = offset(edit.start_line, edit.start_character)
        end = offset(edit.end_line, edit.end_character)
        out = out[:start] + edit.new_text + out[end:]
    return out


def _referenced_names(tree: ast.Module, skip: set[int]) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if id(node) in skip:
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                names.add(sub.id)
            elif isinstance(sub, ast.Constant) and isinstance(sub.value, str) and sub.value.isidentifier():
                names.add(sub.value)  # e.g. names used in string annotations or pytest.mark.usefixtures("x")
    return names


def filter_generated(source: str, drop: set[str]) -> str:
    """`source` without the tests named in `drop` (`test_x`, or `TestClass::test_y` for a method), and without the
    imports only they used. A class left without tests goes too. Other text stays as the model wrote it."""
    tree = ast.parse(source)
    lines = source.split("\n")
    remove: list[tuple[int, int]] = []  # 1-based inclusive line ranges
    for node in tree.body:
        if isinstance(node, Defs) and node.name in drop:
            remove.append((_first_line(node), node.end_lineno or node.lineno))
        elif isinstance(node, ast.ClassDef):
            methods = [
                m for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and is_test_name(m.name)
            ]
            gone = [m for m in methods if f"{node.name}::{m.name}" in drop]
            if methods and len(gone) == len(methods):
                remove.append((_first_line(node), node.end_lineno or node.lineno))
            else:
                remove.extend((_first_line(m), m.end_lineno or m.lineno) for m in gone)
    kept_lines = _without(lines, remove)
    trimmed = "\n".join(kept_lines)
    return _drop_unused_imports(trimmed)


def _first_line(node: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno] + [d.lineno for d in decorators])


def _without(lines: list[str], ranges: list[tuple[int, int]]) -> list[str]:
    doomed = {n for start, end in ranges for n in range(start, end + 1)}
    kept = [line for number, line in enumerate(lines, start=1) if number not in doomed]
    out: list[str] = []
    for line in kept:  # collapse the blank runs left behind to at most two lines
        if not line.strip() and len(out) >= 2 and not out[-1].strip() and not out[-2].strip():
            continue
        out.append(line)
    return out


def _drop_unused_imports(source: str) -> str:
    tree = ast.parse(source)
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    used = _referenced_names(tree, {id(n) for n in imports})
    lines = source.split("\n")
    replacements: dict[int, tuple[int, str | None]] = {}
    for node in imports:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        keep = [a for a in node.names if (a.asname or a.name.split(".")[0]) in used or a.name == "*"]
        if len(keep) == len(node.names):
            continue
        if not keep:
            replacements[node.lineno] = (node.end_lineno or node.lineno, None)
            continue
        aliases = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in keep)
        statement = (
            f"import {aliases}"
            if isinstance(node, ast.Import)
            else f"from {'.' * node.level}{node.module or ''} import {aliases}"
        )
        replacements[node.lineno] = (node.end_lineno or node.lineno, " " * node.col_offset + statement)
    out: list[str] = []
    number = 1
    while number <= len(lines):
        if number in replacements:
            end, text = replacements[number]
            if text is not None:
                out.append(text)
            number = end + 1
            continue
        out.append(lines[number - 1])
        number += 1
    return "\n".join(out)
