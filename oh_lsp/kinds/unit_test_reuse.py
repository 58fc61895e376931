"""A unit_test session's side of incremental work (unit_test_increment.py): before the first model call, what the
last completed task on the target kept is read (`reuse`), the tests of it that still apply are checked again by the
value gate, and the units to ask about are worked out; when the task completes, what it kept is written for the next
one (`remember`). Both go through the engine's `Memory` (kinds/base.py), which a bypass of the result cache turns
off for reading.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from oh_lsp import progress_text
from oh_lsp.kinds.base import CheckEnv
from oh_lsp.kinds.test_layout import locate_tests
from oh_lsp.kinds.unit_test_gaps import Aim, definitions
from oh_lsp.kinds.unit_test_gate import Ledger, judge_answer
from oh_lsp.kinds.unit_test_increment import MODULE_LEVEL, Plan, Remembered, functions_count, plan, units, units_run
from oh_lsp.tasks import QueuedTask

CARRIED = "kept earlier"  # the label of the carried tests' check


@dataclass
class Reuse:
    """What a task takes from the last completed one on its target (nothing: a full task)."""

    plan: Plan | None = None
    previous: Remembered | None = None
    focus: tuple[str, ...] = ()  # the units asked about; empty: what is left of the whole aim, as a full task
    carried: list[str] = field(default_factory=list)  # tests kept earlier, checked again and kept
    dropped: list[str] = field(default_factory=list)  # tests kept earlier that the gate dropped this time

    def report(self) -> dict[str, Any] | None:
        """The result's `incremental` field (None for a full task)."""
        if self.plan is None or self.previous is None:
            return None
        return {
            "from_task": self.previous.task_id,
            "functions": functions_count(self.plan.now),
            "changed": self.plan.changed,
            "asked": list(self.focus),
            "carried": self.carried,
            "carried_dropped": self.dropped,
            "delivered_before": self.plan.present,
        }


async def reuse(env: CheckEnv, ledger: Ledger, task: QueuedTask | None, aim: Aim) -> Reuse:
    """What to take from the last completed task on the target (module docstring). Anything unreadable: nothing."""
    if env.memory is None or task is None:
        return Reuse()
    previous = Remembered.from_json(await env.memory.recall())
    if previous is None or previous.description != task.description.strip():  # another question: a full task
        return Reuse()
    target = ledger.target
    location = locate_tests(target.root, target.path)
    existing = (target.root / location.path).read_text(encoding="utf-8") if location.exists else ""
    found = plan(previous, target.text, existing)
    if not found.changed:  # nothing changed (a test file did): what is left beside the existing tests, as before
        return Reuse(previous=previous)
    changed = [u for u in found.changed if u != MODULE_LEVEL]
    env.progress(progress_text.incremental(len(changed), functions_count(found.now)))
    kept: list[str] = []
    if found.carry:
        env.progress(progress_text.carried_tests_checked(len(found.carried)))
        dropped_before, generated_before = len(ledger.dropped), ledger.generated
        judged = await judge_answer(env, ledger, found.carry, label=CARRIED)
        del ledger.dropped[dropped_before:]  # no answer of this task: reported in the result's `incremental`
        ledger.generated = generated_before  # the model's share of kept tests counts this task's answers only
        kept = judged.kept
    dropped = sorted(set(found.carried) - set(kept))
    asked = found.asked(dropped) if aim.kind is None else set()
    return Reuse(found, previous, tuple(sorted(asked)), kept, dropped)


async def remember(env: CheckEnv, ledger: Ledger, task: QueuedTask | None, aim: Aim, used: Reuse) -> None:
    """Keep, for the next task on the target, what this completed task was about and the tests it kept."""
    if env.memory is None or task is None:
        return
    target = ledger.target
    now = used.plan.now if used.plan is not None else units(target.text)
    settled = {u: fp for u, fp in (used.previous.units if used.previous else {}).items() if now.get(u) == fp}
    if aim.kind is None:  # the units the task was about: the whole module, or a symbol's
        if aim.first is None or aim.last is None:
            held = set(now)
        else:
            held = {
                name
                for first, last, name in definitions(ast.parse(target.text))
                if aim.first <= first <= last <= aim.last
            }
        settled.update({u: now[u] for u in held if u in now})
    tests = {key: units_run(target.text, test.lines) for key, test in ledger.kept.items()}
    value = Remembered(task.task_id, task.description.strip(), settled, ledger.kept_source, tests)
    await env.memory.keep(value.to_json())
