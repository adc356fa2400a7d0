"""A cold ``codesearch`` command, from process start to its printed answer, as scripts and agents
call it: each call a new process.

Tree: the ``sphinx`` package of the Sphinx 8.1.3 sdist from PyPI (about 10k chunks; downloaded
once into benchmarks/.work/), or any folder with ``--tree``; indexed once. Measured, each call a
subprocess of the installed ``codesearch`` with its output captured:

- in its own process (``CODESEARCH_SERVICE=off``): ``search`` (hybrid, the default), ``search
  --mode lexical`` and ``status``, ``--runs`` calls each;
- through the per-user query service: the **first call** of each command (no service running:
  the call starts it and waits for its answer), then ``--runs`` following calls;
- whether both ways print the same bytes, and the service's RSS at the end.

Targets (issue 21): search p95 < 1.0 s, lexical and status p95 < 0.5 s.

    python benchmarks/cli_latency.py [--tree DIR] [--runs 20] [--no-record]

Prints a table and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, machine_line
from index_bench import fetch_sdist, percentile

from codesearch.launch import running_services

WORK = Path(__file__).resolve().parent / ".work" / "cli_latency"
SDIST = "sphinx==8.1.3"
QUERIES = [
    "resolve a cross reference to a python object",
    "write the search index for the html builder",
    "parse the options of a directive",
    "translate a docutils node to latex",
    "read the configuration file conf.py",
    "emit an event to connected extensions",
    "copy static files into the output folder",
    "warn about a missing reference target",
    "highlight a code block with pygments",
    "build the table of contents tree",
]
COMMANDS = {  # the arguments of call i
    "search (hybrid)": lambda i: ["search", QUERIES[i % len(QUERIES)], "-k", "10"],
    "search --mode lexical": lambda i: ["search", QUERIES[i % len(QUERIES)], "--mode", "lexical", "-k", "10"],
    "status": lambda i: ["status"],
}
TARGETS = {"search (hybrid)": 1.0, "search --mode lexical": 0.5, "status": 0.5}


def call(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, bytes, bytes]:
    started = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return elapsed, done.stdout, done.stderr


def stop_services(run: Path) -> None:
    for pid in running_services(str(run / "codesearch")):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, help=f"folder to index (default: the sphinx package of the {SDIST} sdist)")
    parser.add_argument("--runs", type=int, default=20, help="calls per command and way, after the first")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    tree = (args.tree or fetch_sdist(SDIST) / "sphinx").resolve()
    label = str(args.tree) if args.tree else f"the sphinx package of the {SDIST} sdist"
    exe = shutil.which("codesearch", path=str(Path(sys.executable).parent)) or "codesearch"
    home, run = WORK / "home", WORK / "run"
    run.mkdir(parents=True, exist_ok=True)
    run.chmod(0o700)
    base = {**os.environ, "CODESEARCH_HOME": str(home), "XDG_RUNTIME_DIR": str(run), "HF_HUB_OFFLINE": "1"}
    off, on = {**base, "CODESEARCH_SERVICE": "off"}, {**base, "CODESEARCH_SERVICE": "on"}

    stop_services(run)
    indexed = subprocess.run([exe, "index", str(tree), "--json"], env=off, capture_output=True, text=True)
    if indexed.returncode:
        raise SystemExit(f"indexing failed: {indexed.stderr[-2000:]}")
    stats = json.loads(indexed.stdout)
    print(f"tree: {label}: {stats['files']} files, {stats['chunks']} chunks", flush=True)

    rows, identical, worst, service_rss = [], True, {}, {}
    for name, make in COMMANDS.items():
        here = [call([exe, *make(i)], off, tree) for i in range(args.runs)]
        stop_services(run)  # the first call starts the service
        first = call([exe, *make(0)], on, tree)
        served = [call([exe, *make(i)], on, tree) for i in range(args.runs)]
        identical &= all(s[1:] == h[1:] for s, h in zip(served, here, strict=True)) and first[1:] == here[0][1:]
        t_here, t_served = [t for t, *_ in here], [t for t, *_ in served]
        worst[name] = percentile(t_served, 0.95)
        rows.append(
            f"| {name} | {percentile(t_here, 0.5):.2f} / {percentile(t_here, 0.95):.2f} s | {first[0]:.2f} s | "
            f"{percentile(t_served, 0.5) * 1000:.0f} / {percentile(t_served, 0.95) * 1000:.0f} ms | "
            f"{TARGETS[name]:.1f} s | {'met' if worst[name] < TARGETS[name] else 'NOT met'} |"
        )
        print(rows[-1], flush=True)
        service_rss[name] = sum(rss_mib(pid) for pid in running_services(str(run / "codesearch")))
    stop_services(run)

    table = [
        f"| command | own process, p50 / p95 ({args.runs} calls) | service: first call (starts it) | "
        f"service: following calls, p50 / p95 ({args.runs}) | target p95 | |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
    ]
    summary = (
        f"Output through the service identical to the command's own process: {'yes' if identical else 'NO'}. "
        "Service RSS after each command's calls (it exits after 10 idle minutes): "
        + ", ".join(f"{name} {rss:.0f} MiB" for name, rss in service_rss.items())
        + "."
    )
    print("\n".join(table), summary, sep="\n", flush=True)
    if not args.no_record:
        command = "python benchmarks/cli_latency.py" + (f" --tree {args.tree}" if args.tree else "")
        command += f" --runs {args.runs}" if args.runs != 20 else ""
        body = [
            machine_line(),
            f"Tree: {label}: {stats['files']} files, {stats['chunks']} chunks, the offline default model. Each "
            "call a new process of the installed `codesearch`, timed from its start to its exit, output captured.",
            "",
            *table,
            "",
            summary,
        ]
        append_results("Cold CLI: each call a new process", command, body)


if __name__ == "__main__":
    main()
