"""The per-user query service (``codesearch.launch`` → ``codesearch.daemon``), end to end: the
installed ``codesearch`` command hands ``search`` and ``status`` to it and prints the same bytes,
with the same exit code, as the command run in its own process; it falls back to running the
command itself when the service is stale, dies mid-answer or has no private folder; the service
sees each commit, reopens a rebuilt index, answers concurrent callers, and exits when idle."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import write_samples

from codesearch.launch import running_services

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXE = shutil.which("codesearch", path=str(Path(sys.executable).parent)) or "codesearch"
# a client that says whether the service answered: exit 99 when the command would run here
CLIENT = (
    "import sys; from codesearch.launch import forward; code = forward(sys.argv[1:]); "
    "sys.exit(99 if code is None else code)"
)


def services(run: Path) -> list[int]:
    """The pids of the services running in the runtime (or temporary) folder ``run``."""
    return [pid for sub in ("codesearch", f"codesearch-{os.getuid()}") for pid in running_services(str(run / sub))]


def socket_of(paths: dict[str, Path]) -> str:
    """The socket a client with these paths would use."""
    code = "from codesearch.launch import socket_path; print(socket_path())"
    found = subprocess.run(
        [sys.executable, "-c", code], env=environment(paths, True), capture_output=True, text=True, check=True
    )
    return found.stdout.strip()


@contextlib.contextmanager
def runtime_folder() -> Iterator[Path]:
    """A private runtime folder (0700) with a short path (a socket's path has a limit, and pytest's
    folders can be long); its services are stopped after."""
    run = Path(tempfile.mkdtemp(prefix="cs-run-", dir="/tmp"))
    try:
        yield run
    finally:
        for pid in services(run):
            os.kill(pid, signal.SIGTERM)
        shutil.rmtree(run, ignore_errors=True)


@pytest.fixture()
def run() -> Iterator[Path]:
    with runtime_folder() as folder:
        yield folder


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """An indexed tree, a private runtime folder for the service, and the service stopped after."""
    base = tmp_path_factory.mktemp("service")
    root = base / "the [odd] project's tree"
    write_samples(root)
    (root / "lib" / "notes.py").write_text('def settle_the_ledger(book):\n    """Close the books."""\n')
    home, elsewhere = base / "home", base / "not indexed"
    elsewhere.mkdir()
    with runtime_folder() as run:
        paths = dict(root=root, home=home, run=run, elsewhere=elsewhere)
        done = cli(paths, "index", str(root), service=False)
        assert done.returncode == 0, done.stderr
        yield paths


def environment(paths: dict[str, Path], service: bool, **extra: str) -> dict[str, str]:
    env = {**os.environ, "CODESEARCH_HOME": str(paths["home"]), "XDG_RUNTIME_DIR": str(paths["run"])}
    env["TMPDIR"] = str(paths["run"])  # where a service goes when the runtime folder's path is too long
    env.update(HF_HUB_OFFLINE="1", COLUMNS="200", CODESEARCH_SERVICE="on" if service else "off", **extra)
    return env


def cli(
    paths: dict[str, Path], *args: str, service: bool = True, cwd: Path | None = None, **extra: str
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [EXE, *args], cwd=cwd, env=environment(paths, service, **extra), capture_output=True, timeout=300
    )


def forwarded(paths: dict[str, Path], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", CLIENT, *args],
        cwd=cwd,
        env=environment(paths, True),
        capture_output=True,
        timeout=300,
    )


COMMANDS = [
    (["search", "parse the links in an HTTP header"], "root"),
    (["search", "parse the links in an HTTP header", "--json", "-k", "3"], "root"),
    (["search", "greet", "--mode", "lexical", "--lang", "python,go"], "root"),
    (["search", "matrix", "--mode", "dense", "--path", "*.cpp", "-k", "2"], "root"),
    (["search", "greet the world by default", "-k", "2"], "lib"),  # paths shown from a subfolder
    (["search", "settle the ledger", "lib/notes.py", "--pieces"], "root"),
    (["status"], "root"),
    (["status", "--json"], "lib"),
    (["search", "anything"], "elsewhere"),  # no index: exit 3
    (["status"], "elsewhere"),
    (["search", "x", "-k", "0"], "root"),  # usage errors, the library's and argparse's
    (["search", "x", "--mode", "fuzzy"], "root"),
    (["search", "x", "--lang", "cobol"], "root"),
    (["search", "x", "/"], "root"),  # a PATH outside the index
    (["search", "x", "--model", "all-minilm-l6-v2"], "root"),  # another model than the index's
]


@pytest.mark.parametrize(("args", "where"), COMMANDS, ids=[" ".join(a) + f" @{w}" for a, w in COMMANDS])
def test_a_forwarded_command_prints_the_same_bytes(world: dict[str, Path], args: list[str], where: str) -> None:
    cwd = world["root"] / "lib" if where == "lib" else world[where]
    here = cli(world, *args, cwd=cwd, service=False)
    served = forwarded(world, *args, cwd=cwd)
    assert served.returncode != 99, "the service did not answer"
    assert (served.returncode, served.stdout, served.stderr) == (here.returncode, here.stdout, here.stderr)
    again = cli(world, *args, cwd=cwd)  # the installed program, through the service it started
    assert (again.returncode, again.stdout, again.stderr) == (here.returncode, here.stdout, here.stderr)
    assert b"Traceback" not in here.stderr


def test_the_socket_and_its_folder_are_private(world: dict[str, Path]) -> None:
    assert forwarded(world, "status", cwd=world["root"]).returncode == 0
    folder = world["run"] / "codesearch"
    assert folder.stat().st_mode & 0o777 == 0o700
    sockets = list(folder.glob("*.sock"))
    assert sockets and all(s.stat().st_mode & 0o777 == 0o600 for s in sockets)


def test_a_folder_others_may_enter_is_not_used(world: dict[str, Path], run: Path) -> None:
    shared = run / "shared"
    (shared / "codesearch").mkdir(parents=True)
    (shared / "codesearch").chmod(0o755)
    paths = dict(world, run=shared)
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, "status"], cwd=world["root"], env=environment(paths, True), capture_output=True
    )
    assert done.returncode == 99  # no service: the command runs in its own process
    assert cli(paths, "status", "--json", cwd=world["root"]).returncode == 0
    assert not list((shared / "codesearch").iterdir())


def test_a_service_that_dies_before_answering_is_replaced_by_the_command_itself(
    world: dict[str, Path], run: Path
) -> None:
    (run / "codesearch").mkdir(mode=0o700)
    paths = dict(world, run=run)
    path = socket_of(paths)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)

    def hang_up() -> None:
        conn, _ = listener.accept()
        conn.recv(10)  # it reads part of the request, then is gone
        conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    args = ["search", "greet", "--mode", "lexical", "--json"]
    done = cli(paths, *args, cwd=world["root"])
    listener.close()
    here = cli(world, *args, cwd=world["root"], service=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, here.stdout, here.stderr)


def test_a_service_for_another_install_is_not_used(world: dict[str, Path], run: Path) -> None:
    (run / "codesearch").mkdir(mode=0o700)
    paths = dict(world, run=run)
    path = socket_of(paths)
    other = subprocess.Popen(
        [sys.executable, "-m", "codesearch.daemon", path, "another-install"], env=environment(paths, True)
    )
    try:
        deadline = time.monotonic() + 60
        while not Path(path).exists():
            assert time.monotonic() < deadline and other.poll() is None
            time.sleep(0.05)
        done = subprocess.run(
            [sys.executable, "-c", CLIENT, "status", "--json"],
            cwd=world["root"],
            env=environment(paths, True),
            capture_output=True,
        )
        assert done.returncode == 99  # it answered for another key: the command runs here
        status = cli(paths, "status", "--json", cwd=world["root"])
        assert status.returncode == 0 and json.loads(status.stdout)["files"] > 10
    finally:
        other.terminate()
        other.wait(10)


def test_the_service_sees_each_commit_and_a_rebuilt_index(world: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "project"
    write_samples(root)
    paths = dict(world, root=root)
    assert cli(paths, "index", str(root), service=False).returncode == 0
    query = ["search", "reconcile_quarterly_totals", "--mode", "lexical", "--json"]
    assert json.loads(forwarded(paths, *query, cwd=root).stdout) == []
    (root / "books.py").write_text("def reconcile_quarterly_totals(rows):\n    return sum(rows)\n")
    assert cli(paths, "index", str(root), service=False).returncode == 0
    found = forwarded(paths, *query, cwd=root)
    assert [r["symbol"] for r in json.loads(found.stdout)] == ["reconcile_quarterly_totals"]
    rebuilt = cli(paths, "index", str(root), "--rebuild", "--model", "all-minilm-l6-v2", service=False)
    assert rebuilt.returncode == 0, rebuilt.stderr
    hybrid = forwarded(paths, "search", "reconcile quarterly totals", "--json", "-k", "1", cwd=root)
    assert hybrid.returncode == 0, hybrid.stderr
    assert [r["symbol"] for r in json.loads(hybrid.stdout)] == ["reconcile_quarterly_totals"]
    status = json.loads(forwarded(paths, "status", "--json", cwd=root).stdout)
    assert status["model"] == "all-minilm-l6-v2"


def test_concurrent_callers_each_get_their_own_answer(world: dict[str, Path]) -> None:
    queries = ["greet the world", "parse header links", "matrix multiply", "settle the ledger"] * 2
    expected = {
        q: cli(world, "search", q, "--json", "-k", "3", cwd=world["root"], service=False).stdout for q in set(queries)
    }
    with_service: dict[int, subprocess.CompletedProcess[bytes]] = {}

    def call(i: int) -> None:
        with_service[i] = forwarded(world, "search", queries[i], "--json", "-k", "3", cwd=world["root"])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for i, q in enumerate(queries):
        assert with_service[i].returncode == 0 and with_service[i].stdout == expected[q], q


def test_an_idle_service_exits_and_removes_its_socket(world: dict[str, Path], run: Path) -> None:
    paths = dict(world, run=run)
    env = environment(paths, True, CODESEARCH_SERVICE_IDLE="1")
    done = subprocess.run([sys.executable, "-c", CLIENT, "status"], cwd=world["root"], env=env, capture_output=True)
    assert done.returncode == 0
    assert len(services(run)) == 1
    deadline = time.monotonic() + 30
    while services(run) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not services(run)  # it has exited (its lock is free)
    assert not list((run / "codesearch").glob("*.sock"))
    log = next((run / "codesearch").glob("*.log")).read_text()
    assert "exiting" in log and "Traceback" not in log


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_another_user_is_never_answered(world: dict[str, Path], run: Path) -> None:
    paths = dict(world, run=run)  # not under pytest's folder, which others cannot enter
    assert forwarded(paths, "status", cwd=world["root"]).returncode == 0  # its service runs
    folder = run / "codesearch"
    path = next(folder.glob("*.sock"))
    probe = (
        "import os, socket, sys\n"
        "from codesearch.launch import receive, send\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "conn = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        "    conn.connect(sys.argv[1])\n"
        "except PermissionError:\n"
        "    sys.exit(3)\n"
        "try:\n"
        "    send(conn, {'key': sys.argv[2], 'argv': ['status'], 'cwd': '/', 'tty': [False, False], 'env': {}})\n"
        "    print(receive(conn))\n"
        "except (ValueError, ConnectionResetError, BrokenPipeError):  # it hung up, before or after the request\n"
        "    sys.exit(4)\n"
    )

    def as_nobody() -> int:
        done = subprocess.run([sys.executable, "-c", probe, str(path), "any"], capture_output=True, text=True)
        assert done.returncode in (3, 4), done.stderr
        return done.returncode

    assert as_nobody() == 3  # the folder (0700) and the socket (0600) keep another user out
    for opened in (run, folder, path):  # opened up by mistake: the service checks who asks, and hangs up
        opened.chmod(0o777)
    assert as_nobody() == 4


def test_a_runtime_folder_too_deep_for_a_socket_falls_back_to_the_temporary_folder(
    world: dict[str, Path], run: Path
) -> None:
    deep = run / ("a-runtime-folder-whose-path-is-long" * 3)
    deep.mkdir(mode=0o700)
    paths = dict(world, run=deep)
    env = dict(environment(paths, True), TMPDIR=str(run))
    done = subprocess.run([sys.executable, "-c", CLIENT, "status"], cwd=world["root"], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr  # answered by a service
    assert running_services(str(run / f"codesearch-{os.getuid()}")) and not (deep / "codesearch").exists()
