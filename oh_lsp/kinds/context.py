"""What a prompt tells the model about the project, fitted to the model's context length.

Sections, most important first: the target's source, the user's instruction, what the task kind adds (existing
tests, say), the signatures of the project-local modules the target imports, and the project's test conventions
(pytest, the fixtures of its `conftest.py` files). When the prompt would not fit, the least important sections are
shortened first, then dropped; the target's source is cut last, and the prompt says so.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

from oh_lsp.tasks import QueuedTask

if TYPE_CHECKING:
    from oh_lsp.kinds.base import Target

DEFAULT_CONTEXT_TOKENS = 32_000
ANSWER_RESERVE_TOKENS = 4_000
CHARS_PER_TOKEN = 4  # a rough estimate; good enough for fitting, not for billing
TRUNCATED = "\n# … (truncated to fit the model's context)\n"
INSTRUCTION = (
    "Instruction"  # the title of the prompt's instruction: what varies from one task to the next comes after it
)


def estimate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 1


def _module_file(root: Path, module: str) -> Path | None:
    parts = module.split(".")
    for base in (root, root / "src"):
        for candidate in (base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return candidate
    return None


def signatures(source: str) -> str:
    """The public surface of a module: imports dropped, bodies replaced by `...`, first docstring lines kept."""
    tree = ast.parse(source)
    out: list[str] = []

    def visit(nodes: list[ast.stmt], indent: str) -> None:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.name.startswith("_") and not node.name.startswith("__"):
                    continue
                prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
                returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
                doc = (ast.get_docstring(node) or "").strip().split("\n")[0]
                out.append(
                    f"{indent}{prefix} {node.name}({ast.unparse(node.args)}){returns}: ..."
                    + (f"  # {doc}" if doc else "")
                )
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = f"({', '.join(ast.unparse(b) for b in node.bases)})" if node.bases else ""
                out.append(f"{indent}class {node.name}{bases}:")
                visit(node.body, indent + "    ")
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and not indent:
                out.append(ast.unparse(node).split("\n")[0][:120])

    visit(tree.body, "")
    return "\n".join(out)


def imported_modules(root: Path, source: str, own_module: str) -> list[tuple[str, Path]]:
    """The project-local modules that `source` imports: (module name, its file), in order."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    package = own_module.rsplit(".", 1)[0] if "." in own_module else ""
    modules: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: max(len(package.split(".")) - node.level + 1, 0)] if package else []
                base = ".".join([*parent, base] if base else parent)
            modules.append(base)
            modules += [f"{base}.{a.name}" for a in node.names]
    found = []
    for module in dict.fromkeys(m for m in modules if m and m != own_module):
        path = _module_file(root, module)
        if path is not None:
            found.append((module, path))
    return found


def imported_signatures(root: Path, source: str, own_module: str) -> str:
    """Signatures of the project-local modules that `source` imports."""
    blocks = []
    for module, path in imported_modules(root, source, own_module):
        try:
            text = signatures(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        if text:
            blocks.append(f"# {module} ({path.relative_to(root).as_posix()})\n{text}")
    return "\n\n".join(blocks)


def _conftests(root: Path, near: Path) -> list[Path]:
    """The `conftest.py` files from the root down to the folder `near`, and the tests folder's."""
    folders = [root]
    for part in near.parent.parts:
        folders.append(folders[-1] / part)
    folders += [root / "tests"]
    return [folder / "conftest.py" for folder in dict.fromkeys(folders) if (folder / "conftest.py").is_file()]


def context_files(target: Target) -> list[Path]:
    """The project files, besides the target, whose text goes into the prompt's project context (relative to the
    root): the local modules it imports and the conftest files whose fixtures are listed."""
    files = [path for _, path in imported_modules(target.root, target.text, target.module)]
    files += _conftests(target.root, Path("tests") / target.path)
    return sorted({path.relative_to(target.root) for path in files})


def conftest_fixtures(root: Path, near: Path) -> str:
    """The fixtures of the `conftest.py` files from the root down to the folder `near`, as signatures."""
    blocks = []
    for conftest in _conftests(root, near):
        try:
            tree = ast.parse(conftest.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        names = [
            f"def {n.name}({ast.unparse(n.args)})"
            for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and any("fixture" in ast.unparse(d) for d in n.decorator_list)
        ]
        if names:
            blocks.append(f"# {conftest.relative_to(root).as_posix()}\n" + "\n".join(names))
    return "\n".join(blocks)


def fit(sections: list[tuple[int, str, str]], budget_tokens: int) -> list[tuple[str, str]]:
    """Keep `(priority, title, text)` sections within `budget_tokens`: the least important (highest number) are cut
    first, then dropped; the instruction (priority 1) is never cut, the source (priority 0) only as a last resort."""
    kept = {i: text for i, (_, _, text) in enumerate(sections) if text.strip()}

    def size() -> int:
        return sum(estimate_tokens(sections[i][1]) + estimate_tokens(kept[i]) for i in kept)

    for index in sorted(kept, key=lambda i: sections[i][0], reverse=True):
        priority = sections[index][0]
        excess = size() - budget_tokens
        if excess <= 0:
            break
        if priority == 1:
            continue
        text = kept[index]
        room = (estimate_tokens(text) - excess - estimate_tokens(TRUNCATED) - 1) * CHARS_PER_TOKEN
        if room >= 400 or priority == 0:
            kept[index] = text[: max(room, 0)].rsplit("\n", 1)[0] + TRUNCATED
        else:
            del kept[index]
    return [(sections[i][1], kept[i]) for i in sorted(kept)]


def prompt_sections(
    target: Target,
    task: QueuedTask,
    *,
    instruction: str,
    extra: list[tuple[int, str, str]] | None = None,
    context_tokens: int | None = None,
    source: str | None = None,
    variable: list[tuple[int, str, str]] | None = None,
) -> str:
    """The user message for `target`: its source (or `source`, the part of it to show, as the caller shows it), as
    much project context as fits, the instruction, and `variable` (what changes from one prompt of a target to the
    next, such as its gaps) last. What precedes the instruction is the same for every task on this target
    (`user_message` marks it for providers' prompt caches)."""
    budget = (context_tokens or task.metadata.get("context_tokens") or DEFAULT_CONTEXT_TOKENS) - ANSWER_RESERVE_TOKENS
    shown = f"```python\n{target.text if source is None else source}\n```"
    where = f"Module path: {target.module}\nSource of {target.path.as_posix()}"
    if source is not None:
        where += " (lines numbered)"
    sections = [
        (0, where, shown),
        *(extra or []),
        (
            3,
            "Signatures of the project modules it imports",
            imported_signatures(target.root, target.text, target.module),
        ),
        (
            4,
            "Test conventions: pytest; fixtures available from conftest.py",
            conftest_fixtures(target.root, Path("tests") / target.path),
        ),
        (1, INSTRUCTION, instruction),
        *(variable or []),
    ]
    return "\n\n".join(f"{title}:\n{text}" for title, text in fit(sections, max(budget, 1000)))


def user_message(prompt: str) -> dict[str, str]:
    """The user message of a prompt made by `prompt_sections`, its part before the instruction marked as stable for
    providers' prompt caches (`oh_lsp.llm.prompt_cache`): the repair turns of a task, and the other tasks on the
    same target (another symbol, another gap), repeat it word for word."""
    from oh_lsp.llm.prompt_cache import mark_stable

    at = prompt.find(f"\n\n{INSTRUCTION}:\n")
    return mark_stable({"role": "user", "content": prompt}, at + 2 if at > 0 else 0)
