"""A task's own threshold and repair iterations are taken when they keep the setting's range, which is read from the
`OpenHandsConfig` field: the range is written once, on the field."""

from __future__ import annotations

import annotated_types
import pytest

from oh_lsp.attempt import answer_limit, task_threshold
from oh_lsp.config import OpenHandsConfig, field_bounds
from oh_lsp.tasks import QueuedTask

CONFIG = OpenHandsConfig(quality_threshold=0.7, max_repair_iterations=2)


def task(**metadata: object) -> QueuedTask:
    return QueuedTask(task_type="unit_test", description="", metadata=metadata)


def test_field_bounds_are_the_fields_declared_range() -> None:
    assert field_bounds("max_repair_iterations") == {"ge": 0, "le": 10}
    assert field_bounds("quality_threshold") == {"ge": 0, "le": 1}
    assert field_bounds("timeout_seconds") == {"gt": 0}
    assert field_bounds("model") == {}


@pytest.mark.parametrize(("given", "answers"), [(0, 1), (10, 11), (11, 3), (-1, 3), ("5", 3), (None, 3)])
def test_a_tasks_repair_iterations_count_within_the_settings_range(given: object, answers: int) -> None:
    assert answer_limit(task(max_repair_iterations=given), CONFIG) == answers


@pytest.mark.parametrize(("given", "threshold"), [(0, 0.0), (1, 1.0), (0.5, 0.5), (1.5, 0.7), (-0.1, 0.7), ("1", 0.7)])
def test_a_tasks_threshold_counts_within_the_settings_range(given: object, threshold: float) -> None:
    assert task_threshold(task(quality_threshold=given), CONFIG) == threshold


def test_the_range_is_read_from_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    field = OpenHandsConfig.model_fields["max_repair_iterations"]
    monkeypatch.setattr(field, "metadata", [annotated_types.Ge(0), annotated_types.Le(3)])
    assert answer_limit(task(max_repair_iterations=3), CONFIG) == 4
    assert answer_limit(task(max_repair_iterations=4), CONFIG) == 3  # beyond the field's range: the configured 2
