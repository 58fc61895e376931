"""A small AST mutator: the mutants of a module's functions, each a one-token (or one-expression) change of its text.

Operators (docs/validation.md, "Mutation analysis"):
- arithmetic: `+` ↔ `-`, `*` ↔ `/`, `//` → `/`, `%` → `*`, `**` → `*`, `<<` ↔ `>>`, `&` ↔ `|`, `^` → `&`, in
  expressions and augmented assignments; a unary `-` is removed;
- comparison and boundary: `<` → `<=` and `>=`, `<=` → `<` and `>`, `>` → `>=` and `<=`, `>=` → `>` and `<`,
  `==` ↔ `!=`, `is` ↔ `is not`, `in` ↔ `not in`;
- boolean: `and` ↔ `or`, `not` is removed, `True` ↔ `False`;
- constants: a number n becomes n + 1, a non-empty string gets `XX` on both sides, an empty one becomes `'XX'`;
- return values: `return x` returns `None` instead;
- removed calls: a call whose value is thrown away (`log.append(x)`) becomes `None`.

Only code inside functions and methods is mutated (what runs at import cannot be switched afterwards), never a
docstring, an annotation, an `assert`, an f-string, or a line marked `# pragma: no mutate`. Each mutant is located by
its function (the top-level function or method whose code object is switched; code in nested functions belongs to the
outer one) and by a replacement of a text range that keeps every other line and column where it was. Its id
(`line:col:operator`) is stable for the same text, so kills can be compared across runs.
"""

from __future__ import annotations

import ast
import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MUTATOR_VERSION = "1"  # change it when the mutants of a text change: cached mutation reports are then measured again
NO_MUTATE = re.compile(r"#\s*pragma:\s*no\s+mutate")
_CLASS_CELL = re.compile(r"\b(super|__class__)\b")

_BINOPS: dict[type, list[type]] = {
    ast.Add: [ast.Sub],
    ast.Sub: [ast.Add],
    ast.Mult: [ast.Div],
    ast.Div: [ast.Mult],
    ast.FloorDiv: [ast.Div],
    ast.Mod: [ast.Mult],
    ast.Pow: [ast.Mult],
    ast.LShift: [ast.RShift],
    ast.RShift: [ast.LShift],
    ast.BitAnd: [ast.BitOr],
    ast.BitOr: [ast.BitAnd],
    ast.BitXor: [ast.BitAnd],
}
_SYMBOLS: dict[type, str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.And: "and",
    ast.Or: "or",
}
_COMPARES: dict[type, list[tuple[type, str]]] = {  # (replacement, operator kind)
    ast.Lt: [(ast.LtE, "boundary"), (ast.GtE, "comparison")],
    ast.LtE: [(ast.Lt, "boundary"), (ast.Gt, "comparison")],
    ast.Gt: [(ast.GtE, "boundary"), (ast.LtE, "comparison")],
    ast.GtE: [(ast.Gt, "boundary"), (ast.Lt, "comparison")],
    ast.Eq: [(ast.NotEq, "comparison")],
    ast.NotEq: [(ast.Eq, "comparison")],
    ast.Is: [(ast.IsNot, "comparison")],
    ast.IsNot: [(ast.Is, "comparison")],
    ast.In: [(ast.NotIn, "comparison")],
    ast.NotIn: [(ast.In, "comparison")],
}
_SHORT = 40


@dataclass(frozen=True)
class Mutant:
    """One change of the module's text: `text[start:end]` becomes `replacement` (character offsets)."""

    id: str
    line: int  # 1-based, where the change is (an operator's own position)
    col: int  # 0-based, in characters
    end_line: int
    end_col: int
    operator: str  # arithmetic | comparison | boundary | boolean | constant | return | call
    description: str  # the change in words: "`>=` becomes `>`"
    function: str  # qualified name of the function whose code is switched ("Week.fromstring")
    first_line: int  # that function's first line as Python counts it (its first decorator, else its `def`)
    path: tuple[tuple[str, int], ...]  # (name, first line) of each class around it, then of the function itself
    start: int
    end: int
    replacement: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "path": [list(step) for step in self.path]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Mutant:
        return cls(**{**data, "path": tuple((name, int(line)) for name, line in data["path"])})

    def apply(self, text: str) -> str:
        return text[: self.start] + self.replacement + text[self.end :]


class _Positions:
    """AST positions (line, UTF-8 byte column) to character offsets of the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, line: int, byte_col: int) -> int:
        source = self.lines[line - 1] if line - 1 < len(self.lines) else ""
        return self.starts[line - 1] + len(source.encode("utf-8")[:byte_col].decode("utf-8", "replace"))

    def point(self, offset: int) -> tuple[int, int]:
        """(1-based line, 0-based character column) of an offset."""
        line = max(bisect.bisect_right(self.starts, offset) - 1, 0)
        return line + 1, offset - self.starts[line]

    def start(self, node: ast.AST) -> int:
        return self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]

    def end(self, node: ast.AST) -> int:
        return self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SHORT else text[: _SHORT - 1] + "…"


def _find_token(text: str, base: int, token: str) -> tuple[int, int] | None:
    """Where `token` (an operator or keyword) is in `text`, the stretch between two operands: only parentheses,
    blanks, line continuations and comments may stand around it. Offsets are absolute (`base` added)."""
    cleaned = re.sub(r"#[^\n]*", lambda m: " " * len(m.group()), text)
    pattern = r"\s+".join(re.escape(part) for part in token.split())
    if not token[0].isalpha():  # `<` must not match inside `<=` or `<<`
        pattern = r"(?<![<>=!*/])" + pattern + r"(?![<>=*/])"
    else:
        pattern = r"(?<![\w.])" + pattern + r"(?!\w)"
    found = list(re.finditer(pattern, cleaned))
    rest = re.sub(pattern, "", cleaned, count=1)
    if len(found) != 1 or re.sub(r"[\s()\\]", "", rest):
        return None
    return base + found[0].start(), base + found[0].end()


class _Collector:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = _Positions(text)
        self.mutants: list[Mutant] = []
        self.function = ""
        self.first_line = 0
        self.path: tuple[tuple[str, int], ...] = ()
        self.skipped_lines = {i + 1 for i, line in enumerate(self.pos.lines) if NO_MUTATE.search(line)}

    def add(self, start: int, end: int, replacement: str, operator: str, tag: str, description: str) -> None:
        line, col = self.pos.point(start)
        end_line, end_col = self.pos.point(end)
        if line in self.skipped_lines:
            return
        self.mutants.append(
            Mutant(
                id=f"{line}:{col}:{tag}",
                line=line,
                col=col,
                end_line=end_line,
                end_col=end_col,
                operator=operator,
                description=description,
                function=self.function,
                first_line=self.first_line,
                path=self.path,
                start=start,
                end=end,
                replacement=replacement,
            )
        )

    def replace_node(self, node: ast.AST, replacement: str, operator: str, tag: str, description: str) -> None:
        """Replace a whole expression; a multi-line one keeps its line count inside parentheses."""
        start, end = self.pos.start(node), self.pos.end(node)
        if _CLASS_CELL.search(self.text, start, end):
            return  # without `super`/`__class__` the method has other free variables: its code cannot be switched
        newlines = self.text.count("\n", start, end)
        if newlines:
            replacement = "(" + replacement + "\n" * newlines + ")"
        self.add(start, end, replacement, operator, tag, description)

    def swap_token(self, left: ast.AST, right: ast.AST, old: str, new: str, operator: str, tag: str) -> None:
        """Replace the operator `old` that stands between two operands by `new`."""
        base = self.pos.end(left)
        found = _find_token(self.text[base : self.pos.start(right)], base, old)
        if found is not None:
            self.add(
                found[0], found[1], new, operator, tag, f"`{old}` becomes `{new}`" if new else f"`{old}` is removed"
            )


def _tag(op: type) -> str:
    return op.__name__.lower()


Function = ast.FunctionDef | ast.AsyncFunctionDef


def _first_line(node: Function | ast.ClassDef) -> int:
    """The line Python gives the code object (co_firstlineno): the first decorator's, else the statement's."""
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def _unit_functions(tree: ast.Module) -> Iterator[tuple[tuple[tuple[str, int], ...], Function]]:
    """The functions whose code objects can be switched: top-level ones and methods (of nested classes too), each
    with its path of (name, first line) from the module."""

    def walk(
        body: list[ast.stmt], path: tuple[tuple[str, int], ...]
    ) -> Iterator[tuple[tuple[tuple[str, int], ...], Function]]:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield (*path, (node.name, _first_line(node))), node
            elif isinstance(node, ast.ClassDef):
                yield from walk(node.body, (*path, (node.name, _first_line(node))))

    yield from walk(tree.body, ())


def _body(function: Function) -> list[ast.stmt]:
    body = function.body
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return body[1:]  # the docstring
    return body


def _left_alone(node: ast.AST) -> bool:
    """An f-string, an `assert`, or a bare constant as a statement (changing it changes nothing)."""
    return isinstance(node, (ast.JoinedStr, ast.Assert)) or (
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    )


def _children(node: ast.AST) -> Iterator[ast.AST]:
    """What to look into below `node`: not annotations, not docstrings."""
    for name, value in ast.iter_fields(node):
        if name in ("annotation", "returns", "type_comment"):
            continue
        if name == "body" and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            value = _body(node)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, ast.AST):
                yield item


def _visit(collector: _Collector, node: ast.AST) -> None:
    if _left_alone(node):
        return
    _mutate(collector, node)
    for child in _children(node):
        _visit(collector, child)


def _mutate(c: _Collector, node: ast.AST) -> None:
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        old = _SYMBOLS[type(node.op)]
        for new in _BINOPS[type(node.op)]:
            c.swap_token(node.left, node.right, old, _SYMBOLS[new], "arithmetic", f"{_tag(type(node.op))}-{_tag(new)}")
    elif isinstance(node, ast.AugAssign) and type(node.op) in _BINOPS:
        old = _SYMBOLS[type(node.op)] + "="
        for new in _BINOPS[type(node.op)]:
            tag = f"aug{_tag(type(node.op))}-{_tag(new)}"
            c.swap_token(node.target, node.value, old, _SYMBOLS[new] + "=", "arithmetic", tag)
    elif isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            for new, kind in _COMPARES.get(type(op), []):
                old_text, new_text = _SYMBOLS[type(op)], _SYMBOLS[new]
                c.swap_token(operands[i], operands[i + 1], old_text, new_text, kind, f"{_tag(type(op))}-{_tag(new)}")
    elif isinstance(node, ast.BoolOp):
        old_word, new_word = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        for left, right in zip(node.values, node.values[1:], strict=False):
            c.swap_token(left, right, old_word, new_word, "boolean", f"{old_word}-{new_word}")
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        if isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return  # `-1`: the constant's own mutant changes it
        start, operand = c.pos.start(node), c.pos.start(node.operand)
        keyword = "not" if isinstance(node.op, ast.Not) else "-"
        found = _find_token(c.text[start:operand], start, keyword)
        if found is not None:
            operator = "boolean" if keyword == "not" else "arithmetic"
            c.add(
                found[0],
                found[1],
                "",
                operator,
                f"{'not' if keyword == 'not' else 'usub'}-removed",
                f"`{keyword}` is removed",
            )
    elif isinstance(node, ast.Constant):
        _constant(c, node)
    elif isinstance(node, ast.Return) and node.value is not None:
        if not (isinstance(node.value, ast.Constant) and node.value.value is None):
            source = ast.get_source_segment(c.text, node.value) or ""
            c.replace_node(node.value, "None", "return", "return-none", f"returns `None` instead of `{_short(source)}`")
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        source = ast.get_source_segment(c.text, node.value) or ""
        c.replace_node(node.value, "None", "call", "call-removed", f"the call `{_short(source)}` is removed")


def _constant(c: _Collector, node: ast.Constant) -> None:
    value = node.value
    if node.lineno != node.end_lineno:  # a multi-line string: its replacement would move the lines below it
        return
    if isinstance(value, bool):
        new: Any = not value
        c.replace_node(
            node, repr(new), "boolean", f"{str(value).lower()}-{str(new).lower()}", f"`{value}` becomes `{new}`"
        )
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        new = value + 1
        c.replace_node(node, repr(new), "constant", "number", f"`{value!r}` becomes `{new!r}`")
    elif isinstance(value, str):
        new = f"XX{value}XX" if value else "XX"
        c.replace_node(node, repr(new), "constant", "string", f"`{_short(repr(value))}` becomes `{_short(repr(new))}`")


def mutants_of(text: str) -> list[Mutant]:
    """Every mutant of the functions of `text` (a module's source), in text order. Raises SyntaxError when it does
    not parse."""
    tree = ast.parse(text)
    collector = _Collector(text)
    for path, function in _unit_functions(tree):
        collector.function = ".".join(name for name, _ in path)
        collector.first_line = path[-1][1]
        collector.path = path
        for statement in _body(function):
            _visit(collector, statement)
    seen: set[str] = set()
    unique = []
    for mutant in sorted(collector.mutants, key=lambda m: (m.start, m.id)):
        if mutant.id not in seen:
            seen.add(mutant.id)
            unique.append(mutant)
    return unique
