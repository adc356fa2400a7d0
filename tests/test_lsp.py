"""The language server end to end: the real ``codesearch serve`` over stdio, driven by
pytest-lsp's client, on fixture workspaces indexed with the offline default model."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import write_samples
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from codesearch import Indexer

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

EXE = shutil.which("codesearch", path=str(Path(sys.executable).parent)) or "codesearch"
SIMILAR = '''
def split_link_header(header_value):
    """Split a Link header into its parts."""
    parts = []
    for piece in header_value.split(","):
        parts.append(piece.strip())
    return parts
'''


def uri(path: Path) -> str:
    return path.resolve().as_uri()


def line_of(path: Path, text: str) -> int:
    """0-based line of the first line containing ``text``."""
    return next(i for i, line in enumerate(path.read_text().split("\n")) if text in line)


@contextlib.asynccontextmanager
async def serve(folders: list[Path], options: Any = None, wait: bool = True) -> AsyncIterator[LanguageClient]:
    client = await ClientServerConfig(server_command=[EXE, "serve"]).start()
    assert isinstance(client, LanguageClient)
    client.initialize_result = await client.initialize_session(  # type: ignore[attr-defined]
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            workspace_folders=[types.WorkspaceFolder(uri=uri(f), name=f.name) for f in folders],
            initialization_options=options,
        )
    )
    try:
        if wait:
            await indexed(client, len(folders))
        yield client
    finally:
        if not getattr(client, "shut_down", False):
            with contextlib.suppress(Exception):
                await client.shutdown_session()
        await client.stop()


async def until(check: Callable[[], bool], timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def ended(client: LanguageClient) -> list[str]:
    return [
        reports[-1].message or ""
        for reports in client.progress_reports.values()
        if reports and isinstance(reports[-1], types.WorkDoneProgressEnd)
    ]


async def indexed(client: LanguageClient, folders: int) -> None:
    await until(lambda: len(ended(client)) >= folders)


def plain(value: Any) -> Any:
    """pygls hands back objects of custom responses as namedtuples: as JSON again."""
    if hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


async def request(client: LanguageClient, method: str, params: Any) -> Any:
    return plain(await client.protocol.send_request_async(method, params))


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_samples(root)
    (root / "pkg" / "headers.py").write_text(SIMILAR)
    (root / "pkg" / "db.py").write_text("def db():\n    return connect()\n")
    return root


async def test_workspace_symbol_progress_and_short_queries(workspace: Path) -> None:
    async with serve([workspace]) as client:
        caps = client.initialize_result.capabilities  # type: ignore[attr-defined]
        assert caps.workspace_symbol_provider and "codesearch.search" in caps.execute_command_provider.commands
        (reports,) = client.progress_reports.values()
        assert isinstance(reports[0], types.WorkDoneProgressBegin) and reports[0].title == "Indexing ws"
        assert any(isinstance(r, types.WorkDoneProgressReport) and r.percentage for r in reports)
        assert "15 files" in (reports[-1].message or "")

        symbols = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="parse header links"))
        top = symbols[0]
        links = workspace / "pkg" / "links.py"
        assert top.name == "parse_header_links" and top.kind == types.SymbolKind.Function
        assert top.container_name is None  # top level: clients show the file from the location
        assert top.location.uri == uri(links)
        assert top.location.range.start.line == line_of(links, "def parse_header_links")

        method = [s for s in symbols if s.name == "request"]
        assert method and method[0].container_name == "Session"
        short = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="db"))  # lexical only
        assert short[0].name == "db" and short[0].location.uri == uri(workspace / "pkg" / "db.py")
        assert await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="")) == []


async def test_custom_requests_and_their_commands(workspace: Path) -> None:
    async with serve([workspace], {"watch": False, "maxResults": 5}) as client:
        results = await request(client, "codesearch/search", {"query": "parse header links", "k": 3})
        assert len(results) == 3 and results[0]["symbol"] == "parse_header_links"
        first = results[0]
        assert first["uri"] == uri(workspace / "pkg" / "links.py") and first["kind"] == "function"
        assert (
            first["language"] == "python" and 0 < first["score"] <= 1 and "def parse_header_links" in first["snippet"]
        )
        assert first["range"]["start"]["line"] == line_of(workspace / "pkg" / "links.py", "def parse_header_links")
        assert first["partial"] is False

        only_go = await request(client, "codesearch/search", {"query": "handler", "languages": ["go"]})
        assert only_go and {r["language"] for r in only_go} == {"go"}
        in_src = await request(client, "codesearch/search", {"query": "cache", "pathGlob": "src/**/*.java"})
        assert in_src and all(r["uri"].endswith(".java") for r in in_src)
        lexical = await request(client, "codesearch/search", {"query": "parse header links", "mode": "lexical"})
        assert lexical[0]["symbol"] == "parse_header_links"
        assert len(await request(client, "codesearch/search", {"query": "value"})) <= 5  # maxResults

        command = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="codesearch.search", arguments=[{"query": "parse header links", "k": 3}])
        )
        assert plain(command) == results

        links = workspace / "pkg" / "links.py"
        start = line_of(links, "def parse_header_links")
        selection = {"start": {"line": start, "character": 0}, "end": {"line": start + 6, "character": 0}}
        similar = await request(client, "codesearch/similar", {"uri": uri(links), "range": selection, "k": 3})
        assert similar[0]["symbol"] == "split_link_header"  # code like the selection, not the selection itself
        assert all(r["symbol"] != "parse_header_links" for r in similar)

        status = await request(client, "codesearch/status", {})
        (folder,) = status["folders"]
        assert folder["state"] == "ready" and folder["index"]["files"] == 15
        assert folder["index"]["chunks"] == folder["index"]["chunks_embedded"] > 20

        (workspace / "pkg" / "late.py").write_text("def compute_invoice_total(lines):\n    return sum(lines)\n")
        assert (await request(client, "codesearch/reindex", {}))["folders"] == [str(workspace.resolve())]
        await until(lambda: len(ended(client)) == 2)  # a new background run with its own progress
        deadline = time.monotonic() + 30  # the searcher sees a commit within READ_CONSISTENCY_S (longer on a busy CI)
        while True:
            found = await request(client, "codesearch/search", {"query": "compute invoice total", "k": 1})
            if found[0]["symbol"] == "compute_invoice_total" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert found[0]["symbol"] == "compute_invoice_total"
        again = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="codesearch.status"))
        assert plain(again)["folders"][0]["index"]["files"] == 16


async def test_bad_options_warn_and_fall_back_to_defaults(workspace: Path) -> None:
    options = {"maxResults": "lots", "watch": "yes", "bogus": 1, "ignore": ["*.go"]}
    async with serve([workspace], options) as client:
        warnings = [m.message for m in client.messages if m.type == types.MessageType.Warning]
        assert any("'maxResults' must be an integer" in m for m in warnings)
        assert any("'watch' must be true or false" in m for m in warnings)
        assert any("unknown option 'bogus'" in m for m in warnings)
        results = await request(client, "codesearch/search", {"query": "handler"})
        assert results and all(r["language"] != "go" for r in results)  # the valid option still applies


async def test_multi_root_merges_and_follows_folder_changes(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    (one / "billing").mkdir(parents=True)
    (two / "shipping").mkdir(parents=True)
    (one / "billing" / "invoice.py").write_text("def total_invoice_amount(items):\n    return sum(items)\n")
    (two / "shipping" / "parcel.py").write_text("def parcel_weight_total(parcels):\n    return sum(parcels)\n")
    async with serve([one, two]) as client:
        results = await request(client, "codesearch/search", {"query": "total", "k": 10})
        assert {r["symbol"] for r in results} >= {"total_invoice_amount", "parcel_weight_total"}
        client.workspace_did_change_workspace_folders(
            types.DidChangeWorkspaceFoldersParams(
                event=types.WorkspaceFoldersChangeEvent(
                    added=[], removed=[types.WorkspaceFolder(uri=uri(two), name="two")]
                )
            )
        )
        await asyncio.sleep(0.5)  # a notification: no answer to wait for
        results = await request(client, "codesearch/search", {"query": "total", "k": 10})
        assert {r["symbol"] for r in results} == {"total_invoice_amount"}
        client.workspace_did_change_workspace_folders(
            types.DidChangeWorkspaceFoldersParams(
                event=types.WorkspaceFoldersChangeEvent(
                    added=[types.WorkspaceFolder(uri=uri(two), name="two")], removed=[]
                )
            )
        )
        await until(lambda: len(ended(client)) == 3)
        results = await request(client, "codesearch/search", {"query": "total", "k": 10})
        assert "parcel_weight_total" in {r["symbol"] for r in results}
        # one copy of the model in the server: both folders' watchers (each indexed with it) and the queries
        status = await request(client, "codesearch/status", {})
        assert len(status["models"]) == 1, status["models"]


async def test_errors_are_proper_json_rpc_errors(workspace: Path, tmp_path: Path) -> None:
    async with serve([workspace], {"watch": False}) as client:
        cases: list[tuple[str, Any, int]] = [
            ("codesearch/bogus", {}, -32601),
            ("codesearch/search", {}, -32602),
            ("codesearch/search", {"query": "x", "k": "ten"}, -32602),
            ("codesearch/search", {"query": "x", "mode": "psychic"}, -32602),
            ("codesearch/search", {"query": "x", "pathGlob": "!"}, -32602),
            ("codesearch/search", {"query": "   "}, -32602),
            ("codesearch/similar", {"uri": uri(tmp_path / "elsewhere.py"), "range": {}}, -32602),
            ("codesearch/similar", {"uri": "https://example.com/x.py", "range": {"start": {}, "end": {}}}, -32602),
            ("codesearch/similar", {"uri": uri(workspace / ".." / "elsewhere.py"), "range": {"x": 1}}, -32602),
        ]
        outside = {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}}
        cases.append(("codesearch/similar", {"uri": uri(tmp_path / "elsewhere.py"), "range": outside}, -32602))
        # containment: a real file outside, named with a literal ".." and through a symlink inside
        secret = tmp_path / "outside" / "secret.py"
        secret.parent.mkdir()
        secret.write_text("def secret_key():\n    return 'hunter2'\n")
        (workspace / "escape.py").symlink_to(secret)
        dotdot = workspace.resolve().as_uri() + "/../outside/secret.py"
        for where in (dotdot, workspace.resolve().as_uri() + "/escape.py"):
            cases.append(("codesearch/similar", {"uri": where, "range": outside}, -32602))
            cases.append(("codesearch/reindex", {"uri": where}, -32602))
        for method, params, code in cases:
            with pytest.raises(JsonRpcException) as raised:
                await request(client, method, params)
            assert raised.value.code == code, (method, params, raised.value)
        # the server is still serving after all that
        assert (await request(client, "codesearch/search", {"query": "parse header links"}))[0]["symbol"]


async def test_a_broken_index_is_rebuilt_or_answers_with_what_to_do(workspace: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "broken-index"
    index_dir.mkdir()
    (index_dir / "meta.json").write_text("{ not json")
    async with serve([workspace], {"indexDir": str(index_dir), "watch": False}) as client:
        warnings = [m.message for m in client.messages if m.type == types.MessageType.Warning]
        assert any("the index was damaged and has been rebuilt" in m and "meta" in m for m in warnings)
        assert (await request(client, "codesearch/search", {"query": "parse header links"}))[0]["symbol"]

    # a folder that also holds files codesearch did not write is never emptied: say what to do
    (index_dir / "meta.json").write_text("{ not json")
    (index_dir / "notes.txt").write_text("mine")
    async with serve([workspace], {"indexDir": str(index_dir), "watch": False}) as client:
        errors = [m.message for m in client.messages if m.type == types.MessageType.Error]
        assert any("indexing failed" in m and "not repaired" in m and "notes.txt" in m for m in errors)
        with pytest.raises(JsonRpcException) as raised:
            await request(client, "codesearch/search", {"query": "parse header links"})
        assert raised.value.code == -32803 and "--index-dir" in raised.value.message
    assert (index_dir / "notes.txt").read_text() == "mine"


async def timed(client: LanguageClient, params: dict[str, Any], msg_id: str, cancel_after: float | None) -> Any:
    """Send ``codesearch/search``, cancel it ``cancel_after`` seconds later (None: never); the
    answer (or the JSON-RPC error) and the seconds it took."""
    started = time.monotonic()
    pending = asyncio.ensure_future(client.protocol.send_request_async("codesearch/search", params, msg_id=msg_id))
    if cancel_after is not None:
        await asyncio.sleep(cancel_after)
        assert not pending.done(), "the query ended before the cancel could reach it"
        client.protocol.notify("$/cancelRequest", types.CancelParams(id=msg_id))
    try:
        answer: Any = await pending
    except JsonRpcException as exc:
        answer = exc
    return answer, time.monotonic() - started


async def test_cancel_a_running_query_and_partial_results_while_indexing(tmp_path: Path) -> None:
    root = tmp_path / "big"
    for f in range(80):
        body = "\n\n".join(
            f"def step_{f}_{i}(state, limit={i}):\n    total = sum(state[:{i + 2}])\n    return total * limit"
            for i in range(8)
        )
        (root / f"pkg{f % 4}").mkdir(parents=True, exist_ok=True)
        (root / f"pkg{f % 4}" / f"module_{f}.py").write_text(body + "\n")
    async with serve([root], wait=False) as client:

        def embedding() -> bool:
            reports = [r for rs in client.progress_reports.values() for r in rs]
            return any(
                isinstance(r, types.WorkDoneProgressReport) and "embedding" in (r.message or "") for r in reports
            )

        await until(embedding)
        results = await request(client, "codesearch/search", {"query": "step 3 total"})
        assert results and results[0]["partial"] is True  # the dense pass is still running
        await indexed(client, 1)
        results = await request(client, "codesearch/search", {"query": "step 3 total"})
        assert results[0]["partial"] is False

        # a query that takes the server a while (a long query text), timed to the end
        words = " ".join(f"state{i} limitTotal{i} step_{i}" for i in range(5_000))
        slow = {"query": words, "mode": "hybrid"}
        answer, took = await timed(client, slow, "uncancelled", None)
        assert isinstance(answer, list) and took >= 0.5, took
        # the same query cancelled while it runs (the query pool is idle, so it started at once,
        # and a fifth of its time later it has not ended): the answer is RequestCancelled, and
        # it comes at once, not when the query would have ended
        answer, cancelled_took = await timed(client, slow, "cancel-me", cancel_after=took / 5)
        assert isinstance(answer, JsonRpcException) and answer.code == -32800, answer  # RequestCancelled
        assert cancelled_took < took / 2, (cancelled_took, took)
        # and the server answers the next query
        assert (await request(client, "codesearch/search", {"query": "step 3 total"}))[0]["symbol"]


async def test_shutdown_releases_the_index(workspace: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    async with serve([workspace], {"indexDir": str(index_dir)}) as client:
        await client.shutdown_session()  # shutdown, then exit
        client.shut_down = True  # type: ignore[attr-defined]
        stats = Indexer(workspace, index_dir).run()  # the watcher's writer lock is free again
        assert stats.files_changed == 0 and stats.files == 15


async def test_tcp_listens_on_loopback_only(tmp_path: Path) -> None:
    port = 40000 + (int(time.time() * 1000) % 20000)
    proc = await asyncio.create_subprocess_exec(EXE, "serve", "--tcp", str(port), stderr=asyncio.subprocess.PIPE)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the server did not listen")
        listening = {
            line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:] if line.split()[3] == "0A"
        }
        assert f"0100007F:{port:04X}" in listening and f"00000000:{port:04X}" not in listening
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}})
        writer.write(f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
        await writer.drain()
        header = await reader.readuntil(b"\r\n\r\n")
        length = int(header.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        answer = json.loads(await reader.readexactly(length))
        assert answer["result"]["serverInfo"]["name"] == "codesearch"
        writer.close()
    finally:
        proc.kill()
        await proc.wait()


def test_malformed_messages_get_json_rpc_errors_over_raw_stdio() -> None:
    import subprocess

    def frame(body: bytes) -> bytes:
        return b"Content-Length: %d\r\n\r\n" % len(body) + body

    def message(**fields: Any) -> bytes:
        return frame(json.dumps({"jsonrpc": "2.0", **fields}).encode())

    stream = (
        message(id=1, method="initialize", params={"processId": None, "rootUri": None, "capabilities": {}})
        + frame(b'{"jsonrpc": "2.0", "id": 7, "method": ')  # not JSON
        + message(id=8, method="workspace/symbol", params={"bogus": 1})  # params of the wrong shape
        + message(id=9, method="codesearch/nothing", params={})
        + message(id=2, method="shutdown")
        + message(method="exit")
    )
    # --stdio, as vscode-languageclient and others pass it (the default transport anyway)
    done = subprocess.run([EXE, "serve", "--stdio"], input=stream, capture_output=True, timeout=120)
    assert done.returncode == 0
    answers = [json.loads(part.split(b"\r\n\r\n", 1)[1]) for part in done.stdout.split(b"Content-Length: ")[1:]]
    errors = {a.get("id"): a["error"]["code"] for a in answers if "error" in a}
    assert errors == {None: -32700, 8: -32602, 9: -32601}
    assert any("id" in a and a["id"] is None for a in answers)  # the parse error names id null, as JSON-RPC says
    assert any(a.get("id") == 2 and "result" in a for a in answers)  # still serving: shutdown answered
