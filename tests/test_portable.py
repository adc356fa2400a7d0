"""Portability: every module of ``codesearch`` and ``lsp`` imports where POSIX-only standard
modules are missing (as on Windows), and the writer lock keeps its POSIX behaviour across real
processes: a second writer fails at once with exit 7, and a killed writer frees the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from codesearch.errors import IndexLockedError
from codesearch.index.runs import LOCK_FILE, writer_lock

REPO = Path(__file__).resolve().parent.parent
# standard modules that exist on POSIX only: what Windows lacks
POSIX_ONLY = ("fcntl", "termios", "tty", "pty", "pwd", "grp", "resource", "syslog")

IMPORT_ALL = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    for name in {blocked!r}:
        sys.modules[name] = None  # "import fcntl" now raises ImportError, as on Windows
    failed = []
    for top in ("codesearch", "lsp"):
        package = importlib.import_module(top)
        found = pkgutil.walk_packages(package.__path__, top + ".")
        names = [top] + [m.name for m in found if not m.name.endswith(".__main__")]  # scripts, not modules
        for name in names:
            try:
                importlib.import_module(name)
            except Exception as exc:
                failed.append(f"{{name}}: {{type(exc).__name__}}: {{exc}}")
            else:
                print("imported", name)
    print("\\n".join(failed), file=sys.stderr)
    sys.exit(1 if failed else 0)
    """
)


def run_python(code: str, **kwargs):  # type: ignore[no-untyped-def]
    env = {**os.environ, "LANCEDB_LOG": "error"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, text=True, **kwargs)


def test_every_module_imports_without_posix_only_modules() -> None:
    proc = run_python(IMPORT_ALL.format(blocked=POSIX_ONLY), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    imported = {line.split()[1] for line in out.splitlines() if line.startswith("imported ")}
    # the modules that matter are really among them (the walk found the packages)
    assert {
        "codesearch",
        "codesearch.cli",
        "codesearch.index.runs",
        "codesearch.index.watcher",
        "lsp.server",
    } <= imported


HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from codesearch.index.runs import writer_lock
    with writer_lock(Path(sys.argv[1])):
        print("held", flush=True)
        time.sleep(600)
    """
)


def test_a_second_writer_fails_at_once_and_a_killed_writer_frees_the_lock(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    env = {**os.environ, "LANCEDB_LOG": "error", "CODESEARCH_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(index_dir)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert (index_dir / LOCK_FILE).exists()
        with pytest.raises(IndexLockedError, match="another codesearch process"), writer_lock(index_dir):
            pass
        # the command line: one line, exit 7, and no waiting
        root = tmp_path / "tree"
        root.mkdir()
        (root / "a.py").write_text("def f():\n    return 1\n")
        done = subprocess.run(
            [sys.executable, "-m", "codesearch.cli", "index", str(root), "--index-dir", str(index_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 7, done.stderr
        assert "another codesearch process" in done.stderr and "Traceback" not in done.stderr
    finally:
        holder.send_signal(signal.SIGKILL)  # no cleanup runs: the OS must drop the lock
        holder.wait(timeout=30)
    assert (index_dir / LOCK_FILE).exists()  # the file stays; only the lock is gone
    # a second holder in one process fails too
    with writer_lock(index_dir), pytest.raises(IndexLockedError), writer_lock(index_dir):
        pass
    with writer_lock(index_dir):  # released on exit
        pass
