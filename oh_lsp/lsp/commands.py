"""The `workspace/executeCommand` commands of the editor contract (ids in `ids.py`) and what each one does (their
arguments are checked in `arguments.py`).

Each command is a plain async function of the session and its parsed arguments. Task-starting commands answer at
once with `{taskId, progressToken}`; the work goes on in the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oh_lsp.lsp import reports
from oh_lsp.lsp.arguments import (
    ApiKeyArgs,
    CancelArgs,
    DocumentArgs,
    GenerateArgs,
    ListTasksArgs,
    NoArgs,
    RefactorArgs,
    RetryArgs,
    SelectModelArgs,
    SetModelArgs,
    parse,
)
from oh_lsp.lsp.errors import CommandError, shown
from oh_lsp.lsp.ids import (
    CANCEL_TASK,
    DOCUMENT,
    GENERATE_TESTS,
    LIST_MODELS,
    LIST_TASKS,
    QUEUE_STATS,
    REFACTOR,
    RETRY_TASK,
    SELECT_MODEL,
    SET_API_KEY,
    SET_MODEL,
    SHOW_METRICS,
)

if TYPE_CHECKING:
    from oh_lsp.lsp.session import Session
    from oh_lsp.tasks import QueuedTask


async def generate_tests(session: Session, args: GenerateArgs) -> dict[str, Any]:
    target = session.resolve_target(args.uri, args.symbol, GENERATE_TESTS)
    what = target.symbol.qualname if target.symbol else target.module
    instruction = f"Write unit tests for {what} in module {target.module}."
    aimed: dict[str, Any] = {}
    if args.gap is not None:  # "Generate tests for this": the task aims at one gap (kinds/unit_test_gaps.py)
        first, last = args.gap.lines
        aimed["gap"] = {"kind": args.gap.kind, "line": first, "end_line": last, "detail": args.gap.detail}
        where = f"line {first}" if first == last else f"lines {first}–{last}"
        instruction = (  # the gap is in the text too: tasks aimed at different gaps are different tasks
            f"Write unit tests for {what} in module {target.module}, aimed at one gap ({where}):"
            f" {args.gap.detail or args.gap.kind}."
        )
    if args.description.strip():
        instruction += f"\n{args.description.strip()}"
    return await session.tracker.submit(target, "unit_test", instruction, metadata=aimed, no_cache=args.no_cache)


async def document(session: Session, args: DocumentArgs) -> dict[str, Any]:
    session.require_kind("documentation", DOCUMENT)
    target = session.resolve_target(args.uri, args.symbol, DOCUMENT)
    what = target.symbol.qualname if target.symbol else f"module {target.module}"
    return await session.tracker.submit(
        target, "documentation", f"Add or complete the docstrings of {what}.", no_cache=args.no_cache
    )


async def refactor(session: Session, args: RefactorArgs) -> dict[str, Any]:
    session.require_kind("refactoring", REFACTOR)
    target = session.resolve_target(args.uri, args.symbol, REFACTOR)
    return await session.tracker.submit(target, "refactoring", args.instruction.strip(), no_cache=args.no_cache)


async def cancel_task(session: Session, args: CancelArgs) -> dict[str, Any]:
    task_id = args.task_id
    if task_id is None:
        task_id = session.tracker.task_for_token(str(args.progress_token))
        if task_id is None:
            raise CommandError(
                f"{CANCEL_TASK}: no task has the progress token {shown(args.progress_token)} in this session"
            )
    return {"cancelled": await session.tracker.cancel(task_id, CANCEL_TASK)}


def feedback_text(task: QueuedTask) -> str:
    """What went wrong last time, for the model: the findings (errors first), trimmed, else the error."""
    validation = (task.result or {}).get("validation") or {}
    lines = [
        f"- {f.get('code')}: {f.get('message')}"
        for f in [*validation.get("errors", []), *validation.get("warnings", [])]
    ][:12]
    if not lines and task.error:
        lines = [f"- {task.error}"]
    text = "\n".join(line if len(line) <= 400 else line[:400] + "…" for line in lines)
    return f"A previous attempt was rejected by the checks:\n{text}\nDo not repeat these mistakes." if text else ""


async def retry_task(session: Session, args: RetryArgs) -> dict[str, Any]:
    folder, task = await session.tracker.find_task(args.task_id, RETRY_TASK)
    instruction = task.metadata.get("instruction") or task.description  # without an earlier attempt's feedback
    feedback = feedback_text(task) if args.with_feedback else ""
    target = session.target_of_task(folder, task, RETRY_TASK)
    aimed = {"gap": task.metadata["gap"]} if "gap" in task.metadata else None  # a task aimed at a gap stays aimed
    # asked again on purpose: never the cached answer (the new one replaces it)
    return await session.tracker.submit(
        target, task.kind, instruction, feedback, retry_of=task.task_id, metadata=aimed, no_cache=True
    )


async def show_metrics(session: Session, _args: NoArgs) -> dict[str, Any]:
    return await reports.metrics(session)


async def queue_stats(session: Session, _args: NoArgs) -> dict[str, Any]:
    return await reports.queue_stats(session)


async def list_tasks(session: Session, args: ListTasksArgs) -> list[dict[str, Any]]:
    return await reports.list_tasks(session, args.status)


async def select_model(session: Session, args: SelectModelArgs) -> dict[str, Any]:
    from oh_lsp.llm.errors import ModelCallError
    from oh_lsp.tasks import QueuedTask

    metadata: dict[str, Any] = {}
    if args.complexity:
        metadata["complexity"] = args.complexity
    if args.quality_threshold is not None:
        metadata["quality_threshold"] = args.quality_threshold
    try:
        selection = await session.gateway().select(QueuedTask(task_type=args.kind, metadata=metadata))
        model = selection.model
    except (ModelCallError, ValueError) as exc:  # no model qualifies: say which constraint excluded which
        return {"model": None, "why": str(exc)}
    return {"model": model.name, "why": selection.why, "chain": [m.name for m in selection.chain]}


async def list_models(session: Session, _args: NoArgs) -> list[dict[str, Any]]:
    return await reports.list_models(session)


async def set_model(session: Session, args: SetModelArgs) -> dict[str, Any]:
    return await session.set_model(args.name)


async def set_api_key(session: Session, args: ApiKeyArgs) -> dict[str, Any]:
    await session.set_api_key(args.api_key)
    return {}


# id -> (argument class, function). ohLsp.refactorPrompt is not here: editors implement it.
COMMANDS: dict[str, tuple[type, Any]] = {
    GENERATE_TESTS: (GenerateArgs, generate_tests),
    DOCUMENT: (DocumentArgs, document),
    REFACTOR: (RefactorArgs, refactor),
    CANCEL_TASK: (CancelArgs, cancel_task),
    RETRY_TASK: (RetryArgs, retry_task),
    SHOW_METRICS: (NoArgs, show_metrics),
    QUEUE_STATS: (NoArgs, queue_stats),
    LIST_TASKS: (ListTasksArgs, list_tasks),
    SELECT_MODEL: (SelectModelArgs, select_model),
    LIST_MODELS: (NoArgs, list_models),
    SET_MODEL: (SetModelArgs, set_model),
    SET_API_KEY: (ApiKeyArgs, set_api_key),
}


async def run_command(session: Session, name: str, params: tuple[Any, ...] | list[Any]) -> Any:
    """Run the command `name` with the arguments the editor sent. Raises `CommandError` for bad arguments or a
    target oh-lsp cannot work on, `OhLspError` for work that could not be started."""
    args_class, run = COMMANDS[name]
    return await run(session, parse(args_class, name, params))
