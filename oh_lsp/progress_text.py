"""How a task's progress reads as text, for every front end: the CLI's progress lines and the editors' work-done
progress use these functions, so a stage is worded in one place.

- `event_text`: one engine event as a line of its own (it names the kind and the target where it starts);
- `stage_text`: the same for a view that already names the task (an editor's progress title);
- `outcome_text`: the last words on a finished task (file, score, tests kept and dropped, coverage, cost);
- `warning_text`: a warning (the engine's `warning` event) in full: each front end shows it on its own, before what
  it warns about (the CLI on stderr, the editors as a message), never as a progress stage;
- `money`: a cost in dollars.

Plain functions of events and results: this module knows neither LSP nor the terminal.
"""

from __future__ import annotations

from typing import Any

from oh_lsp import events as ev
from oh_lsp.result_facts import result_facts


def money(value: float) -> str:
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def event_text(event: ev.Event) -> str | None:
    """A line for `event` (None: nothing to say about it)."""
    d = event.data
    if event.kind == ev.QUEUED:
        return f"queued (position {d.get('position')}) {d.get('kind')} {d.get('target') or ''}".rstrip()
    if event.kind == ev.STARTED:
        return f"started {d.get('kind')} {d.get('target') or ''} (attempt {d.get('attempt')})"
    if event.kind == ev.MODEL_CHOSEN:
        return f"model {d.get('model')} ({d.get('why')})"
    if event.kind == ev.TOKENS:
        return (
            f"streaming: {d.get('chunks', 0)} chunks"
            if not d.get("final")
            else f"answer received: {d.get('tokens')} tokens, ${d.get('cost', 0):.6f}"
        )
    if event.kind == ev.VALIDATING:
        return f"validating: {d.get('step')}"
    if event.kind == ev.PROGRESS:
        return str(d.get("message"))
    if event.kind == ev.RETRYING:
        return f"will retry in {d.get('delay', 0):.1f}s: {d.get('error')}"
    if event.kind == ev.COMPLETED:
        result = d.get("result") or {}
        return f"completed: {result.get('output_file')} (score {result.get('score', 0):.2f}, ${d.get('cost', 0):.6f})"
    if event.kind == ev.FAILED:
        return f"failed: {d.get('error')}"
    if event.kind == ev.CANCELLED:
        return f"cancelled: {d.get('reason', '')}"
    return None


def warning_text(event: ev.Event) -> str:
    """The whole text of a `warning` event (shown before what it warns about, e.g. code about to run unsandboxed)."""
    return f"oh-lsp: warning: {event.data.get('message')}"


def stage_text(event: ev.Event) -> str | None:
    """`event_text` for a view whose title already names the task's kind and target."""
    if event.kind == ev.QUEUED:
        position = event.data.get("position")
        return f"queued (position {position})" if position else "queued"
    return event_text(event)


def _coverage_text(coverage: Any) -> str | None:
    if isinstance(coverage, dict):
        before, after = coverage.get("before"), coverage.get("after")
        if isinstance(before, (int, float)) and isinstance(after, (int, float)):
            return f"coverage {before:.0f}% → {after:.0f}% ({after - before:+.0f} pts)"
        gain = coverage.get("gain")
        return f"coverage {gain:+.0f} pts" if isinstance(gain, (int, float)) else None
    if isinstance(coverage, (int, float)):
        return f"coverage {coverage:.0f}%"
    return None


def outcome_text(
    status: str,
    result: dict[str, Any] | None,
    *,
    cost: float = 0.0,
    error: str | None = None,
    delivered: str | None = None,
) -> str:
    """The end of a task's progress: the file, the score, tests kept and dropped, coverage gain and cost."""
    facts = result_facts(status, result)
    kept, dropped = facts.kept, facts.dropped
    result = result or {}
    parts = []
    if status == "completed":
        parts.append(f"{result.get('output_file') or 'done'}" + (f" ({delivered})" if delivered else ""))
    else:
        parts.append(status + (f": {error}" if error and status == "failed" else ""))
    if result.get("score") is not None:
        parts.append(f"score {float(result['score']):.2f}")
    if result.get("kind", "unit_test") == "unit_test" and (kept or dropped):
        parts.append(f"{len(kept)} tests kept, {len(dropped)} dropped")
    coverage = _coverage_text(result.get("coverage"))
    if coverage:
        parts.append(coverage)
    parts.append(money(cost))
    return ", ".join(parts)
