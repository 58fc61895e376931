"""The GitHub Actions example (docs/ci/generate-tests.yml): its YAML is checked, then its `run:` steps run here, as
Actions would run them (bash -eo pipefail, the job's and step's env, $GITHUB_ENV carried between steps), in a
temporary git checkout with a pushed change, against the scripted model server.

Steps that cannot run here are named and skipped: the `uses:` actions (the checkout is the temporary repository,
the Python is this one, and the upload is checked by looking at the folder it uploads) and the install step (it
needs a package index; oh-lsp is installed here already).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from oh_lsp.testing.model_server import Reply, ScriptedModelServer
from tests.conftest import CALC, GOOD_TESTS, SENTINEL_KEY, fenced

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "docs" / "ci" / "generate-tests.yml"
SKIPPED = [
    "actions/checkout@v4",
    "actions/setup-python@v5",
    "Install oh-lsp and the project",
    "actions/upload-artifact@v4",
]
# contexts GitHub allows in `jobs.<id>.env` (runner.* is not among them)
JOB_ENV_CONTEXTS = {"github", "needs", "strategy", "matrix", "vars", "secrets", "inputs"}
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
pytestmark = pytest.mark.timeout(180)


def load() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def job() -> dict:
    (only,) = load()["jobs"].values()
    return only


def label(step: dict) -> str:
    return step.get("name") or step["uses"]


def test_the_workflow_is_valid_and_does_what_the_docs_say() -> None:
    workflow = load()
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"pull_request", "push", "workflow_dispatch"} <= set(triggers)
    assert workflow["permissions"] == {"contents": "read"}
    steps = job()["steps"]
    assert all(("run" in s) != ("uses" in s) for s in steps), "each step runs a script or uses an action"
    assert [label(s) for s in steps] == [
        "actions/checkout@v4",
        "actions/setup-python@v5",
        "Configure oh-lsp",
        "Install oh-lsp and the project",
        "Queue unit-test tasks for the changed modules",
        "Generate and check the tests",
        "Collect the generated tests",
        "actions/upload-artifact@v4",
    ]
    assert steps[0]["with"]["fetch-depth"] == 0
    by_label = {label(s): s for s in steps}
    assert (
        "oh-lsp submit-task --task-type unit_test" in by_label["Queue unit-test tasks for the changed modules"]["run"]
    )
    assert "oh-lsp run-engine --workers 2 --until-idle" in by_label["Generate and check the tests"]["run"]
    upload = by_label["actions/upload-artifact@v4"]
    assert upload["with"]["path"] == "generated-tests/" and upload["if"] == "always()"
    assert by_label["Collect the generated tests"]["if"] == "always()"
    for name, value in job()["env"].items():
        for expression in EXPRESSION.findall(str(value)):
            contexts = set(re.findall(r"(?<![\w.])([a-z_]+)\.", expression))
            assert contexts <= JOB_ENV_CONTEXTS, f"jobs.env.{name} uses {contexts - JOB_ENV_CONTEXTS}"
    assert "OPENROUTER_API_KEY" in job()["env"] and "secrets.OPENROUTER_API_KEY" in job()["env"]["OPENROUTER_API_KEY"]


def git(cwd: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.invalid",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.invalid",
    )
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def checkout(root: Path) -> str:
    """A repository with a base commit and a pushed change; returns the base commit."""
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "pkg" / "util.py").write_text("def double(x):\n    return 2 * x\n")  # unchanged: not queued
    (root / "pyproject.toml").write_text('[project]\nname = "proj"\nversion = "0"\n')
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    base = git(root, "rev-parse", "HEAD").strip()
    (root / "pkg" / "calc.py").write_text(CALC)
    (root / "tests").mkdir()
    (root / "tests" / "test_old.py").write_text("def test_old():\n    assert True\n")  # a test: not queued
    (root / "README.md").write_text("# proj\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "change calc")
    return base


def substitute(text: str, values: dict[str, str]) -> str:
    def one(match: re.Match) -> str:
        expression = match.group(1)
        assert expression in values, f"the test does not know the expression {expression!r}: add it"
        return values[expression]

    return EXPRESSION.sub(one, text)


def run_steps(root: Path, values: dict[str, str], env: dict[str, str], runner_temp: Path) -> dict[str, str]:
    """Run each `run:` step like Actions; returns {step: output}."""
    github_env = runner_temp / "github_env"
    carried: dict[str, str] = {}
    job_env = {k: substitute(str(v), values) for k, v in job().get("env", {}).items()}
    outputs, skipped = {}, []
    for step in job()["steps"]:
        if label(step) in SKIPPED:
            skipped.append(label(step))
            continue
        github_env.write_text("")
        step_env = {k: substitute(str(v), values) for k, v in step.get("env", {}).items()}
        environment = {
            **env,
            **job_env,
            **carried,
            **step_env,
            "GITHUB_ENV": str(github_env),
            "RUNNER_TEMP": str(runner_temp),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
        }
        script = runner_temp / "step.sh"
        script.write_text(substitute(step["run"], values))
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=root,
            env=environment,
            capture_output=True,
            text=True,
            timeout=150,
        )
        outputs[label(step)] = done.stdout + done.stderr
        assert done.returncode == 0, f"step {label(step)!r} failed:\n{done.stdout}\n{done.stderr}"
        for line in github_env.read_text().splitlines():
            key, _, value = line.partition("=")
            carried[key] = value
    assert skipped == SKIPPED, "only the steps that cannot run here are skipped"
    return outputs


def test_the_workflow_steps_generate_and_collect_tests(tmp_path: Path, light_python: Path) -> None:
    root = tmp_path / "checkout"
    base = checkout(root)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    bin_dir = str(Path(sys.executable).parent)  # where `oh-lsp` is installed, as the install step would
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OH_LSP_", "OPENHANDS_", "OPENROUTER_"))}
    env.update(PATH=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]), OH_LSP_PYTHON=str(light_python))
    with ScriptedModelServer() as model:
        model.script(Reply.text(fenced(GOOD_TESTS)))
        values = {
            "vars.OH_LSP_REQUIREMENT": "",
            "secrets.OPENROUTER_API_KEY": SENTINEL_KEY,
            "vars.OPENHANDS_MODEL": "test-model",
            "vars.OPENHANDS_BASE_URL": model.base_url,
            "github.event.pull_request.base.sha || github.event.before": base,
        }
        outputs = run_steps(root, values, env, runner_temp)
        assert len(model.requests) == 1 and model.requests[0].body["model"] == "test-model"
        assert model.requests[0].headers["authorization"] == f"Bearer {SENTINEL_KEY}"

    assert "unit_test pkg/calc.py" in outputs["Queue unit-test tasks for the changed modules"]
    assert "pkg/util.py" not in outputs["Queue unit-test tasks for the changed modules"]
    assert "::warning::" not in outputs["Generate and check the tests"]
    collected = root / "generated-tests"
    # the project keeps a flat tests/ folder: the new module goes there
    assert (collected / "tests" / "test_calc.py").read_text() == GOOD_TESTS
    assert sorted(p.relative_to(collected).as_posix() for p in collected.rglob("*") if p.is_file()) == [
        "generated-tests.patch",
        "tasks.json",
        "tests/test_calc.py",
    ], "only what oh-lsp wrote, and the report"
    tasks = json.loads((collected / "tasks.json").read_text())
    assert [(t["kind"], t["target"], t["status"]) for t in tasks] == [("unit_test", "pkg/calc.py", "completed")]
    patch = (collected / "generated-tests.patch").read_text()
    assert "+++ b/tests/test_calc.py" in patch and "+def test_divide_by_zero():" in patch
    state = runner_temp / "oh-lsp-state"
    assert any(state.rglob("*.db")) or any(state.rglob("*.sqlite*")), "the store is where the workflow puts it"
    assert not any(SENTINEL_KEY in text for text in outputs.values()), "the key is never printed"


def test_a_push_without_python_changes_queues_nothing(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    checkout(root)
    head = git(root, "rev-parse", "HEAD").strip()
    (root / "README.md").write_text("# proj\n\nmore\n")
    git(root, "commit", "-q", "-am", "docs")
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OH_LSP_", "OPENHANDS_", "OPENROUTER_"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    values = {
        "vars.OH_LSP_REQUIREMENT": "",
        "secrets.OPENROUTER_API_KEY": "",
        "vars.OPENHANDS_MODEL": "",
        "vars.OPENHANDS_BASE_URL": "",
        "github.event.pull_request.base.sha || github.event.before": head,
    }
    outputs = run_steps(root, values, env, runner_temp)
    assert "No changed Python modules." in outputs["Queue unit-test tasks for the changed modules"]
    assert json.loads((root / "generated-tests" / "tasks.json").read_text()) == []
