"""What the prompt tells the model: the target, its project-local imports, its tests, the conftest fixtures, the
instruction; and how it is cut to fit the model's context."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from oh_lsp import TaskStatus
from oh_lsp.kinds.context import TRUNCATED, estimate_tokens, fit
from oh_lsp.testing.model_server import Reply
from tests.conftest import GOOD_TESTS, fenced, run_task

HELPERS = '''\
def twice(x: int) -> int:
    """Double it."""
    return 2 * x


def _private():
    pass


class Scale:
    def apply(self, value):
        return value
'''


async def test_prompt_carries_the_project_context(project: Path, model_server) -> None:
    (project / "pkg" / "helpers.py").write_text(HELPERS)
    calc = (project / "pkg" / "calc.py").read_text()
    (project / "pkg" / "calc.py").write_text("from pkg.helpers import twice\n" + calc)
    (project / "tests").mkdir()
    (project / "tests" / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef numbers():\n    return [1, 2]\n"
    )
    (project / "tests" / "test_calc.py").write_text(
        "from pkg.calc import add\n\n\ndef test_existing():\n    assert add(0, 0) == 0\n"
    )
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    task = await run_task(project, model_server, description="Focus on division by zero")
    assert task.status is TaskStatus.COMPLETED, task.error
    prompt = model_server.requests[0].body["messages"][-1]["content"]
    assert "Module path: pkg.calc" in prompt and "def divide(a, b):" in prompt
    assert "Instruction:\nFocus on division by zero" in prompt
    assert "def test_existing():" in prompt  # its existing tests
    assert "def twice(x: int) -> int: ...  # Double it." in prompt and "_private" not in prompt
    assert "class Scale:" in prompt
    assert "# tests/conftest.py\ndef numbers()" in prompt
    system = model_server.requests[0].body["messages"][0]
    assert system["role"] == "system"
    rules = system["content"]
    for rule in ("one ```python block", "complete test module", "by its module path", "test_*", "no network"):
        assert rule in rules, f"the rule the checks rely on: {rule!r}"
    for rule in ("deterministic", "asserting", "conftest.py fixtures", "never copy it"):
        assert rule in rules, f"the rule of a test worth keeping: {rule!r}"
    assert len(rules) <= 450, "every request carries it: few words (P6b, docs/benchmarks.md)"


def test_fit_drops_the_least_important_first() -> None:
    source = "x = 1\n" * 2000  # ~3,000 tokens
    sections = [
        (0, "source", source),
        (1, "instruction", "do it"),
        (3, "signatures", "def f(): ...\n" * 800),
        (4, "fixtures", "def fx(): ...\n" * 800),
    ]
    kept = dict(fit(sections, 4000))
    assert kept["source"] == source and kept["instruction"] == "do it"
    assert "fixtures" not in kept or kept["fixtures"].endswith(TRUNCATED)
    assert sum(estimate_tokens(t) + estimate_tokens(k) for k, t in kept.items()) <= 4000
    tiny = dict(fit(sections, 1000))
    assert tiny["source"].endswith(TRUNCATED) and set(tiny) == {"source", "instruction"}


async def test_interpreter_without_coverage_borrows_oh_lsps(
    project: Path, model_server, light_python, tmp_path: Path
) -> None:
    venv = tmp_path / "no-coverage"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    tools = venv / "tools"
    tools.mkdir()
    for entry in (light_python.parent.parent / "test-tools").iterdir():
        if entry.name != "coverage":
            # a copy: a link to a folder under /tmp would not resolve in the sandbox, which has a /tmp of its own
            copy = shutil.copytree if entry.is_dir() else shutil.copy2
            copy(entry, tools / entry.name)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "tools.pth").write_text(str(tools) + "\n")
    assert subprocess.run([str(python), "-c", "import coverage"], capture_output=True).returncode != 0
    model_server.script(Reply.text(fenced(GOOD_TESTS)))
    task = await run_task(project, model_server, python=python)
    assert task.status is TaskStatus.COMPLETED, task.error
    assert task.result["coverage"]["after"] == 100.0
