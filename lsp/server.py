"""The codesearch language server: one short handler per LSP method over ``codesearch.service``.

Standard methods: ``initialize`` (options), ``initialized`` (index every workspace folder in
the background with ``$/progress``), ``workspace/didChangeWorkspaceFolders``,
``textDocument/didOpen`` (open files are embedded first), ``workspace/symbol``, ``shutdown``
(indexing stops on a thread of its own, the loop keeps answering) and ``exit`` (waits at most
``EXIT_WAIT_S`` for that, then ends the process; so does the end of stdin without ``exit``).
Custom requests ``codesearch/search``, ``codesearch/similar``, ``codesearch/status`` and
``codesearch/reindex``, mirrored as ``workspace/executeCommand`` commands. Queries run in a thread
pool (``$/cancelRequest`` cancels them); library errors become JSON-RPC errors here and nowhere else.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from codesearch import MODES, CodesearchError, __version__
from codesearch.errors import UsageError
from codesearch.index import IndexStats, Progress
from codesearch.service import Answer, Project, Workspace
from lsp import convert
from lsp.options import InitOptions, parse

log = logging.getLogger("codesearch.lsp")

REQUEST_FAILED = -32803  # LSP's RequestFailed: the request was valid but could not be answered
REPORTS_PER_S = 4
LEXICAL_SHARE = 30  # percent of a folder's progress bar given to the lexical pass
EXIT_WAIT_S = 1.5  # after ``exit``, how long indexing may take to stop (a client kills us at about 2 s)
COMMANDS = ("codesearch.search", "codesearch.similar", "codesearch.status", "codesearch.reindex")
T = TypeVar("T")


class _Protocol(LanguageServerProtocol):
    """pygls drops a request whose params do not fit its method's type (it only logs); a
    client would wait for ever. Answer it with the JSON-RPC error instead."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and data.get("id") is not None and "method" in data:
                self._send_response(data["id"], error=exc.to_response_error())
                return _Answered()
            raise


class _Answered:
    """A message already answered: pygls ignores a message of another JSON-RPC version."""

    jsonrpc = "answered"


class CodesearchServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            "codesearch",
            __version__,
            text_document_sync_kind=types.TextDocumentSyncKind.None_,
            protocol_cls=_Protocol,
        )
        self.options = InitOptions()
        self.folders: list[Path] = []
        self.cs: Workspace | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queries = ThreadPoolExecutor(max_workers=2, thread_name_prefix="codesearch-query")
        self._tokens: dict[Path, str] = {}
        self._reported: dict[Path, tuple[float, str]] = {}
        self._runs = 0
        self._said_empty = False  # an empty answer while indexing was explained (once per build)
        self._closer: threading.Thread | None = None
        self.shut_down = False

    # -- plumbing -----------------------------------------------------------------------------
    def report_server_error(self, error: Exception, source: Any) -> None:
        """A body that is not JSON gets JSON-RPC's parse error (id null), not a pop-up."""
        if isinstance(error, json.JSONDecodeError):
            error_object = {"code": -32700, "message": f"Parse error: {error}"}
            self.protocol._send_data({"jsonrpc": "2.0", "id": None, "error": error_object})  # a dict keeps the null id
            return
        super().report_server_error(error, source)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking library work off the event loop; library errors become JSON-RPC errors."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.queries, functools.partial(fn, *args))
        except UsageError as exc:
            raise JsonRpcInvalidParams(str(exc)) from exc
        except CodesearchError as exc:
            raise JsonRpcException(str(exc), code=REQUEST_FAILED) from exc

    def workspace_or_fail(self) -> Workspace:
        if self.cs is None:
            raise JsonRpcException("the server is not initialized yet", code=-32002)
        return self.cs

    def soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Send from an indexing thread: protocol writes happen on the event loop."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)

    def show(self, message: str, kind: types.MessageType = types.MessageType.Warning) -> None:
        self.window_show_message(types.ShowMessageParams(type=kind, message=f"codesearch: {message}"))

    def explain_empty(self, answer: Answer) -> Answer:
        """The first empty answer while an index is being built says so (an empty list alone
        reads as "nothing matches"); once until the answers are complete again."""
        if not answer.partial:
            self._said_empty = False
        elif not answer.results and not self._said_empty:
            self._said_empty = True
            notes = "; ".join(answer.notes) or "embedding under way"
            self.show(f"no results yet: indexing is under way ({notes})", types.MessageType.Info)
        return answer

    # -- folders and progress -------------------------------------------------------------------
    async def add_folder(self, root: Path) -> None:
        cs = self.workspace_or_fail()
        try:
            project = cs.add_folder(root, start=False)
        except CodesearchError as exc:
            self.show(str(exc), types.MessageType.Error)
            return
        await self.start_project(project)

    async def start_project(self, project: Project) -> None:
        """Index a folder in the background, with a progress bar where the client has them."""
        capabilities = self.client_capabilities.window
        if capabilities is not None and capabilities.work_done_progress:
            self._runs += 1
            token = f"codesearch/index/{self._runs}/{project.root.name}"
            try:
                await self.work_done_progress.create_async(token)
                self._tokens[project.root] = token
                self.work_done_progress.begin(
                    token, types.WorkDoneProgressBegin(title=f"Indexing {project.root.name}", percentage=0)
                )
            except Exception as exc:  # a client that refuses progress still gets an index
                log.info("no progress for %s: %s", project.root, exc)
        project.start()

    def on_progress(self, project: Project, progress: Progress) -> None:
        """From the indexing thread: at most ``REPORTS_PER_S`` reports, and every phase change."""
        token = self._tokens.get(project.root)
        if token is None:
            return
        now = time.monotonic()
        last, phase = self._reported.get(project.root, (0.0, ""))
        if phase == progress.phase and now - last < 1 / REPORTS_PER_S:
            return
        self._reported[project.root] = (now, progress.phase)
        share = progress.files_done / progress.files_total if progress.files_total else 1.0
        if progress.phase == "indexing":
            percentage = int(LEXICAL_SHARE * share)
            message = f"{progress.files_done}/{progress.files_total} files, {progress.chunks_done} chunks (words)"
        else:
            percentage = LEXICAL_SHARE + int((100 - LEXICAL_SHARE) * share)
            message = f"embedding {progress.files_done}/{progress.files_total} files, {progress.chunks_embedded} chunks"
        report = types.WorkDoneProgressReport(message=message, percentage=min(percentage, 100))
        self.soon(self.work_done_progress.report, token, report)

    def on_done(self, project: Project, stats: IndexStats | None) -> None:
        token = self._tokens.pop(project.root, None)
        if stats is not None:
            message = f"{stats.files} files, {stats.chunks} chunks"
            if stats.repaired:
                repaired = f"{project.root.name}: the index was damaged and has been rebuilt ({stats.repaired})"
                self.soon(self.show, repaired, types.MessageType.Warning)
        elif project.state == "closed":
            message = "stopped"
        elif project.state == "reading":
            message = "another codesearch process writes this index; searching what it has written"
        else:
            message = f"indexing failed: {project.error}"
            self.soon(self.show, f"{project.root.name}: {message}", types.MessageType.Error)
        log.info("%s: %s", project.root, message)
        if token is not None:
            self.soon(self.work_done_progress.end, token, types.WorkDoneProgressEnd(message=message))

    def begin_close(self) -> None:
        """Stop every folder's indexing and watching on a thread of its own (they stop at their
        next batch; indexes are compacted and unlocked): the event loop is never held up."""
        if self.cs is not None and self._closer is None:
            cs, self.cs = self.cs, None
            self._closer = threading.Thread(target=cs.close, name="codesearch-close", daemon=True)
            self._closer.start()

    def close(self, timeout: float | None = None) -> bool:
        """Stop indexing, waiting at most ``timeout`` seconds; whether it is over."""
        self.begin_close()
        if self._closer is not None:
            self._closer.join(timeout)
            return not self._closer.is_alive()
        return True

    def stop_and_exit(self, code: int, after: str) -> None:
        """End the process with ``code`` once indexing has stopped, or after ``EXIT_WAIT_S``
        whatever it is doing (a batch, a compaction, a model loading): ``exit``, and a client
        gone without it (its end of stdin closed, ``after`` says which)."""
        self.queries.shutdown(wait=False, cancel_futures=True)  # queued queries have no one to answer
        if not self.close(EXIT_WAIT_S):
            log.warning(
                "indexing did not stop within %.1f s of %s; exiting (the next run resumes it)", EXIT_WAIT_S, after
            )
        self.end_process(code)

    def end_process(self, code: int) -> None:
        """Exit now. Not through interpreter shutdown: a native thread still running there (a
        model mid-batch) aborts the process ("terminate called without an active exception").
        Anything not committed yet is what a killed run leaves: the next run resumes it."""
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stderr.flush()
        os._exit(code)


server = CodesearchServer()


# -- lifecycle --------------------------------------------------------------------------------------
@server.feature(types.INITIALIZE)
def initialize(ls: CodesearchServer, params: types.InitializeParams) -> None:
    ls.loop = asyncio.get_event_loop()
    ls.options = parse(params.initialization_options)
    if params.workspace_folders:
        ls.folders = [convert.path_of(folder.uri) for folder in params.workspace_folders]
    elif params.root_uri:
        ls.folders = [convert.path_of(params.root_uri)]
    elif params.root_path:
        ls.folders = [Path(params.root_path)]


@server.feature(types.INITIALIZED)
async def initialized(ls: CodesearchServer, params: types.InitializedParams) -> None:
    for problem in ls.options.problems:
        ls.show(f"{problem} (initializationOptions)")
    options = ls.options
    if options.index_dir and len(ls.folders) > 1:
        ls.show("indexDir serves one workspace folder only; using the default index folders")
        options = InitOptions(**{**options.__dict__, "index_dir": None})
    ls.cs = Workspace(options.project_options(), on_progress=ls.on_progress, on_done=ls.on_done)
    if not ls.folders:
        ls.show("no workspace folder: open a folder to search it", types.MessageType.Info)
    for folder in ls.folders:
        await ls.add_folder(folder)


@server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
async def did_change_folders(ls: CodesearchServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
    cs = ls.workspace_or_fail()
    for folder in params.event.removed:
        cs.remove_folder(convert.path_of(folder.uri))
    for folder in params.event.added:
        await ls.add_folder(convert.path_of(folder.uri))


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: CodesearchServer, params: types.DidOpenTextDocumentParams) -> None:
    if ls.cs is not None and params.text_document.uri.startswith("file:"):
        ls.cs.note_opened(convert.path_of(params.text_document.uri))


@server.feature(types.SHUTDOWN)
def shutdown(ls: CodesearchServer, params: None) -> None:
    ls.shut_down = True
    ls.begin_close()


@server.feature(types.EXIT)
def exit_server(ls: CodesearchServer, params: None) -> None:
    ls.stop_and_exit(0 if ls.shut_down else 1, "exit")


# -- queries ----------------------------------------------------------------------------------------
@server.feature(types.WORKSPACE_SYMBOL)
async def workspace_symbol(ls: CodesearchServer, params: types.WorkspaceSymbolParams) -> list[types.WorkspaceSymbol]:
    query = params.query.strip()
    if not query:
        return []
    mode = "lexical" if len(query) < 3 else "hybrid"  # too short to mean anything to a model
    answer: Answer = await ls.call(ls.workspace_or_fail().search, query, ls.options.max_results, mode)
    return [convert.workspace_symbol(found) for found in ls.explain_empty(answer).results]


@server.feature("codesearch/search")
async def search(ls: CodesearchServer, params: Any) -> list[dict[str, Any]]:
    args = _fields(params, required=("query",))
    query = _typed(args, "query", str)
    k = _typed(args, "k", int, ls.options.max_results)
    mode = _typed(args, "mode", str, "hybrid")
    if mode not in MODES:
        raise JsonRpcInvalidParams(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    languages = _typed(args, "languages", list, None)
    glob = _typed(args, "pathGlob", str, None)
    answer: Answer = await ls.call(ls.workspace_or_fail().search, query, k, mode, languages, glob)
    return [convert.search_item(found, answer.partial) for found in ls.explain_empty(answer).results]


@server.feature("codesearch/similar")
async def similar(ls: CodesearchServer, params: Any) -> list[dict[str, Any]]:
    args = _fields(params, required=("uri", "range"))
    selection = _selection(args["range"])
    path = _inside(ls, _typed(args, "uri", str))
    start, end = convert.selection_lines(selection)
    k = _typed(args, "k", int, 10)
    answer: Answer = await ls.call(ls.workspace_or_fail().similar, path, start, end, k)
    return [convert.search_item(found, answer.partial) for found in answer.results]


@server.feature("codesearch/status")
async def status(ls: CodesearchServer, params: Any) -> dict[str, Any]:
    cs = ls.workspace_or_fail()
    folders = await ls.call(cs.status)
    return {"version": __version__, "folders": folders, "models": cs.models_loaded()}


@server.feature("codesearch/reindex")
async def reindex(ls: CodesearchServer, params: Any) -> dict[str, Any]:
    cs = ls.workspace_or_fail()
    args = _fields(params, required=())
    roots = [_inside(ls, _typed(args, "uri", str))] if args.get("uri") else list(cs.projects)
    for root in roots:
        project = cs.project_for(root)
        if project is None:
            continue
        if project.watching:
            project.reindex()  # the watcher walks the tree in its next update
        elif project.state != "indexing":
            await ls.start_project(project)
    return {"folders": [str(r) for r in roots]}


@server.command("codesearch.search")
async def search_command(ls: CodesearchServer, *args: Any) -> list[dict[str, Any]]:
    return await search(ls, _command_params(args))


@server.command("codesearch.similar")
async def similar_command(ls: CodesearchServer, *args: Any) -> list[dict[str, Any]]:
    return await similar(ls, _command_params(args))


@server.command("codesearch.status")
async def status_command(ls: CodesearchServer, *args: Any) -> dict[str, Any]:
    return await status(ls, None)


@server.command("codesearch.reindex")
async def reindex_command(ls: CodesearchServer, *args: Any) -> dict[str, Any]:
    return await reindex(ls, _command_params(args) if args else None)


# -- parameters -------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """pygls hands custom params over as namedtuples: back to dicts and lists."""
    if hasattr(value, "_asdict"):
        return {key: _plain(item) for key, item in value._asdict().items()}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _fields(params: Any, required: tuple[str, ...]) -> dict[str, Any]:
    args = _plain(params) if params is not None else {}
    if not isinstance(args, dict):
        raise JsonRpcInvalidParams("params must be an object")
    missing = [name for name in required if args.get(name) is None]
    if missing:
        raise JsonRpcInvalidParams(f"missing {', '.join(missing)}")
    return args


_MISSING = object()


def _typed(args: dict[str, Any], name: str, kind: type, default: Any = _MISSING) -> Any:
    value = args.get(name)
    if value is None and default is not _MISSING:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise JsonRpcInvalidParams(f"{name} must be a {kind.__name__}")
    return value


def _selection(value: Any) -> types.Range:
    try:
        start, end = value["start"], value["end"]
        return types.Range(
            start=types.Position(line=int(start["line"]), character=int(start["character"])),
            end=types.Position(line=int(end["line"]), character=int(end["character"])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise JsonRpcInvalidParams("range must be {start: {line, character}, end: {line, character}}") from exc


def _inside(ls: CodesearchServer, uri: str) -> Path:
    """The file a client names, refused unless it lies in a workspace folder."""
    try:
        path = convert.path_of(uri)
    except convert.OutsideWorkspace as exc:
        raise JsonRpcInvalidParams(str(exc)) from exc
    if ls.workspace_or_fail().project_for(path) is None:
        raise JsonRpcInvalidParams(f"{uri} is outside the workspace folders")
    return path


def _command_params(args: tuple[Any, ...]) -> Any:
    """``workspace/executeCommand`` arguments: one object, as the custom request's params."""
    return args[0] if args else None
