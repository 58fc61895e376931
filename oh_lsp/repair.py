"""The repair loop's words: what the model is told after a failed attempt, and how attempts are compared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oh_lsp.redaction import redact
from oh_lsp.validation import findings as F
from oh_lsp.validation.findings import Finding
from oh_lsp.validation.result import ValidationResult

MAX_FINDINGS = 12
MAX_TRACEBACK_LINES = 15


@dataclass
class Attempt:
    iteration: int
    answer: str
    candidate: Any  # Candidate | None when the answer held no code
    verdict: ValidationResult
    segment: str = ""  # the part of the target its conversation was about ("" for the whole target)

    @property
    def rank(self) -> tuple[bool, float]:
        return (self.verdict.passed, self.verdict.score)

    def summary(self) -> dict[str, Any]:
        out = {
            "iteration": self.iteration,
            "passed": self.verdict.passed,
            "score": self.verdict.score,
            "errors": [f.to_dict() for f in self.verdict.errors[:MAX_FINDINGS]],
        }
        for key in ("kept", "dropped", "gate"):
            if key in self.verdict.details:
                out[key] = self.verdict.details[key]
        if self.segment:
            out["segment"] = self.segment
        return out


def no_code_verdict(message: str) -> ValidationResult:
    return ValidationResult.from_findings([Finding(F.NO_CODE, message)], 0.0)


def below_threshold(verdict: ValidationResult, threshold: float) -> ValidationResult:
    """The verdict of checks that passed with a score under the quality threshold: a failure that says why."""
    finding = Finding(
        F.BELOW_THRESHOLD,
        f"score {verdict.score:.2f} is below the quality threshold {threshold:.2f}"
        " (set by the task's quality_threshold, OH_LSP_QUALITY_THRESHOLD or the editor)",
    )
    return ValidationResult(
        passed=False,
        score=verdict.score,
        errors=[finding, *verdict.errors],
        warnings=verdict.warnings,
        details=verdict.details,
    )


def trim_traceback(text: str) -> str:
    """The lines of a pytest failure that matter: the failing source line, `E` lines, and file:line locations."""
    keep = [
        line
        for line in text.splitlines()
        if line.startswith(("E ", ">")) or (":" in line and ".py:" in line and not line.startswith(" "))
    ]
    return "\n".join(keep[-MAX_TRACEBACK_LINES:])


def feedback_message(attempt: Attempt, history: list[Attempt], threshold: float) -> str:
    """Tell the model what failed (test names, assertion messages, trimmed tracebacks) and what it tried before."""
    verdict = attempt.verdict
    lines = [f"Your answer (attempt {attempt.iteration}) did not pass the checks."]
    if verdict.passed and verdict.score < threshold:
        lines.append(
            f"It passed, but its score {verdict.score:.2f} is below the required {threshold:.2f}:"
            " cover more of the module's behaviour."
        )
    failures = verdict.details.get("failures", {})
    for finding in [*verdict.errors, *verdict.warnings][:MAX_FINDINGS]:
        if finding.code in (F.NOT_ISOLATED, F.UNTRUSTED_INPUT):
            continue
        where = f" (line {finding.line})" if finding.file else ""
        lines.append(f"- {finding.code}{where}: {finding.message}")
        trace = failures.get(finding.test or "")
        if trace:
            lines.append("  " + trim_traceback(trace).replace("\n", "\n  "))
    coverage = verdict.details.get("coverage")
    if coverage:
        lines.append(
            f"Line coverage of the target: {coverage['before']}% before, {coverage['after']}% with your kept tests."
        )
    earlier = [a for a in history if a is not attempt]
    if earlier:
        lines.append("Earlier failed attempts (do not repeat them):")
        for old in earlier:
            codes = ", ".join(sorted({f.code for f in old.verdict.errors})) or "below the threshold"
            lines.append(f"- attempt {old.iteration}: score {old.verdict.score:.2f}; {codes}")
    lines.append("Answer again with the complete module in one fenced python block, fixing these problems.")
    return redact("\n".join(lines))
