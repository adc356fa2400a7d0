"""The ``codesearch`` command line: ``index``, ``search`` and ``status``.

Owns argument parsing, progress display (rich, on a TTY only), human and ``--json`` output,
and the boundary translation of library errors into one line on stderr and an exit code
(never a traceback unless ``--verbose``). Text from users, files and errors (paths, symbols,
snippets, messages) is printed literally: the consoles read no markup or emoji codes, and
styles come from :class:`rich.text.Text` spans.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text

from codesearch import __version__
from codesearch.config import default_index_dir, find_index_dir
from codesearch.errors import CodesearchError, IndexNotFoundError, UsageError
from codesearch.files import DEFAULT_MAX_FILE_BYTES, SKIP_REASONS
from codesearch.options import IndexOptions
from codesearch.store.layout import IndexDir, Remote, index_location

if TYPE_CHECKING:
    from codesearch.index import IndexStats
    from codesearch.search import Searchers

log = logging.getLogger("codesearch")
LOG_FORMAT = "codesearch: %(levelname)s: %(message)s"  # also the query service's, for its clients
searchers: Searchers | None = None  # a long-lived process keeps its searchers here (codesearch.daemon)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codesearch", description="Semantic code search: index a folder, search it.")
    parser.add_argument("--version", action="version", version=f"codesearch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details (and tracebacks) to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--index-dir",
            help="index folder, or an object-store URI LanceDB accepts (s3://, gs://, az://, file://) "
            "(default: per-user data folder keyed by PATH)",
        )
        p.add_argument(
            "--storage-option",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="LanceDB storage option of a URI --index-dir (repeatable; AWS_* etc. are read from the environment)",
        )
        p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p_index = sub.add_parser("index", help="index a folder (only changed files are re-embedded)")
    p_index.add_argument("path", nargs="?", type=Path, default=Path("."), help="folder to index (default: .)")
    common(p_index)
    indexing_options(p_index)
    cluster = p_index.add_argument_group("cluster indexing (extra 'distributed')")
    cluster.add_argument(
        "--engine", choices=["local", "ray"], default="local", help="local (this process) or ray (a Ray cluster)"
    )
    cluster.add_argument(
        "--ray-address", metavar="ADDR", help="a running Ray cluster (auto, ray://HOST:10001); default: a local one"
    )
    cluster.add_argument("--workers", type=int, metavar="N", help="embedding workers (default: one per GPU or CPU)")
    cluster.add_argument(
        "--gpus-per-worker", type=float, default=0.0, metavar="G", help="GPUs per embedding worker (default: 0)"
    )
    cluster.add_argument(
        "--files-per-task", type=int, default=32, metavar="N", help="files per chunking task and embedding call"
    )

    p_watch = sub.add_parser("watch", help="index a folder, then keep the index current as files change")
    p_watch.add_argument("path", nargs="?", type=Path, default=Path("."), help="folder to watch (default: .)")
    common(p_watch)
    indexing_options(p_watch)
    p_watch.add_argument("--poll", action="store_true", help="poll for changes instead of OS file events")
    p_watch.add_argument(
        "--debounce", type=int, default=150, metavar="MS", help="quiet time that ends a burst of changes (default: 150)"
    )

    p_search = sub.add_parser("search", help="search an index with a natural-language or code query")
    p_search.add_argument("query", help="what you are looking for")
    p_search.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=None,
        help="search only this folder or file of an indexed tree (default: the whole index of the indexed folder "
        "at or above the current one)",
    )
    common(p_search)
    p_search.add_argument("-k", type=int, default=10, help="number of results (default: 10)")
    p_search.add_argument("--mode", choices=["hybrid", "dense", "lexical"], default="hybrid")
    p_search.add_argument("--pieces", action="store_true", help="each piece of a long definition as its own result")
    p_search.add_argument(
        "--lang", action="append", default=[], metavar="L", help="only these languages (repeatable or comma-separated)"
    )
    p_search.add_argument(
        "--path",
        dest="path_glob",
        metavar="GLOB",
        help="only paths matching this gitignore-style glob, relative to the indexed root (\\[ is a literal "
        "bracket; an indexed path with brackets matches itself)",
    )
    p_search.add_argument("--model", help="must match the index's model (default: the index's model)")
    p_search.add_argument("--device", help="cpu, cuda, mps (default: CUDA, then MPS, then CPU)")
    p_search.add_argument(
        "--dtype", choices=["auto", "float32", "bfloat16", "int8"], help="inference precision (default: auto)"
    )

    p_status = sub.add_parser("status", help="what an index holds")
    p_status.add_argument("path", nargs="?", type=Path, default=Path("."), help="indexed folder (default: .)")
    common(p_status)

    p_serve = sub.add_parser("serve", help="run the language server (stdio; for editors)")
    transport = p_serve.add_mutually_exclusive_group()
    transport.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default)")
    transport.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT instead of stdio")
    return parser


def indexing_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        help="auto, a preset (gte-modernbert-base, modernbert-embed-base, minilm-code, all-minilm-l6-v2), a local "
        "checkpoint folder or a hub id (default: auto: a ModernBERT preset whose weights are on this machine, else "
        "minilm-code; an existing index keeps its model)",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: CUDA, then MPS, then CPU)")
    p.add_argument(
        "--dtype", choices=["auto", "float32", "bfloat16", "int8"], help="inference precision (default: auto)"
    )
    p.add_argument("--rebuild", action="store_true", help="drop the existing index first (e.g. to change model)")
    p.add_argument(
        "--max-file-size",
        type=int,
        default=DEFAULT_MAX_FILE_BYTES,
        metavar="BYTES",
        help=f"skip larger files (default: {DEFAULT_MAX_FILE_BYTES})",
    )
    p.add_argument(
        "--secrets",
        choices=["redact", "skip", "off"],
        default="redact",
        help="secrets in files: redact them before indexing (default), skip such files, or off; "
        "secret-bearing files (.env, keys, credential stores) are left out unless off",
    )
    p.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="GLOB",
        help="extra gitignore-style pattern to skip (repeatable)",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    err = _console(stderr=True)
    try:
        handler = {
            "index": cmd_index,
            "watch": cmd_watch,
            "search": cmd_search,
            "status": cmd_status,
            "serve": cmd_serve,
        }[args.command]
        return handler(args, err)
    except CodesearchError as exc:
        err.print(Text.assemble(("codesearch: error:", "bold red"), f" {exc}"))
        if args.verbose:
            log.exception("details")
        return exc.exit_code
    except KeyboardInterrupt:
        if args.command == "index":  # committed batches stay: the next run resumes after them
            again = f"codesearch index {_quote(str(args.path))}"
            if args.index_dir is not None:
                again += f" --index-dir {_quote(args.index_dir)}"
            err.print(f"codesearch: interrupted; nothing committed is lost: run `{again}` again to finish")
        else:
            err.print("codesearch: interrupted")
        return 130
    except Exception as exc:  # the boundary: one line, never a traceback unless asked
        err.print(
            Text.assemble(
                ("codesearch: internal error:", "bold red"),
                f" {type(exc).__name__}: {exc} (run with --verbose for details)",
            )
        )
        if args.verbose:
            log.exception("details")
        return 70


def _console(stderr: bool = False) -> Console:
    """A console that prints text as it is: no markup, emoji codes or highlighting in paths,
    symbols, snippets or messages (styles come from :class:`Text` spans)."""
    return Console(stderr=stderr, markup=False, emoji=False, highlight=False, soft_wrap=True)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format=LOG_FORMAT,
    )
    for noisy in ("transformers", "huggingface_hub", "httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _root(path: Path) -> Path:
    if not path.exists():
        raise UsageError(f"{path} does not exist")
    if not path.is_dir():
        raise UsageError(f"{path} is not a folder")
    return path.resolve()


def _index_dir(args: argparse.Namespace, root: Path | None = None, local: str = "") -> IndexDir:
    """``--index-dir`` (a folder or a URI, with ``--storage-option``s), else the default folder
    of ``root``. ``local``: the command that needs a local folder (it refuses a URI)."""
    options = []
    for item in args.storage_option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--storage-option takes KEY=VALUE, not {item!r}")
        options.append((key.strip(), value))
    if args.index_dir is None:
        if options:
            raise UsageError("--storage-option needs a URI --index-dir")
        assert root is not None
        return default_index_dir(root)
    location = index_location(args.index_dir, options)
    if isinstance(location, Remote) and local:
        raise UsageError(f"{local} needs a local --index-dir folder, not {location}")
    if not isinstance(location, Remote) and options:
        raise UsageError("--storage-option needs a URI --index-dir")
    return location


def _existing_index(args: argparse.Namespace) -> IndexDir:
    if args.index_dir is not None:
        return _index_dir(args)
    root = _root(args.path)
    return _nearest_index(root, args.path)


def _nearest_index(start: Path, given: Path) -> IndexDir:
    """The index of the indexed folder at or above the folder ``start`` (``given``: as the user
    wrote it), else an :class:`IndexNotFoundError` that says what to do."""
    found = find_index_dir(start)
    if found is not None:
        return found[1]
    from codesearch.index.runs import writer_running

    for folder in (start, *start.parents):  # a first run that has not committed anything yet
        if writer_running(default_index_dir(folder)):
            raise IndexNotFoundError(
                f"the first index of {folder} is being built by another codesearch process and holds "
                "nothing yet: search again in a moment"
            )
    raise IndexNotFoundError(f"no index for {start} yet: run `codesearch index {_quote(str(given))}` first")


def _quote(text: str) -> str:
    return shlex.quote(text)


def _index_options(args: argparse.Namespace) -> IndexOptions:
    """The options ``index`` and ``watch`` share, checked once (a bad value: exit 2)."""
    return IndexOptions(
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        max_file_bytes=args.max_file_size,
        extra_ignores=tuple(args.ignore),
        secrets=args.secrets,
        rebuild=args.rebuild,
    )


# -- index -----------------------------------------------------------------------------------
def cmd_index(args: argparse.Namespace, err: Console) -> int:
    from codesearch.index import Indexer

    root = _root(args.path)
    index_dir = _index_dir(args, root)
    show = err.is_terminal and not args.json
    with _IndexProgress(err, enabled=show) as progress:
        options = _index_options(args)
        if args.engine == "ray":
            from codesearch.index.cluster import ClusterOptions, RayIndexer

            if (args.workers is not None and args.workers < 1) or args.files_per_task < 1:
                raise UsageError("--workers and --files-per-task must be at least 1")
            cluster = ClusterOptions(
                args.ray_address, args.workers, args.gpus_per_worker, files_per_task=args.files_per_task
            )
            indexer: Indexer = RayIndexer(root, index_dir, options, cluster=cluster, on_progress=progress.update)
        else:
            if args.ray_address or args.workers or args.gpus_per_worker:
                raise UsageError("--ray-address, --workers and --gpus-per-worker need --engine ray")
            indexer = Indexer(root, index_dir, options, on_progress=progress.update)
        stats = indexer.run()
    if args.json:
        print(json.dumps(stats.as_dict()))
        return 0
    out = _console()
    out.print(
        f"Indexed {stats.files} files, {stats.chunks} chunks ({stats.chunks_embedded} embedded now, "
        f"{stats.chunks_reused} reused) in {stats.seconds:.1f}s with {stats.model}."
    )
    if stats.files_changed and stats.files_changed == stats.files and stats.model_reason:
        out.print(f"Model: {stats.model_reason}.")  # a new index: say why this model
    if stats.files_skipped:
        reasons = ", ".join(f"{n} {SKIP_REASONS.get(r, r)}" for r, n in stats.skipped.items())
        out.print(f"Skipped {stats.files_skipped} files: {reasons}.")
    if stats.secrets_redacted:
        out.print(f"Redacted {stats.secrets_redacted} secrets (keys, tokens) before indexing.")
    if stats.truncated:
        out.print(f"{stats.truncated} chunks were longer than the model's input and were truncated.")
    out.print(f"Index: {index_dir}")
    return 0


class _IndexProgress:
    """A rich progress bar fed by the indexer's progress callbacks (files, chunks/s, ETA)."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.perf_counter()
        self.progress = Progress(
            TextColumn("[bold]{task.fields[phase]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task: TaskID | None = None

    def __enter__(self) -> _IndexProgress:
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.stop()

    def update(self, p: Any) -> None:
        if not self.enabled:
            return
        elapsed = max(time.perf_counter() - self.started, 1e-6)
        rate = (
            f"{p.chunks_done} chunks, {p.chunks_embedded / elapsed:.1f} embedded/s, "
            f"{p.files_done / elapsed:.1f} files/s"
        )
        if self.task is None:
            self.task = self.progress.add_task("index", total=p.files_total, rate=rate, phase=p.phase)
        self.progress.update(self.task, completed=p.files_done, total=p.files_total, rate=rate, phase=p.phase)


# -- watch -----------------------------------------------------------------------------------
def cmd_watch(args: argparse.Namespace, err: Console) -> int:
    from codesearch.index.indexer import IndexStopped
    from codesearch.index.watcher import Watcher

    root = _root(args.path)
    index_dir = _index_dir(args, root, local="watch")
    assert isinstance(index_dir, Path)  # a URI was refused
    out = _console()

    def report(stats: IndexStats) -> None:
        if args.json:
            print(json.dumps(stats.as_dict()), flush=True)
        elif stats.files_changed or stats.files_deleted or watcher.updates == 0:
            out.print(
                f"{time.strftime('%H:%M:%S')} {stats.files_changed} changed, {stats.files_deleted} deleted, "
                f"{stats.chunks_embedded} chunks embedded ({stats.files} files, {stats.chunks} chunks, "
                f"{stats.seconds:.2f}s)"
            )

    watcher = Watcher(
        root,
        index_dir,
        _index_options(args),
        on_update=report,
        polling=args.poll,
        debounce_s=args.debounce / 1000,
    )
    previous = signal.signal(signal.SIGTERM, lambda *_: watcher.stop())
    try:
        watcher.start()
        if not args.json:
            mode = "polling" if watcher.polling else "file events"
            err.print(f"codesearch: watching {root} ({mode}); index {index_dir}; Ctrl-C stops", highlight=False)
        while watcher.running:
            watcher.wait(timeout=1.0)
    except (KeyboardInterrupt, IndexStopped):  # Ctrl-C, or SIGTERM while the first update ran
        pass
    finally:
        watcher.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0


# -- search ----------------------------------------------------------------------------------
def cmd_search(args: argparse.Namespace, err: Console) -> int:
    from codesearch.index.runs import read_progress
    from codesearch.search import Searcher

    index_dir = _search_index(args)
    languages = [lang.strip() for item in args.lang for lang in item.split(",") if lang.strip()]
    if searchers is not None:
        searcher = searchers.get(index_dir, model=args.model, device=args.device, dtype=args.dtype)
    else:
        searcher = Searcher(index_dir, model=args.model, device=args.device, dtype=args.dtype)
    root = str(searcher.store.meta.get("root") or "")
    running = read_progress(index_dir)  # before the query: its results are at least this far along
    results = searcher.search(
        args.query,
        k=args.k,
        mode=args.mode,
        languages=languages or None,
        path_glob=args.path_glob,
        under=_scope(args.path, root),
        pieces=args.pieces,
    )
    if searcher.words_only:
        err.print(f"codesearch: ranked by words alone: {searcher.words_only}")
    note = _indexing_note(running, searcher.store.meta, root)
    if note:  # a run is writing the index now, or the first one did not finish
        err.print(note)
    if args.json:  # paths stay relative to the indexed root, which each result names
        print(json.dumps([dict(r.as_dict(), root=root) for r in results], ensure_ascii=False))
        return 0
    coverage = searcher.dense_coverage() if args.mode != "lexical" and not searcher.words_only else 1.0
    if coverage < 1.0 and not running:  # a dense pass stopped early: say how much of the index has vectors
        err.print(f"codesearch: embeddings cover {coverage:.0%} of the index so far; the rest matched by words")
    out = _console()
    if not results:
        out.print("No results yet: indexing is under way." if running else "No results.")
    cwd = _cwd()
    for r in results:
        out.print(
            Text.assemble(
                (f"{_shown_path(root, r.path, cwd)}:{r.start_line}", "bold cyan"),
                "  ",
                (r.symbol, "bold"),
                "  ",
                (f"{r.kind}  {r.score:.3f}", "dim"),
            )
        )
        for line in r.snippet.split("\n"):
            out.print(f"    {line}")
        out.print()
    return 0


def _search_index(args: argparse.Namespace) -> IndexDir:
    """The index ``search`` reads: ``--index-dir``, else that of the indexed folder at or above
    PATH (a folder or a file; default: the current folder)."""
    if args.path is not None and not args.path.exists():
        raise UsageError(f"{args.path} does not exist")
    if args.index_dir is not None:
        return _index_dir(args)
    given = args.path if args.path is not None else Path(".")
    start = given.resolve()
    return _nearest_index(start if start.is_dir() else start.parent, given)


def _scope(path: Path | None, root: str) -> str | None:
    """An explicit PATH inside the indexed tree limits the search to it (root-relative posix);
    ``None``: the whole index."""
    if path is None or not root:
        return None
    target = path.resolve()
    try:
        rel = target.relative_to(Path(root))
    except ValueError:
        raise UsageError(f"{path} is not inside the indexed folder {root}") from None
    return rel.as_posix() if rel.parts else None


def _cwd() -> Path | None:
    try:
        return Path.cwd()
    except OSError:  # the current folder was deleted
        return None


def _shown_path(root: str, rel: str, cwd: Path | None) -> str:
    """A result's path as the user can open it from where they stand: relative to the current
    folder when that is inside the indexed tree or holds it, else absolute."""
    if not root or cwd is None:
        return rel
    full = os.path.join(root, rel)
    try:
        shown = os.path.relpath(full, cwd)
    except ValueError:  # another drive
        return full
    if shown.startswith(os.pardir) and not cwd.is_relative_to(root):
        return full
    return shown


def _indexing_note(running: dict[str, Any] | None, meta: dict[str, Any], root: str) -> str:
    """What a query's results are missing while the index is being built ('' when nothing)."""
    if running:
        done, total = running.get("files_done", 0), running.get("files_total", 0)
        if running.get("phase") == "embedding":
            return (
                f"codesearch: indexing: embedding {done:,} of {total:,} files; "
                "results so far, the rest matched by words"
            )
        return f"codesearch: indexing: {done:,} of {total:,} files; results so far"
    if not meta.get("last_run"):
        again = f"codesearch index {_quote(root)}" if root else "codesearch index"
        return f"codesearch: the index is incomplete (its first run did not finish): run `{again}` to finish it"
    return ""


# -- status ----------------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace, err: Console) -> int:
    from codesearch.search import index_status

    status = index_status(_existing_index(args))
    if args.json:
        print(json.dumps(status))
        return 0
    out = _console()
    size = "remote" if status["size_bytes"] is None else f"{status['size_bytes'] / (1024 * 1024):.1f} MiB"
    dense = status["chunks_embedded"] / status["chunks"] if status["chunks"] else 1.0
    running = status["running"]
    if running:
        out.print(f"running  {_describe_run(running)}")
    out.print(
        f"root     {status['root']}\nindex    {status['index_dir']}\nfiles    {status['files']}\n"
        f"chunks   {status['chunks']} (lexical: all{' so far' if running else ''}; "
        f"dense: {status['chunks_embedded']}, {dense:.0%})\n"
        f"model    {status['model']} ({status['model_id']}, "
        f"{status['dimension']}-d)\n         {status['model_reason'] or 'chosen by an older codesearch'}\n"
        f"cache    {status['cached_vectors']} vectors\nsize     {size}\nupdated  {status['updated']}"
    )
    ann = status.get("vector_index")
    out.print(
        f"vectors  indexed (IVF, {ann['partitions']} partitions, trained on {ann['rows']} chunks)"
        if isinstance(ann, dict)
        else "vectors  exact search (a small index, or one whose dense pass is not done)"
    )
    held = status["secrets"]
    if held["files"] or held["chunks_redacted"]:
        out.print(
            f"secrets  held back: {held['files']} secret-bearing files left out, "
            f"{held['chunks_redacted']} chunks with secrets redacted"
        )
    return 0


# -- serve -------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, err: Console) -> int:
    """The language server is the ``lsp`` package, run as its own program (the library never
    imports it): this process becomes ``python -m lsp`` with the same stdio."""
    command = [sys.executable, "-m", "lsp"]
    if args.tcp is not None:
        command += ["--tcp", str(args.tcp)]
    if args.verbose:
        command.append("--verbose")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)
    return 0  # pragma: no cover (execv does not return)


def _describe_run(running: dict[str, Any]) -> str:
    """One line on the run writing the index now (from its progress file)."""
    done, total = running.get("files_done", 0), running.get("files_total", 0)
    if running.get("phase") == "embedding":
        return (
            f"dense pass (pid {running.get('pid')}): {done:,} of {total:,} files, "
            f"{running.get('chunks_embedded', 0):,} chunks embedded"
        )
    return (
        f"lexical pass (pid {running.get('pid')}): {done:,} of {total:,} changed files, "
        f"{running.get('chunks_done', 0):,} chunks written"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
