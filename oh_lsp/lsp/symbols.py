"""Functions and classes of a Python module: the one under the cursor, or the one a dotted name points at.

Positions here are Python's: 1-based lines and 0-based columns in code points. The server converts LSP positions
(UTF-16 by default) before asking.

The one under the cursor is asked for at every cursor move (code actions), so its cost is bounded whatever the
module's size: a module of up to `WHOLE_TEXT_LIMIT` characters is parsed whole (once per text); in a larger one the
lookup looks at no more than `WINDOW_LINES` lines above the cursor and as many below (`lines_around` finds them
without splitting the whole text), and parses only the top-level function or class there that holds the cursor.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, replace
from functools import lru_cache

from oh_lsp.lsp.errors import shown

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
WHOLE_TEXT_LIMIT = 64 * 1024  # characters (~1,500 lines): a module this small is parsed whole
WINDOW_LINES = 1000  # in a larger one, the lines above the cursor (and below) that the lookup looks at
_BLOCK = 1 << 16  # characters whose newlines are counted at once while looking for a line
_TOP_LEVEL = re.compile(r"(?:async[ \t]+def|def|class)[ \t]")


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
    """The innermost function or class whose lines hold `line` (1-based). Bounded: see the module's docstring."""
    found = symbols(source) if len(source) <= WHOLE_TEXT_LIMIT else _symbols_near(source, line)
    best = None
    for symbol in found:
        if symbol.line <= line <= symbol.end_line and (best is None or symbol.line >= best.line):
            best = symbol
    return best


def _symbols_near(source: str, line: int) -> tuple[Symbol, ...]:
    """The symbols of the top-level function or class that holds `line`, if it starts and ends within
    `WINDOW_LINES` of it (a larger one is not looked for: its start is too far away to find in bounded time)."""
    first, lines = lines_around(source, line, WINDOW_LINES, WINDOW_LINES)
    cursor = min(line - first, len(lines) - 1)
    start = next((i for i in range(cursor, -1, -1) if _TOP_LEVEL.match(lines[i])), None)
    if start is None:
        return ()
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i][:1] not in ("", " ", "\t", "\n", "\r", "#")), len(lines)
    )
    shift = first + start - 1
    return tuple(
        replace(s, line=s.line + shift, end_line=s.end_line + shift) for s in symbols("".join(lines[start:end]))
    )


def lines_around(source: str, line: int, above: int, below: int) -> tuple[int, list[str]]:
    """(the number of the first line, the lines) from `line - above` to `line + below` of `source` (1-based), found
    without splitting the whole text: newlines are counted a block at a time, then only the window is split."""
    first = max(line - above, 1)
    start = _line_start(source, first, 0, 1)
    stop = _line_start(source, line + below + 1, start, first)
    return first, source[start:stop].splitlines(True)


def _line_start(source: str, line: int, offset: int, at_line: int) -> int:
    """Where line `line` starts, looking from `offset` (where line `at_line` starts); the end when there is none."""
    left, size = line - at_line, len(source)
    while left > 0 and offset < size:
        end = min(offset + _BLOCK, size)
        count = source.count("\n", offset, end)
        if count >= left:
            for _ in range(left):
                offset = source.index("\n", offset) + 1
            return offset
        left, offset = left - count, end
    return offset if left <= 0 else size


def find_symbol(source: str, qualname: str) -> Symbol | None:
    return next((s for s in symbols(source) if s.qualname == qualname), None)


def describe_missing(source: str, qualname: str, path: str) -> str:
    names = [s.qualname for s in symbols(source)]
    if not names:
        return f"{path} defines no functions or classes (or does not parse), so it has no symbol {shown(qualname)}"
    listed = ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
    return f"{shown(qualname)} is not defined in {path}; it defines: {listed}"
