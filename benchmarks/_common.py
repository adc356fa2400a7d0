"""Helpers shared by the benchmark scripts: machine description and RESULTS.md appends."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = "not installed"
    return (
        f"Machine: {cpu}, {os.cpu_count()} cores, {mem_gib:.0f} GiB, Python {platform.python_version()}, "
        f"torch {torch_version}"
    )


def append_results(title: str, command: str, body: list[str]) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = [f"## {title}", "", f"Date: {stamp}. Command: `{command}`", "", *body, ""]
    existing = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n\n"
    RESULTS.write_text(existing.rstrip("\n") + "\n\n" + "\n".join(text), encoding="utf-8")


def publish(title: str, command: str, body: list[str], record: bool = True) -> None:
    """Print a benchmark's report; append it to RESULTS.md under ``title`` unless ``record`` is off."""
    print("\n".join(body))
    if record:
        append_results(title, command, body)
