"""Getting Python code out of a model's answer, fenced or not.

Fences are read line by line, CommonMark style: an opening run of three or more backticks or tildes is closed only
by a run of the same character at least as long, so code that itself contains a shorter fence survives.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
PYTHON_TAGS = {"", "python", "py", "python3", "py3"}
MAX_ANSWER_CHARS = 2_000_000


class ExtractionError(ValueError):
    """The answer holds no usable Python code. The message says what was found instead."""


@dataclass(frozen=True)
class CodeBlock:
    code: str
    language: str
    start_line: int  # 1-based line of the first code line in the answer


def fenced_blocks(answer: str) -> list[CodeBlock]:
    blocks: list[CodeBlock] = []
    lines = answer.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence = match.group("fence")
        language = match.group("info").strip().split(" ")[0].lower() if match.group("info") else ""
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            close = re.match(r"^ {0,3}(`{3,}|~{3,})\s*$", lines[j])
            if close and close.group(1)[0] == fence[0] and len(close.group(1)) >= len(fence):
                break
            body.append(lines[j])
            j += 1
        blocks.append(CodeBlock("\n".join(body) + "\n", language, i + 2))
        i = j + 1
    return blocks


def parse_python(code: str) -> ast.Module:
    """`ast.parse` for code from a model. CPython 3.11's parser runs out of memory or recursion on some invalid code
    (e.g. ``"A A " * 747``) instead of raising `SyntaxError`: that is a syntax error too."""
    try:
        return ast.parse(code)
    except (RecursionError, MemoryError) as exc:
        raise SyntaxError(f"the code is too deeply nested or too long to parse ({type(exc).__name__})") from None


def _parses(code: str) -> bool:
    try:
        parse_python(code)
    except (SyntaxError, ValueError):
        return False
    return True


def extract_python(answer: str, *, prefer: str | None = None) -> str:
    """The Python code of `answer`.

    Among fenced Python blocks, the one containing `prefer` (e.g. ``"def test_"``) wins, then the longest. An answer
    without fences is taken whole when it parses, else from its first line that starts code. Raises
    `ExtractionError` when nothing looks like Python; a block that does not parse is still returned, so that the
    checks report the syntax error at its line.
    """
    if not answer or not answer.strip():
        raise ExtractionError("the model's answer is empty")
    if len(answer) > MAX_ANSWER_CHARS:
        raise ExtractionError(f"the model's answer is too large ({len(answer)} characters)")
    # text that is not valid Unicode (lone surrogates from undecodable bytes) cannot be parsed or written: replace it
    answer = answer.encode("utf-8", "replace").decode("utf-8").replace("\r\n", "\n")
    blocks = [b for b in fenced_blocks(answer) if b.language in PYTHON_TAGS and b.code.strip()]
    if blocks:
        if prefer:
            preferred = [b for b in blocks if prefer in b.code]
            blocks = preferred or blocks
        return max(blocks, key=lambda b: (_parses(b.code), len(b.code))).code
    if "```" in answer or "~~~" in answer:
        raise ExtractionError("the model's answer has fenced blocks, but none is Python")
    if _parses(answer):
        return answer if answer.endswith("\n") else answer + "\n"
    lines = answer.split("\n")
    starts = ("import ", "from ", "def ", "class ", "@", "async def ", "#")
    for i, line in enumerate(lines):
        if line.startswith(starts):
            code = "\n".join(lines[i:]).rstrip() + "\n"
            return code
    raise ExtractionError("the model's answer holds no Python code (no fenced block, no import/def/class line)")
