"""The coverage baseline: line and branch coverage of a target under the project's existing tests, per test, measured
by real pytest under coverage.py in the sandbox, and cached in the state directory across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oh_lsp import OpenHandsConfig, state_cache
from oh_lsp.kinds.base import CheckEnv, Target
from oh_lsp.kinds.unit_test_baseline import existing_test_files, project_baseline
from oh_lsp.paths import sha256_text
from oh_lsp.validation.coverage_map import FileCoverage, gaps, gaps_in_words, totals

# pkg/calc.py (tests/conftest.py CALC): add() is lines 4-5, divide() lines 8-11; line 9 is `if b == 0:`. Its docstring
# (line 1) is no statement for coverage.py.
ADD_AND_DIVIDE = """\
from pkg.calc import add, divide


def test_add():
    assert add(2, 3) == 5


def test_divide():
    assert divide(6, 3) == 2
"""

ONE_FAILS = """\
from pkg.calc import add, divide


def test_add():
    assert add(2, 3) == 5


def test_divide_wrong():
    assert divide(1, 0) == 0
"""


def env_for(project: Path) -> CheckEnv:
    config = OpenHandsConfig(python=Path(os.environ["OH_LSP_PYTHON"]), workspace_path=project / "scratch")
    return CheckEnv(root=project, config=config)


def target_of(project: Path, path: str = "pkg/calc.py") -> Target:
    text = (project / path).read_text()
    return Target(project, Path(path), text, path[:-3].replace("/", "."), sha256_text(text))


def write(project: Path, relative: str, text: str) -> None:
    (project / relative).parent.mkdir(parents=True, exist_ok=True)
    (project / relative).write_text(text)


async def test_lines_and_branches_per_test(project: Path) -> None:
    write(project, "tests/test_calc.py", ADD_AND_DIVIDE)
    baseline = await project_baseline(env_for(project), target_of(project))
    cov = baseline.coverage
    assert cov.statements == {4, 5, 8, 9, 10, 11}
    assert cov.branches == {(9, 10), (9, 11)}
    assert cov.lines_of() == {4, 5, 8, 9, 11}  # line 10 (the raise) never runs
    assert cov.branches_of() == {(9, 11)}
    assert cov.lines_by_test["tests/test_calc.py::test_add"] == {5}
    assert cov.lines_by_test["tests/test_calc.py::test_divide"] == {9, 11}
    assert cov.arcs_by_test["tests/test_calc.py::test_divide"] == {(9, 11)}
    assert cov.lines_by_test[""] >= {4, 8}  # ran at import, outside any test
    assert baseline.passing == ["tests/test_calc.py::test_add", "tests/test_calc.py::test_divide"]
    assert baseline.failing == {} and baseline.findings == [] and not baseline.cached
    figures = baseline.totals
    assert (figures.statements, figures.covered_lines, figures.branches, figures.covered_branches) == (6, 5, 2, 1)
    assert figures.percent == round(100 * 6 / 8, 2)
    words = [g.text for g in gaps(cov)]
    assert words == ["the branch 9→10 is never taken", "line 10 is never run"]


async def test_failing_existing_tests_leave_a_baseline_of_the_passing_ones(project: Path) -> None:
    write(project, "tests/test_calc.py", ONE_FAILS)
    write(project, "tests/test_broken.py", "from pkg.calc import add\nimport not_a_module_anywhere\n")
    baseline = await project_baseline(env_for(project), target_of(project))
    assert baseline.passing == ["tests/test_calc.py::test_add"]
    assert list(baseline.failing) == ["tests/test_calc.py::test_divide_wrong"]
    # the failing test ran lines 9 and 10, but a failing test covers nothing in the baseline
    assert baseline.coverage.lines_of() == {4, 5, 8}
    codes = sorted(f.code for f in baseline.findings)
    assert codes == ["baseline-incomplete", "existing-tests-failing"]
    failing = next(f for f in baseline.findings if f.code == "existing-tests-failing")
    assert "1 of 2 existing tests" in failing.message and "test_divide_wrong" in failing.message
    broken = next(f for f in baseline.findings if f.code == "baseline-incomplete")
    assert "tests/test_broken.py" in broken.message


async def test_without_tests_the_baseline_is_what_importing_runs(project: Path) -> None:
    baseline = await project_baseline(env_for(project), target_of(project))
    assert baseline.passing == [] and baseline.test_files == []
    assert baseline.coverage.statements == {4, 5, 8, 9, 10, 11}
    assert baseline.coverage.lines_of() == {4, 8}
    assert [g.text for g in gaps(baseline.coverage)] == ["line 5 is never run", "lines 9–11 are never run"]


async def test_baseline_is_cached_by_content_and_seen_by_another_process(project: Path) -> None:
    write(project, "tests/test_calc.py", ADD_AND_DIVIDE)
    env, target = env_for(project), target_of(project)
    first = await project_baseline(env, target)
    again = await project_baseline(env, target)
    assert not first.cached and again.cached
    assert again.coverage.to_dict() == first.coverage.to_dict() and again.passing == first.passing
    # another process of the same project root (the CLI beside the language server) reads the same entry
    from oh_lsp.validation.baseline import NAMESPACE, baseline_key

    key = baseline_key(project, "pkg/calc.py", existing_test_files(project, "pkg.calc"), env.python)
    script = (
        "import json, sys; from pathlib import Path; from oh_lsp.state_cache import read_cached;"
        f" print(json.dumps(read_cached(Path(sys.argv[1]), {NAMESPACE!r}, sys.argv[2])))"
    )
    out = subprocess.run([sys.executable, "-c", script, str(project), key], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["passing"] == first.passing
    # a changed test module is a new key: measured again
    write(project, "tests/test_calc.py", ADD_AND_DIVIDE.replace("add(2, 3) == 5", "add(2, 2) == 4"))
    changed = await project_baseline(env, target)
    assert not changed.cached
    # so is a changed target
    (project / "pkg/calc.py").write_text((project / "pkg/calc.py").read_text() + "\n\nVALUE = 1\n")
    assert not (await project_baseline(env, target_of(project))).cached


def test_state_cache_round_trip_and_limit(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    keys = [state_cache.cache_key("entry", str(i)) for i in range(5)]
    for i, key in enumerate(keys):
        assert state_cache.write_cached(root, "demo", key, {"i": i}, limit=3)
        entry = next(p for p in Path(os.environ["OH_LSP_STATE_DIR"]).rglob(f"{key}.json"))
        os.utime(entry, (1000 + i, 1000 + i))  # distinct ages, whatever the file system's clock resolution
    assert [state_cache.read_cached(root, "demo", k) for k in keys] == [None, None, {"i": 2}, {"i": 3}, {"i": 4}]
    assert state_cache.cache_key("a", "bc") != state_cache.cache_key("ab", "c")
    entry.write_text("{not json")
    assert state_cache.read_cached(root, "demo", keys[-1]) is None
    with pytest.raises(ValueError):
        state_cache.read_cached(root, "../escape", keys[0])
    with pytest.raises(ValueError):
        state_cache.read_cached(root, "demo", "../../x")


def test_gaps_group_statements_and_skip_branches_out_of_missing_lines() -> None:
    cov = FileCoverage(
        statements={1, 2, 3, 5, 6, 8, 9, 12},
        branches={(2, 3), (2, 5), (6, 8), (6, -1), (9, 12), (9, 1)},
        lines_by_test={"": {1}, "t1": {2, 3, 12}},
        arcs_by_test={"t1": {(2, 3)}},
    )
    found = gaps(cov)
    assert [g.text for g in found] == [
        "the branch 2→5 is never taken",
        "lines 5–9 are never run",  # 5, 6, 8, 9 are consecutive statements: one gap
    ]
    assert gaps(cov, tests=[]) == gaps(FileCoverage(cov.statements, cov.branches, {"": {1}}))
    text = gaps_in_words(found, "a\nif x:\n    b\n\nc = 1\n")
    assert text == "- the branch 2→5 is never taken: `if x:`\n- lines 5–9 are never run: `c = 1`"
    assert totals(cov).percent == round(100 * (4 + 1) / (8 + 6), 2)
    exit_arc = FileCoverage({1, 2}, {(1, 2), (1, -1)}, {"t": {1, 2}}, {"t": {(1, 2)}})
    assert [g.text for g in gaps(exit_arc)] == ["the branch 1→exit is never taken"]
