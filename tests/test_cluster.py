"""The Ray engine (``codesearch index --engine ray``) on a real local Ray cluster.

Every Ray run happens in a child process inside a private network namespace with only loopback
up (``unshare -n``): Ray binds every interface it sees, and a test must not open ports to the
network. The engine also starts its local cluster on 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

EXE = str(Path(sys.executable).with_name("codesearch"))
WORKERS = 2


def _isolation() -> list[str] | None:
    """The command prefix that runs a program with only loopback, or None where it cannot."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    prefix = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]
    probe = subprocess.run([*prefix, "sh", "-c", "ip link set lo up"], capture_output=True)
    return [*prefix, "sh", "-c", 'ip link set lo up && exec "$@"', "sh"] if probe.returncode == 0 else None


ISOLATED = _isolation()
HAS_RAY = importlib.util.find_spec("ray") is not None
# away from CI a missing piece skips; under CI (CI=1) it fails: CI must run the Ray engine
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not HAS_RAY and not os.environ.get("CI"),
        reason="needs the 'distributed' extra (pip install -e '.[dev]' has it)",
    ),
    pytest.mark.skipif(
        ISOLATED is None and not os.environ.get("CI"), reason="needs unshare -n (a private network namespace)"
    ),
]


@pytest.fixture(autouse=True)
def _ray_installed() -> None:
    assert HAS_RAY, "CI must have Ray: the 'dev' extra installs the 'distributed' one (ray[data])"


def ray_index(root: Path, index_dir: Path | str, *extra: str) -> list[str]:
    assert ISOLATED is not None, "CI must be able to run Ray in a private network namespace (unshare -n)"
    return [
        *ISOLATED,
        EXE,
        "index",
        str(root),
        "--engine",
        "ray",
        "--workers",
        str(WORKERS),
        "--index-dir",
        str(index_dir),
        "--dtype",
        "float32",
        "--json",
        *extra,
    ]


def run_ray(root: Path, index_dir: Path | str, *extra: str) -> dict[str, Any]:
    done = subprocess.run(ray_index(root, index_dir, *extra), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_tree(root: Path, files: int = 40, functions: int = 6) -> None:
    """Distinct functions in many files, a copy of one file (same texts twice), an empty file
    and a binary one."""
    for i in range(files):
        lines = [f'"""Stage {i} of the demo pipeline."""', ""]
        for j in range(functions):
            lines += [
                f"def stage_{i}_step_{j}(value: int) -> int:",
                f'    """Step {j} of stage {i}: scale by {i + 1}, then add {j}."""',
                f"    scaled = value * {i + 1}",
                f"    return scaled + {j}",
                "",
                "",
            ]
        path = root / f"pkg{i % 4}" / f"stage_{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines), encoding="utf-8")
    shutil.copy(root / "pkg0" / "stage_0.py", root / "copy_of_stage_0.py")
    (root / "empty.py").write_text("", encoding="utf-8")
    (root / "blob.py").write_bytes(b"\x00\x01binary\x00" * 100)  # NUL bytes: skipped at load


def contents(index_dir: Path | str) -> tuple[dict[str, tuple[str, tuple[str, ...]]], dict[str, np.ndarray], int]:
    """(catalog: path → (content hash, chunk ids), chunk id → vector, chunk rows)."""
    from codesearch.store import Store, index_location

    store = Store.open(index_location(index_dir))
    catalog = {path: (r.file_hash, tuple(r.chunk_ids)) for path, r in store.file_catalog().items()}
    table = store.chunks.to_arrow()
    ids = table.column("id").to_pylist()
    vectors = np.asarray(table.column("vector").to_pylist(), dtype=np.float32)
    assert all(table.column("embedded").to_pylist())
    return catalog, dict(zip(ids, vectors, strict=True)), len(ids)


def local_index(root: Path, index_dir: Path) -> None:
    from codesearch.index import Indexer

    Indexer(root, index_dir, dtype="float32").run()


def test_ray_engine_writes_what_the_local_engine_writes_to_an_object_store_uri(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    write_tree(root)
    local_index(root, tmp_path / "local")
    remote = f"file://{tmp_path}/ray-index"  # an object-store URI, as a cluster would write to s3://
    stats = run_ray(root, remote)

    local_catalog, local_vectors, local_rows = contents(tmp_path / "local")
    ray_catalog, ray_vectors, ray_rows = contents(remote)
    assert ray_catalog == local_catalog  # same files, hashes and chunk ids, in order
    assert set(ray_vectors) == set(local_vectors) and ray_rows == local_rows == len(local_vectors)
    for chunk_id, vector in local_vectors.items():
        np.testing.assert_allclose(ray_vectors[chunk_id], vector, atol=2e-5)
    assert stats["files"] == len(local_catalog) and stats["skipped"] == {"binary": 1} and stats["engine"] == "ray"
    # the copied file's texts were embedded once
    assert stats["chunks_embedded"] + stats["chunks_reused"] == ray_rows
    assert stats["chunks_embedded"] < ray_rows

    # a second run: nothing to do; then an edit, a deletion and a new file
    assert run_ray(root, remote)["chunks_embedded"] == 0
    (root / "pkg1" / "stage_1.py").write_text('def changed() -> int:\n    """Now different."""\n    return 1\n')
    (root / "pkg2" / "stage_2.py").unlink()
    (root / "new.py").write_text("def brand_new(x):\n    return x - 1\n")
    again = run_ray(root, remote)
    assert again["files_changed"] == 2 and again["files_deleted"] == 1 and again["chunks_embedded"] == 2
    local_index(root, tmp_path / "local")
    assert contents(remote)[0] == contents(tmp_path / "local")[0]


def _wait_for_commits(index_dir: Path, proc: subprocess.Popen[str], at_least: int) -> int:
    """Wait until the run has committed ``at_least`` embedded chunks; returns how many."""
    from codesearch.index import read_progress

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended too early: {proc.communicate()[1][-2000:]}"
        running = read_progress(index_dir) or {}
        if running.get("chunks_embedded", 0) >= at_least:
            return int(running["chunks_embedded"])
        time.sleep(0.2)
    raise AssertionError("no commit within 300 s")


def start_midway(tmp_path: Path) -> tuple[Path, Path, subprocess.Popen[str]]:
    """A Ray run over an 80-file tree, in its own session, once its first batch is committed."""
    root = tmp_path / "tree"
    write_tree(root, files=80)
    index_dir = tmp_path / "ray"
    proc = subprocess.Popen(
        ray_index(root, index_dir, "--files-per-task", "4"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for_commits(index_dir, proc, at_least=1)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return root, index_dir, proc


def test_a_killed_driver_resumes_without_embedding_anything_twice(tmp_path: Path) -> None:
    root, index_dir, proc = start_midway(tmp_path)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local cluster it started
    proc.communicate(timeout=60)

    from codesearch.store import Store

    store = Store.open(index_dir)
    cached_before = store.count_cached()
    committed = store.count_files()
    unique_texts = len(set(store.chunks.to_arrow().column("vkey").to_pylist())) if committed else 0
    assert cached_before > 0 and unique_texts <= cached_before
    total_files = 80 + 2  # the copy and the empty file; the binary one is skipped
    assert committed < total_files, "the run finished before it was killed: nothing to resume"

    stats = run_ray(root, index_dir)
    assert stats["files"] == total_files
    local_index(root, tmp_path / "local")
    ray_catalog, ray_vectors, ray_rows = contents(index_dir)
    local_catalog, local_vectors, _ = contents(tmp_path / "local")
    assert ray_catalog == local_catalog and ray_rows == len(ray_vectors) == len(local_vectors)  # no duplicate rows
    # every text is embedded exactly once over both runs: the resumed run computes only the rest
    assert cached_before + stats["chunks_embedded"] == Store.open(index_dir).count_cached()
    assert Store.open(index_dir).count_cached() == len({key for key in _vkeys(index_dir)})


def _vkeys(index_dir: Path) -> list[str]:
    from codesearch.store import Store

    return Store.open(index_dir).chunks.to_arrow().column("vkey").to_pylist()


def test_a_killed_embedding_worker_is_replaced_and_the_rows_are_exact(tmp_path: Path) -> None:
    root, index_dir, proc = start_midway(tmp_path)
    try:
        workers = subprocess.run(["pgrep", "-s", str(proc.pid), "-f", "EmbedWorker"], capture_output=True, text=True)
        pids = [int(pid) for pid in workers.stdout.split()]
        assert pids, "no embedding worker process found"
        os.kill(pids[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["files"] == 82
    local_index(root, tmp_path / "local")
    ray_catalog, ray_vectors, ray_rows = contents(index_dir)
    local_catalog, local_vectors, _ = contents(tmp_path / "local")
    assert ray_catalog == local_catalog and ray_rows == len(local_vectors)
    for chunk_id, vector in local_vectors.items():
        np.testing.assert_allclose(ray_vectors[chunk_id], vector, atol=2e-5)
