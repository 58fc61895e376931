"""The real modules vendored under bench/quality/ (see bench/quality/README.md), as throwaway projects, and a light
interpreter to run their tests with.

A project is a temporary folder holding the module at its top level and, when asked and when upstream tests were
vendored, those tests under `tests/`. The interpreter is a virtual environment under `.cache/bench-python` with only
pytest and coverage.py in it (made once with uv), so that timings measure oh-lsp and the module's tests, not the
import of this repository's own pytest plugins. `--python` in the benchmarks picks another one.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

QUALITY = Path(__file__).resolve().parent / "quality"
REPO = QUALITY.parents[1]
LIGHT_VENV = REPO / ".cache" / "bench-python"


@dataclass(frozen=True)
class Vendored:
    name: str
    module_file: Path
    upstream_tests: list[Path]

    @property
    def module(self) -> str:
        return self.module_file.stem

    @property
    def lines(self) -> int:
        return self.module_file.read_text(encoding="utf-8").count("\n")


def vendored() -> list[Vendored]:
    found = []
    for folder in sorted(p for p in QUALITY.iterdir() if (p / "SOURCE.md").is_file()):
        modules = list(folder.glob("*.py"))
        if len(modules) != 1:
            raise SystemExit(f"{folder} should hold exactly one module, found {[p.name for p in modules]}")
        tests = sorted((folder / "upstream_tests").glob("test_*.py"))
        found.append(Vendored(folder.name, modules[0], tests))
    return found


def make_project(module: Vendored, destination: Path, *, with_tests: bool) -> Path:
    """`destination` made into a project: the module at the top, its upstream tests in tests/ when asked."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy(module.module_file, destination / module.module_file.name)
    (destination / "pyproject.toml").write_text(f'[project]\nname = "{module.name}-bench"\nversion = "0"\n')
    if with_tests and module.upstream_tests:
        (destination / "tests").mkdir(exist_ok=True)
        for test in module.upstream_tests:
            shutil.copy(test, destination / "tests" / test.name)
    return destination


def light_python() -> Path:
    """`.cache/bench-python/bin/python` with pytest and coverage.py, made with uv on first use."""
    python = LIGHT_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run(["uv", "venv", "-q", "--python", "3.11", str(LIGHT_VENV)], check=True)
        subprocess.run(
            ["uv", "pip", "install", "-q", "--python", str(python), "pytest>=8.3,<10", "coverage>=7.5,<8"], check=True
        )
    return python


def module_arguments(description: str | None) -> argparse.ArgumentParser:
    """The options the benchmarks over vendored modules share: --modules, --seconds, --repeat, --python."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--modules", default="", help="comma-separated names under bench/quality (default: all with tests)"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="the mutation cap (mutationSeconds)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--python", type=Path, default=None, help="the interpreter that runs the tests")
    return parser


def chosen_modules(args: argparse.Namespace) -> list[Vendored]:
    """The vendored modules with upstream tests that --modules names (all of them by default)."""
    wanted = {name for name in args.modules.split(",") if name}
    return [m for m in vendored() if m.upstream_tests and (not wanted or m.name in wanted)]
