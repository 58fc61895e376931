"""The OpenHands agent runtime (OH_LSP_RUNTIME=openhands): a real OpenHands SDK agent, in a subprocess on the agent
environment (Python >= 3.12), driven by the scripted server's tool calls, its work judged by our own validator.

The agent environment is made once per session (or reused: `OH_LSP_TEST_OPENHANDS_ENV`, which `.ci/run` fills in its
own step). Tests that need it are skipped, with the reason, only where no Python >= 3.12 exists.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Self

import pytest
from pydantic import SecretStr

from oh_lsp import events as ev
from oh_lsp.testing.model_server import Reply, ScriptedModelServer
from oh_lsp.testing.model_server.wire import usage
from tests.conftest import FAILING_TESTS, GOOD_TESTS, SENTINEL_KEY
from tests.models_support import MODEL_A, MODEL_B, write_catalog
from tests.prerequisites import missing

REPO = Path(__file__).resolve().parents[1]
AGENT_ENV = Path(os.environ.get("OH_LSP_TEST_OPENHANDS_ENV") or REPO / ".cache" / "openhands-env")
OUTPUT = "tests/pkg/test_calc.py"
WORKSPACE = re.compile(r"copy of the project at (\S+) \(the working directory\)")


@pytest.fixture(scope="session")
def agent_env():
    """The agent environment: reused when ready, else made here (a few seconds with uv's cache, longer cold)."""
    from oh_lsp.agent.environment import AgentEnvironmentError, agent_python, find_python, setup_environment

    try:
        return agent_python(AGENT_ENV)
    except AgentEnvironmentError:
        pass
    try:
        python = find_python()
    except AgentEnvironmentError as exc:
        missing(f"the OpenHands SDK needs Python >= 3.12 and there is none here: {exc}")
    started = time.monotonic()
    env = setup_environment(AGENT_ENV, python.path, log=lambda _line: None)
    print(f"\nagent environment made in {time.monotonic() - started:.1f}s at {AGENT_ENV}", file=sys.stderr)
    return env


# --- the scripted agent -----------------------------------------------------------------------------------------------
def _text(messages: list[dict[str, Any]]) -> str:
    parts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        parts.append(str(content or ""))
    return "\n".join(parts)


def tool_turns(messages: list[dict[str, Any]]) -> int:
    """How many tool results the agent has sent back so far (which step of the script it is at)."""
    return sum(1 for m in messages if m.get("role") == "tool")


def play(server: ScriptedModelServer, steps: list, model: str = "model-a", **reply_kw: Any) -> None:
    """Answer `model`'s requests with one tool call per step: step n answers the request that carries n tool
    results. A step is ``(tool, arguments)``; in arguments, ``{ws}`` becomes the workspace the agent was given."""

    def respond(rec):
        if rec.model != model:
            return None
        messages = rec.body["messages"]
        step = min(tool_turns(messages), len(steps) - 1)
        workspace = WORKSPACE.search(_text(messages)).group(1)
        return Reply.tool_call(*fill(steps[step], workspace), **reply_kw)

    server.responder = respond


def create(text: str, path: str = OUTPUT) -> tuple[str, dict[str, Any]]:
    return "file_editor", {"command": "create", "path": "{ws}/" + path, "file_text": text}


FINISH = ("finish", {"message": "tests written"})


def agent_config(server: ScriptedModelServer, folder: Path, agent_env, **kw: Any):
    from oh_lsp.config import OpenHandsConfig

    values: dict[str, Any] = {
        "api_key": SecretStr(SENTINEL_KEY),
        "base_url": server.base_url,
        "model": "model-a",
        "runtime": "openhands",
        "model_catalog": write_catalog(folder, {"model-a": MODEL_A, "model-b": MODEL_B}),
        "openhands_env": agent_env.env if agent_env else folder / "no-agent-env",
        "python": Path(os.environ["OH_LSP_PYTHON"]),
        "max_repair_iterations": 0,
        "quality_threshold": 0.0,
        "heartbeat_seconds": 0.5,
        "max_retries": 0,
    }
    values.update(kw)
    return OpenHandsConfig(**values)


class Run:
    """One task through the real engine, with its events."""

    def __init__(self, project: Path, config) -> None:
        from oh_lsp import ExecutionEngine

        self.engine = ExecutionEngine(config, 1, project_root=project, poll_interval=0.05)
        self.events: list[ev.Event] = []
        self.engine.subscribe(self.events.append)

    async def __aenter__(self) -> Self:
        await self.engine.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.stop()
        self.engine.close()

    async def submit(self, target: str = "pkg/calc.py"):
        from oh_lsp import QueuedTask

        return await self.engine.submit_task(
            QueuedTask(task_type="unit_test", target_file=Path(target), description="tests for calc")
        )

    async def run(self, timeout: float = 240):
        task_id = await self.submit()
        return await self.engine.wait_for(task_id, timeout=timeout)

    def progress(self) -> list[str]:
        return [e.data.get("message", "") for e in self.events if e.kind == ev.PROGRESS]


def usage_of(rec) -> dict[str, int]:
    return usage(rec, rec.reply)


# --- acceptance 9 -----------------------------------------------------------------------------------------------------
async def test_agent_writes_the_test_file_and_our_validator_decides(
    project: Path, model_server, agent_env, tmp_path: Path
) -> None:
    play(model_server, [create(GOOD_TESTS), FINISH])
    async with Run(project, agent_config(model_server, tmp_path, agent_env)) as run:
        task = await run.run()
    assert task.status.value == "completed", task.error
    result = task.result
    assert result["runtime"] == "openhands"
    # our own validator ran the agent's file: 3 tests kept, with coverage and seeds recorded
    assert result["validation"]["passed"] and result["score"] > 0
    assert sorted(result["validation"]["details"]["kept"]) == ["test_add", "test_divide", "test_divide_by_zero"]
    assert result["coverage"]["gained_lines"] > 0 and len(result["validation"]["details"]["seeds"]) == 3
    # the delivered edit creates the test module where the project's tests go (README.md#quick-start, step 2)
    assert result["output_file"] == OUTPUT and result["content"] == GOOD_TESTS
    created = {f["path"]: f for f in result["edit"]["files"]}
    assert created[OUTPUT]["new_text"] == GOOD_TESTS and created[OUTPUT]["base_sha256"] is None
    # the agent worked in a copy: the real project is untouched until the API delivers
    assert not (project / "tests").exists()
    from oh_lsp.engine import deliver_task

    report = deliver_task(project, task)
    assert report.applied and (project / OUTPUT).read_text() == GOOD_TESTS
    # both requests (the file-editor call, then finish) went to the scripted server, for the chosen model
    requests = model_server.requests
    assert [r.model for r in requests] == ["model-a", "model-a"]
    assert requests[0].headers["authorization"] == f"Bearer {SENTINEL_KEY}"
    assert requests[0].headers.get("x-title") == "oh-lsp"  # usage_id
    assert {t["function"]["name"] for t in requests[0].body["tools"]} >= {"file_editor", "terminal", "finish"}
    assert tool_turns(requests[1].body["messages"]) == 1
    # tokens and cost: the SDK's own accounting of the server's usage, priced from our catalog, in our metrics
    prompt = sum(usage_of(r)["prompt_tokens"] for r in requests)
    completion = sum(usage_of(r)["completion_tokens"] for r in requests)
    expected_cost = prompt * MODEL_A["price_prompt"] + completion * MODEL_A["price_completion"]
    assert task.tokens == result["tokens"] == prompt + completion
    assert task.cost == pytest.approx(expected_cost) and task.cost > 0
    assert task.model == "model-a"
    summary = run.engine.get_metrics_summary()
    assert summary["models"]["model-a"]["total_cost"] == pytest.approx(expected_cost)
    assert run.engine.queue.store.spent(task_id=task.task_id) == pytest.approx(expected_cost)
    # its events became ours: the model, the agent's steps, tokens, validation
    kinds = [e.kind for e in run.events]
    chosen = [e.data for e in run.events if e.kind == ev.MODEL_CHOSEN]
    assert chosen[0]["model"] == "model-a" and chosen[0]["runtime"] == "openhands"
    assert chosen[0]["fallbacks"] == ["model-b"]
    assert f"agent: file_editor create {OUTPUT}" in run.progress()
    assert ev.TOKENS in kinds and ev.VALIDATING in kinds and kinds[-1] == ev.COMPLETED


async def test_failing_tests_go_back_to_the_agent_and_its_fix_is_kept(
    project: Path, model_server, agent_env, tmp_path: Path
) -> None:
    fixed = FAILING_TESTS.replace("add(2, 2) == 5", "add(2, 2) == 4")

    def respond(rec):  # run 1: create failing tests, finish; run 2 (after our findings): fix them, finish
        messages = rec.body["messages"]
        workspace = WORKSPACE.search(_text(messages)).group(1)
        repairing = any(m.get("role") == "user" and "test_add_is_wrong failed" in _text([m]) for m in messages)
        turns = tool_turns(messages)
        if not repairing:
            return Reply.tool_call(*fill(create(FAILING_TESTS), workspace)) if turns == 0 else Reply.tool_call(*FINISH)
        if turns == 2:
            return Reply.tool_call(
                "file_editor",
                {
                    "command": "str_replace",
                    "path": f"{workspace}/{OUTPUT}",
                    "old_str": "add(2, 2) == 5",
                    "new_str": "add(2, 2) == 4",
                },
            )
        return Reply.tool_call(*FINISH)

    model_server.responder = respond
    async with Run(project, agent_config(model_server, tmp_path, agent_env, max_repair_iterations=1)) as run:
        task = await run.run()
    assert task.status.value == "completed", task.error
    assert task.result["iterations"] == 2
    first = task.result["attempts"][0]
    assert not first["passed"] and "test-failed" in {e["code"] for e in first["errors"]}
    assert task.result["content"] == fixed and task.result["validation"]["details"]["kept"] == ["test_add_is_wrong"]
    assert any("repair iteration 1" in m for m in run.progress())
    assert len(model_server.requests) == 4
    assert not (project / "tests").exists()


def fill(step: tuple[str, dict[str, Any]], workspace: str) -> tuple[str, dict[str, Any]]:
    tool, arguments = step
    return tool, {k: v.replace("{ws}", workspace) if isinstance(v, str) else v for k, v in arguments.items()}


async def test_sdk_fallback_models_come_from_our_chain(project: Path, model_server, agent_env, tmp_path: Path) -> None:
    play(model_server, [create(GOOD_TESTS), FINISH], model="model-b")
    model_server.script(*[Reply.http_error(503, "model-a is down")] * 6, model="model-a")
    async with Run(project, agent_config(model_server, tmp_path, agent_env)) as run:
        task = await run.run()
    assert task.status.value == "completed", task.error
    models = [r.model for r in model_server.requests]
    assert models[0] == "model-a" and "model-b" in models
    assert models.count("model-a") <= 2 * 2  # the SDK's own retries stay low (1 retry per call)
    assert task.model == "model-b"
    assert any("switching model: model-a -> model-b" in m for m in run.progress())


async def test_a_budget_stops_the_conversation(project: Path, model_server, agent_env, tmp_path: Path) -> None:
    cheap = {
        name: {**spec, "price_prompt": 1e-7, "price_completion": 1e-7}
        for name, spec in (("model-a", MODEL_A), ("model-b", MODEL_B))
    }
    usage = {"prompt_tokens": 20000, "completion_tokens": 1000, "total_tokens": 21000}  # $0.0021 a call
    play(model_server, [create(GOOD_TESTS), ("terminal", {"command": "ls"}), FINISH], usage=usage)
    config = agent_config(
        model_server,
        tmp_path,
        agent_env,
        budget_per_task_usd=0.003,
        model_catalog=write_catalog(tmp_path, cheap, name="cheap.json"),
    )
    async with Run(project, config) as run:
        task = await run.run()
    assert task.status.value == "failed"
    assert "per-task budget reached" in task.error and "stopped" in task.error
    assert len(model_server.requests) == 2  # the call after the cap was passed was never made
    assert task.cost == pytest.approx(0.0042)
    assert not (project / "tests").exists()


async def test_under_bubblewrap_the_agent_cannot_see_or_touch_the_real_project(
    project: Path, model_server, agent_env, tmp_path: Path
) -> None:
    from oh_lsp.validation.sandbox import bwrap_available

    if not bwrap_available():
        missing("bubblewrap is not usable here (apt-get install bubblewrap)")
    (project / ".env").write_text("OPENROUTER_API_KEY=sk-or-v1-in-the-dotenv-0123456789\n")
    escape = f"cat {project}/.env; touch {project.parent}/escaped.txt {project}/pkg/planted.py; echo done"
    play(model_server, [("terminal", {"command": escape}), create(GOOD_TESTS), FINISH])
    async with Run(project, agent_config(model_server, tmp_path, agent_env)) as run:
        task = await run.run()
    assert task.status.value == "completed", task.error
    observed = _text(model_server.requests[1].body["messages"])
    assert "done" in observed and "No such file" in observed  # the command ran, in a copy without the .env
    assert all(b"in-the-dotenv" not in r.raw_body for r in model_server.requests)
    assert not (project.parent / "escaped.txt").exists() and not (project / "pkg" / "planted.py").exists()
    assert [f["path"] for f in task.result["edit"]["files"]][-1] == OUTPUT  # what it planted is no output


async def test_under_landlock_alone_the_agent_works_without_a_terminal(
    project: Path, model_server, agent_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a machine with Landlock but no namespaces (bubblewrap hidden, mode `landlock`) the agent's terminal tool
    cannot work: its tmux server wanted a folder in the real /tmp and a pseudo-terminal of the machine, both outside
    what Landlock allows (and opening the machine's terminals would let it read their keystrokes). The agent runs
    with the file editor alone, says so, and its answer is checked as usual."""
    from oh_lsp.sandbox.measure import path_without_bwrap
    from oh_lsp.validation import sandbox

    if not sandbox.probe_kernel()["landlock"]:
        missing("this kernel has no Landlock")
    monkeypatch.setattr(sandbox, "_bwrap_ok", None)
    monkeypatch.setenv("PATH", path_without_bwrap(os.environ["PATH"], tmp_path / "path"))
    play(model_server, [create(GOOD_TESTS), FINISH])
    async with Run(project, agent_config(model_server, tmp_path, agent_env, sandbox="landlock")) as run:
        task = await run.run()
    assert task.status.value == "completed", task.error
    assert {t["function"]["name"] for t in model_server.requests[0].body["tools"]} >= {"file_editor", "finish"}
    assert "terminal" not in {t["function"]["name"] for t in model_server.requests[0].body["tools"]}
    assert any("no terminal: this sandbox (Landlock alone)" in text for text in run.progress())
    assert sorted(task.result["validation"]["details"]["kept"]) == ["test_add", "test_divide", "test_divide_by_zero"]


async def test_a_refused_key_fails_fast_with_the_direct_runtimes_message(
    project: Path, model_server, agent_env, tmp_path: Path
) -> None:
    model_server.default = Reply.http_error(401, "invalid api key")
    async with Run(project, agent_config(model_server, tmp_path, agent_env, max_retries=2)) as run:
        task = await run.run()
    assert task.status.value == "failed" and task.attempts == 1, task.error  # fatal: not re-queued
    assert "HTTP 401" in task.error and "Check OPENROUTER_API_KEY and OPENHANDS_BASE_URL" in task.error
    assert SENTINEL_KEY not in task.error
    assert [r.model for r in model_server.requests] == ["model-a"]  # no SDK retry, no fallback on a refused key
    assert not (project / "tests").exists()


@pytest.mark.parametrize("sandbox", ["auto", "none"])  # under bubblewrap where it works, and as a plain process
async def test_cancel_kills_the_agent_and_its_key_is_never_in_argv_or_env(
    project: Path, model_server, agent_env, tmp_path: Path, sandbox: str
) -> None:
    play(model_server, [create(GOOD_TESTS), FINISH], latency=60)
    async with Run(project, agent_config(model_server, tmp_path, agent_env, sandbox=sandbox)) as run:
        task_id = await run.submit()
        deadline = time.monotonic() + 120
        while not model_server.requests:
            assert time.monotonic() < deadline, "the agent never called the model"
            await asyncio.sleep(0.1)
        agents = _agent_processes(project)
        assert any(b"oh_lsp_agent_worker.py" in cmdline for cmdline in agents.values()), agents
        assert any(Path(cmdline.split(b"\0")[0].decode()).name == "tmux" for cmdline in agents.values()), agents
        for pid in agents:
            assert SENTINEL_KEY.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
            assert SENTINEL_KEY.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
        started = time.monotonic()
        assert await run.engine.cancel_task(task_id)
        task = await run.engine.wait_for(task_id, timeout=30)
        assert task.status.value == "cancelled"
        while _agent_processes(project) and time.monotonic() - started < 10:
            await asyncio.sleep(0.05)
        assert _agent_processes(project) == {}, "the agent (or its tmux) outlived its cancelled task"
    assert model_server.requests[0].disconnected  # the in-flight model call was dropped, not finished
    assert not (project / "tests").exists()


def _agent_processes(project: Path) -> dict[int, bytes]:
    """Processes started for an agent in `project`: their HOME is the run's private home in its scratch folder."""
    home = f"HOME={project}/".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if home in (entry / "environ").read_bytes():
                    found[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                continue
    return found


# --- refusals that need no agent environment --------------------------------------------------------------------------
async def test_untrusted_workspace_is_refused(project: Path, model_server, tmp_path: Path) -> None:
    async with Run(project, agent_config(model_server, tmp_path, None, trusted=False)) as run:
        task = await run.run(timeout=30)
    assert task.status.value == "failed"
    assert task.error.startswith("not run: workspace not trusted") and "OH_LSP_TRUSTED=true" in task.error
    assert model_server.requests == []


async def test_docker_requested_without_docker_is_a_clear_error(
    project: Path, model_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker-engine.sock")  # no engine answers there
    async with Run(project, agent_config(model_server, tmp_path, None, use_docker_runtime=True)) as run:
        task = await run.run(timeout=60)
    assert task.status.value == "failed"
    assert task.error.startswith("OPENHANDS_USE_DOCKER_RUNTIME=true, but Docker is not available")
    assert "OPENHANDS_USE_DOCKER_RUNTIME=false" in task.error
    assert ("Cannot connect to the Docker daemon" in task.error) or ("no `docker` command" in task.error)
    assert model_server.requests == []


async def test_docker_command_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from oh_lsp.agent.runtime import AgentRuntimeError, require_docker

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AgentRuntimeError, match="no `docker` command on PATH"):
        await require_docker()


async def test_missing_agent_environment_says_how_to_make_it(project: Path, model_server, tmp_path: Path) -> None:
    async with Run(project, agent_config(model_server, tmp_path, None)) as run:
        task = await run.run(timeout=30)
    assert task.status.value == "failed"
    assert "needs its agent environment" in task.error and "oh-lsp openhands setup --env" in task.error
    assert model_server.requests == []


def test_no_python_312_is_a_clear_error(tmp_path: Path) -> None:
    from oh_lsp.agent.environment import AgentEnvironmentError, find_python

    with pytest.raises(AgentEnvironmentError, match=r"no Python 3.12 or newer was found .*3\.11") as caught:
        find_python(
            candidates=[sys.executable, str(tmp_path / "python3.12")]
            if sys.version_info < (3, 12)
            else [str(tmp_path / "python3.12")]
        )
    assert "does not run" in str(caught.value) and "--python" in str(caught.value)
    if sys.version_info < (3, 12):
        with pytest.raises(AgentEnvironmentError, match=r"needs Python 3\.12 or newer"):
            find_python(Path(sys.executable))


def test_the_default_runtime_is_the_direct_call() -> None:
    from oh_lsp.agent.runtime import run_agent_task
    from oh_lsp.config import OpenHandsConfig
    from oh_lsp.engine import default_executor
    from oh_lsp.pipeline import run_model_task

    assert OpenHandsConfig().runtime == "direct" and default_executor(OpenHandsConfig()) is run_model_task
    config = OpenHandsConfig.from_env(env_file=None, environ={"OH_LSP_RUNTIME": "openhands"})
    assert default_executor(config) is run_agent_task
    sdk = [m for m in sys.modules if m.split(".")[0] == "openhands"]
    assert sdk == []  # the SDK is never imported into oh-lsp's own process


def test_the_pins_match_pyproject() -> None:
    import tomllib

    from oh_lsp.agent.environment import OPENHANDS_VERSION

    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["openhands"]
    pins = {re.split(r"[=;\s]", line)[0]: line for line in extra}
    assert set(pins) == {"openhands-sdk", "openhands-tools"}
    assert all(f"=={OPENHANDS_VERSION}" in line for line in pins.values())


# --- the CLI ----------------------------------------------------------------------------------------------------------
def oh_lsp(*args: str, cwd: Path) -> Any:
    import subprocess

    from tests.conftest import OH_LSP, cli_env

    return subprocess.run(
        [*OH_LSP, *args],
        cwd=cwd,
        env=cli_env(cwd, "http://127.0.0.1:9/v1"),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_reports_a_missing_environment_and_a_too_old_python(project: Path, tmp_path: Path) -> None:
    missing = oh_lsp("openhands", "--env", str(tmp_path / "none"), "--json", cwd=project)
    assert missing.returncode == 1
    status = json.loads(missing.stdout)
    assert status["ready"] is False and status["runtime"] == "direct"
    assert "Run `oh-lsp openhands setup --env" in status["problem"]
    if sys.version_info < (3, 12):
        old = oh_lsp("openhands", "setup", "--env", str(tmp_path / "new"), "--python", sys.executable, cwd=project)
        assert old.returncode == 1 and "the OpenHands SDK needs Python 3.12 or newer" in old.stderr
        assert not (tmp_path / "new").exists()


def test_cli_setup_reuses_a_ready_environment(project: Path, agent_env) -> None:
    setup = oh_lsp("openhands", "setup", "--env", str(agent_env.env), cwd=project)
    assert setup.returncode == 0 and "is ready (openhands-sdk 1.58.2" in setup.stdout
    status = oh_lsp("openhands", "--env", str(agent_env.env), cwd=project)
    assert status.returncode == 0 and "ready, openhands-sdk 1.58.2" in status.stdout
