"""Reading Python source for the documentation and refactoring kinds: definitions by qualified name, docstrings,
behaviour-only comparison, and minimal line edits that leave the rest of a user's file untouched."""

from __future__ import annotations

import ast
import copy
import difflib
from collections.abc import Iterator

from oh_lsp.edits import TextEdit

Def = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def definitions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, Definition]]:
    """(qualified name, node) for every function and class, outermost first (`Class.method`)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, Def):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from definitions(node, name + ".")


def is_public(qualname: str) -> bool:
    return all(
        not part.startswith("_") or (part.startswith("__") and part.endswith("__")) for part in qualname.split(".")
    )


def find_symbol(tree: ast.Module, qualname: str) -> Definition | None:
    return dict(definitions(tree)).get(qualname)


def docstring_node(node: ast.AST) -> ast.Expr | None:
    body = getattr(node, "body", None)
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        return body[0]
    return None


def strip_docstrings(tree: ast.Module) -> str:
    """A dump of the tree without docstrings: equal dumps mean equal behaviour (as far as the code goes)."""
    clone = copy.deepcopy(tree)
    for node in [clone, *(n for _, n in definitions(clone))]:
        doc = docstring_node(node)
        if doc is not None:
            node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(clone, include_attributes=False)


def first_difference(old: ast.Module, new: ast.Module) -> int:
    """The 1-based line, in `old`, of the first top-level statement whose behaviour differs in `new`."""
    for before, after in zip(old.body, new.body, strict=False):
        if strip_docstrings(ast.Module([before], [])) != strip_docstrings(ast.Module([after], [])):
            return before.lineno
    return old.body[min(len(old.body), len(new.body)) - 1].lineno if old.body else 1


def public_names(tree: ast.Module) -> dict[str, int]:
    """Public names a module offers (functions, classes, their public methods, top-level assignments, `__all__`)
    with the line each is defined at."""
    names = {
        qual: node.lineno
        for qual, node in definitions(tree)
        if is_public(qual) and all(isinstance(p, ast.ClassDef) for p in _parents(tree, qual))
    }
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if isinstance(target, ast.Name) and is_public(target.id):
                names.setdefault(target.id, node.lineno)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            if isinstance(node.value, (ast.List, ast.Tuple)):
                for element in node.value.elts:
                    if isinstance(element, ast.Constant) and isinstance(element.value, str):
                        names.setdefault(element.value, node.lineno)
    return names


def _parents(tree: ast.Module, qualname: str) -> list[Definition]:
    defs = dict(definitions(tree))
    parts = qualname.split(".")
    return [defs[".".join(parts[:i])] for i in range(1, len(parts)) if ".".join(parts[:i]) in defs]


def line_edits(old: str, new: str) -> list[TextEdit]:
    """The smallest whole-line replacements that turn `old` into `new` (unchanged lines are not touched)."""
    old_lines = old.splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    edits = []
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        edits.append(TextEdit(i1, 0, i2, 0, "".join(new_lines[j1:j2])))
    if old_lines and not old.endswith("\n") and edits and edits[-1].end_line == len(old_lines):
        last = edits[-1]  # the last old line has no newline: end the range at its end, not on a missing line
        edits[-1] = TextEdit(last.start_line, 0, len(old_lines) - 1, len(old_lines[-1]), last.new_text)
    return edits


def unified_diff(old: str, new: str, path: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=f"a/{path}", tofile=f"b/{path}"
        )
    )
