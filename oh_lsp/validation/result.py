"""`ValidationResult`: the verdict of the checks, as `ResultValidator.validate` returns it
(docs/guide-compat.md#resultvalidator)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from oh_lsp.validation.findings import ERROR, Finding


@dataclass
class ValidationResult:
    passed: bool
    score: float  # 0-1; see docs/validation.md for the formula
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_findings(cls, findings: list[Finding], score: float, **details: Any) -> ValidationResult:
        errors = [f for f in findings if f.severity == ERROR]
        warnings = [f for f in findings if f.severity != ERROR]
        return cls(passed=not errors, score=score, errors=errors, warnings=warnings, details=details)

    @property
    def findings(self) -> list[Finding]:
        return [*self.errors, *self.warnings]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "score": self.score,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationResult:
        return cls(
            passed=data["passed"],
            score=data["score"],
            errors=[Finding.from_dict(f) for f in data.get("errors", [])],
            warnings=[Finding.from_dict(f) for f in data.get("warnings", [])],
            details=data.get("details", {}),
        )

    def summary(self) -> str:
        if self.passed:
            return f"passed (score {self.score:.2f})"
        first = "; ".join(str(f) for f in self.errors[:3])
        more = f" (+{len(self.errors) - 3} more)" if len(self.errors) > 3 else ""
        return f"failed (score {self.score:.2f}): {first}{more}"
