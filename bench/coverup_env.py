"""CoverUp (PyPI `coverup`, UMass 2024) in an environment of its own, run against any OpenAI-compatible endpoint on one
vendored module: the groundwork for the side-by-side rows of the quality benchmark.

CoverUp is not a dependency of oh-lsp. This script makes `.cache/coverup` with uv (CoverUp 0.6.3, and pytest below 9:
its plugin pytest-isolate 0.0.17 fails on pytest 9.2 with "module '_pytest.warnings' has no attribute
'apply_warning_filters'"). What running it against a local endpoint needs, as found here (docs/benchmarks.md,
"CoverUp against a local endpoint"):

- `OPENAI_API_BASE` = the endpoint and `--model openai/<name>`; litellm sends the request there;
- a model name that litellm's price map knows, with tool calls: with any other name CoverUp stops at once under its
  default prompt (gpt-v2, which offers the `get_info` tool): "The openai/<name> model does not support function
  calling"; under `--prompt gpt-v1` (no tool) it crashes after the first answer, in `litellm.completion_cost`
  ("ModelNotMappedError: This model isn't mapped yet"). So this script registers an unknown name with litellm (tool
  calls on, price 0) through a `sitecustomize.py` that only CoverUp's own process runs;
- `LITELLM_LOCAL_MODEL_COST_MAP=True` and `TIKTOKEN_CACHE_DIR` = litellm's bundled encodings, or litellm and tiktoken
  try to download their price map and `o200k_base` at start (no network here);
- a test that imports the module: with none, coverage.py never sees the module, CoverUp reports "100.0%" and asks
  nothing;
- `--max-concurrency 2` on 2 cores: with the default 50, every segment's coverage run timed out after 60 s.

    uv run python bench/coverup_env.py --base-url http://127.0.0.1:PORT/v1 --model openai/NAME --module isoweek
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.vendored import REPO, Vendored, make_project, vendored

COVERUP_VENV = REPO / ".cache" / "coverup"
COVERUP_SPECS = ["coverup==0.6.3", "pytest>=8,<9"]
REGISTER = """\
# Written by oh-lsp's bench/coverup_env.py: lets CoverUp use a model name that litellm does not know (a local model).
import os
import sys

if os.path.basename(sys.argv[0] if sys.argv else "") == "coverup" and os.environ.get("COVERUP_LOCAL_MODEL"):
    import litellm

    name = os.environ["COVERUP_LOCAL_MODEL"]
    if name not in litellm.model_cost and name.split("/", 1)[-1] not in litellm.model_cost:
        litellm.register_model({name: {
            "litellm_provider": "openai", "mode": "chat", "supports_function_calling": True,
            "input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "max_tokens": 4096, "max_input_tokens": 8192,
        }})

# Then the next sitecustomize.py on the path, as if this one were not here (a test suite's network audit, for one).
_here = os.path.dirname(os.path.abspath(__file__))
for _entry in sys.path:
    _next = os.path.join(_entry or ".", "sitecustomize.py")
    if os.path.abspath(_entry or ".") != _here and os.path.isfile(_next):
        import importlib.util

        _spec = importlib.util.spec_from_file_location("_next_sitecustomize", _next)
        if _spec is not None and _spec.loader is not None:
            _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
        break
"""


def coverup_python() -> Path:
    """`.cache/coverup/bin/python` with CoverUp, made with uv on first use."""
    python = COVERUP_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run(["uv", "venv", "-q", "--python", "3.11", str(COVERUP_VENV)], check=True)
        subprocess.run(["uv", "pip", "install", "-q", "--python", str(python), *COVERUP_SPECS], check=True)
    return python


def coverup_env(base_url: str, api_key: str, model: str) -> dict[str, str]:
    """The environment of a CoverUp run against `base_url`: nothing fetched from outside at start, and `model`
    registered with litellm when it does not know it."""
    python = coverup_python()
    site = COVERUP_VENV / "oh-lsp-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(REGISTER)
    found = subprocess.run(
        [str(python), "-c", "import importlib.util as u, os; print(os.path.dirname(u.find_spec('litellm').origin))"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    ).stdout.strip()
    return {
        **os.environ,
        "OPENAI_API_BASE": base_url,
        "OPENAI_API_KEY": api_key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "TIKTOKEN_CACHE_DIR": str(Path(found) / "litellm_core_utils" / "tokenizers"),
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        "COVERUP_LOCAL_MODEL": model,
    }


def run_coverup(
    module: Vendored,
    project: Path,
    *,
    base_url: str,
    model: str,
    api_key: str,
    prompt: str | None,
    timeout: float,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    """CoverUp on the module of `project` (tests in project/tests, with an import test added when none exists);
    `extra` are more of CoverUp's options."""
    tests = project / "tests"
    tests.mkdir(exist_ok=True)
    if not any(tests.glob("test_*.py")):
        (tests / f"test_{module.module}_imports.py").write_text(
            f"import {module.module}\n\n\ndef test_imports():\n    assert {module.module}.__name__\n"
        )
    command = [
        str(COVERUP_VENV / "bin" / "coverup"),
        "--tests-dir",
        "tests",
        "--no-checkpoint",
        "--branch-coverage",
        "--max-concurrency",
        "2",
        "--model",
        model,
        *(["--prompt", prompt] if prompt else []),
        *(extra or []),
        module.module_file.name,
    ]
    env = coverup_env(base_url, api_key, model)
    started = time.monotonic()
    # its own process group: at the time limit CoverUp and the pytest runs it started are stopped together
    with subprocess.Popen(
        command,
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as process:
        try:
            output, _ = process.communicate(timeout=timeout)
            exit_code: int | None = process.returncode
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            exit_code = None
    counts = re.findall(r"G=(\d+), F=(\d+), U=(\d+), R=(\d+), cost=~\$([\d.]+)", output)
    coverage = re.findall(r"Measuring coverage\.\.\.\s+([\d.]+)%", output)
    return {
        "module": module.name,
        "exit": exit_code,
        "seconds": round(time.monotonic() - started, 1),
        "coverage_before": float(coverage[0]) if coverage else None,
        "coverage_after": float(coverage[-1]) if len(coverage) > 1 else None,
        "good_failed_useless_retries": [int(x) for x in counts[-1][:4]] if counts else None,
        "cost_reported": float(counts[-1][4]) if counts else None,
        "tests_written": sorted(p.name for p in tests.glob("test_coverup_*.py")),
        "last_lines": [line for line in output.strip().splitlines() if line.strip()][-3:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--base-url", required=True, help="an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1"
    )
    parser.add_argument("--model", required=True, help="litellm's name: openai/<the endpoint's model name>")
    parser.add_argument("--prompt", default=None, help="CoverUp's prompt family (gpt-v1 needs no tool calls)")
    parser.add_argument("--module", default="isoweek", help="a name under bench/quality")
    parser.add_argument("--with-tests", action="store_true", help="start from the module's upstream tests")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    module = next((m for m in vendored() if m.name == args.module), None)
    if module is None:
        raise SystemExit(f"no module {args.module!r} under bench/quality")
    api_key = os.environ.get("OPENAI_API_KEY", "sk-local")
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(module, Path(tmp, "project"), with_tests=args.with_tests)
        result = run_coverup(
            module,
            project,
            base_url=args.base_url,
            model=args.model,
            api_key=api_key,
            prompt=args.prompt,
            timeout=args.timeout,
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
