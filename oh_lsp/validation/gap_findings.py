"""What is still uncovered and which mutants are still alive, as findings on the target's lines (contract: "What
is still uncovered and the mutants still alive are reported as warnings, with their lines")."""

from __future__ import annotations

from collections.abc import Iterable

from oh_lsp.validation import findings as F
from oh_lsp.validation.coverage_map import FileCoverage, gaps
from oh_lsp.validation.findings import Finding
from oh_lsp.validation.mutation import MutationReport


def uncovered_findings(
    coverage: FileCoverage, target: str, tests: Iterable[str] | None = None, *, severity: str = F.WARNING
) -> list[Finding]:
    """One finding per gap that `tests` (all measured tests when None) leave in the target: `uncovered` for lines,
    `uncovered-branch` for a branch."""
    return [
        Finding(
            F.UNCOVERED if gap.kind == "lines" else F.UNCOVERED_BRANCH,
            f"no test runs this: {gap.text}",
            severity=severity,
            file=target,
            line=gap.line,
            end_line=gap.end_line,
        )
        for gap in gaps(coverage, tests)
    ]


def survivor_findings(
    report: MutationReport, target: str, killed_later: Iterable[str] = (), *, severity: str = F.WARNING
) -> list[Finding]:
    """One finding per mutant that ran and survived (and was not killed later by kept tests), at its change."""
    later = set(killed_later)
    return [
        Finding(
            F.SURVIVING_MUTANT,
            f"no test notices if {r.mutant.description} here",
            severity=severity,
            file=target,
            line=r.mutant.line,
            col=r.mutant.col,
            end_line=r.mutant.end_line,
            end_col=r.mutant.end_col,
        )
        for r in report.results
        if r.status == "survived" and r.mutant.id not in later
    ]
