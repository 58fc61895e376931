"""What is waiting, and until when: said when nothing can run now (every model cooling down past a reset that is not
"soon"), so that nobody waits at a terminal in silence. `generate-tests` and `run-engine --until-idle` then exit
with `EXIT_WAITING` (3): a CI job can tell "rate-limited, try later" from "failed". The tasks stay queued."""

from __future__ import annotations

import time
from typing import Any

from oh_lsp.tasks import QueuedTask, TaskStatus


async def waiting(engine: Any) -> dict[str, Any]:
    """The pending tasks (with when each may run) and the models cooling down (with when each is free again)."""
    now = time.time()
    tasks = await engine.queue.list_tasks(TaskStatus.PENDING, 1000)
    states = await engine.queue.store_thread.run(engine.queue.store.model_states)
    return {
        "tasks": [_task(task, now) for task in sorted(tasks, key=lambda t: t.not_before or 0.0)],
        "models": [
            {"model": name, "free_at": state.cooldown_until, "reason": state.cooldown_reason}
            for name, state in sorted(states.items())
            if state.cooling(now)
        ],
    }


def _task(task: QueuedTask, now: float) -> dict[str, Any]:
    due = task.not_before if task.not_before and task.not_before > now else None
    return {
        "task_id": task.task_id,
        "kind": task.kind,
        "target": str(task.target_file or ""),
        "runs_at": due,
        "note": task.note,
    }


def waiting_report(found: dict[str, Any]) -> str:
    """`waiting()` as lines for a person."""
    now = time.time()
    why = "every model is cooling down" if found["models"] else "the queued tasks wait for their retry time"
    lines = [f"nothing can run now: {why}; the tasks stay queued."]
    for task in found["tasks"]:
        when = f"until {_when(task['runs_at'], now)}" if task["runs_at"] else "ready"
        lines.append(f"  waiting: {task['task_id'][:8]}  {task['kind']} {task['target']}  {when}")
    for model in found["models"]:
        lines.append(f"  {model['model']}: free again at {_when(model['free_at'], now)} ({model['reason']})")
    soonest = min((t["runs_at"] for t in found["tasks"] if t["runs_at"]), default=None)
    if soonest:
        lines.append(f"Run `oh-lsp run-engine` again after {time.strftime('%H:%M:%S', time.localtime(soonest))}.")
    return "\n".join(lines)


def _when(at: float, now: float) -> str:
    minutes = max(at - now, 0.0) / 60
    left = f"{minutes:.0f} min" if minutes >= 1 else f"{max(at - now, 0.0):.0f} s"
    return f"{time.strftime('%H:%M:%S', time.localtime(at))} (in {left})"
