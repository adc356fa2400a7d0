"""``workspace/symbol`` latency of the real language server on a big index.

Starts ``codesearch serve`` over stdio (pytest-lsp's client) on a tree with a complete index
(default: the Django tree and index of ``benchmarks/freshness.py``, 84k chunks), warms it up,
then sends natural-language queries one at a time and reports p50/p95/max of the round trip
(client send → answer parsed). Target p95 < 50 ms.

``--first-pass``: the same queries while the server builds a fresh index of the tree (a new index
folder; the server's own watcher, one model shared by it and the queries): they start once the
dense pass has begun (the lexical pass is done: every chunk is searchable by words) and the share
of chunks with vectors is reported before and after (``--at 0.1``: they start once a tenth of
the chunks have vectors, when the pass has rewritten that many rows). Target p95 < 300 ms.

``--baseline SRC``: the same run first against a server from another checkout of codesearch (a
folder holding its ``codesearch`` and ``lsp`` packages, e.g. ``git worktree add /tmp/base REV``;
same interpreter and packages): both servers run at once and each query goes to one, then the
other, so the table shows before, after and their ratio from one run that drift in the machine's
speed hits alike. With ``--first-pass`` each server builds its own fresh index, both at once.

Appends the table to ``benchmarks/RESULTS.md``.

    python benchmarks/lsp_latency.py [--root TREE --index-dir INDEX] [--queries 100] [--first-pass]
        [--baseline SRC]
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


async def start(root: Path, index_dir: Path, first_pass: bool, at: float, source: Path | None) -> LanguageClient:
    """A server over stdio, initialized on ``root``; ``source``: the server of that checkout (its
    packages first on ``sys.path``, ahead of the working folder's). ``first_pass``: once its dense
    pass has begun and embedded the share ``at`` of the chunks."""
    command = [sys.executable, "-m", "lsp"]
    if source is not None:
        first = f"sys.path.insert(0, {str(source.resolve())!r})"
        boot = f"import runpy, sys; {first}; runpy.run_module('lsp', run_name='__main__')"
        command = [sys.executable, "-c", boot]
    client = await ClientServerConfig(server_command=command).start()
    assert isinstance(client, LanguageClient)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            workspace_folders=[types.WorkspaceFolder(uri=root.resolve().as_uri(), name=root.name)],
            initialization_options={"indexDir": str(index_dir), "watch": first_pass, "ignore": ["*.po"]},
        )
    )
    if first_pass:  # until the dense pass has begun: every chunk is in, by words
        while (share := await dense_share(client)) == 0.0 or share < at:
            await asyncio.sleep(1.0)
    else:
        while not any(
            reports and isinstance(reports[-1], types.WorkDoneProgressEnd)
            for reports in client.progress_reports.values()
        ):
            await asyncio.sleep(0.1)
    return client


async def run(
    root: Path,
    index_dirs: list[Path],
    queries: int,
    warmup: int,
    first_pass: bool,
    sources: list[Path | None],
    at: float = 0.0,
) -> list[dict[str, object]]:
    """Each server of ``sources`` (``None``: this checkout) on its index folder, all at once;
    each query is sent to each server in turn, so drift in the machine's speed hits all alike."""
    clients = await asyncio.gather(
        *(start(root, index_dir, first_pass, at, source) for index_dir, source in zip(index_dirs, sources))
    )
    found: list[dict[str, object]] = [dict(timings=[], before=await dense_share(client)) for client in clients]
    for i in range(warmup + queries):
        query = f"{WORDS[i % len(WORDS)]} {i // len(WORDS) or ''}".strip()
        for client, figures in zip(clients, found):
            started = time.perf_counter()
            symbols = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query=query))
            elapsed = time.perf_counter() - started
            assert symbols, query
            if i >= warmup:
                figures["timings"].append(elapsed * 1000)  # type: ignore[attr-defined]
    for client, figures in zip(clients, found):
        figures["after"] = await dense_share(client)
        await client.shutdown_session()
        await client.stop()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=WORK / "tree")
    parser.add_argument("--index-dir", type=Path, default=WORK / "index")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--first-pass", action="store_true", help="while the server builds a fresh index")
    parser.add_argument("--at", type=float, default=0.0, help="--first-pass: start once this share is embedded")
    parser.add_argument("--baseline", type=Path, help="a checkout of codesearch to measure first, in the same run")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if not args.first_pass and not (args.index_dir / "meta.json").exists():
        sys.exit(f"no index at {args.index_dir}: run benchmarks/freshness.py first (or pass --root/--index-dir)")
    named: list[tuple[str, Path | None]] = [("before", args.baseline)] if args.baseline else []
    named.append(("this checkout", None))
    if args.first_pass:  # a fresh index each (two servers building at once: the same share of the cores)
        index_dirs = [Path(tempfile.mkdtemp(prefix="first-pass-", dir=WORK)) for _ in named]
    else:
        index_dirs = [args.index_dir for _ in named]
    try:
        found = asyncio.run(
            run(args.root, index_dirs, args.queries, args.warmup, args.first_pass, [src for _, src in named], args.at)
        )
        from codesearch import index_status

        status = index_status(index_dirs[-1])
    finally:
        if args.first_pass:
            for index_dir in index_dirs:
                shutil.rmtree(index_dir, ignore_errors=True)
    runs = [(name, figures) for (name, _), figures in zip(named, found)]
    target = 300 if args.first_pass else 50
    ann: dict[str, object] | None = status.get("vector_index")  # type: ignore[assignment]

    def figures(found: dict[str, object]) -> tuple[float, float, float]:
        timings: list[float] = found["timings"]  # type: ignore[assignment]
        return statistics.median(timings), statistics.quantiles(timings, n=20)[18], max(timings)

    last = figures(runs[-1][1])
    table = [
        "| figure | value |",
        "| --- | --- |",
        f"| index | {status['chunks']:,} chunks ({args.root.name}); "
        + (f"vector index: {ann['partitions']} partitions |" if ann else "exact vector search |"),
        f"| queries (after {args.warmup} warm-up) | {args.queries}, hybrid, result cap 100 |",
    ]
    for name, found in runs:
        p50, p95, worst = figures(found)
        label = f"p50 / p95 / max ({name})" if args.baseline else "p50 / p95 / max"
        table.append(f"| {label} | {p50:.0f} / {p95:.0f} / {worst:.0f} ms |")
        if args.first_pass:
            table.append(
                f"| chunks with vectors while querying{f' ({name})' if args.baseline else ''} | "
                f"{found['before']:.1%} → {found['after']:.1%} (the first dense pass running in the server) |"
            )
    if args.baseline:
        before = figures(runs[0][1])
        table.append(f"| after / before, p50 and p95 | {last[0] / before[0]:.2f}x, {last[1] / before[1]:.2f}x |")
    table.append(f"| target p95 | < {target} ms {'✓' if last[1] < target else '✗'} |")
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
