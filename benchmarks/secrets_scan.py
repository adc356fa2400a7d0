"""Secret scanning speed: ``find_secrets`` (each pattern behind its literal hints) against every
pattern run over the whole text (what it did before the hints), on the files of a real tree.

Both are timed in one run, interleaved file by file (this VM's speed drifts), and must find the
same secrets. Every file is read by both passes of an index run and redacted before chunking.

    python benchmarks/secrets_scan.py [TREE] [--no-record]   # default: the Django sdist of index_bench
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, publish
from index_bench import WORK

from codesearch.files.secrets import find_secrets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tree", nargs="?", type=Path, default=WORK / "Django-5.1.4")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    texts = []
    for path in sorted(args.tree.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".js", ".html", ".txt", ".json", ".css", ".rst", ".md"):
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    megabytes = sum(map(len, texts)) / 1e6
    before = after = 0.0
    findings = 0
    for text in texts:
        started = time.perf_counter()
        old = find_secrets(text, hints=False)
        before += time.perf_counter() - started
        started = time.perf_counter()
        new = find_secrets(text)
        after += time.perf_counter() - started
        if new != old:
            raise SystemExit("find_secrets and the unhinted scan disagree")
        findings += len(new)
    table = [
        "| scan | seconds | MB/s |",
        "| --- | --- | --- |",
        f"| every pattern over every text (before) | {before:.2f} | {megabytes / before:.1f} |",
        f"| patterns behind their hints (find_secrets) | {after:.2f} | {megabytes / after:.1f} |",
        f"| speed-up | {before / after:.1f}x | |",
    ]
    body = [
        machine_line(),
        f"Tree: {args.tree.name}, {len(texts):,} text files, {megabytes:.1f} MB; {findings} secrets found, "
        "the same by both scans. Interleaved file by file.",
        "",
        *table,
    ]
    publish(
        "Secret scanning: patterns behind literal hints",
        "python benchmarks/secrets_scan.py",
        body,
        record=not args.no_record,
    )


if __name__ == "__main__":
    main()
