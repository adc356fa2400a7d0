"""``workspace/symbol`` latency of the real language server on a big index.

Starts ``codesearch serve`` over stdio (pytest-lsp's client) on a tree with a complete index
(default: the Django tree and index of ``benchmarks/freshness.py``, 84k chunks), warms it up,
then sends natural-language queries one at a time and reports p50/p95/max of the round trip
(client send → answer parsed). Target p95 < 50 ms.

``--first-pass``: the same queries while the server builds a fresh index of the tree (a new index
folder; the server's own watcher, one model shared by it and the queries): they start once the
dense pass has begun (the lexical pass is done: every chunk is searchable by words) and the share
of chunks with vectors is reported before and after. Target p95 < 300 ms.

Appends the table to ``benchmarks/RESULTS.md``.

    python benchmarks/lsp_latency.py [--root TREE --index-dir INDEX] [--queries 100] [--first-pass]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

sys.path.insert(0, str(Path(__file__).parent))
from _common import append_results, machine_line

WORK = Path(__file__).parent / ".work" / "freshness"
WORDS = [
    "parse the request headers",
    "render a template with context",
    "validate an email address",
    "database connection pool",
    "cache key for a view",
    "migrate a model field",
    "serialize a queryset to json",
    "check user permissions",
    "url resolver reverse",
    "send an email message",
    "format a date in the local timezone",
    "csrf token check",
    "paginate results",
    "upload a file to storage",
    "sql query compiler",
    "session expiry",
    "translate a string",
    "password hashing",
    "signal receivers",
    "middleware process response",
]


async def dense_share(client: LanguageClient) -> float:
    status = await client.protocol.send_request_async("codesearch/status", {})
    index = status.folders[0].index
    return 0.0 if index is None or not index.chunks else index.chunks_embedded / index.chunks


async def run(root: Path, index_dir: Path, queries: int, warmup: int, first_pass: bool = False) -> dict[str, object]:
    client = await ClientServerConfig(server_command=[sys.executable, "-m", "lsp"]).start()
    assert isinstance(client, LanguageClient)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            workspace_folders=[types.WorkspaceFolder(uri=root.resolve().as_uri(), name=root.name)],
            initialization_options={"indexDir": str(index_dir), "watch": first_pass, "ignore": ["*.po"]},
        )
    )
    if first_pass:  # until the dense pass has begun: every chunk is in, by words
        while await dense_share(client) == 0.0:
            await asyncio.sleep(1.0)
    else:
        while not any(
            reports and isinstance(reports[-1], types.WorkDoneProgressEnd)
            for reports in client.progress_reports.values()
        ):
            await asyncio.sleep(0.1)
    before = await dense_share(client)
    timings: list[float] = []
    for i in range(warmup + queries):
        query = f"{WORDS[i % len(WORDS)]} {i // len(WORDS) or ''}".strip()
        started = time.perf_counter()
        symbols = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query=query))
        elapsed = time.perf_counter() - started
        assert symbols, query
        if i >= warmup:
            timings.append(elapsed * 1000)
    after = await dense_share(client)
    await client.shutdown_session()
    await client.stop()
    return dict(timings=timings, before=before, after=after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=WORK / "tree")
    parser.add_argument("--index-dir", type=Path, default=WORK / "index")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--first-pass", action="store_true", help="while the server builds a fresh index")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    index_dir = args.index_dir
    if args.first_pass:
        index_dir = Path(tempfile.mkdtemp(prefix="first-pass-", dir=WORK))
    elif not (index_dir / "meta.json").exists():
        sys.exit(f"no index at {index_dir}: run benchmarks/freshness.py first (or pass --root/--index-dir)")
    try:
        found = asyncio.run(run(args.root, index_dir, args.queries, args.warmup, args.first_pass))
        from codesearch import index_status

        status = index_status(index_dir)
    finally:
        if args.first_pass:
            shutil.rmtree(index_dir, ignore_errors=True)
    timings: list[float] = found["timings"]  # type: ignore[assignment]
    p95 = statistics.quantiles(timings, n=20)[18]
    target = 300 if args.first_pass else 50
    ann = status.get("vector_index")
    table = [
        "| figure | value |",
        "| --- | --- |",
        f"| index | {status['chunks']:,} chunks ({args.root.name}); "
        + (f"vector index: {ann['partitions']} partitions |" if ann else "exact vector search |"),
        f"| queries (after {args.warmup} warm-up) | {len(timings)}, hybrid, result cap 100 |",
        f"| p50 / p95 / max | {statistics.median(timings):.0f} / {p95:.0f} / {max(timings):.0f} ms |",
        f"| target p95 | < {target} ms {'✓' if p95 < target else '✗'} |",
    ]
    if args.first_pass:
        table.insert(
            3,
            f"| chunks with vectors while querying | {found['before']:.1%} → {found['after']:.1%} "
            "(the first dense pass running in the server) |",
        )
    print("\n".join(table))
    if not args.no_record:
        title = "Language server: workspace/symbol latency" + (
            " during the first dense pass" if args.first_pass else ""
        )
        append_results(
            title,
            " ".join(["python benchmarks/lsp_latency.py", *sys.argv[1:]]),
            [machine_line(), "Real server over stdio (pytest-lsp client), round trip per query.", "", *table],
        )


if __name__ == "__main__":
    main()
