"""The heap policy of long-lived processes (``codesearch.heap``), on glibc: once bounded, a block of
a few MiB is mapped on its own (its pages go back when it is freed) even after a torch-sized
block has pushed glibc's dynamic threshold up, except while the embedder runs; each case in a fresh
process, since the policy is process-wide. A watcher bounds the heap of its process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")

PROBE = r"""
import ctypes, json, sys
from codesearch import heap

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info

def mapped(size):  # whether a block of this size is mapped on its own, not carved from an arena
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(size)
    during = libc.mallinfo2().hblkhd
    libc.free(block)
    return during - before >= size

libc.free(libc.malloc(16 << 20))  # a freed 16 MiB block: glibc's dynamic threshold rises to it
# each block larger than the last: glibc takes a free chunk that fits before it maps a new one
seen = {"before": mapped(1 << 20)}
if sys.argv[1] == "bound":
    heap.bound_heap()
seen["bound"] = mapped(2 << 20)
with heap.roomy_heap():
    seen["embedding"] = mapped(3 << 20)
seen["after"] = mapped(4 << 20)
print(json.dumps(seen))
"""


def probe(how: str) -> dict[str, bool]:
    done = subprocess.run([sys.executable, "-c", PROBE, how], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_a_bounded_heap_maps_large_blocks_except_while_embedding() -> None:
    assert probe("bound") == {"before": False, "bound": True, "embedding": False, "after": True}


def test_glibcs_own_policy_carves_them_from_the_arena() -> None:  # what fragmented a watcher's heap
    assert probe("default") == {"before": False, "bound": False, "embedding": False, "after": False}


@pytest.mark.slow
def test_a_watcher_bounds_its_process_heap(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from codesearch import heap
    from codesearch.index.watcher import Watcher

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("def f():\n    return 1\n")
    watcher = Watcher(tmp_path / "src", tmp_path / "index", embedder=embedder)
    try:
        watcher.start()
        assert heap.bounded()
    finally:
        watcher.stop()
