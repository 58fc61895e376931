"""The small project the tests and the benchmarks ask about: `pkg/calc.py` (two functions) and a test module for it
that covers every line (`GOOD_TESTS`)."""

from __future__ import annotations

from pathlib import Path

CALC = '''\
"""A small module to test."""


def add(a, b):
    return a + b


def divide(a, b):
    if b == 0:
        raise ZeroDivisionError("b must not be zero")
    return a / b
'''

GOOD_TESTS = """\
import pytest

from pkg.calc import add, divide


def test_add():
    assert add(2, 3) == 5


def test_divide():
    assert divide(6, 3) == 2


def test_divide_by_zero():
    with pytest.raises(ZeroDivisionError):
        divide(1, 0)
"""


def make_project(root: Path) -> Path:
    """`root` with `pkg/calc.py` and a `pyproject.toml` (no tests yet)."""
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "calc.py").write_text(CALC)
    (root / "pyproject.toml").write_text('[project]\nname = "proj"\nversion = "0"\n')
    return root
