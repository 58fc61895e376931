"""How a task's progress reads as text, for every front end: the CLI's progress (live display or plain lines) and the
editors' work-done progress use these functions, so a stage is worded in one place.

The rule (the contract's "Progress text"): one stage and a number, at most `MAX_CHARS` characters, in the editors
and the CLI alike. Every text these functions return keeps it (`fit`). The long "why" (of a model choice, of a
verdict) is not progress: it goes to the log (`oh_lsp/task_log.py`), to `-v` and to `get-status`.

- `stage_text`: one engine event as a stage, for a view that already names the task (an editor's progress title, a
  row of the CLI's live display);
- `event_text`: the same as a line of its own (where the task starts, it names the kind and the target);
- `final_text`: the last stage of a finished task (what was kept, the score, or why nothing was; "from cache" when
  the result cache served it);
- `outcome_text`: the long account of a finished task (file, delivery, score, tests kept and dropped, coverage
  and mutation score before → after, cost, "from cache", "incremental: 1 of 10 functions changed"), for the log and
  the CLI's report; not a progress text;
- `savings_text`: "saved $x (y % cached)", what caching saved, from the metrics;
- `warning_text`: a warning (the engine's `warning` event) in full, not cut: each front end shows it on its own,
  before what it warns about (the CLI on stderr, the editors as a message), never as a progress stage;
- the stage texts of the checks (`tests_checked`, ...), which the task kinds report while they validate;
- `coverage_text`, `mutation_text`: those two figures, before → after;
- `money`, `count`: a cost in dollars, a count in a few characters (1.2k).

Plain functions of events and results: this module knows neither LSP nor the terminal.
"""

from __future__ import annotations

from typing import Any

from oh_lsp import events as ev
from oh_lsp.result_facts import ResultFacts, result_facts

MAX_CHARS = 60


def fit(text: str, limit: int = MAX_CHARS) -> str:
    """`text` on one line and at most `limit` characters: cut at a word boundary where one is near, with `…`."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:(") + "…"


def fit_path(path: str, limit: int) -> str:
    """A path in at most `limit` characters, its end kept (`…/sub/module.py`)."""
    if len(path) <= limit:
        return path
    tail = path[-(limit - 1) :]
    slash = tail.find("/")
    return "…" + (tail[slash:] if 0 <= slash < len(tail) - 1 else tail)


def money(value: float) -> str:
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def savings_text(aggregate: dict[str, Any]) -> str:
    """ "saved $x (y % cached)": what the prompt cache and the result cache saved, and the share of prompt tokens the
    provider read from its cache, from a metrics aggregate (`metrics_summary()["system"]`)."""
    share = float(aggregate.get("cached_share") or 0.0)
    text = f"saved {money(float(aggregate.get('saved_cost') or 0.0))} ({100 * share:.0f} % cached)"
    hits = int(aggregate.get("cache_hits") or 0)
    return text + (f", {hits} result{'s' if hits != 1 else ''} from cache" if hits else "")


def count(value: float) -> str:
    """A count in at most 5 characters: 976, 1.2k, 34k, 1.5M."""
    if value < 1000:
        return f"{value:.0f}"
    if value < 10_000:
        return f"{value / 1000:.1f}k"
    if value < 1_000_000:
        return f"{value / 1000:.0f}k"
    return f"{value / 1_000_000:.1f}M"


def _of(number: Any, total: Any) -> str:
    return f"{number}/{total}" if total else f"{number}"


# --- the stages of the checks (what the task kinds report while they validate) ------------------------------------
def baseline_coverage() -> str:
    return "measuring the existing tests' coverage"


def baseline_mutation() -> str:
    return "mutation analysis of the existing tests"


def existing_tests_figures(coverage: float, mutation: float | None) -> str:
    return f"existing tests: coverage {coverage:.0f}%" + (f", mutation {mutation:.2f}" if mutation is not None else "")


def tests_checked(tests: int, label: str | None = None) -> str:
    return f"checking {tests} test{'' if tests == 1 else 's'}" + (f" ({label})" if label else "")


def kept_tests_run(tests: int) -> str:
    return f"running the {tests} kept tests together"


def incremental(changed: int, functions: int) -> str:
    """A task on a module whose last completed task is remembered (issue 14's incremental work)."""
    return f"incremental: {changed} of {functions} functions changed"


def carried_tests_checked(tests: int) -> str:
    return f"checking again {tests} test{'' if tests == 1 else 's'} kept earlier"


def existing_tests_run(modules: int) -> str:
    return f"running {modules} existing test modules" if modules != 1 else "running 1 existing test module"


# --- one event ------------------------------------------------------------------------------------------------------
def stage_text(event: ev.Event, limit: int = MAX_CHARS) -> str | None:
    """The stage `event` marks, in at most `limit` characters (None: nothing to say about it)."""
    text = _stage(event)
    return None if text is None else fit(text, limit)


def _stage(event: ev.Event) -> str | None:
    d = event.data
    kind = event.kind
    if kind == ev.QUEUED:
        position = d.get("position")
        where = f" (position {position})" if position else ""
        return ("already queued" if d.get("duplicate") else "queued") + where
    if kind == ev.STARTED:
        attempt = d.get("attempt") or 1
        return "started" if attempt <= 1 else f"started again (attempt {attempt})"
    if kind == ev.MODEL_CHOSEN:
        return f"model {d.get('model')}"
    if kind == ev.TOKENS:
        return _tokens(d)
    if kind == ev.VALIDATING:
        if d.get("step") == "checks":
            return f"validating answer {_of(d.get('iteration', 1), d.get('of'))}"
        return str(d.get("step"))
    if kind == ev.CHECKED:
        return _checked(d)
    if kind == ev.PROGRESS:
        return _progress(d)
    if kind == ev.WARNING:
        return f"warning: {d.get('message')}"
    if kind == ev.HALTED:
        return f"oh-lsp stopped: {d.get('message')}"
    if kind == ev.RETRYING:
        return f"retrying in {d.get('delay', 0):.0f}s: {d.get('error')}"
    if kind in ev.FINAL:
        return final_text(kind, d.get("result"), error=d.get("error"))
    return None


def warning_text(event: ev.Event) -> str:
    """The whole text of a `warning` event (shown before what it warns about, e.g. code about to run unsandboxed)."""
    return f"oh-lsp: warning: {event.data.get('message')}"


def _tokens(d: dict[str, Any]) -> str:
    if not d.get("final"):
        if d.get("chars") is not None:
            return f"streaming ~{count(d['chars'] / 4)} tokens"
        return f"streaming {count(d.get('chunks', 0))} chunks"
    tokens = d.get("tokens") or 0
    approx = "~" if d.get("estimated") else ""
    cost = "local: no cost" if d.get("cost_source") == "local" else money(d.get("cost") or 0.0)
    return f"answer received: {approx}{count(tokens)} tokens, {cost}"


def _checked(d: dict[str, Any]) -> str:
    answer = f"answer {_of(d.get('iteration', 1), d.get('of'))}"
    score = f"score {float(d.get('score') or 0):.2f}"
    if d.get("kept") is not None and d.get("passed"):
        return f"{answer}: {d['kept']} kept, {d.get('dropped', 0)} dropped, {score}"
    verdict = "passed" if d.get("passed") else "failed"
    code = f" ({d['code']})" if d.get("code") and not d.get("passed") else ""
    return f"{answer}: {verdict}, {score}{code}"


def _progress(d: dict[str, Any]) -> str:
    if d.get("rotation"):
        return f"switching to model {d['rotation'].get('to')}"
    if d.get("delivered") is not None:
        written = "written" if d["delivered"] else "not written"
        return f"{written}: {fit_path(str(d.get('output_file')), MAX_CHARS - len(written) - 2)}"
    if d.get("repair"):
        return f"repair {_of(d['repair'], d.get('of'))}: asking again with the findings"
    return str(d.get("message"))


def event_text(event: ev.Event, limit: int = MAX_CHARS) -> str | None:
    """`stage_text` for a line of its own: where the task starts, it names the kind and the target too."""
    stage = stage_text(event, limit)
    if stage is None or event.kind not in (ev.QUEUED, ev.STARTED):
        return stage
    kind = str(event.data.get("kind") or "")
    room = limit - len(stage) - len(kind) - 2
    target = fit_path(str(event.data.get("target") or ""), max(room, 12))
    return fit(f"{stage} {kind} {target}".rstrip(), limit)


# --- a finished task ------------------------------------------------------------------------------------------------
def kept_text(facts: ResultFacts) -> str:
    kept = len(facts.kept)
    return f"{kept} test{'' if kept == 1 else 's'} kept, {len(facts.dropped)} dropped"


def final_text(
    status: str, result: dict[str, Any] | None, *, error: str | None = None, written: bool | None = None
) -> str:
    """The last stage of a finished task, in at most `MAX_CHARS` characters. `written` False: its edit did not land."""
    result = result or {}
    if status == "cancelled":
        return "cancelled"
    answers = result.get("iterations")
    if status == "failed":
        after = f" after {answers} answers" if answers and answers > 1 else ""
        codes = [f.get("code") for f in (result.get("validation") or {}).get("errors", []) if f.get("code")]
        why = codes[0] if codes else (error or "")
        return fit(f"failed{after}: {why}" if why else f"failed{after}")
    facts = []
    if result.get("kind", "unit_test") == "unit_test":
        tests = result_facts(status, result)
        if tests.kept or tests.dropped:
            facts.append(kept_text(tests))
    if result.get("score") is not None:
        facts.append(f"score {float(result['score']):.2f}")
    head = ("not applied" if written is False else "done") + (" from cache" if result.get("from_cache") else "")
    return fit(f"{head}: {', '.join(facts)}" if facts else head)


def mutation_text(mutation: Any) -> str | None:
    """ "mutation 0.40 → 0.85": the share of the target's mutants the tests notice, before → after."""
    if not isinstance(mutation, dict):
        return None
    before, after = mutation.get("before"), mutation.get("after")
    if isinstance(before, (int, float)) and isinstance(after, (int, float)):
        return f"mutation {before:.2f} → {after:.2f}"
    return None


def coverage_text(coverage: Any) -> str | None:
    """ "coverage 50% → 100% (+50 pts)" (line+branch for unit_test)."""
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
    """The long account of a finished task: the file, the score, tests kept and dropped, coverage gain and cost (for
    the log and reports; the progress ends with `final_text`)."""
    facts = result_facts(status, result)
    result = result or {}
    parts = []
    if status == "completed":
        parts.append(f"{result.get('output_file') or 'done'}" + (f" ({delivered})" if delivered else ""))
    else:
        parts.append(status + (f": {error}" if error and status == "failed" else ""))
    if result.get("score") is not None:
        parts.append(f"score {float(result['score']):.2f}")
    if result.get("kind", "unit_test") == "unit_test" and (facts.kept or facts.dropped):
        parts.append(kept_text(facts))
    coverage = coverage_text(result.get("coverage"))
    if coverage:
        parts.append(coverage)
    mutation = mutation_text(result.get("mutation"))
    if mutation:
        parts.append(mutation)
    parts.append(money(cost))
    if result.get("from_cache"):
        parts.append("from cache")
    reused = incremental_text(result)
    if reused:
        parts.append(reused)
    return ", ".join(parts)


def incremental_text(result: dict[str, Any]) -> str | None:
    """ "incremental: 1 of 10 functions changed, 9 tests kept earlier reused" (None for a full task)."""
    reused = result.get("incremental")
    if not isinstance(reused, dict):
        return None
    changed = [u for u in reused.get("changed") or [] if u != "module-level code"]
    carried = len(reused.get("carried") or [])
    return f"{incremental(len(changed), reused.get('functions') or 0)}, {carried} tests kept earlier reused"
