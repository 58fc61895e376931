"""The pre-commit hook (.pre-commit-hooks.yaml) with the real `pre-commit` tool: installed into a temporary git
repository from the example config in docs/pre-commit.md, it queues a unit_test task for each staged Python module
when the user commits, and none for tests or other files.

pre-commit clones the hook's repository by its `repo:` and `rev:`. For a `language: system` hook it reads only
`.pre-commit-hooks.yaml` from there, so the hook source here is a git repository holding this checkout's
`.pre-commit-hooks.yaml` (uncommitted edits included). Nothing needs the internet: the clone is local, and any
attempt to reach a package index would fail (no index, a dead proxy).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import CALC, GOOD_TESTS

REPO = Path(__file__).resolve().parents[1]
HOOK_ID = "oh-lsp-generate-tests"
pytestmark = [pytest.mark.timeout(180), pytest.mark.skipif(shutil.which("git") is None, reason="needs git")]


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def example_config() -> dict:
    """The `.pre-commit-config.yaml` of docs/pre-commit.md."""
    text = (REPO / "docs" / "pre-commit.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL) if "repos:" in b)
    return yaml.safe_load(block)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # where `oh-lsp` is installed
    environment = dict(
        os.environ,
        PATH=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
        HOME=str(tmp_path / "home"),
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.invalid",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.invalid",
        GIT_CONFIG_NOSYSTEM="1",
        PIP_NO_INDEX="1",
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
    )
    (tmp_path / "home").mkdir()
    return environment


@pytest.fixture
def hook_source(tmp_path: Path, env: dict[str, str]) -> tuple[Path, str]:
    source = tmp_path / "oh-lsp-hooks"
    source.mkdir()
    shutil.copy(REPO / ".pre-commit-hooks.yaml", source / ".pre-commit-hooks.yaml")
    git(source, "init", "-q")
    git(source, "add", ".")
    git(source, "commit", "-q", "-m", "hooks", env=env)
    return source, git(source, "rev-parse", "HEAD").strip()


def oh_lsp_json(project: Path, env: dict[str, str], *args: str):
    out = subprocess.run(
        [sys.executable, "-m", "oh_lsp", *args, "--json"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def test_the_hook_manifest_runs_submit_task_on_python_files() -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == HOOK_ID and hook["language"] == "system"
    assert hook["entry"].split()[:4] == ["oh-lsp", "submit-task", "--task-type", "unit_test"]
    assert hook["pass_filenames"] is True and hook["types"] == ["python"]
    config = example_config()
    assert [h["id"] for h in config["repos"][0]["hooks"]] == [HOOK_ID]


def test_committing_queues_a_task_per_staged_python_module(
    tmp_path: Path, env: dict[str, str], hook_source: tuple[Path, str]
) -> None:
    project = tmp_path / "user-project"
    (project / "pkg").mkdir(parents=True)
    (project / "tests").mkdir()
    (project / "pkg" / "calc.py").write_text(CALC)
    (project / "pkg" / "util.py").write_text("def double(x):\n    return 2 * x\n")
    (project / "tests" / "test_calc.py").write_text(GOOD_TESTS)
    (project / "conftest.py").write_text("")
    (project / "README.md").write_text("# a project\n")
    (project / "notes.py").write_text("x = 1\n")  # not staged: not queued
    config = example_config()
    config["repos"][0].update(repo=str(hook_source[0]), rev=hook_source[1])
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    git(project, "init", "-q")
    subprocess.run(
        [sys.executable, "-m", "pre_commit", "install"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    git(project, "add", ".pre-commit-config.yaml", "pkg", "tests", "conftest.py", "README.md")

    commit = subprocess.run(["git", "commit", "-m", "first"], cwd=project, env=env, capture_output=True, text=True)
    assert commit.returncode == 0, commit.stdout + commit.stderr
    output = commit.stdout + commit.stderr
    assert "oh-lsp: queue unit-test generation for the changed Python modules" in output and "Passed" in output
    assert "Task submitted:" in output and "unit_test pkg/calc.py" in output

    tasks = oh_lsp_json(project, env, "list-tasks")
    assert sorted((t["kind"], t["target"], t["status"]) for t in tasks) == [
        ("unit_test", "pkg/calc.py", "pending"),
        ("unit_test", "pkg/util.py", "pending"),
    ]
    stats = oh_lsp_json(project, env, "queue-stats")
    assert stats["pending"] == 2 and stats["pending_by_priority"].get("high") == 2
    assert git(project, "status", "--porcelain", "--untracked-files=all") == "?? notes.py\n", (
        "the hook changed or added no file"
    )

    # a commit without Python files: the hook is skipped; calc.py unchanged: not queued twice
    (project / "README.md").write_text("# a project\n\nmore\n")
    git(project, "add", "README.md")
    second = subprocess.run(["git", "commit", "-m", "docs"], cwd=project, env=env, capture_output=True, text=True)
    assert second.returncode == 0 and "(no files to check)Skipped" in second.stderr, second.stdout + second.stderr
    again = subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--files", "pkg/calc.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0 and "unit_test pkg/calc.py (already queued)" in again.stdout, again.stdout
    assert len(oh_lsp_json(project, env, "list-tasks")) == 2


def test_without_oh_lsp_on_path_the_commit_stops_with_a_clear_message(
    tmp_path: Path, env: dict[str, str], hook_source: tuple[Path, str]
) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "mod.py").write_text("x = 1\n")
    config = example_config()
    config["repos"][0].update(repo=str(hook_source[0]), rev=hook_source[1])
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    git(project, "init", "-q")
    git(project, "add", ".")
    bare = dict(env, PATH="/usr/bin:/bin")  # git, but no oh-lsp
    run = subprocess.run(
        [sys.executable, "-m", "pre_commit", "run"], cwd=project, env=bare, capture_output=True, text=True
    )
    assert run.returncode != 0
    assert "Executable `oh-lsp` not found" in run.stdout, run.stdout + run.stderr
