"""The retrieval-quality benchmark's own parts: its metrics on hand-computed cases, and a run of
``benchmarks/quality.py`` on a tiny BEIR-format set through the real index and model."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import quality


def test_ndcg_and_reciprocal_rank_match_hand_computed_values() -> None:
    relevant = {"a": 1, "b": 1}
    assert quality.ndcg_at_10(["a", "b", "c"], relevant) == pytest.approx(1.0)
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3))  # only b, at rank 2
    assert quality.ndcg_at_10(["c", "b"], relevant) == pytest.approx(expected)
    assert quality.ndcg_at_10(["x"] * 10 + ["a"], relevant) == 0.0  # beyond the cutoff
    assert quality.rr(["c", "d", "b"], relevant, 10) == pytest.approx(1 / 3)
    assert quality.rr(["c", "d", "b"], relevant, 2) == 0.0
    assert (
        quality.named("def parse_http_date(value):\n    pass")
        == "parse http date\ndef parse_http_date(value):\n    pass"
    )


def _write_beir(folder: Path, corpus: dict[str, str], queries: dict[str, str], qrels: dict[str, str]) -> None:
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as fh:
        for doc, text in corpus.items():
            fh.write(json.dumps({"_id": doc, "title": "", "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as fh:
        for q, text in queries.items():
            fh.write(json.dumps({"_id": q, "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t1" for q, d in qrels.items())]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_the_benchmark_ranks_an_easy_set_perfectly_through_the_real_index(tmp_path: Path) -> None:
    corpus = {
        "c0": "def read_csv_rows(path):\n    with open(path) as fh:\n        return list(csv.reader(fh))",
        "c1": "def send_email(to, subject, body):\n    smtp = smtplib.SMTP('localhost')\n    smtp.send(to)",
        "c2": "def resize_image(img, width, height):\n    return img.resize((width, height))",
    }
    queries = {"q0": "read rows from a csv file", "q1": "send an email message", "q2": "resize an image"}
    _write_beir(tmp_path / "cosqa" / "beir_test", corpus, queries, {"q0": "c0", "q1": "c1", "q2": "c2"})
    out = quality.main(["--data", str(tmp_path), "--sets", "cosqa", "--no-e2e", "--no-record", "--no-cache"])
    scores = out["results"]["cosqa"]
    assert set(scores) == {"lexical", "dense", "hybrid"}
    assert scores["dense"].ndcg10 == pytest.approx(1.0) and scores["hybrid"].mrr10 == pytest.approx(1.0)
