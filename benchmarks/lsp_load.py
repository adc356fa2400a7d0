"""Load figures of the language server: 16 concurrent searchers (codesearch/search and
workspace/symbol) while the watcher absorbs a burst of file changes.

Runs the load test (tests/test_load.py, the same scenario CI runs) with a report file, prints a
table and appends it to benchmarks/RESULTS.md.

    python benchmarks/lsp_load.py [--changes 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, machine_line

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=5000, help="files changed in the burst (default: 5000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lsp-load-") as tmp:
        report = Path(tmp) / "figures.json"
        env = {**os.environ, "CODESEARCH_LOAD_FILES": str(args.changes), "CODESEARCH_LOAD_REPORT": str(report)}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_load.py"]
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"the load test failed:\n{done.stdout[-3000:]}")
        figures = json.loads(report.read_text())
    body = [
        machine_line(),
        "",
        f"{figures['searchers']} concurrent searchers (alternating codesearch/search and workspace/symbol) against "
        f"the real server over stdio while {figures['changes']:,} files change (half edits, half new files); "
        "tiny random ModernBERT (the load is on the server, watcher and store); the index equals a clean index "
        "of the final tree at the end.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| requests answered | {figures['requests']:,} |",
        f"| errors | {figures['errors']} |",
        f"| latency p50 / p95 / max | {figures['p50_ms']} / {figures['p95_ms']} / {figures['max_ms']} ms |",
        f"| burst written in | {figures['burst_written_s']} s |",
        f"| burst absorbed (indexed, embedded, idle) after | {figures['burst_absorbed_s']} s |",
    ]
    print("\n".join(body))
    append_results("Language server under load", f"python benchmarks/lsp_load.py --changes {args.changes}", body)


if __name__ == "__main__":
    main()
