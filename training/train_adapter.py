"""Train the default model's code adapter: all-MiniLM-L6-v2 + a low-rank update learned from
docstring -> code pairs of the Python sources installed on this machine.

Offline by construction: the training pairs are mined with ``ast`` from the standard library
and the packages pip installed (the project's own dependencies), plus the StaQC **train**
split's positives (Stack Overflow titles -> code). Every pair whose query equals a benchmark
query, or whose code shares most of its lines with a benchmark document (CodeSearchNet test,
CoSQA test and dev, SOSum), is dropped before training; the packages of CodeSearchNet's test
repositories are skipped by name.

How a pair becomes a training example (the index embeds code both with and without docstrings,
and users type both docstring-like and web-search-like queries):

- query: the docstring's first paragraph; 30% rewritten the way people search (lower case,
  no quotes, "python" before or after);
- document: the function without its docstring; half of those that have more docstring keep
  its remaining paragraphs; 20% the whole function with a rewritten query; 30% behind the
  ``function <name>`` line the chunker puts before a chunk;
- batches: mined pairs come in runs of ``--group`` (8) from one package, so that a query's
  in-batch negatives include functions of the same code base (hard negatives).

The update's strength (``--weights``) is chosen on development data only: the largest weight
whose CoSQA **dev** nDCG@10 stays within ``--tolerance`` of the base model, reported beside
1,000 held-out mined pairs. Test sets are never looked at here (benchmarks/quality.py does).

The shipped file (v3) is two runs, as ``make adapter`` does them: 600 steps from the base model,
then 300 more steps from that adapter on mined pairs the first run never saw (``--init``; the
pairs it used are skipped by default):

    python training/train_adapter.py --out v2.safetensors [--data ../shared/datasets]
    python training/train_adapter.py --init v2.safetensors --steps 300 [--out FILE]

About 43 then 24 minutes on a 2-core CPU (each run mines for 4 and chooses the weight for 5).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import logging
import math
import random
import re
import sys
import sysconfig
import tempfile
import textwrap
import time
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from codesearch.embedding import load_embedder, resolve_model
from codesearch.embedding.adapter import LowRankLinear, load_trainable, save_adapter, train_adapter
from codesearch.embedding.models import ADAPTER_FOLDER, MINILM

ROOT = Path(__file__).resolve().parents[1]
OUT = ADAPTER_FOLDER / "minilm-code-v3.safetensors"
# packages of the 27 CodeSearchNet test repositories (../shared/datasets/codesearchnet-python-rebuilt)
CSN_TEST_PACKAGES = {
    "pylint", "OpenSSL", "librosa", "tensorflow_probability", "vaex", "qiskit", "streamlink", "flask_oauthlib",
    "kmip", "pyrser", "hwt", "pypet", "perceval", "basilisp", "deeppavlov", "PyFunceble", "iota", "latools",
    "msaf", "sregistry", "trepan", "pgcontents", "scout", "kerncraft", "flowcraft", "gurumate", "myhelp",
}  # fmt: skip
BENCHMARK_SETS = ("codesearchnet-python-rebuilt/beir_text2code", "cosqa/beir_test", "cosqa/beir_dev", "sosum/beir")


@dataclass
class Pair:
    query: str  # the docstring's first paragraph, whitespace collapsed
    bare: str  # the function without its docstring
    rest: str  # the function with its docstring minus the first paragraph ('' when nothing is left)
    full: str  # the function as written
    name: str
    origin: str = ""  # the top-level package or module it was mined from


def mine(roots: list[Path]) -> list[Pair]:
    """(docstring summary, function) pairs of every documented function of at least 3 lines,
    one per distinct summary and per distinct code."""
    pairs: list[Pair] = []
    seen_queries: set[str] = set()
    seen_code: set[str] = set()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if CSN_TEST_PACKAGES & set(path.relative_to(root).parts):
                continue
            try:
                source = path.read_text(encoding="utf-8")
                tree = ast.parse(source)
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
                continue
            lines = source.splitlines(keepends=True)
            for node in ast.walk(tree):
                pair = _pair(node, lines)
                if pair is None:
                    continue
                pair.origin = f"{root.name}/{path.relative_to(root).parts[0]}"
                code_key = hashlib.md5(re.sub(r"\s+", "", pair.bare).encode()).hexdigest()
                if pair.query.lower() in seen_queries or code_key in seen_code:
                    continue
                seen_queries.add(pair.query.lower())
                seen_code.add(code_key)
                pairs.append(pair)
    return pairs


def _pair(node: ast.AST, lines: list[str]) -> Pair | None:
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or len(node.body) < 2:
        return None
    doc = ast.get_docstring(node, clean=True)
    if not doc:
        return None
    paragraphs = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)
    query = " ".join(paragraphs[0].split())
    words = len(query.split())
    if words < 3 or words > 60 or query.startswith((":", "@", ">>>")) or "deprecated" in query.lower():
        return None
    first = node.body[0]
    start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
    doc_start, doc_end, end = first.lineno - 1, first.end_lineno or first.lineno, node.end_lineno or node.lineno
    bare = textwrap.dedent("".join(lines[start:doc_start] + lines[doc_end:end])).rstrip()
    if bare.count("\n") < 3 or len(bare) > 6000:
        return None
    rest = ""
    if len(paragraphs) > 1:
        indent = " " * first.col_offset
        docstring = indent + '"""' + paragraphs[1].strip().replace("\n", "\n" + indent) + '"""\n'
        rest = textwrap.dedent("".join([*lines[start:doc_start], docstring, *lines[doc_end:end]])).rstrip()
    full = textwrap.dedent("".join(lines[start:end])).rstrip()
    return Pair(query, bare, rest, full, node.name)


def _norm_lines(code: str) -> list[str]:
    return [line for line in (re.sub(r"\s+", "", raw) for raw in code.splitlines()) if len(line) >= 12]


def exclude_benchmarks(pairs: list[Pair], data: Path) -> tuple[list[Pair], int, int]:
    """Drop pairs whose query is a benchmark query, or whose code shares over 30% of its
    non-trivial lines with a benchmark document. Returns (kept, query overlaps, code overlaps)."""
    queries: set[str] = set()
    lines: set[str] = set()
    for folder in BENCHMARK_SETS:
        for row in _jsonl(data / folder / "queries.jsonl"):
            queries.add(" ".join(row["text"].lower().split()))
        for row in _jsonl(data / folder / "corpus.jsonl"):
            lines.update(_norm_lines(row["text"]))
    kept, by_query, by_code = [], 0, 0
    for pair in pairs:
        if " ".join(pair.query.lower().split()) in queries:
            by_query += 1
            continue
        own = _norm_lines(pair.bare)
        if own and sum(line in lines for line in own) / len(own) > 0.3:
            by_code += 1
            continue
        kept.append(pair)
    return kept, by_query, by_code


def web_style(query: str, rng: random.Random) -> str:
    """A docstring summary the way people type searches: lower case, no quotes, 'python' added."""
    words = re.sub(r"[`'\"]", "", query).rstrip(".").lower().split()[:12]
    return " ".join(["python", *words] if rng.random() < 0.5 else [*words, "python"])


def examples(
    pairs: list[Pair], staqc: list[tuple[str, str]], count: int, seed: int, group: int = 0
) -> list[tuple[str, str]]:
    """``count`` (query, document) training examples: the StaQC pairs and the first mined pairs,
    each made into one of the forms described at the top of this file, shuffled. With ``group``,
    mined examples come in runs of ``group`` from one package, so that a batch's other documents
    include functions of the same code base (hard negatives, as in a real repository's index)."""
    rng = random.Random(seed)
    made: list[tuple[str, str]] = []
    origins: list[str] = []
    for pair in pairs[: max(0, count - len(staqc))]:
        query, document = pair.query, pair.bare
        if rng.random() < 0.2:
            query, document = web_style(query, rng), pair.full
        else:
            if pair.rest and rng.random() < 0.5:
                document = pair.rest
            if rng.random() < 0.3:
                query = web_style(query, rng)
        if rng.random() < 0.3:
            document = f"function {pair.name}\n{document}"
        made.append((query, document))
        origins.append(pair.origin)
    made.extend(staqc)
    origins.extend([""] * len(staqc))
    if group <= 1:
        rng.shuffle(made)
        return made
    by_origin: dict[str, list[tuple[str, str]]] = {}
    for example, origin in zip(made, origins, strict=True):
        by_origin.setdefault(origin, []).append(example)
    blocks: list[list[tuple[str, str]]] = []
    loose: list[tuple[str, str]] = []
    for origin, members in by_origin.items():
        rng.shuffle(members)
        whole = len(members) - len(members) % group if origin else 0
        blocks.extend(members[i : i + group] for i in range(0, whole, group))
        loose.extend(members[whole:])
    rng.shuffle(loose)
    blocks.extend(loose[i : i + group] for i in range(0, len(loose), group))
    rng.shuffle(blocks)
    return [example for block in blocks for example in block]


def staqc_train(data: Path) -> list[tuple[str, str]]:
    rows = json.loads((data / "staqc" / "train_staqc.json").read_text(encoding="utf-8"))
    return [(row["doc"], row["code"]) for row in rows if int(row["label"]) == 1]


def ndcg_one_positive(queries: np.ndarray, documents: np.ndarray, positive: list[int]) -> float:
    """nDCG@10 with one relevant document per query (1 / log2(rank + 1) when in the top 10)."""
    scores = queries @ documents.T
    total = 0.0
    for i, target in enumerate(positive):
        rank = int((scores[i] > scores[i, target]).sum())
        total += 1.0 / math.log2(rank + 2) if rank < 10 else 0.0
    return total / len(positive)


def development_scores(model: str | None, adapter: Path | None, held_out: list[Pair], data: Path) -> dict[str, float]:
    """nDCG@10 of the real embedder (preset + adapter file) on held-out pairs and CoSQA dev."""
    spec = resolve_model(model or MINILM)
    if adapter is not None:
        spec = replace(spec, adapter=str(adapter))
    embedder = load_embedder(spec)
    result = {}
    q = embedder.embed_queries([p.query for p in held_out])
    d = embedder.embed_documents([p.bare for p in held_out])
    result["held-out pairs"] = ndcg_one_positive(q, d, list(range(len(held_out))))
    folder = data / "cosqa" / "beir_dev"
    corpus = _jsonl(folder / "corpus.jsonl")
    index = {row["_id"]: i for i, row in enumerate(corpus)}
    qrels = [line.split("\t") for line in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    wanted = {query: index[doc] for query, doc, score in qrels if int(score) > 0}
    queries = [row for row in _jsonl(folder / "queries.jsonl") if row["_id"] in wanted]
    q = embedder.embed_queries([row["text"] for row in queries])
    d = embedder.embed_documents([row["text"] for row in corpus])
    result["CoSQA dev"] = ndcg_one_positive(q, d, [wanted[row["_id"]] for row in queries])
    return result


def continue_from(model: torch.nn.Module, path: Path) -> int:
    """Start the low-rank layers of ``model`` from an adapter file's A and B (its weight is set
    again when saving). Returns how many layers were loaded."""
    with torch.no_grad(), safe_open(str(path), framework="pt") as handle:
        keys = set(handle.keys())
        loaded = 0
        for name, module in model.named_modules():
            if isinstance(module, LowRankLinear) and f"{name}.lora_A" in keys:
                module.lora_A.copy_(handle.get_tensor(f"{name}.lora_A").float())
                module.lora_B.copy_(handle.get_tensor(f"{name}.lora_B").float())
                loaded += 1
    if not loaded:
        raise SystemExit(f"{path} has no layer of this model")
    return loaded


def seen_pairs(path: Path, staqc_count: int) -> int:
    """How many of the shuffled mined training pairs the run that wrote the adapter at ``path``
    used, with those of the runs it continued: a continuation skips them and sees only new pairs."""
    with safe_open(str(path), framework="pt") as handle:
        about = json.loads((handle.metadata() or {}).get("about", "{}"))
    if "examples" not in about:
        raise SystemExit(f"{path} does not say what it was trained on: give --skip")
    return int(about.get("skip", 0)) + max(0, int(about["examples"]) - staqc_count)


def _jsonl(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--held-out", type=int, default=1000)
    parser.add_argument("--weights", type=float, nargs="+", default=[1.0, 0.75, 0.5])
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--group", type=int, default=8, help="runs of this many pairs from one package (0: off)")
    parser.add_argument("--init", type=Path, default=None, help="continue training this adapter file")
    parser.add_argument(
        "--skip", type=int, default=None, help="leave out the first N mined training pairs (default: those --init saw)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.monotonic()
    paths = sysconfig.get_paths()
    roots = [Path(paths["stdlib"]), Path(paths["purelib"])]
    mined = mine(roots)
    kept, by_query, by_code = exclude_benchmarks(mined, args.data)
    random.Random(args.seed).shuffle(kept)
    held_out, train = kept[: args.held_out], kept[args.held_out :]
    staqc = staqc_train(args.data)
    if args.skip is None:
        args.skip = seen_pairs(args.init, len(staqc)) if args.init is not None else 0
    data = examples(train[args.skip :], staqc, args.steps * args.batch, args.seed, args.group)
    print(
        f"mined {len(mined)} pairs from {', '.join(map(str, roots))}; dropped {by_query} (benchmark query) and "
        f"{by_code} (benchmark code); {len(held_out)} held out; training on {len(data)} "
        f"({len(staqc)} StaQC train) in {time.monotonic() - started:.0f} s"
    )
    base = resolve_model(MINILM)
    model, tokenizer = load_trainable(base.source, rank=args.rank, alpha=2.0 * args.rank)
    if args.init is not None:
        print(f"continuing from {args.init} ({continue_from(model, args.init)} layers)")
    losses = train_adapter(model, tokenizer, data, batch_size=args.batch, learning_rate=args.lr, seed=args.seed)
    about = {
        "base": base.model_id,
        "steps": len(losses),
        "batch": args.batch,
        "rank": args.rank,
        "lr": args.lr,
        "group": args.group,
        "init": args.init.name if args.init else None,
        "skip": args.skip,
        "examples": len(data),
        "mined": len(mined),
        "dropped_overlap": by_query + by_code,
        "python": sys.version.split()[0],
        "packages": len(list(metadata.distributions())),
    }
    rows = [("base (all-minilm-l6-v2)", None, development_scores(MINILM, None, held_out, args.data))]
    with tempfile.TemporaryDirectory() as tmp:
        for weight in args.weights:
            candidate = Path(tmp) / f"w{weight}.safetensors"
            save_adapter(model, candidate, base.model_id, weight=weight, about={**about, "weight": weight})
            rows.append((f"adapter x {weight}", weight, development_scores(MINILM, candidate, held_out, args.data)))
    base_cosqa = rows[0][2]["CoSQA dev"]
    fit = [w for _, w, s in rows[1:] if w is not None and s["CoSQA dev"] >= base_cosqa - args.tolerance]
    chosen = max(fit) if fit else min(args.weights)
    print("\n| model | held-out pairs nDCG@10 | CoSQA dev nDCG@10 |\n| --- | --- | --- |")
    for label, _, scores in rows:
        print(f"| {label} | {scores['held-out pairs']:.3f} | {scores['CoSQA dev']:.3f} |")
    count = save_adapter(model, args.out, base.model_id, weight=chosen, about={**about, "weight": chosen})
    print(
        f"\nchose weight {chosen} (largest within {args.tolerance} of the base on CoSQA dev); wrote {args.out} "
        f"({count} parameters, mean loss of the first and last 20 steps {np.mean(losses[:20]):.3f} -> "
        f"{np.mean(losses[-20:]):.3f}) "
        f"in {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
