"""Functions and classes of a Python module: the one under the cursor, or the one a dotted name points at.

Positions here are Python's: 1-based lines and 0-based columns in code points. The server converts LSP positions
(UTF-16 by default) before asking.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache

from oh_lsp.lsp.errors import shown

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class Symbol:
    qualname: str  # `Class.method`
    kind: str  # function | class
    line: int  # 1-based line of the `def`/`class` keyword (decorators come before it)
    end_line: int


@lru_cache(maxsize=32)  # code actions ask again for the same text at every cursor move
def symbols(source: str) -> tuple[Symbol, ...]:
    """Every function and class, outer ones first. A module that does not parse has none."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ()
    found: list[Symbol] = []

    def walk(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, _DEFS):
                name = f"{prefix}{node.name}"
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                found.append(Symbol(name, kind, node.lineno, node.end_lineno or node.lineno))
                walk(node.body, name + ".")

    walk(tree.body, "")
    return tuple(found)


def symbol_at(source: str, line: int) -> Symbol | None:
    """The innermost function or class whose lines hold `line` (1-based)."""
    best = None
    for symbol in symbols(source):
        if symbol.line <= line <= symbol.end_line and (best is None or symbol.line >= best.line):
            best = symbol
    return best


def find_symbol(source: str, qualname: str) -> Symbol | None:
    return next((s for s in symbols(source) if s.qualname == qualname), None)


def describe_missing(source: str, qualname: str, path: str) -> str:
    names = [s.qualname for s in symbols(source)]
    if not names:
        return f"{path} defines no functions or classes (or does not parse), so it has no symbol {shown(qualname)}"
    listed = ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
    return f"{shown(qualname)} is not defined in {path}; it defines: {listed}"
