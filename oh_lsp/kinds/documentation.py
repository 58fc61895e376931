"""The documentation task kind: add or complete docstrings of a module, a class or a function, in the project's
docstring style (Google, NumPy or reST), changing nothing else.

The model answers with the whole module. Only its docstrings are taken: they are written into the user's file at
positions from the file's own AST, so code, comments and formatting stay exactly as they were.

Checks:
1. the answer parses;
2. with docstrings stripped, the answer's AST equals the original's (an answer that changes code is rejected:
   "behaviour changed"), and so does the edited file's;
3. docstring coverage of the public names in scope goes up;
4. every documented parameter exists in the signature (a warning at the docstring otherwise).

Score: the docstring coverage after, less 0.1 per unknown documented parameter (at least 0).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from oh_lsp.edits import FileEdit, Recompute, TextEdit
from oh_lsp.extract import extract_python, parse_python
from oh_lsp.kinds.base import Candidate, CheckEnv, Target
from oh_lsp.kinds.context import context_files, prompt_sections, user_message
from oh_lsp.kinds.placement import apply_text_edits
from oh_lsp.kinds.pysource import definitions, docstring_node, first_difference, is_public, strip_docstrings
from oh_lsp.paths import sha256_text
from oh_lsp.tasks import QueuedTask
from oh_lsp.validation import findings as F
from oh_lsp.validation.findings import Finding
from oh_lsp.validation.result import ValidationResult

NAME = "documentation"
PROMPT_VERSION = "1"  # part of the result cache's key (kinds/base.py)
STYLES = {
    "google": "Google style (Args:, Returns:, Raises: sections)",
    "numpy": "NumPy style (Parameters / Returns sections underlined with dashes)",
    "rest": "reStructuredText style (:param name:, :returns:, :raises: fields)",
}


# --- style and prompt ----------------------------------------------------------------------------------------------
def _style_votes(text: str) -> dict[str, int]:
    return {
        "google": len(re.findall(r"^\s*(Args|Arguments|Returns|Raises|Yields|Attributes):\s*$", text, re.MULTILINE)),
        "numpy": len(re.findall(r"^\s*(Parameters|Returns|Raises|Yields)\s*\n\s*-{3,}\s*$", text, re.MULTILINE)),
        "rest": len(re.findall(r"^\s*:(param|returns?|raises?|type|rtype)\b", text, re.MULTILINE)),
    }


def docstring_style(root: Path, target: Target, limit: int = 200) -> str:
    """The style the project already uses: the target's own docstrings first, then its other modules'."""
    votes = _style_votes(target.text)
    if not any(votes.values()):
        for count, path in enumerate(root.rglob("*.py")):
            if count >= limit or any(p.startswith(".") or p in ("node_modules", "venv") for p in path.parts):
                continue
            try:
                for style, n in _style_votes(path.read_text(encoding="utf-8")).items():
                    votes[style] += n
            except (OSError, UnicodeDecodeError):
                continue
    best = max(votes, key=lambda s: votes[s])
    return best if votes[best] else "google"


def _scope(task: QueuedTask | None) -> str | None:
    symbol = (task.metadata.get("symbol") if task else None) or None
    return symbol if isinstance(symbol, str) else None


def build_messages(target: Target, task: QueuedTask, context_tokens: int | None = None) -> list[dict[str, str]]:
    style = docstring_style(target.root, target)
    scope = _scope(task)
    what = f"`{scope}` (and its methods)" if scope else "the module, its public classes and functions"
    system = (
        f"You write Python docstrings in {STYLES[style]}. Answer with exactly one fenced ```python block"
        " holding the complete module, identical to the input except for docstrings: do not change any"
        " code, name, import, comment or formatting. Document only parameters the signature has."
    )
    instruction = task.description.strip() or f"Add or complete the docstrings of {what}."
    prompt = prompt_sections(target, task, context_tokens=context_tokens, instruction=f"{instruction} (Scope: {what}.)")
    return [{"role": "system", "content": system}, user_message(prompt)]


# --- candidate -----------------------------------------------------------------------------------------------------
def _in_scope(qualname: str, scope: str | None) -> bool:
    return scope is None or qualname == scope or qualname.startswith(scope + ".")


def _literal(answer_lines: list[str], node: ast.Expr, indent: str, *, indent_first: bool = True) -> str:
    """The model's docstring literal, re-indented for its place in the user's file."""
    lines = answer_lines[node.lineno - 1 : node.end_lineno]
    lines[-1] = lines[-1][: node.end_col_offset]
    lines[0] = lines[0][node.col_offset :]
    model_indent = " " * node.col_offset
    body = [(indent if indent_first else "") + lines[0]] + [
        indent + line[len(model_indent) :] if line.startswith(model_indent) else line for line in lines[1:]
    ]
    return "\n".join(body)


def docstring_edits(original: str, answer: str, scope: str | None) -> list[TextEdit]:
    """Edits that put the answer's docstrings (where they differ) into `original`, by AST positions."""
    old_tree, new_tree = ast.parse(original), parse_python(answer)
    old_lines, new_lines = original.split("\n"), answer.split("\n")
    old_defs = {"": old_tree, **dict(definitions(old_tree))}
    edits: list[TextEdit] = []
    for qualname, new_node in {"": new_tree, **dict(definitions(new_tree))}.items():
        old_node = old_defs.get(qualname)
        new_doc = docstring_node(new_node)
        if old_node is None or new_doc is None or not _in_scope(qualname, scope):
            continue
        old_doc = docstring_node(old_node)
        if old_doc is not None:
            if ast.get_docstring(old_node, clean=False) == ast.get_docstring(new_node, clean=False):
                continue
            text = _literal(new_lines, new_doc, " " * old_doc.col_offset, indent_first=False)
            end_line, end_character = old_doc.end_lineno or old_doc.lineno, old_doc.end_col_offset or 0  # set by parse
            edits.append(TextEdit(old_doc.lineno - 1, old_doc.col_offset, end_line - 1, end_character, text))
            continue
        if isinstance(old_node, ast.Module):  # the module's docstring: after a shebang or coding line
            line = next(
                (
                    i
                    for i, text in enumerate(old_lines)
                    if not text.startswith("#!") and not re.match(r"^#.*coding[:=]", text)
                ),
                0,
            )
            edits.append(TextEdit(line, 0, line, 0, _literal(new_lines, new_doc, "") + "\n"))
            continue
        first = old_node.body[0]
        if first.lineno == old_node.lineno:
            continue  # `def f(): return 1`: no line to put a docstring on without reformatting the user's code
        indent = " " * first.col_offset
        edits.append(TextEdit(first.lineno - 1, 0, first.lineno - 1, 0, _literal(new_lines, new_doc, indent) + "\n"))
    return edits


def make_candidate(answer: str, target: Target, task: QueuedTask | None = None) -> Candidate:
    code = extract_python(answer)
    try:
        edits = docstring_edits(target.text, code, _scope(task))
    except (SyntaxError, ValueError):
        edits = []  # the checks report the syntax error of the answer
    return Candidate.in_place(
        target,
        apply_text_edits(target.text, edits),
        edits,
        f"oh-lsp: document {_scope(task) or target.module}",
        {"answer_code": code, "scope": _scope(task), "style": docstring_style(target.root, target)},
    )


def recompute(result: dict[str, Any]) -> Recompute:
    """Redo the docstring edits against the file's current text (if its code is still the same)."""

    def redo(change: FileEdit, current: str) -> FileEdit | None:
        try:
            if strip_docstrings(ast.parse(current)) != strip_docstrings(parse_python(result["answer_code"])):
                return None
            edits = docstring_edits(current, result["answer_code"], result.get("scope"))
        except SyntaxError:
            return None
        return FileEdit(change.path, apply_text_edits(current, edits), sha256_text(current), edits)

    return redo


# --- checks --------------------------------------------------------------------------------------------------------
def docstring_coverage(tree: ast.Module, scope: str | None) -> tuple[int, int]:
    """(documented, public) names in scope; the module itself counts when the scope is the whole module."""
    names: list[tuple[str, ast.AST]] = [
        (q, n)
        for q, n in definitions(tree)
        if is_public(q) and _in_scope(q, scope) and not q.rsplit(".", 1)[-1].startswith("__")
    ]  # dunder methods are documented by their class
    if scope is None:
        names.append(("", tree))
    return sum(1 for _, n in names if docstring_node(n) is not None), len(names)


_REST_PARAM = re.compile(
    r"^\s*:(?:param|parameter|arg|argument|key|keyword)\s+(?:[^:]*\s)?\*{0,2}(\w+)\s*:", re.MULTILINE
)


def _section_entries(doc: str, headers: tuple[str, ...], numpy: bool) -> list[tuple[str, int]]:
    lines = doc.split("\n")
    found: list[tuple[str, int]] = []
    i = 0
    while i < len(lines):
        header = lines[i].strip().rstrip(":")
        is_header = header in headers and (
            (numpy and i + 1 < len(lines) and re.match(r"^\s*-{3,}\s*$", lines[i + 1]))
            or (not numpy and lines[i].strip().endswith(":"))
        )
        if not is_header:
            i += 1
            continue
        i += 2 if numpy else 1
        base: int | None = None
        while i < len(lines) and (
            not lines[i].strip() or base is None or len(lines[i]) - len(lines[i].lstrip()) >= base
        ):
            line = lines[i]
            if line.strip():
                indent = len(line) - len(line.lstrip())
                if base is None:
                    base = indent
                if indent == base:
                    pattern = r"^\s*([\w*, ]+?)\s*:" if numpy else r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:"
                    match = re.match(pattern, line)
                    if not match:
                        break
                    for name in match.group(1).split(","):
                        found.append((name.strip().lstrip("*"), i))
            i += 1
    return found


def documented_params(doc: str, style: str) -> list[tuple[str, int]]:
    """(name, 0-based line within the docstring) of each parameter the docstring documents."""
    headers = ("Args", "Arguments", "Parameters", "Params", "Keyword Args", "Keyword Arguments", "Other Parameters")
    if style == "rest":
        return [(m.group(1), doc[: m.start()].count("\n")) for m in _REST_PARAM.finditer(doc)]
    return _section_entries(doc, headers, numpy=style == "numpy")


def signature_params(node: ast.AST) -> set[str]:
    args = getattr(node, "args", None)
    if args is None:  # a class: its __init__'s parameters
        init = next(
            (
                n
                for n in getattr(node, "body", [])
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "__init__"
            ),
            None,
        )
        return signature_params(init) if init else set()
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    return names


async def check(candidate: Candidate, target: Target, env: CheckEnv) -> tuple[ValidationResult, Candidate]:
    path = candidate.output_file
    scope = candidate.extra.get("scope")
    try:
        answer_tree = parse_python(candidate.extra["answer_code"])
    except SyntaxError as exc:
        return ValidationResult.from_findings([F.syntax_error(exc, "the answer", path)], 0.0), candidate
    original = ast.parse(target.text)
    if strip_docstrings(answer_tree) != strip_docstrings(original):
        line = first_difference(original, answer_tree)
        return ValidationResult.from_findings(
            [
                Finding(
                    F.BEHAVIOUR_CHANGED,
                    "behaviour changed: the answer changes code, not only docstrings (first"
                    f" difference near line {line})",
                    file=path,
                    line=line,
                )
            ],
            0.0,
        ), candidate
    result_tree = ast.parse(candidate.content)
    findings: list[Finding] = []
    if strip_docstrings(result_tree) != strip_docstrings(original):  # a bug of ours: never deliver it
        findings.append(Finding(F.BEHAVIOUR_CHANGED, "behaviour changed while placing the docstrings", file=path))
    before = docstring_coverage(original, scope)
    after = docstring_coverage(result_tree, scope)
    if after[0] <= before[0]:
        findings.append(
            Finding(
                F.NO_DOCSTRING_GAIN,
                f"docstring coverage did not go up ({before[0]}/{before[1]} public names documented before and after)",
                file=path,
            )
        )
    style = candidate.extra.get("style", "google")
    for qualname, node in [("", result_tree), *definitions(result_tree)]:
        doc = docstring_node(node)
        if doc is None or not _in_scope(qualname, scope):
            continue
        known = signature_params(node)
        for name, offset in documented_params(ast.get_docstring(node, clean=False) or "", style):
            if name and name not in known and qualname:
                findings.append(
                    Finding(
                        F.UNKNOWN_PARAMETER,
                        f"the docstring of {qualname} documents `{name}`, which is not a parameter of its signature",
                        severity=F.WARNING,
                        file=path,
                        line=doc.lineno + offset,
                    )
                )
    coverage_after = after[0] / after[1] if after[1] else 1.0
    warnings = sum(1 for f in findings if f.code == F.UNKNOWN_PARAMETER)
    score = round(max(0.0, coverage_after - 0.1 * warnings), 4)
    return ValidationResult.from_findings(
        findings, score, run=False, style=style, docstring_coverage={"before": list(before), "after": list(after)}
    ), candidate


def cache_inputs(target: Target) -> list[Path]:
    """The files besides the target whose text changes what this task returns: the project context of the prompt (the modules it imports, the conftest files)."""
    return context_files(target)
