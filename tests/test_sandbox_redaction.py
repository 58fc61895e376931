"""Redaction at every boundary (issue 13, item 2): a secret that reaches a text oh-lsp keeps or shows is taken out
where the text leaves, whatever brought it there: the store's rows (both backends), the CLI's output, the editor's
messages, progress and diagnostics, the repair prompt, the agent runtime's texts.

Here the secret comes from where no sandbox can stop it: a model endpoint that echoes the key in its error body.
The suite-wide sweep (tests/conftest.py) also fails any test during which the sentinel key reaches the scripted
model server or the editor, and looks for it in every file and every SQLite row the suite leaves."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import pytest_lsp

from oh_lsp import QueuedTask, TaskQueue, TaskStatus
from oh_lsp.records import ExecutionMetrics
from oh_lsp.redaction import MARK, known_secrets, redact, remember
from oh_lsp.testing.model_server import Reply
from tests.conftest import OH_LSP, SENTINEL_KEY, cli_env
from tests.lsp_client import ended, make_project, run_command, start_server, stop_server, until

ECHO = f"Invalid API key: {SENTINEL_KEY} (check your credentials)"  # what some endpoints answer to a bad key


def test_the_cli_never_prints_or_stores_a_key_the_endpoint_echoed(project: Path, model_server) -> None:
    model_server.default = Reply.http_error(401, ECHO)
    env = cli_env(project, model_server.base_url)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*OH_LSP, *args], cwd=project, env=env, capture_output=True, text=True, timeout=120)

    task_id = json.loads(cli("submit-task", "--task-type", "unit_test", "pkg/calc.py", "--json").stdout)["submitted"][
        0
    ]["task_id"]
    outputs = [cli("run-engine", "--until-idle"), cli("run-engine", "--until-idle", "--json")]
    outputs += [cli("get-status", "--task-id", task_id), cli("get-status", "--task-id", task_id, "--json")]
    outputs += [cli("list-tasks"), cli("metrics", "--json"), cli("generate-tests", "pkg/calc.py")]
    status = json.loads(outputs[3].stdout)
    assert status["status"] == "failed" and f"Invalid API key: {MARK}" in status["error"], status["error"]
    for out in outputs:
        assert SENTINEL_KEY not in out.stdout + out.stderr, out.args
    assert f"Invalid API key: {MARK}" in outputs[2].stdout and f"Invalid API key: {MARK}" in outputs[-1].stdout


@pytest.mark.asyncio
async def test_the_editor_never_sees_a_key_the_endpoint_echoed(tmp_path: Path, model_server) -> None:
    """The failed task's progress, messages and diagnostics (every message the server sends is checked by the
    suite's sweep, `tests/lsp_client.py`)."""
    project = make_project(tmp_path / "proj")
    model_server.default = Reply.http_error(401, ECHO)
    client = await start_server(
        project, tmp_path / "state", model_server.base_url, pytest_lsp.client_capabilities("visual-studio-code")
    )
    try:
        result = await run_command(client, "ohLsp.generateTests", {"uri": (project / "pkg" / "calc.py").as_uri()})
        end = await until(lambda: ended(client, result["progressToken"]), 60, "the task to end")
        told = client.ended[result["taskId"]]  # type: ignore[attr-defined]  # the whole error (progress: 60 chars)
        assert end.message and f"Invalid API key: {MARK}" in told["error"], (end, told)
    finally:
        await stop_server(client)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_store_writes_no_secret_in_a_result_an_error_or_a_note(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from tests.test_store_contract import open_spec

    secret = "session-key-0123456789-never-stored"  # given at run time (ohLsp.setApiKey): in no environment
    remember(secret)
    spec = str(tmp_path / "q.sqlite3") if backend == "sqlite" else request.getfixturevalue("pg_url")
    queue = TaskQueue(store=open_spec(spec), project_root=tmp_path)
    try:
        for name in ("done", "again"):
            await queue.submit(QueuedTask(task_type="unit_test", description=f"{name} {secret}", max_retries=1))
        done, again = await queue.claim(), await queue.claim()
        metrics = ExecutionMetrics(task_id=done.task_id, model_id="m", task_type="unit_test", error=f"x {secret}")
        result = {"validation": {"errors": [{"message": f"assert {secret}"}]}, secret: [secret]}
        await queue.finish(done.task_id, TaskStatus.FAILED, result=result, error=f"e {secret}", metrics=metrics)
        await queue.retry(again.task_id, f"HTTP 401: {secret}", 0)
        rows = [await queue.get_task(done.task_id), await queue.get_task(again.task_id)]
        summary = queue.store.metrics_summary()
    finally:
        queue.close()
    kept = repr([(t.description, t.result, t.error, t.note) for t in rows]) + repr(summary)
    assert secret not in kept and f"assert {MARK}" in kept and f"HTTP 401: {MARK}" in kept
    if backend == "sqlite":
        assert secret.encode() not in b"".join(p.read_bytes() for p in tmp_path.glob("q.sqlite3*"))


@pytest.mark.parametrize("secret", ['key-with-"quotes"-0123', "key\\with\\backslashes-0123", "clé-ünïcode-0123-😀"])
def test_a_stored_json_text_holds_no_secret_whatever_characters_it_has(secret: str) -> None:
    """`to_json` searches the JSON text for the secret's escaped forms before walking the value: a secret with
    characters JSON escapes is found too, in a value, a key or a nested list."""
    from oh_lsp.store.shared import to_json

    value = {"plain": "no secret here", "nested": [{"m": f"assert {secret} == 1"}], f"k {secret}": 1}
    stored = to_json(value, [secret])
    assert stored is not None and secret not in json.loads(stored).__repr__() and secret not in stored
    assert json.loads(stored)["nested"][0]["m"] == f"assert {MARK} == 1" and f"k {MARK}" in json.loads(stored)
    assert to_json({"plain": "x"}, [secret]) == json.dumps({"plain": "x"}), "nothing to take out: stored as it is"


def test_the_repair_prompt_and_the_agents_texts_are_redacted(monkeypatch) -> None:
    from oh_lsp.agent.process import AgentProcess
    from oh_lsp.repair import Attempt, feedback_message
    from oh_lsp.validation.findings import Finding
    from oh_lsp.validation.result import ValidationResult

    secret = "remembered-secret-0123456789"
    remember(secret)
    monkeypatch.setenv("SOME_OTHER_TOKEN", "other-token-abcdefgh")
    verdict = ValidationResult(passed=False, score=0.0)
    verdict.errors.append(Finding("test-failed", f"assert 'other-token-abcdefgh' == {secret!r}", test="test_x"))
    prompt = feedback_message(Attempt(1, "", None, verdict), [], 0.7)
    assert secret not in prompt and "other-token-abcdefgh" not in prompt and f"== '{MARK}'" in prompt
    agent = AgentProcess.__new__(AgentProcess)  # its texts only: no worker process
    agent.secrets = []
    assert agent.redact(f"env: {secret} other-token-abcdefgh") == f"env: {MARK} {MARK}"
    assert secret in known_secrets() and redact(secret) == MARK


async def test_a_secret_put_in_the_environment_later_is_taken_out_of_the_next_prompt(
    tmp_path: Path, model_server, monkeypatch
) -> None:
    """The environment's scan is kept between calls (every prompt and log line asks for it) and made again as soon
    as the environment changes: a secret set, changed or removed after the client was made counts from the next
    request on."""
    from oh_lsp.config import OpenHandsConfig
    from oh_lsp.llm.client import ChatClient

    client = ChatClient(OpenHandsConfig(base_url=model_server.base_url, model="m"))
    model_server.default = Reply.text("ok")
    try:
        for value in ("first-token-0123456789", "second-token-0123456789"):
            monkeypatch.setenv("LATE_SERVICE_TOKEN", value)
            await client.chat("m", [{"role": "user", "content": f"the token is {value}"}])
            assert value in known_secrets()
            assert model_server.requests[-1].body["messages"][0]["content"] == f"the token is {MARK}"
        monkeypatch.delenv("LATE_SERVICE_TOKEN")
        assert "second-token-0123456789" not in known_secrets()
        await client.chat("m", [{"role": "user", "content": "the token was second-token-0123456789"}])
    finally:
        await client.aclose()
    assert model_server.requests[-1].body["messages"][0]["content"] == "the token was second-token-0123456789"
    assert "pass-word-01234" in known_secrets(environ={"A_PASSWORD": "pass-word-01234"})  # another mapping: read
