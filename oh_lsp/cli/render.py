"""Human-readable text for the CLI's reports."""

from __future__ import annotations

from typing import Any

from oh_lsp.progress_text import (
    coverage_text,
    incremental_text,
    money,
    mutation_text,
    outcome_text,
    savings_text,
)
from oh_lsp.tasks import QueuedTask


def task_report(task: QueuedTask) -> str:
    result = task.result or {}
    answers = result.get("iterations")
    tries = f"attempts: {task.attempts}" + (f" ({answers} answer{'' if answers == 1 else 's'})" if answers else "")
    lines = [
        f"Task {task.task_id}",
        f"  status:   {task.status.value}" + (f" ({task.note})" if task.note else ""),
        f"  kind:     {task.kind}   priority: {task.priority.name.lower()}   {tries}",
        f"  target:   {task.target_file or '-'}",
    ]
    if task.description:
        lines.append(f"  asked:    {task.description}")
    if task.model:
        tokens = f"{task.tokens} (estimated)" if result.get("tokens_estimated") else str(task.tokens)
        lines.append(f"  model:    {task.model}   tokens: {tokens}   cost: {money(task.cost)}")
        why = (result.get("model_choice") or {}).get("why")
        if why:
            lines.append(f"  why:      {why}")
    cached = result.get("from_cache")
    if cached:
        lines.append(
            f"  from cache: the result of task {cached.get('task_id')}, no model call (it took"
            f" {cached.get('tokens', 0)} tokens, {money(float(cached.get('cost') or 0.0))})"
        )
    if result.get("output_file"):
        lines.append(f"  output:   {result['output_file']}  ({written_text(task)})")
    validation = result.get("validation") or {}
    if validation:
        best = f", answer {result['attempt']} of {answers}" if answers and answers > 1 and result.get("attempt") else ""
        lines.append(
            f"  checks:   {'passed' if validation.get('passed') else 'failed'}, score {validation.get('score', 0):.2f}"
            + best
        )
    lines += _test_lines(result)
    if validation:
        lines += _finding_lines([*validation.get("errors", []), *validation.get("warnings", [])])
    last = (result.get("attempts") or [{}])[-1]
    if task.status.value == "failed" and answers and answers > 1 and last.get("iteration") != result.get("attempt"):
        lines.append(
            f"  last:     {'passed' if last.get('passed') else 'failed'}, score {last.get('score', 0):.2f}"
            f", answer {last.get('iteration')} of {answers}"
        )
        lines += _finding_lines(last.get("errors", []))
    if task.error:
        lines.append(f"  error:    {task.error}")
    if result.get("diff"):
        lines.append("  diff:")
        lines.extend("    " + line for line in result["diff"].rstrip("\n").split("\n"))
    return "\n".join(lines)


def task_line(task: QueuedTask) -> str:
    """One line on a task that ended: its id, status, kind, target and outcome."""
    result = task.result or {}
    outcome = outcome_text(
        task.status.value,
        result,
        cost=task.cost,
        error=task.error,
        delivered=written_text(task) if result.get("output_file") else None,
    )
    status = "completed: " if task.status.value == "completed" else ""
    return f"{task.task_id}  {task.kind} {task.target_file or '-'}: {status}{outcome}"


def _finding_lines(findings: list[dict[str, Any]]) -> list[str]:
    return [
        f"    {f.get('severity', 'error')} {f.get('code')}  {f.get('file', '')}:{f.get('line', 1)}  {f.get('message', '')}"
        for f in findings
    ]


def written_text(task: QueuedTask) -> str:
    """Whether the result's file was written, and if not, why."""
    if task.written:
        return "written"
    status = task.status.value
    if status in ("failed", "cancelled"):
        return f"not written: the task {'failed' if status == 'failed' else 'was cancelled'}"
    if status != "completed":
        return "not written yet"
    if task.delivery is None:
        if task.submitter == "api":
            return "not written: the Python API returns the edit"
        writer = "`oh-lsp run-engine`" if task.submitter == "cli" else "the editor's oh-lsp"
        return f"not written yet: {writer} writes it"
    return f"not written: {task.delivery}"


def _test_lines(result: dict[str, Any]) -> list[str]:
    """A unit_test result's figures: tests kept of those generated, coverage and mutation score before → after."""
    lines = []
    if result.get("generated_tests") is not None:
        kept = len(result.get("kept_tests") or [])
        reused = incremental_text(result)
        if reused:
            lines.append(f"  {reused}")
            kept -= len(result["incremental"].get("carried") or [])
        lines.append(f"  tests:    {kept} kept of {result['generated_tests']} generated")
    coverage = coverage_text(result.get("coverage"))
    if coverage and result.get("kind") == "unit_test":
        lines.append(f"  {coverage.replace('coverage ', 'coverage: ', 1)} (line+branch)")
    mutation = mutation_text(result.get("mutation"))
    if mutation:
        figures = result["mutation"]
        lines.append(
            f"  {mutation.replace('mutation ', 'mutation: ', 1)} ({figures.get('detected_after')} of"
            f" {figures.get('analysed')} mutants noticed)"
        )
    return lines


def stats_report(stats: dict[str, Any]) -> str:
    by_priority = ", ".join(f"{k} {v}" for k, v in stats.get("pending_by_priority", {}).items())
    return "\n".join(
        [
            f"Queue ({stats.get('store')})",
            f"  pending {stats['pending']}  running {stats['running']}  completed {stats['completed']}  "
            f"failed {stats['failed']}  cancelled {stats['cancelled']}"
            f"  (total {stats['total']}, max {stats.get('max_size')})",
            f"  pending by priority: {by_priority}",
            f"  waiting to retry: {stats.get('waiting_for_retry', 0)}",
        ]
    )


def metrics_report(summary: dict[str, Any]) -> str:
    system = summary["system"]
    lines = [
        "System",
        f"  executions {system['executions']}  successful {system['successful']}  failed {system['failed']}  "
        f"success rate {system['success_rate']:.0%}",
        f"  tokens {system['total_tokens']}  cost {money(system['total_cost'])}  (today {money(system['cost_today'])})",
        f"  {savings_text(system)}",
        f"  average duration {system['avg_duration_seconds']:.1f}s"
        f"  average quality {system['avg_quality_score']:.2f}/5",
        "Models",
    ]
    for name, model in summary["models"].items():
        lines.append(
            f"  {name}: {model['executions']} runs, {model['success_rate']:.0%} ok, "
            f"{model['total_tokens']} tokens{' (some estimated)' if model.get('tokens_estimated') else ''},"
            f" {money(model['total_cost'])}"
        )
    if not summary["models"]:
        lines.append("  (none yet)")
    lines += _model_state_lines(summary.get("model_state", {}), summary.get("rotations", 0))
    lines += _cost_lines(summary.get("costs", {}))
    budget = summary.get("budget") or {}
    if budget.get("per_task_usd") is not None or budget.get("per_day_usd") is not None:
        per_task = "none" if budget["per_task_usd"] is None else money(budget["per_task_usd"])
        per_day = "none" if budget["per_day_usd"] is None else money(budget["per_day_usd"])
        left = "" if budget["left_today_usd"] is None else f", {money(budget['left_today_usd'])} left today"
        lines.append(f"Budget: per task {per_task}, per day {per_day}{left}")
    return "\n".join(lines)


def _model_state_lines(states: dict[str, Any], rotations: int) -> list[str]:
    if not states:
        return []
    lines = [f"Model health (rotations: {rotations})"]
    for name, state in states.items():
        parts = [f"breaker {state['breaker']}"]
        if state["breaker"] == "open":
            parts[0] += f" ({state['breaker_seconds_left']:.1f}s left)"
        if state["cooldown_seconds_left"] > 0:
            parts.append(f"cooling down {state['cooldown_seconds_left']:.1f}s ({state['cooldown_reason']})")
        if state["rotations_away"] or state["rotations_to"]:
            parts.append(f"rotated away {state['rotations_away']}x, to it {state['rotations_to']}x")
        lines.append(f"  {name}: " + ", ".join(parts))
    return lines


def _cost_lines(costs: dict[str, Any]) -> list[str]:
    if not costs.get("by_model"):
        return []
    lines = ["Cost per call"]
    for label, key in (("model", "by_model"), ("task kind", "by_kind"), ("day", "by_day")):
        items = ", ".join(f"{name} {money(c['cost'])} ({c['calls']} calls)" for name, c in costs[key].items())
        lines.append(f"  by {label}: {items}")
    return lines


def selection_report(selection: Any) -> str:
    data = selection.to_dict()
    lines = []
    if data["model"]:
        top = data["chain"][0]
        quality = "unknown" if top["quality_score"] is None else f"{top['quality_score']}/5.0"
        latency = "unknown" if top["avg_latency_ms"] is None else f"{top['avg_latency_ms']:.0f}ms"
        lines += [
            f"Selected: {data['model']} ({data['id']})",
            f"  Latency: {latency}",
            f"  Quality: {quality}",
            f"  Success Rate: {top['success_rate'] * 100:.0f}%",
            f"  Why: {data['why']}",
        ]
        lines.append("  Chain: " + " > ".join(m["name"] for m in data["chain"]))
    else:
        lines.append("No model is available now.")
    for name, reason in data["excluded"].items():
        lines.append(f"  not {name}: {reason}")
    return "\n".join(lines)


def models_report(rows: list[dict[str, Any]]) -> str:
    lines = []
    for row in rows:
        quality = "unknown" if row["quality_score"] is None else f"{row['quality_score']}/5"
        price = (
            "price unknown"
            if row["price_prompt"] is None
            else f"${row['price_prompt'] * 1e6:.2f}/${(row['price_completion'] or 0) * 1e6:.2f} per M tokens"
        )
        context = f"{row['context_length']} ctx" if row["context_length"] else "ctx unknown"
        lines.append(f"{row['name']:<16} {row['id']:<44} quality {quality:<8} {price}, {context}, {row['state']}")
    return "\n".join(lines) or "(no models: set OPENHANDS_MODEL, OH_LSP_MODEL_CATALOG, or run `oh-lsp models refresh`)"
