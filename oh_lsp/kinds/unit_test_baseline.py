"""The unit_test kind's way to the coverage baseline of its target (oh_lsp.validation.baseline): which test modules
are the project's existing tests of it, and the baseline measured in a sandbox of its own, before the first model call.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from oh_lsp.kinds.base import CheckEnv, Target
from oh_lsp.kinds.test_layout import tests_importing
from oh_lsp.validation.baseline import Baseline, cached_baseline
from oh_lsp.validation.pytest_runner import ensure_pytest
from oh_lsp.validation.sandbox import Sandbox


def existing_test_files(root: Path, module: str, exclude: Iterable[str] = ()) -> list[str]:
    """The project's test modules that import `module`, project-relative, without `exclude`."""
    skip = set(exclude)
    return [p.as_posix() for p in tests_importing(root, module) if p.as_posix() not in skip]


async def project_baseline(env: CheckEnv, target: Target, *, use_cache: bool = True) -> Baseline:
    """The baseline of a task's target, in a sandbox of its own: what a task measures before its first model call.
    Raises `InterpreterError` when the project's interpreter has no pytest."""
    async with Sandbox(
        env.root, env.scratch, secrets=env.config.secrets(), exclude=env.exclude, mode=env.config.sandbox
    ) as box:
        await ensure_pytest(box, env.python)
        return await cached_baseline(
            box,
            env.python,
            target.path.as_posix(),
            target.module,
            timeout=env.config.test_timeout_seconds,
            test_files=existing_test_files(box.root, target.module),
            use_cache=use_cache,
        )
