"""The unit_test kind's way to the measures of its target before the first model call: which test modules are the
project's existing tests of it, their coverage baseline (oh_lsp.validation.baseline) and, when mutation analysis is
on, their mutation report, both measured in a sandbox of their own and cached by content.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from oh_lsp import progress_text
from oh_lsp.kinds.base import CheckEnv, Target
from oh_lsp.kinds.test_layout import tests_importing
from oh_lsp.validation.baseline import Baseline, cached_baseline, cached_mutation_before
from oh_lsp.validation.mutation import MutationReport
from oh_lsp.validation.pytest_runner import ensure_pytest


def existing_test_files(root: Path, module: str, exclude: Iterable[str] = ()) -> list[str]:
    """The project's test modules that import `module`, project-relative, without `exclude`."""
    skip = set(exclude)
    return [p.as_posix() for p in tests_importing(root, module) if p.as_posix() not in skip]


async def project_baseline(env: CheckEnv, target: Target, *, use_cache: bool = True) -> Baseline:
    """The baseline of a task's target, in a sandbox of its own. Raises `InterpreterError` when the project's
    interpreter has no pytest."""
    baseline, _ = await project_measures(env, target, mutation_seconds=0.0, use_cache=use_cache)
    return baseline


async def project_measures(
    env: CheckEnv, target: Target, *, mutation_seconds: float, use_cache: bool = True
) -> tuple[Baseline, MutationReport | None]:
    """The baseline of a task's target and, with `mutation_seconds` > 0, the mutation analysis of the existing tests
    within that time: what a task measures before its first model call. Raises `InterpreterError` when the project's
    interpreter has no pytest."""
    async with env.sandbox() as box:
        await ensure_pytest(box, env.python)
        env.progress(progress_text.baseline_coverage())
        baseline = await cached_baseline(
            box,
            env.python,
            target.path.as_posix(),
            target.module,
            timeout=env.config.test_timeout_seconds,
            test_files=existing_test_files(box.root, target.module),
            use_cache=use_cache,
        )
        if mutation_seconds <= 0:
            return baseline, None
        env.progress(progress_text.baseline_mutation())
        report = await cached_mutation_before(
            box, env.python, baseline, target.module, target.text, seconds=mutation_seconds, use_cache=use_cache
        )
        return baseline, report
