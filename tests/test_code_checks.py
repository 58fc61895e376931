"""The checks of the project's own code can fail: each one is run on a planted violation, with the project's config.

The checks themselves (ruff, mypy, import-linter, scripts/import_cycles.py, the VS Code extension's lint) run on the
real tree in `.ci/run`'s check step (`uv run pre-commit run --all-files`), not here: "the tree is clean" is asserted
once, there. Here: that each check finds what it is for and says where, and that `.ci/run` and
`.pre-commit-config.yaml` really run every one of them before the tests.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = REPO / "pyproject.toml"
BIN = Path(sys.executable).parent  # the environment `uv sync` made: ruff, mypy and lint-imports are installed there


def run(args: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# --- ruff ------------------------------------------------------------------------------------------------------------


def test_ruff_check_fails_on_a_lint_error_with_the_projects_rules(tmp_path: Path) -> None:
    planted = write(
        tmp_path / "planted.py",
        """\
        import os


        def add(item, items=[]):
            items.append(item)
            return items
        """,
    )
    clean = write(tmp_path / "clean.py", "def add(item: int) -> list[int]:\n    return [item]\n")

    concise = ["--output-format", "concise", "--no-cache"]
    result = run([BIN / "ruff", "check", "--config", PYPROJECT, *concise, planted], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "planted.py:1:8: F401" in result.stdout.replace("\\", "/")  # pyflakes: unused import
    assert "B006" in result.stdout  # bugbear, one of the rules the project selects beyond ruff's defaults
    assert run([BIN / "ruff", "check", "--config", PYPROJECT, *concise, clean], tmp_path).returncode == 0


def test_ruff_format_check_fails_on_unformatted_code(tmp_path: Path) -> None:
    planted = write(tmp_path / "planted.py", "x = {  'a':1 }\n")
    formatted = write(tmp_path / "formatted.py", 'x = {"a": 1}\n')

    result = run([BIN / "ruff", "format", "--check", "--config", PYPROJECT, "--no-cache", planted], tmp_path)
    assert result.returncode == 1
    assert "planted.py" in result.stdout
    assert "1 file would be reformatted" in result.stdout
    assert run([BIN / "ruff", "format", "--check", "--config", PYPROJECT, formatted], tmp_path).returncode == 0


# --- mypy ------------------------------------------------------------------------------------------------------------


MYPY = tomllib.loads(PYPROJECT.read_text())["tool"]["mypy"]


def test_mypy_relaxes_modules_only_per_error_code() -> None:
    """No module escapes the checker wholesale: a relaxation names its error codes (docs/development.md), and only
    third-party modules that are not installed may be missing."""
    assert MYPY["strict"] is True
    for override in MYPY["overrides"]:
        assert set(override) <= {"module", "disable_error_code", "ignore_missing_imports"}, override
        if override.get("ignore_missing_imports"):
            modules = [override["module"]] if isinstance(override["module"], str) else override["module"]
            assert not [m for m in modules if m.startswith("oh_lsp")], override


def relaxed_for_arg_type_only_or_more() -> str | None:
    """A module of the config that is relaxed for arg-type but not for assignment errors, while there is one."""
    for override in MYPY["overrides"]:
        codes = override.get("disable_error_code", [])
        if "arg-type" in codes and "assignment" not in codes:
            return str(override["module"])
    return None


def test_mypy_fails_on_a_type_error_is_strict_and_relaxes_a_module_only_for_the_codes_it_lists(tmp_path: Path) -> None:
    files = [
        write(tmp_path / "planted.py", 'def half(n: int) -> int:\n    return n / 2\n\n\nhalf("four")\n'),
        write(tmp_path / "untyped.py", "def double(n):\n    return n * 2\n"),
    ]
    # A module that the config relaxes until its restructure lands: its arg-type error is not reported, any other
    # error still is. (Once no module is relaxed for arg-type, there is nothing left to show.)
    relaxed = relaxed_for_arg_type_only_or_more()
    if relaxed:
        *packages, name = relaxed.split(".")
        for depth in range(len(packages)):
            write(tmp_path.joinpath(*packages[: depth + 1], "__init__.py"), "")
        body = 'def shout(text: str) -> str:\n    return text.upper()\n\n\nshout(3)\ncount: int = "three"\n'
        files.append(write(tmp_path.joinpath(*packages, f"{name}.py"), body))

    mypy = [sys.executable, "-m", "mypy", "--config-file", PYPROJECT, "--cache-dir", tmp_path / ".mypy_cache"]
    result = run([*mypy, *(f.relative_to(tmp_path) for f in files)], tmp_path)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert re.search(r"planted\.py:2: error: Incompatible return value type .*\[return-value\]", out)
    assert re.search(r'planted\.py:5: error: Argument 1 to "half" has incompatible type "str".*\[arg-type\]', out)
    assert re.search(r"untyped\.py:1: error: Function is missing a type annotation.*\[no-untyped-def\]", out)  # strict
    if relaxed:
        module_file = f"{relaxed.rsplit('.', 1)[-1]}.py"
        assert re.search(re.escape(module_file) + r":6: error: Incompatible types in assignment.*\[assignment\]", out)
        assert f"{module_file}:5:" not in out  # the code relaxed there


# --- import-linter ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted_tree(tmp_path_factory: pytest.TempPathFactory) -> str:
    """lint-imports' report on a copy of oh_lsp/ with one violation of each contract planted in new modules (so that
    the plants do not depend on today's modules), some inside functions, and TYPE_CHECKING imports that must not
    count."""
    root = tmp_path_factory.mktemp("layering")
    shutil.copytree(REPO / "oh_lsp", root / "oh_lsp", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PYPROJECT, root / "pyproject.toml")
    pkg = root / "oh_lsp"
    write(pkg / "store" / "planted_front.py", "def f():\n    import oh_lsp.cli\n")  # engine-no-fronts, in a function
    write(pkg / "llm" / "planted_engine.py", "def f():\n    from oh_lsp import pipeline\n")  # llm-below-engine
    write(pkg / "kinds" / "planted_helper.py", "from oh_lsp.kinds import unit_test\n")  # kinds-stand-alone
    with (pkg / "kinds" / "documentation.py").open("a") as kind:  # a kind importing another kind
        kind.write("\nfrom oh_lsp.kinds import refactoring  # planted\n")
    for target in ("cli", "lsp", "llm", "kinds"):  # what the plants below import
        write(pkg / target / "planted_target.py", "")
    write(pkg / "lsp" / "planted_lsp.py", "from oh_lsp.cli import planted_target\n")  # lsp-no-cli
    write(pkg / "cli" / "planted_cli.py", "from oh_lsp.lsp import planted_target\n")  # cli-only-lsp-entry
    write(pkg / "store" / "planted_llm.py", "import oh_lsp.llm.planted_target\n")  # store-no-llm
    in_function = "def f():\n    from oh_lsp.kinds import planted_target\n"
    write(pkg / "validation" / "planted_kind.py", in_function)  # validation-no-kinds
    write(  # not imports at run time: none of these may count
        pkg / "llm" / "planted_typing.py",
        """\
        import typing
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            from oh_lsp import engine
        if typing.TYPE_CHECKING:
            from oh_lsp.lsp import planted_target
        """,
    )
    result = run([BIN / "lint-imports", "--no-logo", "--no-cache"], root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Analyzed" in result.stdout
    return result.stdout


def broken_sections(report: str) -> dict[str, str]:
    """Each broken contract's id -> its section of lint-imports' report (the import chains), whitespace flattened
    (import-linter wraps long names)."""
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    names = {c["id"]: re.sub(r"\s+", " ", c["name"]) for c in contracts}
    flat = re.sub(r"\s+", " ", report)
    summary, _, broken = flat.partition(" Broken contracts ")
    starts = sorted((broken.index(name), cid) for cid, name in names.items() if f"{name} BROKEN" in summary)
    ends = [start for start, _ in starts[1:]] + [len(broken)]
    return {cid: broken[start:end] for (start, cid), end in zip(starts, ends, strict=True)}


@pytest.mark.parametrize(
    ("contract", "chain"),
    [
        ("engine-no-fronts", "oh_lsp.store.planted_front -> oh_lsp.cli (l.2)"),  # inside a function
        ("llm-below-engine", "oh_lsp.llm.planted_engine -> oh_lsp.pipeline (l.2)"),  # inside a function
        ("kinds-stand-alone", "oh_lsp.kinds.planted_helper -> oh_lsp.kinds.unit_test (l.1)"),
        ("kinds-stand-alone", "oh_lsp.kinds.documentation -> oh_lsp.kinds.refactoring"),
        ("lsp-no-cli", "oh_lsp.lsp.planted_lsp -> oh_lsp.cli.planted_target (l.1)"),
        ("cli-only-lsp-entry", "oh_lsp.cli.planted_cli -> oh_lsp.lsp.planted_target (l.1)"),
        ("store-no-llm", "oh_lsp.store.planted_llm -> oh_lsp.llm.planted_target (l.1)"),
        ("validation-no-kinds", "oh_lsp.validation.planted_kind -> oh_lsp.kinds.planted_target (l.2)"),
    ],
)
def test_lint_imports_reports_each_planted_layering_violation(planted_tree: str, contract: str, chain: str) -> None:
    sections = broken_sections(planted_tree)
    assert contract in sections, planted_tree
    assert chain in sections[contract], sections[contract]


def test_lint_imports_ignores_type_checking_imports(planted_tree: str) -> None:
    assert "planted_typing" not in planted_tree


# --- scripts/import_cycles.py ----------------------------------------------------------------------------------------


@functools.cache
def load_cycles_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_cycles", REPO / "scripts" / "import_cycles.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def package(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "pkg"
    for name, text in files.items():
        write(pkg / name, text)
    return pkg


def cycles(pkg: Path) -> tuple[int, str]:
    count, lines = load_cycles_script().check(pkg)
    return count, "\n".join(lines)


def test_cycle_script_exits_non_zero_and_names_the_imports_of_a_two_module_cycle(tmp_path: Path) -> None:
    pkg = package(
        tmp_path,
        {"__init__.py": "", "a.py": "from pkg.b import B\nA = 1\n", "b.py": "\n\nfrom pkg import a\nB = 2\n"},
    )
    result = run([sys.executable, REPO / "scripts" / "import_cycles.py", pkg], tmp_path)
    assert result.returncode == 1
    assert "cycle 1: pkg.a -> pkg.b -> pkg.a" in result.stdout
    assert "pkg/a.py:1: pkg.a -> pkg.b" in result.stdout
    assert "pkg/b.py:3: pkg.b -> pkg.a" in result.stdout
    assert "1 import cycle(s) in pkg" in result.stdout


@pytest.mark.parametrize(
    ("files", "found", "lines"),
    [
        pytest.param(  # the import that closes the cycle is inside a method
            {
                "engine.py": "import pkg.runtime\n",
                "runtime.py": "class R:\n    def run(self):\n        from pkg.engine import go\n        return go\n",
            },
            1,
            ["pkg/runtime.py:3: pkg.runtime -> pkg.engine"],
            id="function-level import",
        ),
        pytest.param(  # only the TYPE_CHECKING branch is skipped, not its else
            {
                "a.py": "from pkg import b\n",
                "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    pass\nelse:\n    from pkg import a\n",
            },
            1,
            ["pkg/b.py:5: pkg.b -> pkg.a"],
            id="else branch of TYPE_CHECKING",
        ),
        pytest.param(  # a package's __init__ is a module of the cycle; two cycles are reported apart
            {
                "cli/__init__.py": "def main():\n    from pkg.cli import commands\n",
                "cli/commands.py": "from pkg.cli import main\n",
                "x.py": "import pkg.y\n",
                "y.py": "import pkg.x\n",
            },
            2,
            ["cycle 1: pkg.cli -> pkg.cli.commands -> pkg.cli", "cycle 2: pkg.x -> pkg.y -> pkg.x"],
            id="package __init__, two cycles",
        ),
    ],
)
def test_cycle_script_finds(tmp_path: Path, files: dict[str, str], found: int, lines: list[str]) -> None:
    count, report = cycles(package(tmp_path, {"__init__.py": "", **files}))
    assert count == found, report
    for line in lines:
        assert line in report


def test_cycle_script_ignores_type_checking_imports(tmp_path: Path) -> None:
    pkg = package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from pkg import b\n",
            "b.py": (
                "import typing\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg.a import A\n"
                "if typing.TYPE_CHECKING:\n    import pkg.a\nelse:\n    X = 1\n"
            ),
        },
    )
    result = run([sys.executable, REPO / "scripts" / "import_cycles.py", pkg], tmp_path)
    assert result.returncode == 0, result.stdout
    assert "no import cycle in pkg (3 modules, 1 imports)" in result.stdout


def test_cycle_script_resolves_relative_imports_and_submodules_named_in_from_imports(tmp_path: Path) -> None:
    pkg = package(
        tmp_path,
        {
            "__init__.py": "",
            "store/__init__.py": "from .sqlite import SQLiteStore\n",  # the package's __init__ -> its submodule
            "store/sqlite.py": "from .. import metrics\n",  # `from package import module`, relative, two levels
            "store/base.py": "",
            "metrics.py": "from .store import base\n",  # a submodule by name: no edge to store/__init__
            "records.py": "from pkg.store import SQLiteStore\n",  # a name from a package: an edge to its __init__
            "leaf.py": "from . import records\n",
        },
    )
    count, report = cycles(pkg)
    assert count == 0, report
    assert "(7 modules, 5 imports)" in report

    write(pkg / "store" / "base.py", "from ..records import nothing\n")  # store.base -> records -> store
    count, report = cycles(pkg)
    assert count == 1
    assert (
        "5 modules import each other: pkg.metrics, pkg.records, pkg.store, pkg.store.base, pkg.store.sqlite" in report
    )


def test_cycle_script_refuses_a_file_that_does_not_parse(tmp_path: Path) -> None:
    pkg = package(tmp_path, {"__init__.py": "", "broken.py": "def (:\n"})
    result = run([sys.executable, REPO / "scripts" / "import_cycles.py", pkg], tmp_path)
    assert result.returncode == 2
    assert "cannot parse" in result.stderr and "broken.py:1" in result.stderr


# --- where the checks run --------------------------------------------------------------------------------------------


def test_pre_commit_config_runs_every_check_with_the_projects_own_tools() -> None:
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]  # nothing downloaded from a hook repository
    entries = {hook["id"]: hook["entry"] for repo in config["repos"] for hook in repo["hooks"]}
    assert entries == {
        "ruff-check": "uv run --quiet ruff check --force-exclude",
        "ruff-format": "uv run --quiet ruff format --check --force-exclude",
        "mypy": "uv run --quiet mypy",
        "import-contracts": "uv run --quiet lint-imports --no-logo",
        "import-cycles": "uv run --quiet python scripts/import_cycles.py",
        "vscode-lint": "npm --prefix editors/vscode run --silent lint",
    }
    package_json = (REPO / "editors" / "vscode" / "package.json").read_text()
    assert '"lint": "tsc -p . --noEmit && oxlint --type-aware --deny-warnings src test"' in package_json


def test_ci_runs_the_checks_before_the_tests_and_fails_on_them() -> None:
    script = (REPO / ".ci" / "run").read_text()
    checks = script.index("\nuv run pre-commit run --all-files")
    assert script[checks + 1 :].split("\n", 1)[0].endswith('|| failed="$failed checks"')
    assert checks < script.index("\nuv run pytest")  # before the first test suite
    assert script.index("npm ci") < checks  # the extension's lint needs its node modules
    assert script.rstrip().endswith('echo "all suites passed"')
    assert 'if [ -n "$failed" ]; then' in script and "exit 1" in script.split('if [ -n "$failed" ]; then')[-1]
