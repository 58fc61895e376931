"""Human-readable text for the CLI's reports."""

from __future__ import annotations

from typing import Any

from oh_lsp.tasks import QueuedTask


def money(value: float) -> str:
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def task_report(task: QueuedTask) -> str:
    result = task.result or {}
    lines = [
        f"Task {task.task_id}",
        f"  status:   {task.status.value}" + (f" ({task.note})" if task.note else ""),
        f"  kind:     {task.task_type}   priority: {task.priority.name.lower()}   attempts: {task.attempts}",
        f"  target:   {task.target_file or '-'}",
    ]
    if task.description:
        lines.append(f"  asked:    {task.description}")
    if task.model:
        lines.append(f"  model:    {task.model}   tokens: {task.tokens}   cost: {money(task.cost)}")
    if result.get("output_file"):
        delivered = {None: "not delivered yet"}.get(task.delivery, task.delivery)
        lines.append(f"  output:   {result['output_file']}  ({delivered})")
    validation = result.get("validation") or {}
    if validation:
        lines.append(f"  checks:   {'passed' if validation.get('passed') else 'failed'}, score "
                     f"{validation.get('score', 0):.2f}")
        for finding in [*validation.get("errors", []), *validation.get("warnings", [])]:
            where = f"{finding.get('file', '')}:{finding.get('line', 1)}"
            lines.append(f"    {finding.get('severity', 'error')} {finding.get('code')}  {where}  "
                         f"{finding.get('message', '')}")
    if task.error:
        lines.append(f"  error:    {task.error}")
    if result.get("diff"):
        lines.append("  diff:")
        lines.extend("    " + line for line in result["diff"].rstrip("\n").split("\n"))
    return "\n".join(lines)


def stats_report(stats: dict[str, Any]) -> str:
    by_priority = ", ".join(f"{k} {v}" for k, v in stats.get("pending_by_priority", {}).items())
    return "\n".join([
        f"Queue ({stats.get('store')})",
        f"  pending {stats['pending']}  running {stats['running']}  completed {stats['completed']}  "
        f"failed {stats['failed']}  cancelled {stats['cancelled']}  (total {stats['total']}, max {stats.get('max_size')})",
        f"  pending by priority: {by_priority}",
        f"  waiting to retry: {stats.get('waiting_for_retry', 0)}",
    ])


def metrics_report(summary: dict[str, Any]) -> str:
    system = summary["system"]
    lines = [
        "System",
        f"  executions {system['executions']}  successful {system['successful']}  failed {system['failed']}  "
        f"success rate {system['success_rate']:.0%}",
        f"  tokens {system['total_tokens']}  cost {money(system['total_cost'])}  (today {money(system['cost_today'])})",
        f"  average duration {system['avg_duration_seconds']:.1f}s  average quality {system['avg_quality_score']:.2f}/5",
        "Models",
    ]
    for name, model in summary["models"].items():
        lines.append(f"  {name}: {model['executions']} runs, {model['success_rate']:.0%} ok, "
                     f"{model['total_tokens']} tokens, {money(model['total_cost'])}")
    if not summary["models"]:
        lines.append("  (none yet)")
    return "\n".join(lines)
