"""The task kinds: each module found by name keeps the `TaskKind` contract, and an unknown kind is a clear error.

A type checker checks `TaskKind` statically (`oh_lsp/kinds/registry.py`); this test checks what it can at run
time, so that a kind module that loses a member, renames a parameter or says another NAME fails here too.
"""

from __future__ import annotations

import inspect

import pytest

from oh_lsp.errors import TargetError
from oh_lsp.kinds.base import TaskKind
from oh_lsp.kinds.registry import available_kinds, get_kind, recompute_for
from oh_lsp.tasks import TaskCategory

MEMBERS = ("build_messages", "make_candidate", "check", "recompute")


def test_the_kinds_are_the_task_categories() -> None:
    assert available_kinds() == [category.value for category in TaskCategory]


@pytest.mark.parametrize("kind", available_kinds())
def test_each_kind_module_keeps_the_contract(kind: str) -> None:
    module = get_kind(kind)
    assert kind == module.NAME
    for name in MEMBERS:
        expected = list(inspect.signature(getattr(TaskKind, name)).parameters)[1:]  # without self
        assert list(inspect.signature(getattr(module, name)).parameters) == expected, f"{kind}.{name}"
    assert inspect.iscoroutinefunction(module.check)
    assert callable(recompute_for({"kind": kind, "output_file": "x.py", "generated_source": ""}))


def test_an_unknown_kind_names_the_ones_there_are() -> None:
    with pytest.raises(TargetError, match=r"cannot run 'poetry' tasks yet.*unit_test, documentation, refactoring"):
        get_kind("poetry")


def test_a_result_without_a_kind_has_nothing_to_recompute() -> None:
    assert recompute_for({"edit": {}}) is None
