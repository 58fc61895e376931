"""A pytest plugin that runs many mutants of one module in ONE pytest process, by switching the active mutant.

Loaded with ``-p oh_lsp_mutation`` and ``$OH_LSP_MUTATION_PLAN`` naming a JSON plan (written by
oh_lsp/validation/mutation.py): the module, its source, the mutants (a text range, its replacement, the function whose
code object changes, the tests that cover it) and a deadline. It takes over pytest's run loop:

1. every planned test runs once on the real code; a test that fails here is left out (it would "kill" everything);
2. for each mutant: the mutated module text is compiled (never executed), the mutated function's code object is taken
   out of it and put in place of the live function's `__code__` (every function object of that name and first line:
   decorated, bound or stored elsewhere, they all share it), caches (`functools.lru_cache`) of the module are
   cleared, and the covering tests run, in the plan's `order` if it has one (else fastest first), each under a
   timer, until one fails (killed) or none does (survived). With ``all_killers`` every covering test runs and each
   one that fails is named;
3. the real code goes back after each mutant. One JSON line per mutant goes to the results file as soon as it is known,
   so what is known survives a crash or a kill at the deadline.

It runs inside the *project's* interpreter, which may be another Python version than oh-lsp's, so it imports nothing
from oh-lsp and sticks to syntax that Python 3.8 understands.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import time
import types
from typing import IO, Any

import pytest


class _State:
    plan: dict[str, Any] | None = None
    timed_out = False


class MutantTimeout(Exception):
    """Raised in a test by the timer: the mutant made it run too long."""


def _on_alarm(signum: int, frame: types.FrameType | None) -> None:
    _State.timed_out = True
    raise MutantTimeout("the test ran too long under a mutant")


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get("OH_LSP_MUTATION_PLAN")
    if path:
        with open(path, encoding="utf-8") as handle:
            _State.plan = json.load(handle)


def _write(handle: IO[str], record: dict[str, Any]) -> None:
    handle.write(json.dumps(record) + "\n")
    handle.flush()


def _code_path(code: types.CodeType, path: list[tuple[str, int]]) -> types.CodeType | None:
    """The code object reached from `code` by following (name, first line) pairs through nested code constants."""
    for name, first_line in path:
        found = None
        for const in code.co_consts:
            if isinstance(const, types.CodeType) and const.co_name == name and const.co_firstlineno == first_line:
                found = const
                break
        if found is None:
            return None
        code = found
    return code


def _live_functions(module_name: str) -> dict[tuple[str, int], list[types.FunctionType]]:
    """Every function object of the module, by (qualified name, first line)."""
    found: dict[tuple[str, int], list[types.FunctionType]] = {}
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and getattr(obj, "__module__", None) == module_name:
            key = (obj.__qualname__, obj.__code__.co_firstlineno)
            found.setdefault(key, []).append(obj)
    return found


def _clear_caches(module: types.ModuleType) -> None:
    for value in list(vars(module).values()):
        targets: list[Any] = [value]
        if isinstance(value, type):
            targets += list(vars(value).values())
        for target in targets:
            inner = getattr(target, "__func__", target)
            clear = getattr(inner, "cache_clear", None)
            if callable(clear):
                try:
                    clear()
                except Exception:  # noqa: BLE001 -- someone else's cache_clear: clearing is only a courtesy
                    pass


def _run(item: pytest.Item, limit: float | None) -> str:
    """Run one test; 'passed', 'failed' or 'timeout'. Fixtures are torn down completely after it."""
    from _pytest.runner import runtestprotocol

    _State.timed_out = False
    use_timer = hasattr(signal, "setitimer") and limit is not None
    if use_timer:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, limit or 0.0, 0.5)  # and again every 0.5 s, should the test catch it
    try:
        reports = runtestprotocol(item, nextitem=None, log=False)
    except MutantTimeout:
        reports = None
    finally:
        if use_timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    if _State.timed_out:
        return "timeout"
    if reports is None or any(r.failed for r in reports):
        return "failed"
    return "passed"


def _mutate_and_run(
    plan: dict[str, Any],
    mutant: dict[str, Any],
    items: dict[str, pytest.Item],
    durations: dict[str, float],
    live: dict[tuple[str, int], list[types.FunctionType]],
    module: types.ModuleType,
) -> dict[str, Any]:
    text = plan["source"]
    mutated = text[: mutant["start"]] + mutant["replacement"] + text[mutant["end"] :]
    try:
        code = compile(mutated, plan["file"], "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        return {"status": "not-analysed", "reason": f"the mutant does not compile: {exc}"}
    path = [(part, line) for part, line in mutant["path"]]
    new_code = _code_path(code, path)
    functions = live.get((mutant["function"], mutant["first_line"]), [])
    if new_code is None or not functions:
        return {"status": "not-analysed", "reason": "its function was not found at run time"}
    if any(len(f.__code__.co_freevars) != len(new_code.co_freevars) for f in functions):
        return {"status": "not-analysed", "reason": "the mutant changes the function's free variables"}
    originals = [(f, f.__code__) for f in functions]
    killers: list[str] = []
    status = "survived"
    try:
        for f in functions:
            f.__code__ = new_code
        _clear_caches(module)
        order = plan.get("order") or {}  # the caller's order (its choice of tests), else fastest first
        for nodeid in sorted(mutant["tests"], key=lambda n: (order.get(n, len(order)), durations.get(n, 0.0), n)):
            item = items.get(nodeid)
            if item is None or nodeid not in durations:
                continue
            remaining = plan["deadline"] - time.time()
            if remaining <= 0:
                return {"status": "not-analysed", "reason": "the time for mutation analysis ran out"}
            limit = min(remaining, plan["timeout_factor"] * durations[nodeid] + plan["timeout_floor"])
            outcome = _run(item, limit)
            if outcome != "passed":
                killers.append(nodeid)
                if outcome == "timeout" and status == "survived":
                    status = "timeout"
                elif status == "survived":
                    status = "killed"
                if not plan.get("all_killers"):
                    break
    finally:
        for f, original in originals:
            f.__code__ = original
        _clear_caches(module)
    return {"status": status, "killers": killers}


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    plan = _State.plan
    if plan is None or session.config.option.collectonly:
        return None
    items = {item.nodeid: item for item in session.items}
    with open(plan["results"], "a", encoding="utf-8") as out:
        durations: dict[str, float] = {}
        for nodeid in plan["tests"]:
            item = items.get(nodeid)
            if item is None:
                _write(out, {"event": "clean", "nodeid": nodeid, "outcome": "not-collected"})
                continue
            started = time.monotonic()
            outcome = _run(item, None)
            seconds = time.monotonic() - started
            if outcome == "passed":
                durations[nodeid] = seconds
            _write(out, {"event": "clean", "nodeid": nodeid, "outcome": outcome, "seconds": seconds})
        try:
            __import__(plan["module"])
        except BaseException as exc:  # noqa: BLE001 -- reported, and no mutant can run
            _write(out, {"event": "import-error", "message": f"{type(exc).__name__}: {exc}"})
            return True
        module = sys.modules[plan["module"]]
        live = _live_functions(plan["module"])
        for mutant in plan["mutants"]:
            if time.time() >= plan["deadline"]:
                break
            _write(out, {"event": "start", "id": mutant["id"]})
            started = time.monotonic()
            result = _mutate_and_run(plan, mutant, items, durations, live, module)
            if result.get("reason", "").startswith("the time"):
                break
            result.update(event="mutant", id=mutant["id"], seconds=round(time.monotonic() - started, 4))
            _write(out, result)
    return True
