"""Hand-written questions over real projects no part of codesearch trained on.

The set (``benchmarks/handwritten/<project>.json``, committed) holds, per project: its pinned
source (a registry URL and its sha256: a PyPI sdist, an npm tarball, a Debian ``.deb`` or
``.orig.tar``), its language, its half (``dev``: tune on it; ``test``: report once per change),
and questions written the way developers type them (behaviour in plain words, terse phrases,
questions, a concrete example; never the doc comment, never the identifier) with the
definition(s) that answer each (``gold``: path, symbol, first and last line, doc comment
included). The sources are fetched into ``benchmarks/.work/handwritten/`` (never committed).

Each project is indexed whole by the product (``Indexer``, the default model unless ``--model``)
and queried through ``Searcher.search`` in every mode, as ``codesearch search`` does. A result
is a hit when it overlaps a gold definition (same file, overlapping lines). Reported per
language and mode: hit@1, hit@5, MRR@10, and hit@20 / hit@50 (how close the misses are).

    python benchmarks/handwritten.py [--split dev|test|all] [--model NAME] [--no-record]
    python benchmarks/handwritten.py --fetch        # only download and unpack the sources

``benchmarks/quality.py --handwritten dev|test`` reports the same table beside CSN, SOSum and
CoSQA.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import sys
import tarfile
import time
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, machine_line

HERE = Path(__file__).resolve().parent
SET = HERE / "handwritten"
CACHE = HERE / ".work" / "handwritten"
MODES = ("lexical", "dense", "hybrid")
DEPTH = 50  # results asked per query: hit@50 says how many misses a reranker of the first 50 could mend


@dataclass(frozen=True)
class Gold:
    path: str
    symbol: str
    start_line: int
    end_line: int


@dataclass(frozen=True)
class Query:
    text: str
    style: str
    gold: tuple[Gold, ...]


@dataclass
class Project:
    name: str
    language: str
    split: str
    source: dict[str, str]
    queries: list[Query] = field(default_factory=list)

    @property
    def root(self) -> Path:
        """The project's folder in the unpacked source (what is indexed)."""
        return CACHE / self.name / "src" / self.source["root"]


def load_set(folder: Path = SET, split: str = "all") -> list[Project]:
    """The projects of ``split`` (``dev``, ``test`` or ``all``), sorted by language and name."""
    projects = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        queries = [Query(q["query"], q.get("style", ""), tuple(Gold(**g) for g in q["gold"])) for q in data["queries"]]
        project = Project(data["project"], data["language"], data["split"], data["source"], queries)
        if split in ("all", project.split):
            projects.append(project)
    return sorted(projects, key=lambda p: (p.language, p.name))


# -- fetching -----------------------------------------------------------------------------------------
def fetch(project: Project) -> Path:
    """Download the project's source once (sha256 checked) and unpack it; its root folder."""
    folder = CACHE / project.name
    done = folder / ".done"
    if done.exists() and done.read_text() == project.source["sha256"]:
        return project.root
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "src").mkdir(parents=True)
    request = urllib.request.Request(project.source["url"], headers={"User-Agent": "codesearch-benchmark"})
    data = urllib.request.urlopen(request, timeout=300).read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != project.source["sha256"]:
        raise SystemExit(f"{project.source['url']}: sha256 {digest} does not match the set's")
    unpack(data, project.source["format"], folder / "src")
    if not project.root.is_dir():
        raise SystemExit(f"{project.name}: no folder {project.source['root']} in {project.source['url']}")
    done.write_text(project.source["sha256"])
    return project.root


def unpack(data: bytes, form: str, into: Path) -> None:
    """Unpack an archive: a tarball (``tar.gz``, ``tgz``, ``tar.xz``, ``tar.bz2``), a ``zip``, or a
    Debian ``deb`` (an ``ar`` archive whose ``data.tar.*`` member holds the files)."""
    if form == "deb":
        member = next((body for name, body in ar_members(data) if name.startswith("data.tar")), None)
        if member is None:
            raise SystemExit("the .deb has no data.tar member")
        data, form = member, "tar"
    if form == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.extractall(into)
        return
    if form in ("tar", "tar.gz", "tgz", "tar.xz", "tar.bz2"):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(into, filter="data")
        return
    raise SystemExit(f"unknown archive format {form!r}")


def ar_members(data: bytes) -> list[tuple[str, bytes]]:
    """The members of an ``ar`` archive (the container of a ``.deb``)."""
    if not data.startswith(b"!<arch>\n"):
        raise SystemExit("not an ar archive (a .deb starts with !<arch>)")
    members, at = [], 8
    while at + 60 <= len(data):
        header = data[at : at + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        members.append((name, data[at + 60 : at + 60 + size]))
        at += 60 + size + (size % 2)  # members are padded to an even offset
    return members


# -- scoring ------------------------------------------------------------------------------------------
def hit_rank(results: Sequence[tuple[str, int, int]], gold: Sequence[Gold]) -> int | None:
    """The 1-based rank of the first result (path, start line, end line) overlapping a gold
    definition; ``None`` when none does."""
    for rank, (path, start, end) in enumerate(results, 1):
        if any(g.path == path and start <= g.end_line and end >= g.start_line for g in gold):
            return rank
    return None


@dataclass
class Scores:
    ranks: list[int | None] = field(default_factory=list)  # per query: the first hit's rank, None for a miss

    @property
    def queries(self) -> int:
        return len(self.ranks)

    def add(self, rank: int | None) -> None:
        self.ranks.append(rank)

    def hit(self, k: int) -> float:
        return sum(1 for r in self.ranks if r is not None and r <= k) / self.queries if self.queries else 0.0

    def mrr(self, k: int = 10) -> float:
        return sum(1 / r for r in self.ranks if r is not None and r <= k) / self.queries if self.queries else 0.0

    def merged(self, other: Scores) -> Scores:
        return Scores(self.ranks + other.ranks)

    def figures(self) -> list[float]:
        """The table's columns: hit@1, hit@5, MRR@10, hit@20, hit@50."""
        return [self.hit(1), self.hit(5), self.mrr(), self.hit(20), self.hit(50)]


def cells(figures: Sequence[float]) -> str:
    """The table's figure columns (MRR@10, the third, with three decimals)."""
    return " | ".join(f"{v:.3f}" if i == 2 else f"{v:.2f}" for i, v in enumerate(figures))


def index_project(project: Project, model: str | None) -> Path:
    """The project's index (``benchmarks/.work/handwritten/index/<project>-<model>``), brought up
    to date by the product's indexer (a no-change run when nothing changed)."""
    from codesearch.index import Indexer

    index_dir = CACHE / "index" / f"{project.name}-{model or 'auto'}"
    Indexer(fetch(project), index_dir, model=model).run()
    return index_dir


def evaluate(
    projects: Sequence[Project], model: str | None = None, log: bool = True, misses: bool = False
) -> dict[str, dict[str, Scores]]:
    """Scores by project and mode; ``misses``: print each query hybrid search misses at 5, with its
    gold and the top 5 (for the dev half only: looking at the test half's misses is tuning on it)."""
    from codesearch.search import Searcher

    scores: dict[str, dict[str, Scores]] = {}
    for project in projects:
        started = time.perf_counter()
        searcher = Searcher(index_project(project, model))
        scores[project.name] = {mode: Scores() for mode in MODES}
        for query in project.queries:
            for mode in MODES:
                results = searcher.search(query.text, k=DEPTH, mode=mode)
                rank = hit_rank([(r.path, r.start_line, r.end_line) for r in results], query.gold)
                scores[project.name][mode].add(rank)
                if misses and mode == "hybrid" and (rank is None or rank > 5):
                    print(f"\n{project.name}: {query.text!r} ({query.style}): gold at {rank}")
                    for g in query.gold:
                        print(f"    gold {g.path}:{g.start_line}-{g.end_line} {g.symbol}")
                    for r in results[:5]:
                        print(f"    {r.score:.3f} {r.path}:{r.start_line}-{r.end_line} {r.kind} {r.symbol}")
        if log:
            hybrid = scores[project.name]["hybrid"]
            print(
                f"{project.name} ({project.language}, {project.split}): hybrid hit@5 {hybrid.hit(5):.2f}, "
                f"MRR@10 {hybrid.mrr():.2f} ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    return scores


def by_language(projects: Sequence[Project], scores: dict[str, dict[str, Scores]]) -> dict[str, dict[str, Scores]]:
    out: dict[str, dict[str, Scores]] = {}
    for project in projects:
        for mode in MODES:
            lang = out.setdefault(project.language, {m: Scores() for m in MODES})
            lang[mode] = lang[mode].merged(scores[project.name][mode])
    return out


def table(projects: Sequence[Project], scores: dict[str, dict[str, Scores]]) -> list[str]:
    """Per language and mode, then the average over languages (each language weighs the same)."""
    languages = by_language(projects, scores)
    lines = [
        "| language | projects | queries | mode | hit@1 | hit@5 | MRR@10 | hit@20 | hit@50 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for language, by_mode in sorted(languages.items()):
        names = ", ".join(p.name for p in projects if p.language == language)
        for mode in MODES:
            s = by_mode[mode]
            lines.append(f"| {language} | {names} | {s.queries} | {mode} | {cells(s.figures())} |")
    for mode in MODES:
        columns = zip(*(by_mode[mode].figures() for by_mode in languages.values()), strict=True)
        average = [sum(column) / len(languages) for column in columns]
        total = sum(by_mode[mode].queries for by_mode in languages.values())
        lines.append(f"| **average** | {len(projects)} | {total} | {mode} | {cells(average)} |")
    return lines


def check(projects: Sequence[Project], scores: dict[str, dict[str, Scores]]) -> list[str]:
    """The issue's bar on a half: hybrid hit@5 >= 0.75 and MRR@10 >= 0.60 on average, no language
    below hit@5 0.65, hybrid at least as good as dense and lexical (hit@5) in every language."""
    languages = by_language(projects, scores)
    n = len(languages) or 1
    hit5 = sum(m["hybrid"].hit(5) for m in languages.values()) / n
    mrr = sum(m["hybrid"].mrr() for m in languages.values()) / n
    worst = min(languages.items(), key=lambda kv: kv[1]["hybrid"].hit(5))
    behind = [lang for lang, m in languages.items() if m["hybrid"].hit(5) < max(m["dense"].hit(5), m["lexical"].hit(5))]
    return [
        f"hybrid hit@5 {hit5:.2f} >= 0.75: {'ok' if hit5 >= 0.75 else 'NOT MET'}",
        f"hybrid MRR@10 {mrr:.3f} >= 0.60: {'ok' if mrr >= 0.60 else 'NOT MET'}",
        f"lowest language {worst[0]} hit@5 {worst[1]['hybrid'].hit(5):.2f} >= 0.65: "
        + ("ok" if worst[1]["hybrid"].hit(5) >= 0.65 else "NOT MET"),
        "hybrid >= dense and lexical (hit@5) in every language: "
        + ("ok" if not behind else f"NOT MET ({', '.join(behind)})"),
    ]


def report(split: str, model: str | None) -> tuple[list[str], list[str]]:
    """The table and the checks of one half (what ``quality.py --handwritten`` adds)."""
    projects = load_set(split=split)
    scores = evaluate(projects, model)
    return table(projects, scores), check(projects, scores)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("dev", "test", "all"), default="dev")
    parser.add_argument("--model", default=None, help="a model name as codesearch index --model takes (default: auto)")
    parser.add_argument("--fetch", action="store_true", help="only download and unpack the sources")
    parser.add_argument(
        "--misses", action="store_true", help="print hybrid's misses at 5 (dev half only; not recorded)"
    )
    parser.add_argument("--no-record", dest="record", action="store_false")
    parser.add_argument("--note", default="", help="a line recorded under the table (what this run changed)")
    args = parser.parse_args(argv)
    projects = load_set(split=args.split)
    if args.fetch:
        for project in projects:
            print(f"{project.name}: {fetch(project)}", flush=True)
        return
    if args.misses:
        if args.split != "dev":
            raise SystemExit("--misses looks at the dev half only (the test half's misses would tune on it)")
        evaluate(projects, args.model, misses=True)
        return
    started = time.perf_counter()
    scores = evaluate(projects, args.model)
    body = [
        machine_line(),
        f"Half: {args.split}; model: {args.model or 'auto (the default)'}; {DEPTH} results asked per query; "
        f"a hit overlaps a gold definition. Wall time {time.perf_counter() - started:.0f} s.",
        "",
        *table(projects, scores),
        "",
        "Checks: " + "; ".join(check(projects, scores)) + ".",
        *(["", args.note] if args.note else []),
    ]
    print("\n".join(body))
    if args.record:
        command = " ".join(["python benchmarks/handwritten.py", *(sys.argv[1:] if argv is None else argv)])
        append_results(f"Hand-written questions over unseen projects ({args.split} half)", command, body)


if __name__ == "__main__":
    main()
