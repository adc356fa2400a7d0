"""The language server at a new user's first query: an empty answer while the folder is still
being indexed says so (once), rather than reading as "nothing matches"; the library's usage
errors (an unknown language, a malformed glob) are invalid params. The real server over stdio."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from test_lsp import indexed, request, until, uri

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@contextlib.asynccontextmanager
async def serve(root: Path) -> AsyncIterator[LanguageClient]:
    """``python -m lsp`` (what ``codesearch serve`` runs), the code on PYTHONPATH."""
    client = await ClientServerConfig(server_command=[sys.executable, "-m", "lsp"]).start()
    assert isinstance(client, LanguageClient)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            workspace_folders=[types.WorkspaceFolder(uri=uri(root), name=root.name)],
        )
    )
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            await client.shutdown_session()
        await client.stop()


def said(client: LanguageClient) -> list[str]:
    return [m.message for m in client.messages if "no results yet" in m.message]


async def test_an_empty_answer_while_indexing_says_so(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    for f in range(40):
        body = "\n\n".join(f"def step_{f}_{i}(state):\n    return state + {i}" for i in range(6))
        (root / f"pkg{f % 4}").mkdir(parents=True, exist_ok=True)
        (root / f"pkg{f % 4}" / f"module_{f}.py").write_text(body + "\n")
    async with serve(root) as client:
        assert await request(client, "codesearch/search", {"query": "zebra unicorn", "mode": "lexical"}) == []
        await until(lambda: bool(said(client)), timeout=30)
        (message,) = said(client)
        assert message.startswith("codesearch: no results yet: indexing is under way (fresh: ")
        assert [m.type for m in client.messages if "no results yet" in m.message] == [types.MessageType.Info]
        symbols = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="zebra unicorn"))
        assert not symbols and len(said(client)) == 1  # once per build, not at every keystroke

        await indexed(client, 1)
        assert await request(client, "codesearch/search", {"query": "zebra unicorn", "mode": "lexical"}) == []
        assert len(said(client)) == 1  # a complete index: an empty answer means nothing matches
        for params in ({"query": "x", "languages": ["pyton"]}, {"query": "x", "pathGlob": "[z-a].py"}):
            with pytest.raises(JsonRpcException) as raised:
                await request(client, "codesearch/search", params)
            assert raised.value.code == -32602, raised.value  # invalid params, not "index damaged"
