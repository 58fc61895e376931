"""What goes to the OpenHands agent and what comes back: the file it is asked to write, its message and the spec of
its run, and, after each run of the conversation, the files it changed in the copy, taken as the kind's answer.

`runtime.py` runs the conversation; this module holds no state and starts nothing.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oh_lsp.tasks import QueuedTask

if TYPE_CHECKING:
    from oh_lsp.kinds.base import Target

SDK_RETRIES = 1  # the SDK's own retries stay low: our task layer re-queues, our selector rotates
SDK_RETRY_MAX_WAIT = 5
AGENT_PROMPT_OVERHEAD = 4000  # tokens of the agent's own system prompt and tool schemas, for the budget estimate
WORKER_FILE = "oh_lsp_agent_worker.py"
KEYLESS = "no-key"  # litellm's OpenAI client insists on some key; a local endpoint that needs none ignores it

AGENT_DIRECTIONS = {
    "unit_test": "Write the test module to {path} with the file editor (create it; if it exists, add your tests"
    " to it). You may run `python -m pytest {relative} -q` in the terminal to check them. Change no"
    " other file.",
    "documentation": "Add or complete the docstrings by editing {path} in place with the file editor. Change"
    " nothing but docstrings.",
    "refactoring": "Make the change by editing {path} in place with the file editor. Keep its public behaviour;"
    " you may run the project's tests in the terminal. Change no other file.",
}


# --- the copy, the prompt, the spec ----------------------------------------------------------------------------------
def agent_output_path(kind: str, root: Path, target: Target) -> str:
    """The file the agent is asked to write: the project's test module for unit_test, else the target itself."""
    if kind == "unit_test":
        from oh_lsp.kinds.test_layout import locate_tests

        return locate_tests(root, target.path).path.as_posix()
    return target.path.as_posix()


def prepare_copy(box: Any, output: str) -> None:
    """Make the output file's folder in the copy, and put the worker script among the sandbox's tools."""
    (box.root / output).parent.mkdir(parents=True, exist_ok=True)  # the file editor does not create folders
    worker = resources.files("oh_lsp.agent").joinpath("worker.py").read_text(encoding="utf-8")
    (box.tools / WORKER_FILE).write_text(worker, encoding="utf-8")


def agent_message(
    kind: Any, target: Any, task: QueuedTask, messages: list[dict[str, Any]], workspace: Path, output: str
) -> str:
    """The kind's own prompt (same intent, same target), plus how an agent hands in its work."""
    rules = "\n\n".join(str(m["content"]) for m in messages)
    directions = AGENT_DIRECTIONS[task.kind].format(path=workspace / output, relative=output)
    return (
        f"{rules}\n\n## How to work\nYou are working in a copy of the project at {workspace} (the working"
        f" directory). Ignore the answer format asked for above: only the file you write counts.\n"
        f"- {directions}\n- When you are done, call the finish tool."
    )


def run_spec(
    config: Any, chain: list[Any], api_key: str | None, budget: tuple[float, str] | None, workspace: Path, message: str
) -> dict[str, Any]:
    """What the worker is sent to start: the models (our chain, priced from our catalog), the endpoint, the SDK's
    limits, the budget cap and the first message."""
    return {
        "models": [
            {
                "model": f"openai/{m.id}",
                "input_cost_per_token": m.price_prompt,
                "output_cost_per_token": m.price_completion,
            }
            for m in chain
        ],
        "base_url": config.base_url,
        "api_key": api_key or KEYLESS,
        "usage_id": config.usage_id,
        "num_retries": SDK_RETRIES,
        "retry_max_wait": SDK_RETRY_MAX_WAIT,
        "timeout": int(config.timeout_seconds),
        "max_output_tokens": config.max_tokens,
        "cli_mode": config.cli_mode,
        "max_iterations": config.openhands_max_iterations,
        "budget_usd": budget[0] if budget else None,
        "docker": config.use_docker_runtime,
        "workspace": str(workspace),
        "message": message,
    }


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """The prompt tokens of the agent's first call, for the budget check: the kind's prompt and the agent's own."""
    from oh_lsp.llm.budget import estimate_prompt_tokens

    return estimate_prompt_tokens(messages) + AGENT_PROMPT_OVERHEAD


# --- what the agent changed ------------------------------------------------------------------------------------------
def changed_files(original: Path, copy: Path) -> dict[str, str]:
    """Text files created or changed in `copy` relative to `original` (POSIX paths relative to the copy)."""
    from oh_lsp.validation.sandbox import EXCLUDED_NAMES, MAX_COPIED_FILE_BYTES

    changed: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(copy):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_NAMES]
        for name in filenames:
            path = Path(dirpath, name)
            if path.is_symlink() or name.endswith((".pyc", ".pyo")) or path.stat().st_size > MAX_COPIED_FILE_BYTES:
                continue
            relative = path.relative_to(copy)
            new = path.read_bytes()
            before = original / relative
            if before.is_file() and before.read_bytes() == new:
                continue
            try:
                changed[relative.as_posix()] = new.decode("utf-8")
            except UnicodeDecodeError:
                continue
    return changed


def agent_output(kind: str, target: Any, changes: dict[str, str], output: str) -> tuple[str | None, str]:
    """The text the kind takes as its answer, and the file it came from (None when the agent wrote none)."""
    if output in changes:
        text = changes[output]
    elif kind == "unit_test":
        tests = sorted(p for p in changes if Path(p).name.startswith("test_") or p.endswith("_test.py"))
        if not tests:
            return None, output
        output = next((p for p in tests if target.module in changes[p]), tests[0])
        text = changes[output]
    else:
        return None, output
    if kind == "unit_test" and (target.root / output).is_file():
        text = new_tests_only((target.root / output).read_text(encoding="utf-8"), text)
    return text, output


def new_tests_only(before: str, after: str) -> str:
    """An existing test module as the agent left it, without the tests it kept unchanged (they are already there;
    placement adds the rest to the module through its AST)."""
    import ast

    from oh_lsp.kinds.placement import filter_generated

    try:
        old, new = ast.parse(before), ast.parse(after)
    except SyntaxError:
        return after  # the checks report the syntax error
    same = {ast.dump(n) for n in old.body}
    unchanged = {
        n.name
        for n in new.body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and ast.dump(n) in same
    }
    return filter_generated(after, unchanged) if unchanged else after


def fence(text: str) -> str:
    """`text` as a fenced Python block whose fence no line of it can close."""
    longest = max((len(line) - len(line.lstrip("`")) for line in text.splitlines()), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}python\n{text if text.endswith(chr(10)) else text + chr(10)}{ticks}\n"
