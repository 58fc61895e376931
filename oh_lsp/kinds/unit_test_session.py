"""A unit_test task from start to end (a `TaskSession`, see kinds/base.py), by the rules of
docs/validation.md#unit_test:

1. `prepare`, before any model call: the target must parse; the workspace must be trusted and a sandbox at hand; the
   coverage baseline of the existing tests and their mutation report are measured (or read from the cache); what is
   left to cover or kill inside the task's aim (the module, a symbol, or one gap) is worked out. Nothing left: the
   task ends there.
2. `conversations`: one for the whole aim, or one per segment (the smallest function or class holding gaps) when
   the module is over the prompt's budget or has many gaps. Each first prompt shows the target with line numbers
   (the stable part, first), then the gaps in words with their source lines.
3. `judge`, answer by answer: the value gate (unit_test_gate.py). Kept tests accumulate. A conversation goes on
   asking for what is still left in its part unless the score reached the threshold, nothing is left there, or this
   answer added nothing after an earlier one of it kept tests. An answer that keeps nothing is always followed by a
   repair while iterations remain (the pipeline counts them).
4. `finish`: the kept tests run together as they will be delivered; at least one kept test means `completed`,
   whatever the score (below the threshold: a warning saying what is left). What is still uncovered and the mutants
   still alive are reported with their lines.
"""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from oh_lsp import progress_text
from oh_lsp.errors import InterpreterError, TargetError
from oh_lsp.extract import ExtractionError, extract_python
from oh_lsp.kinds.base import CheckEnv, Conversation, Ending, Target, Turn
from oh_lsp.kinds.context import (
    ANSWER_RESERVE_TOKENS,
    DEFAULT_CONTEXT_TOKENS,
    estimate_tokens,
    prompt_sections,
    user_message,
)
from oh_lsp.kinds.test_layout import locate_tests
from oh_lsp.kinds.unit_test_baseline import project_measures
from oh_lsp.kinds.unit_test_gaps import Aim, Left, Segment, aim_of, excerpt, numbered, segments, what_is_left
from oh_lsp.kinds.unit_test_gate import Judged, Ledger, final_run, judge_answer
from oh_lsp.kinds.unit_test_increment import outline, tests_about, to_ask
from oh_lsp.kinds.unit_test_module import not_isolated_finding, run_details, untrusted_finding
from oh_lsp.kinds.unit_test_reuse import Reuse, remember, reuse
from oh_lsp.repair import MAX_FINDINGS, trim_traceback
from oh_lsp.tasks import QueuedTask
from oh_lsp.validation import findings as F
from oh_lsp.validation.baseline import Baseline
from oh_lsp.validation.coverage_map import FileCoverage, Totals, totals
from oh_lsp.validation.findings import Finding
from oh_lsp.validation.gap_findings import survivor_findings, uncovered_findings
from oh_lsp.validation.mutation import MutationReport
from oh_lsp.validation.result import ValidationResult
from oh_lsp.validation.sandbox import sandbox_refusal
from oh_lsp.validation.scores import kept_share

RUNS = 3

# The rules in few words: every request of every unit_test task carries them (P6b in docs/benchmarks.md).
SYSTEM_PROMPT = """You write pytest tests. Answer with one ```python block holding a complete test module, nothing else.
- Import the module under test by its module path, as given.
- Use only pytest, the standard library and what the module imports.
- Tests are test_* functions: deterministic, no network, each asserting on results.
- Use conftest.py fixtures where they fit; don't redefine them.
- Test the real code (never copy it), edge cases and errors too."""

GUIDANCE = "Write tests that run these lines and notice these changes; only passing tests that add something are kept."


def default_instruction(target: Target, task: QueuedTask | None, aim: Aim) -> str:
    text = (task.description.strip() if task else "") or f"Write unit tests for {target.module}."
    if aim.kind is not None and (not aim.detail or aim.detail not in text):
        text += f"\nAim at one gap of {target.module}: {aim.detail or aim.label}."
    elif aim.label:
        text += f"\nAim at {aim.label} (lines {aim.first}–{aim.last})."
    return text


def first_messages(
    target: Target,
    task: QueuedTask | None,
    aim: Aim,
    left: Left,
    segment: Segment | None,
    context_tokens: int | None,
    *,
    whole: bool = True,
    focus: tuple[str, ...] = (),
) -> list[dict[str, str]]:
    """The first prompt of a conversation: the target with line numbers (all of it, or the segment's part when the
    module is over the budget), the project context, then the instruction and the gaps in words. With a `focus`
    (incremental work: the units asked about), the target shows those units in full and the rest by its signatures,
    and the existing tests only those that name them."""
    location = locate_tests(target.root, target.path)
    existing = (target.root / location.path).read_text(encoding="utf-8") if location.exists else ""
    instruction = default_instruction(target, task, aim)
    if segment is not None and segment.label:
        instruction += f"\nThis part of the task: {segment.label} (lines {segment.aim.first}–{segment.aim.last})."
    gaps = left.words(target.text)
    shown = numbered(target.text) if whole or segment is None else excerpt(target.text, segment.aim)
    if focus:
        instruction += f"\nAsked about only: {', '.join(focus)} (of the rest: the signatures it uses)."
        shown = outline(target.text, {segment.label} if segment is not None and segment.label else set(focus))
        existing = tests_about(existing, {name.rsplit(".", 1)[-1] for name in focus}) if existing else ""
    user = prompt_sections(
        target,
        task or QueuedTask(task_type="unit_test"),
        context_tokens=context_tokens,
        instruction=instruction,
        source=shown,
        extra=[(2, f"Existing tests in {location.path.as_posix()} (do not repeat them)", existing)],
        variable=[(1, "What no test checks yet", f"{gaps}\n{GUIDANCE}" if gaps else "")],
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, user_message(user)]


def _coverage_of(ledger: Ledger) -> FileCoverage:
    """The target as the existing and kept tests cover it, as one measure."""
    cov = ledger.coverage
    return FileCoverage(cov.statements, cov.branches, {"kept": ledger.lines}, {"kept": ledger.branches})


@dataclass
class _Part:
    """A conversation's own state."""

    segment: Segment
    kept_any: bool = False
    history: list[tuple[int, Judged]] = field(default_factory=list)


class UnitTestSession:
    """One unit_test task (module docstring). `task` None: a single answer checked (`unit_test.check`)."""

    def __init__(self, target: Target, task: QueuedTask | None, env: CheckEnv, threshold: float) -> None:
        self.target = target
        self.task = task
        self.env = env
        self.threshold = threshold
        self.aim = Aim()
        self.baseline: Baseline | None = None
        self.before: MutationReport | None = None
        self.ledger: Ledger | None = None
        self.left = Left()
        self.judged: list[Judged] = []
        self.models: list[tuple[str, Judged]] = []
        self.survived_later: set[str] = set()
        self.segment_labels: list[str] = []
        self.reused = Reuse()  # what the last completed task on the target left (incremental work)
        self.asked: tuple[str, ...] = ()  # the units incremental work asks about, before its untested lines are added
        self.spared = 0  # mutants surviving in code incremental work does not ask about again
        self.every_mutant = False  # the change left nothing to ask: the mutants earlier tasks left are asked about

    # --- before the first model call ----------------------------------------------------------------------------
    async def prepare(self) -> ValidationResult | None:
        target_path = self.target.path.as_posix()
        try:
            ast.parse(self.target.text)
        except SyntaxError as exc:  # no model call: there is nothing to test until it parses
            return ValidationResult.from_findings([F.syntax_error(exc, target_path, target_path)], 0.0, run=False)
        try:
            self.aim = aim_of(self.task.metadata if self.task else {}, self.target.text)
        except ValueError as exc:
            raise TargetError(f"{target_path}: {exc}") from None
        config = self.env.config
        if not config.trusted:
            return ValidationResult.from_findings([untrusted_finding(target_path)], 0.0, run=False)
        refused = await sandbox_refusal(config.sandbox)
        if refused:
            return ValidationResult.from_findings([Finding(F.NO_SANDBOX, refused, file=target_path)], 0.0, run=False)
        try:
            self.baseline, self.before = await project_measures(
                self.env, self.target, mutation_seconds=config.mutation_seconds if config.mutation else 0.0
            )
        except InterpreterError as exc:
            return ValidationResult.from_findings([Finding(F.INTERPRETER, str(exc), file=target_path)], 0.0)
        spent = 0.0 if self.before is None or self.before.cached else self.before.seconds
        seeds = list(config.test_seeds or [random.randrange(1, 2**31) for _ in range(RUNS)])
        self.ledger = Ledger(
            self.target, self.baseline, self.before, seeds, mutation_left=max(config.mutation_seconds - spent, 0.0)
        )
        mutation = self.before.score if self.before is not None else None
        self.env.progress(progress_text.existing_tests_figures(self.baseline.totals.percent, mutation))
        self.reused = await reuse(self.env, self.ledger, self.task, self.aim)
        self.asked = self.reused.focus
        self.left = self._left(self.aim)
        if self.left.empty and not self.ledger.kept and self.spared:
            # the change leaves nothing to ask: rather than "nothing left", the mutants earlier tasks left alive
            self.every_mutant = True
            self.left = self._left(self.aim)
        if self.left.empty and not self.ledger.kept:
            where = self.aim.label or self.target.module
            return ValidationResult.from_findings(
                [
                    *self.baseline.findings,
                    Finding(
                        F.NOTHING_LEFT,
                        f"nothing left to test in {where}: the existing tests run every line and branch"
                        + (" and notice every mutant analysed" if self.before is not None else "")
                        + f" ({self.baseline.totals.percent:g}% line+branch coverage)",
                        file=target_path,
                        line=self.aim.first or 1,
                    ),
                ],
                self.ledger.score(),
                coverage=self._coverage_report(None),
                mutation=self._mutation_report(),
            )
        return None

    def _left(self, aim: Aim) -> Left:
        assert self.ledger is not None
        alive = self.ledger.alive()
        left = what_is_left(_coverage_of(self.ledger), alive.results if alive else [], aim)
        if not self.asked:
            return left
        asked, _ = to_ask(left, self.target.text, self.asked, every_mutant=self.every_mutant)
        self.spared = len(left.mutants) - len(asked.mutants)
        return asked

    @property
    def kept_any(self) -> bool:
        return bool(self.ledger and self.ledger.kept)

    # --- conversations ---------------------------------------------------------------------------------------------
    def conversations(self, context_tokens: int | None) -> list[Conversation]:
        metadata = self.task.metadata if self.task else {}
        budget = (context_tokens or metadata.get("context_tokens") or DEFAULT_CONTEXT_TOKENS) - ANSWER_RESERVE_TOKENS
        if self.left.empty:  # the tests kept earlier, checked again, leave nothing to ask (incremental work)
            return []
        focus = to_ask(self.left, self.target.text, self.asked, every_mutant=self.every_mutant)[1] if self.asked else ()
        self.reused.focus = focus  # the result's `incremental.asked`: what the prompt asks about, open gaps included
        whole_prompt = first_messages(self.target, self.task, self.aim, self.left, None, None, focus=focus)
        fits = sum(estimate_tokens(m["content"]) for m in whole_prompt) <= budget
        parts = segments(self.target.text, self.left, self.aim, fits=fits)
        self.segment_labels = [p.label for p in parts if p.label]
        return [
            Conversation(
                label=part.label or self.aim.label,
                messages=partial(
                    first_messages, self.target, self.task, self.aim, part.left, part, whole=fits, focus=focus
                ),
                state=_Part(part),
                aims_at=part.left.names(),
            )
            for part in parts
        ]

    # --- one answer ------------------------------------------------------------------------------------------------
    async def judge(self, conversation: Conversation, answer: str, iteration: int, model: str) -> Turn:
        assert self.ledger is not None
        part: _Part = conversation.state
        try:
            code = extract_python(answer, prefer="def test")
        except ExtractionError as exc:
            judged = Judged([Finding(F.NO_CODE, str(exc))])
        else:
            judged = await judge_answer(self.env, self.ledger, code, label=conversation.label)
        self.judged.append(judged)
        self.models.append((model, judged))
        left = self._left(part.segment.aim)
        score = self.ledger.score()
        verdict = ValidationResult.from_findings(
            judged.findings,
            score,
            kept=judged.kept,
            dropped=judged.dropped,
            gate=[v.to_dict() for v in judged.verdicts],
            segment=conversation.label,
            **judged.details,
        )
        reached = bool(self.ledger.kept) and score >= self.threshold
        if not part.kept_any and not judged.kept:  # this conversation kept nothing yet: ask again
            stop = reached or left.empty
        else:  # ... unless the answer added nothing after an earlier one kept tests (no progress)
            stop = reached or left.empty or not judged.kept
        feedback = None if stop else self.feedback(part, judged, iteration, left)
        part.kept_any = part.kept_any or bool(judged.kept)
        part.history.append((iteration, judged))
        return Turn(verdict, judged.candidate, feedback)

    def feedback(self, part: _Part, judged: Judged, iteration: int, left: Left) -> str:
        """The next question: what this answer kept and why the rest was dropped, then what is still left."""
        assert self.ledger is not None
        lines = []
        if judged.kept:
            lines.append(
                f"From your answer (attempt {iteration}) these tests were kept and will be delivered:"
                f" {', '.join(judged.kept)}. Do not repeat them."
            )
        else:
            lines.append(f"Your answer (attempt {iteration}) did not pass the checks: no test of it was kept.")
        for finding in judged.findings[:MAX_FINDINGS]:
            if finding.code in (F.NOT_ISOLATED, F.UNTRUSTED_INPUT):
                continue
            where = f" (line {finding.line})" if finding.file else ""
            lines.append(f"- {finding.code}{where}: {finding.message}")
            trace = judged.failures.get((finding.test or "").rsplit("::", 1)[-1]) or judged.failures.get(
                finding.test or ""
            )
            if trace:
                lines.append("  " + trim_traceback(trace).replace("\n", "\n  "))
        before = self._totals_before()
        lines.append(
            f"Line+branch coverage of the target: {before.percent:g}% by the existing tests,"
            f" {self.ledger.totals().percent:g}% with the kept tests."
        )
        if self.ledger.before is not None and self.ledger.before.score is not None:
            after = self.ledger.mutation_score()
            lines.append(
                f"Mutation score: {self.ledger.before.score:.2f} by the existing tests, {after or 0:.2f} with the"
                " kept tests."
            )
        if left.empty:
            lines.append("Nothing is left to cover here.")
        else:
            lines.append("Still not checked by any test (line numbers as in the source above):")
            lines.append(left.words(self.target.text))
        earlier = [(n, j) for n, j in part.history if j is not judged]
        if earlier:
            lines.append("Earlier attempts (do not repeat them):")
            for number, old in earlier:
                codes = ", ".join(sorted({f.code for f in old.findings if f.severity == F.ERROR})) or "-"
                lines.append(f"- attempt {number}: kept {len(old.kept)}; {codes}")
        lines.append(
            "Answer again with a complete test module in one fenced python block, holding only NEW tests for what"
            " is left."
        )
        return "\n".join(lines)

    # --- the end ---------------------------------------------------------------------------------------------------
    def _totals_before(self) -> Totals:
        assert self.baseline is not None
        return totals(self.baseline.coverage)

    def _coverage_report(self, after: FileCoverage | None) -> dict[str, Any]:
        before = self._totals_before()
        now = totals(after) if after is not None else before
        return {
            "before": before.percent,
            "after": now.percent,
            "statements": now.statements,
            "branches": now.branches,
            "covered_lines_before": before.covered_lines,
            "covered_lines_after": now.covered_lines,
            "covered_branches_before": before.covered_branches,
            "covered_branches_after": now.covered_branches,
            "gained_lines": now.covered_lines - before.covered_lines,
            "gained_branches": now.covered_branches - before.covered_branches,
        }

    def _mutation_report(self) -> dict[str, Any] | None:
        ledger, before = self.ledger, self.before
        if ledger is None or before is None:
            return None
        after = ledger.mutation_score()
        counts = before.counts()
        return {
            "before": None if before.score is None else round(before.score, 4),
            "after": None if after is None else round(after, 4),
            "mutants": len(before.results),
            "analysed": before.analysed,
            "detected_before": before.detected,
            "detected_after": len(ledger.killed),
            "killed_by_kept": sorted(ledger.kills),
            "not_analysed": counts["not-analysed"],
            "cached": before.cached,
            "seconds_before": round(before.seconds, 3),
        }

    def _alive_findings(self, coverage: FileCoverage) -> list[Finding]:
        """What is still uncovered and which mutants are still alive, over the whole target (info: the editor shows
        them as Information diagnostics)."""
        assert self.ledger is not None
        target_path = self.target.path.as_posix()
        found = uncovered_findings(coverage, target_path, severity=F.INFO)
        alive = self.ledger.alive()
        if alive is not None and self.before is not None:
            ran = coverage.lines_of()  # a survivor on a line no test runs is already in that line's gap
            survivors = [r for r in alive.results if r.status == "survived" and r.mutant.line in ran]
            found += survivor_findings(MutationReport(results=survivors), target_path, severity=F.INFO)
            if not self.before.complete:
                found += [f for f in self.before.findings if f.code == F.MUTATION_INCOMPLETE]
        return found

    def _quality(self) -> dict[str, tuple[int, int]]:
        assert self.ledger is not None
        kept_per_answer: dict[int, int] = {}
        for test in self.ledger.kept.values():
            kept_per_answer[test.answer] = kept_per_answer.get(test.answer, 0) + 1
        quality: dict[str, tuple[int, int]] = {}
        for model, judged in self.models:
            generated, kept = quality.get(model, (0, 0))
            kept_here = min(kept_per_answer.get(judged.answer, 0), judged.generated) if judged.answer else 0
            quality[model] = (generated + judged.generated, kept + kept_here)
        return quality

    async def finish(self) -> Ending:
        assert self.ledger is not None and self.baseline is not None
        ledger = self.ledger
        delivered = await final_run(self.env, ledger) if ledger.kept else None
        kept = sorted(ledger.kept)
        coverage = delivered.coverage if delivered and kept else ledger.coverage
        result: dict[str, Any] = {
            "coverage": self._coverage_report(coverage),
            "mutation": self._mutation_report(),
            "generated_tests": ledger.generated,
            "kept_tests": kept,
            "kept_share": round(kept_share(len(kept), ledger.generated), 4),
            "aim": self.aim.to_dict(),
            "segments": self.segment_labels,
            **({"incremental": report} if (report := self.reused.report()) is not None else {}),
            "baseline": {
                "cached": self.baseline.cached,
                "seconds": self.baseline.seconds,
                "test_files": self.baseline.test_files,
                "passing": len(self.baseline.passing),
                "failing": len(self.baseline.failing),
            },
        }
        base = list(self.baseline.findings)
        if not ledger.isolated:
            base.append(not_isolated_finding())
        details: dict[str, Any] = {
            "kept": kept,
            "dropped": sorted({f.test for f in ledger.dropped if f.test}),
            "coverage": result["coverage"],
            "mutation": result["mutation"],
            "seeds": ledger.seeds,
        }
        if delivered is not None and kept:
            score = ledger.score()
            findings = [_as(f, F.WARNING) for f in ledger.dropped] + ledger.bugs + base
            findings += self._alive_findings(coverage)
            if score < self.threshold:
                alive = ledger.alive()
                left = what_is_left(coverage, alive.results if alive else [], Aim())
                findings.append(
                    Finding(
                        F.BELOW_THRESHOLD,
                        f"score {score:.2f} is below the quality threshold {self.threshold:.2f}; {len(kept)} kept"
                        f" tests delivered, still left: {left.short()} (see the uncovered and surviving-mutant"
                        " findings)",
                        severity=F.WARNING,
                        file=self.target.path.as_posix(),
                    )
                )
            if delivered.run is not None:
                details.update(run_details(delivered.run, ledger.isolated, self.env.python, ledger.seeds))
            details["tests"] = {  # every generated test's first run, then the delivered module's run
                **{
                    name: outcome for judged in self.judged for name, outcome in judged.details.get("tests", {}).items()
                },
                **details.get("tests", {}),
            }
            verdict = ValidationResult.from_findings(findings, score, **details)
            candidate = delivered.candidate
            candidate.extra.update(tests=kept)
            await remember(self.env, ledger, self.task, self.aim, self.reused)
            return Ending("completed", verdict, candidate, result, self._quality())
        findings = [_as(f, F.ERROR) for f in ledger.dropped]
        for judged in self.judged:
            findings += [f for f in judged.findings if f.severity == F.ERROR and f not in findings]
        findings += ledger.bugs + base + (delivered.findings if delivered else [])
        last = next((j for j in reversed(self.judged) if j.candidate is not None), None)
        if last is not None:
            details.update(last.details)
            result["attempt"] = next(n for n, j in enumerate(self.judged, 1) if j is last)  # in answer order
        verdict = ValidationResult.from_findings(findings, 0.0, **details)
        return Ending("failed", verdict, last.candidate if last else None, result, self._quality())


def _as(finding: Finding, severity: str) -> Finding:
    return Finding(**{**finding.__dict__, "severity": severity})
