"""The unit_test validation score (contract, "Scores"): what the delivered result is worth, 0–1.

    coverage  = (statements run + branch arcs taken) / (statements + branch arcs)
                of the target, by the project's passing tests plus the kept tests (coverage.py's line+branch percent);
    mutation  = (killed + timed-out mutants) / (mutants analysed: all but the not-analysed)
                of the target, by the same tests;
    score     = 0.5 × coverage + 0.5 × mutation        when mutation analysis ran and analysed at least one mutant,
                coverage                                 otherwise (mutation off, or nothing to mutate).

A target with no statement has coverage 1. The share of the model's tests that were kept is never part of it: that
is the model's quality (`kept_share`), recorded per model.
"""

from __future__ import annotations

from typing import Any

from oh_lsp.validation.coverage_map import Totals


def validation_score(coverage: Totals, mutation: float | None) -> float:
    """The score of a unit_test result (module docstring), rounded to 4 places."""
    value = coverage.fraction if mutation is None else 0.5 * coverage.fraction + 0.5 * mutation
    return round(min(max(value, 0.0), 1.0), 4)


def mutation_after(detected_before: set[str], analysed: int, killed_by_kept: set[str]) -> float | None:
    """The mutation score once the kept tests are added: what the existing tests detected plus what the kept ones kill,
    over the mutants analysed before (None when none was)."""
    return len(detected_before | killed_by_kept) / analysed if analysed else None


def kept_share(kept: int, generated: int) -> float:
    """The model's quality on this answer: the share of its tests that were kept (0 when it wrote none)."""
    return kept / generated if generated else 0.0


def score_report(
    before: Totals, after: Totals, mutation_before: float | None, mutation_after_: float | None
) -> dict[str, Any]:
    """The figures a result carries: coverage and mutation score before → after, and the score."""
    return {
        "coverage": {
            "before": before.percent,
            "after": after.percent,
            **{f"after_{k}": v for k, v in after.to_dict().items() if k != "percent"},
        },
        "mutation": {
            "before": None if mutation_before is None else round(mutation_before, 4),
            "after": None if mutation_after_ is None else round(mutation_after_, 4),
        },
        "score": validation_score(after, mutation_after_),
    }
