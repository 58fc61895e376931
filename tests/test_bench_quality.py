"""The quality benchmark (bench/quality.py) still runs, and its figures mean what docs/benchmarks.md says.

- a smoke run against the scripted model server, whose one answer is the module's upstream tests: oh-lsp's row shows
  the coverage and mutation score they add, measured by the benchmark (not oh-lsp's report), and the usage meter's
  token count agrees with what the server reported;
- CoverUp's row beside it, when CoverUp's environment is installed (`.cache/coverup`, made by bench/coverup_env.py
  with the network; the suite never installs it);
- the usage meter: tokens from `usage`, estimated (and marked so) where an answer has none, the key passed through;
- the summary and the goals: medians, tokens per point gained, "could not run" rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench import quality
from bench.coverup_env import COVERUP_VENV
from bench.usage_meter import UsageMeter
from bench.vendored import LIGHT_VENV
from oh_lsp.testing.model_server import Reply, ScriptedModelServer

BENCH = Path(__file__).resolve().parents[1] / "bench" / "quality.py"


def smoke(tmp_path: Path, *tools: str) -> dict[str, Any]:
    out = tmp_path / "quality.json"
    # the benchmark's light interpreter (pytest and coverage.py only) where it was made, else this one: slower to start
    python = LIGHT_VENV / "bin" / "python"
    python = python if python.exists() else Path(sys.executable)
    command = [sys.executable, str(BENCH), "--smoke", "--no-install", "--python", str(python), "--json", str(out)]
    done = subprocess.run(command + list(tools), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| typeutils |" in done.stdout and "scripted" in done.stdout, done.stdout
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return report


def test_smoke_run_measures_what_oh_lsp_kept(tmp_path: Path) -> None:
    report = smoke(tmp_path, "--no-coverup")
    (row,) = report["rows"]
    assert row["tool"] == "oh-lsp" and row["run"] == "scripted" and row["ran"], row
    assert row["tool_run"]["status"] == "completed", row["tool_run"]
    # the measure's own figures: the import test alone, then the 3 upstream tests oh-lsp kept
    assert row["before"]["test_files"] == ["tests/test_typeutils_imports.py"]
    assert "tests/test_typeutils.py" in row["after"]["test_files"]
    assert row["tests_proposed"] == 3 * row["calls"] and row["tests_kept"] == 3  # the same answer to every call
    assert row["coverage_after"] > row["coverage_before"] and row["gain"] > 0
    assert row["mutation_before"] == 0.0 and row["mutation_after"] > 0.0
    # the meter counted what the scripted server reported, as oh-lsp did
    assert row["calls"] >= 1 and row["estimated_calls"] == 0
    assert row["tokens"] == row["tool_run"]["self_report"]["tokens"] > 0
    assert row["tokens_per_point"] == pytest.approx(row["tokens"] / row["gain"], abs=0.1)
    assert report["summary"]["oh-lsp"]["points_gained"] == row["gain"]
    assert report["goals"] == ["goals: not judged (both tools must have run)"]


@pytest.mark.skipif(
    not (COVERUP_VENV / "bin" / "coverup").exists(),
    reason=f"CoverUp's environment {COVERUP_VENV} is not installed (python bench/coverup_env.py makes it, online)",
)
def test_smoke_run_puts_coverup_beside_it(tmp_path: Path) -> None:
    report = smoke(tmp_path, "--no-oh-lsp", "--coverup-args", "--max-attempts 1 --repeat-tests 0")
    (row,) = report["rows"]
    assert row["tool"] == "CoverUp" and row["ran"], row
    assert row["tool_run"]["exit"] == 0, row["tool_run"]
    assert any(name.startswith("tests/test_coverup_") for name in row["after"]["test_files"])
    assert row["tests_kept"] >= 3 and row["gain"] > 0  # CoverUp kept the scripted answer
    assert row["calls"] >= 1 and row["tokens"] > 0  # counted by the meter: CoverUp reports none


def test_the_meter_counts_usage_estimates_the_rest_and_passes_the_key() -> None:
    with ScriptedModelServer() as server:
        server.tokenizer = "llama-cpp-python"
        server.script(
            Reply.text(
                "```python\ndef test_a():\n    assert 1\n```", usage={"prompt_tokens": 11, "completion_tokens": 5}
            ),
            Reply.text("def test_b(): pass\nasync def test_c(): pass", usage_chunk=False),
        )
        with UsageMeter(server.base_url) as meter:
            messages = [{"role": "user", "content": "write tests"}]
            headers = {"Authorization": "Bearer sk-test-key"}
            url = meter.base_url + "/chat/completions"
            plain = httpx.post(url, json={"model": "m", "messages": messages}, headers=headers, timeout=30)
            streamed = httpx.post(
                url, json={"model": "m", "messages": messages, "stream": True}, headers=headers, timeout=30
            )
            listing = httpx.get(meter.base_url + "/models", timeout=30)
        meter.settle("sk-test-key")
        assert server.requests[0].headers["authorization"] == "Bearer sk-test-key"
        assert server.tokenized, "the estimate asked the endpoint's tokenizer, as oh-lsp does"
    assert plain.status_code == streamed.status_code == listing.status_code == 200
    assert streamed.text.rstrip().endswith("data: [DONE]")  # the stream passed through, whole
    first, second = meter.calls
    assert (first.prompt_tokens, first.completion_tokens, first.estimated) == (11, 5, False)
    assert first.finish_reason == second.finish_reason == "stop"
    assert second.stream and second.estimated and second.prompt_tokens and second.completion_tokens
    assert [len(quality.TEST_DEF.findall(c.answer)) for c in meter.calls] == [1, 2]
    totals = meter.totals()
    assert totals["calls"] == 2 and totals["estimated_calls"] == 1
    assert totals["tokens"] == 16 + second.tokens


def test_the_meter_shows_a_stream_cut_short_without_the_answer_text() -> None:
    with ScriptedModelServer() as server:
        server.script(Reply.text("def test_a():\n    assert 1 == 1\n", truncate_after=2, usage_chunk=False))
        with UsageMeter(server.base_url) as meter:
            body = {"model": "m", "messages": [{"role": "user", "content": "write tests"}], "stream": True}
            try:
                httpx.post(meter.base_url + "/chat/completions", json=body, timeout=30)
            except httpx.HTTPError:
                pass  # the cut may reach the client as a broken body; the meter's record is what is checked
    (call,) = meter.calls
    summary = call.summary()
    assert call.stream and call.answer and summary["finish_reason"] is None  # as llama-cpp-python's interrupt does
    assert summary["answer_chars"] == len(call.answer) and "def test_a" not in json.dumps(summary)


def test_the_meter_says_when_the_endpoint_is_unreachable() -> None:
    with UsageMeter("http://127.0.0.1:9/v1", timeout=5) as meter:
        answer = httpx.post(meter.base_url + "/chat/completions", json={"messages": []}, timeout=30)
    assert answer.status_code == 502 and "the endpoint failed" in answer.json()["error"]["message"]
    assert meter.totals()["failed_calls"] == 1


def row(tool: str, module: str, before: float, after: float | None, tokens: int, **extra: Any) -> dict[str, Any]:
    ran = after is not None
    gain = None if after is None else after - before
    return {
        "module": module,
        "tool": tool,
        "run": "scripted",
        "ran": ran,
        "reason": extra.get("reason", ""),
        "status": "completed",
        "tool_run": {},
        "seconds": 10.0,
        "coverage_before": before,
        "coverage_after": after,
        "mutation_before": 0.0,
        "mutation_after": extra.get("mutation", 0.5 if ran else None),
        "gain": gain,
        "tests_proposed": 4,
        "tests_kept": 2 if ran else None,
        "tokens": tokens,
        "calls": 2,
        "estimated_calls": 0,
        "cost": 0.0,
        "tokens_per_point": tokens / gain if gain else None,
        "after": {"mutation_complete": True} if ran else None,
    }


def test_the_summary_judges_the_goals_on_medians_and_tokens_per_point() -> None:
    rows = [
        row("oh-lsp", "a", 10.0, 60.0, 1000, mutation=0.6),
        row("oh-lsp", "b", 20.0, 50.0, 1000, mutation=0.4),
        row("oh-lsp", "c", 30.0, 70.0, 1000, mutation=0.8),
        row("CoverUp", "a", 10.0, 40.0, 3000, mutation=0.3),
        row("CoverUp", "b", 20.0, 60.0, 3000, mutation=0.5),
        row("CoverUp", "c", 30.0, None, 500, reason="The openai/x model does not support function calling"),
    ]
    summary = quality.summarise(rows)
    assert summary["oh-lsp"]["coverage_after"] == 60.0 and summary["oh-lsp"]["points_gained"] == 120.0
    assert summary["oh-lsp"]["tokens_per_point"] == 25.0
    # CoverUp ran on 2 modules; its failed run's tokens are not in "per point" (it ran nowhere there)
    assert summary["CoverUp"]["modules"] == 2 and summary["CoverUp"]["coverage_after"] == 50.0
    assert summary["CoverUp"]["tokens_per_point"] == pytest.approx(6000 / 70, abs=0.1)
    verdicts = quality.goals(summary)
    assert verdicts[0].endswith("met") and not verdicts[0].endswith("not met")  # 60 >= 50
    assert verdicts[1].endswith("met") and not verdicts[1].endswith("not met")  # 0.6 > 0.4
    assert verdicts[2].endswith("met") and not verdicts[2].endswith("not met")  # 25 < 85.7
    table = quality.markdown(
        {
            "meta": {
                "date": "d",
                "machine": "m",
                "endpoint": "e",
                "model": "x",
                "kind": "scripted",
                "timeout": 60,
                "mutation_seconds": 20,
                "start": "s",
                "command": "c",
            },
            "rows": rows,
            "summary": summary,
            "goals": verdicts,
        }
    )
    assert "could not run: The openai/x model does not support function calling" in table
    assert "| oh-lsp | 3 | 20.0 % → 60.0 %" in table


def test_no_gain_means_no_tokens_per_point_and_goals_not_judged() -> None:
    summary = quality.summarise([row("oh-lsp", "a", 10.0, 10.0, 800), row("CoverUp", "a", 10.0, 10.0, 900)])
    assert summary["oh-lsp"]["tokens_per_point"] is None
    assert quality.goals(summary) == [
        "goals: not judged: neither tool gained any coverage (no generated test passed and added a line)"
    ]
    one_sided = quality.summarise([row("oh-lsp", "a", 10.0, 30.0, 800), row("CoverUp", "a", 10.0, 10.0, 900)])
    assert quality.goals(one_sided)[2] == "tokens per point gained < CoverUp's: oh-lsp 40.0 vs CoverUp inf: met"


def test_bad_arguments_say_what_is_wrong(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in [
        (["--modules", "isoweek"], "--base-url and --model are required (or --smoke)"),
        (["--smoke", "--modules", "nope"], "no module nope under bench/quality (there are: base58,"),
        (["--smoke", "--modules", "base58"], "--smoke answers with a module's upstream tests"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            quality.main(argv)
        assert exit_.value.code == 2 and message in capsys.readouterr().err
