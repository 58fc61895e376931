"""`oh-lsp serve`: the pygls 2 server. Each handler only translates LSP params and calls the feature modules.

Start-up stays lean: this module imports pygls, lsprotocol and constants only. The features (`session` and what it
uses) and the engine, pydantic and httpx are imported after `initialized`, on a thread.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import sys
from typing import TYPE_CHECKING, Any

from lsprotocol import types as t
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from oh_lsp import __version__
from oh_lsp.lsp import ids, rpc_errors

if TYPE_CHECKING:
    from oh_lsp.lsp.session import Session

log = logging.getLogger(__name__)
REQUEST_FAILED = -32803  # LSP's RequestFailed: valid arguments, but the work could not be started


class OhLspServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("oh-lsp", __version__, protocol_cls=rpc_errors.SafeProtocol)
        self.options: Any = None
        self.verbose = False
        self._session: asyncio.Future[Session] | None = None

    def boot(self) -> None:
        """Load the features on a thread, then start the session (engines per workspace folder)."""

        async def load() -> Session:
            module = await asyncio.to_thread(importlib.import_module, "oh_lsp.lsp.session")
            await asyncio.to_thread(importlib.import_module, "oh_lsp.lsp.commands")  # off the loop: the first command
            session: Session = module.Session(self)
            session.initialize(self.options)
            await session.start()
            # Everything loaded so far lives as long as the server: keep it out of the garbage collector's full
            # passes, which would otherwise pause every request for tens of milliseconds.
            gc.collect()
            gc.freeze()
            return session

        self._session = asyncio.ensure_future(load())

    def report_server_error(self, error: Exception, source: Any) -> None:
        """JSON-RPC's error replies instead of pygls' pop-ups and tracebacks (lsp/rpc_errors.py)."""
        rpc_errors.report(self, error, source)

    async def session(self) -> Session:
        if self._session is None:
            raise JsonRpcException(message="oh-lsp is not initialized yet", code=REQUEST_FAILED)
        return await asyncio.shield(self._session)


server = OhLspServer()


@server.feature(t.INITIALIZE)
def initialize(ls: OhLspServer, params: t.InitializeParams) -> None:
    ls.options = params.initialization_options


@server.feature(t.INITIALIZED)
def initialized(ls: OhLspServer, _params: t.InitializedParams) -> None:
    ls.boot()


@server.feature(t.SHUTDOWN)
async def shutdown(ls: OhLspServer, _params: None) -> None:
    """Stop the engines; running tasks go back to the queue, and the next server resumes them. (No `exit` handler:
    an async one would leave pygls reading stdin while it exits. Without `shutdown`, leases expire instead.)"""
    if ls._session is not None:
        await (await ls.session()).stop()


@server.feature(t.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(ls: OhLspServer, params: t.DidChangeConfigurationParams) -> None:
    settings = params.settings
    if settings is None and ls.client_capabilities.workspace and ls.client_capabilities.workspace.configuration:
        answer = await ls.workspace_configuration_async(
            t.ConfigurationParams(items=[t.ConfigurationItem(section=ids.SETTINGS_SECTION)])
        )
        settings = answer[0] if answer else None
    await (await ls.session()).change_settings(settings)


@server.feature(t.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
async def did_change_folders(ls: OhLspServer, params: t.DidChangeWorkspaceFoldersParams) -> None:
    session = await ls.session()
    await session.change_folders(
        added=[f.uri for f in params.event.added], removed=[f.uri for f in params.event.removed]
    )


@server.feature(t.TEXT_DOCUMENT_CODE_ACTION, t.CodeActionOptions(code_action_kinds=list(ids.ACTION_KINDS)))
async def code_action(ls: OhLspServer, params: t.CodeActionParams) -> list[t.CodeAction]:
    session = await ls.session()
    return session.code_actions(params.text_document.uri, params.range.start, params.context)


@server.feature(
    t.TEXT_DOCUMENT_DIAGNOSTIC,
    t.DiagnosticOptions(identifier=ids.DIAGNOSTIC_SOURCE, inter_file_dependencies=False, workspace_diagnostics=False),
)
async def pull_diagnostics(
    ls: OhLspServer, params: t.DocumentDiagnosticParams
) -> t.RelatedFullDocumentDiagnosticReport:
    session = await ls.session()
    return t.RelatedFullDocumentDiagnosticReport(items=session.diagnostics.for_uri(params.text_document.uri))


@server.feature(t.WINDOW_WORK_DONE_PROGRESS_CANCEL)  # runs after pygls' built-in handler
async def progress_cancelled(ls: OhLspServer, params: t.WorkDoneProgressCancelParams) -> None:
    await (await ls.session()).tracker.cancel_by_token(str(params.token))


def plain(value: Any) -> Any:
    """Params (and results) of a method pygls does not know arrive as namedtuples: back to JSON's dicts and lists."""
    if hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


@server.feature(ids.CANDIDATE_REQUEST)
async def candidate(ls: OhLspServer, params: Any) -> dict[str, Any]:
    """A failed task's rejected candidate: `{taskId, attempt?, segment?}` -> `{uri, text}` (lsp/candidates.py)."""
    session = await ls.session()
    from oh_lsp.lsp.errors import CommandError

    try:
        return await session.candidate(plain(params))
    except CommandError as exc:
        raise JsonRpcInvalidParams(message=str(exc)) from None


def _register(name: str) -> None:
    async def handler(ls: OhLspServer, *params: Any) -> Any:
        session = await ls.session()
        from oh_lsp.errors import OhLspError
        from oh_lsp.lsp.commands import run_command
        from oh_lsp.lsp.errors import CommandError
        from oh_lsp.redaction import redact_data

        try:
            return redact_data(await run_command(session, name, params))
        except CommandError as exc:
            raise JsonRpcInvalidParams(message=str(exc)) from None
        except OhLspError as exc:
            raise JsonRpcException(message=str(exc), code=REQUEST_FAILED) from None

    handler.__name__ = f"command_{name.split('.')[-1]}"
    server.command(name)(handler)


for _name in ids.SERVER_COMMANDS:
    _register(_name)


def serve(tcp: tuple[str, int] | None = None, verbose: bool = False) -> int:
    """Run the server on stdio (stdout is the protocol channel; logs go to stderr and the log file)."""
    from oh_lsp.logs import RedactSecrets

    console = logging.StreamHandler(sys.stderr)  # until the log file of the first folder is set up
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    console.addFilter(RedactSecrets([]))
    logging.getLogger().addHandler(console)
    logging.getLogger().setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:
        logging.getLogger("pygls").setLevel(logging.WARNING)
    server.verbose = verbose
    if tcp is None:
        server.start_io()
    else:
        server.start_tcp(*tcp)
    return 0
