"""`ResultValidator`: the usage guide's result check (docs/guide-compat.md#resultvalidator), running the same checks
the engine runs.

It takes the usage guide's dict (`output_file`, `content`, `coverage`, `execution_result`, optionally `target_file` and
`kind`) and never trusts what the caller claims: the file must exist in the project, and the tests are run again.
It sits above the task kinds (it runs the unit_test kind's checks), while `oh_lsp.validation` below them only
provides the checks' parts (pytest runs, the sandbox, findings).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from oh_lsp.config import OpenHandsConfig
from oh_lsp.errors import TargetError
from oh_lsp.kinds.base import CheckEnv
from oh_lsp.paths import confine
from oh_lsp.paths import project_root as resolve_root
from oh_lsp.validation import findings as F
from oh_lsp.validation.findings import Finding
from oh_lsp.validation.result import ValidationResult


class ResultValidator:
    """``ResultValidator().validate(result)`` -> `ValidationResult` with `passed`, `score`, `errors`, `warnings`."""

    def __init__(
        self,
        config: OpenHandsConfig | None = None,
        *,
        project_root: str | Path | None = None,
        exclude: list[Path] | None = None,
    ) -> None:
        self.config = config or OpenHandsConfig()
        self.root = resolve_root(project_root)
        self.exclude = exclude or []

    def validate(self, result: dict[str, Any]) -> ValidationResult:
        """Check `result` now (runs its tests in a subprocess; blocks until they finish)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.validate_async(result))
        done: list[ValidationResult] = []  # called from async code: run on a thread with its own loop
        failed: list[BaseException] = []

        def work() -> None:
            try:
                done.append(asyncio.run(self.validate_async(result)))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                failed.append(exc)

        thread = threading.Thread(target=work, name="oh-lsp-validate")
        thread.start()
        thread.join()
        if failed:
            raise failed[0]
        return done[0]

    async def validate_async(self, result: dict[str, Any]) -> ValidationResult:
        pre: list[Finding] = []
        output_file = result.get("output_file")
        if not output_file:
            return ValidationResult.from_findings([Finding(F.OUTPUT_MISSING, "the result names no output_file")], 0.0)
        try:
            relative = confine(self.root, output_file, must_exist=False, what="output_file").as_posix()
        except TargetError as exc:
            return ValidationResult.from_findings([Finding(F.OUTPUT_MISSING, str(exc), file=str(output_file))], 0.0)
        path = self.root / relative
        on_disk = path.read_text(encoding="utf-8") if path.is_file() else None
        content = result.get("content")
        if on_disk is None:
            pre.append(
                Finding(
                    F.OUTPUT_MISSING,
                    f"{relative} does not exist in the project ({self.root}); a result"
                    " is only valid once its file is there",
                    file=relative,
                )
            )
        elif content is not None and content != on_disk:
            pre.append(
                Finding(
                    F.CONTENT_DIFFERS,
                    f"{relative} on disk differs from the result's content; the content was checked",
                    severity=F.WARNING,
                    file=relative,
                )
            )
        if content is None:
            content = on_disk
        for claim in ("execution_result", "coverage"):
            if result.get(claim) is not None:
                pre.append(
                    Finding(
                        F.UNTRUSTED_INPUT,
                        f"the given {claim} was not trusted: the checks were run again",
                        severity=F.INFO,
                        file=relative,
                    )
                )
        if content is None:
            return ValidationResult.from_findings(pre, 0.0)
        target = result.get("target_file")
        target_path = confine(self.root, target).as_posix() if target else None
        from oh_lsp.kinds.unit_test import check_test_module

        env = CheckEnv(root=self.root, config=self.config, exclude=self.exclude)
        verdict = await check_test_module(env, relative, content, target_path=target_path)
        return ValidationResult.from_findings(pre + verdict.findings, verdict.score, **verdict.details)
