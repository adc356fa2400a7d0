"""``workspace/symbol`` latency of the real language server on a big index.

Starts ``codesearch serve`` over stdio (pytest-lsp's client) on a tree with a complete index
(default: the Django tree and index of ``benchmarks/freshness.py``, 84k chunks), warms it up,
then sends natural-language queries one at a time and reports p50/p95/max of the round trip
(client send → answer parsed). Appends the table to ``benchmarks/RESULTS.md``.

    python benchmarks/lsp_latency.py [--root TREE --index-dir INDEX] [--queries 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
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


async def run(root: Path, index_dir: Path, queries: int, warmup: int) -> list[float]:
    client = await ClientServerConfig(server_command=[sys.executable, "-m", "lsp"]).start()
    assert isinstance(client, LanguageClient)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            workspace_folders=[types.WorkspaceFolder(uri=root.resolve().as_uri(), name=root.name)],
            initialization_options={"indexDir": str(index_dir), "watch": False, "ignore": ["*.po"]},
        )
    )
    while not any(
        reports and isinstance(reports[-1], types.WorkDoneProgressEnd) for reports in client.progress_reports.values()
    ):
        await asyncio.sleep(0.1)
    timings: list[float] = []
    for i in range(warmup + queries):
        query = f"{WORDS[i % len(WORDS)]} {i // len(WORDS) or ''}".strip()
        started = time.perf_counter()
        symbols = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query=query))
        elapsed = time.perf_counter() - started
        assert symbols, query
        if i >= warmup:
            timings.append(elapsed * 1000)
    await client.shutdown_session()
    await client.stop()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=WORK / "tree")
    parser.add_argument("--index-dir", type=Path, default=WORK / "index")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if not (args.index_dir / "meta.json").exists():
        sys.exit(f"no index at {args.index_dir}: run benchmarks/freshness.py first (or pass --root/--index-dir)")
    timings = asyncio.run(run(args.root, args.index_dir, args.queries, args.warmup))
    from codesearch import index_status

    chunks = index_status(args.index_dir)["chunks"]
    p95 = statistics.quantiles(timings, n=20)[18]
    table = [
        "| figure | value |",
        "| --- | --- |",
        f"| index | {chunks:,} chunks ({args.root.name}) |",
        f"| queries (after {args.warmup} warm-up) | {len(timings)}, hybrid, result cap 100 |",
        f"| p50 / p95 / max | {statistics.median(timings):.0f} / {p95:.0f} / {max(timings):.0f} ms |",
        f"| target p95 | < 200 ms {'✓' if p95 < 200 else '✗'} |",
    ]
    print("\n".join(table))
    if not args.no_record:
        append_results(
            "Language server: workspace/symbol latency",
            "python benchmarks/lsp_latency.py",
            [machine_line(), "Real server over stdio (pytest-lsp client), round trip per query.", "", *table],
        )


if __name__ == "__main__":
    main()
