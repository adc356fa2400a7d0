"""The ``codesearch`` program: hands ``search`` and ``status`` to the per-user query service,
else runs the command line (:mod:`codesearch.cli`) in this process.

A cold process pays about two seconds of imports (lancedb, numpy) and as much again for the
query model before its first answer; scripts and agents call the program in loops. The query
service (:mod:`codesearch.daemon`) pays that once and keeps the model and the open indexes. This
module is its client and imports the standard library only, so a forwarded query costs a Python
start-up and a round trip.

Owns:

- **what is forwarded**: ``search`` and ``status`` of a local index, unless ``--verbose`` or
  ``--help`` is asked, or ``CODESEARCH_SERVICE=off``; everything else runs here;
- **where the service listens**: one Unix socket per user and per install
  (``$XDG_RUNTIME_DIR/codesearch/``, else ``/tmp/codesearch-UID/``: a folder of mode 0700 that
  the user owns, else no service), named by :func:`service_key`: the interpreter, this package's
  files, the installed packages and the environment that decides what a query reads. An
  upgrade or another environment gets a service of its own; the old one exits when idle;
- **the wire**: one request and one reply per connection, each a 4-byte length and JSON:
  the arguments, the current folder, what the terminal is and where indexes live; the reply
  holds the output in the order it was written, and the exit code;
- **starting it on first use** (detached, its log beside its socket) and the **fallback**: when
  the service is off, cannot start, answers for another key, or dies before it has answered,
  the command runs in this process, with the same output (nothing is printed twice: a reply is
  printed only once it is whole).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
import sys
import time
from typing import Any

from codesearch import __version__

FORWARDED = ("search", "status")
OFF = ("0", "off", "no", "false")
START_S = 60.0  # how long a first call waits for the service it started to accept
REPLY_S = 600.0  # how long a call waits for an answer before running the command here
MAX_SOCKET_PATH = 103  # bytes: a Unix socket's path is at most 107 on Linux, 103 on macOS
# the environment a query depends on (the service inherits its starter's; the key names it)
KEY_ENV = ("CODESEARCH_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "LANCEDB_", "OMP_", "MKL_", "TORCH", "PYTHON", "XDG_")
KEY_ENV_NAMES = ("HOME", "LD_LIBRARY_PATH", "LD_PRELOAD")
# sent with each request and set for its command: what the terminal is (rich reads these when it
# makes a console), and where indexes live (read when a command looks for one)
REQUEST_ENV = (
    *("TERM", "COLORTERM", "NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "TTY_COMPATIBLE", "TTY_INTERACTIVE"),
    *("CODESEARCH_HOME", "XDG_DATA_HOME"),
)
_HEADER = struct.Struct(">I")


def main(argv: list[str] | None = None) -> int:
    """The ``codesearch`` console script."""
    args = sys.argv[1:] if argv is None else argv
    code = forward(args)
    if code is not None:
        return code
    from codesearch.cli import main as run_here

    return run_here(args)


def forward(argv: list[str]) -> int | None:
    """Run ``argv`` in the query service, starting it if needed, and print its output: the exit
    code, or ``None`` when the command is to run in this process instead."""
    if not forwarded(argv):
        return None
    key = service_key()
    where = socket_path(key)
    if where is None:
        return None
    try:
        request = _request(argv, key)
    except OSError:  # the current folder is gone: the command here says so
        return None
    try:
        conn = _connect(where)
        if conn is None:
            started = _start(where, key)
            conn = None if started is None else _connect(where, wait_s=START_S, started=started)
        if conn is None:
            return None
        with conn:
            conn.settimeout(REPLY_S)
            send(conn, request)
            reply = receive(conn)
    except KeyboardInterrupt:
        sys.stderr.write("codesearch: interrupted\n")
        return 130
    except (OSError, ValueError):  # it died or hung mid-answer: nothing was printed, run it here
        return None
    if not isinstance(reply, dict) or reply.get("key") != key or not isinstance(reply.get("code"), int):
        return None  # another install's service, or a refusal
    try:
        for stream, text in reply.get("out", []):
            (sys.stdout if stream == 1 else sys.stderr).write(text)
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader left (`| head`): exit 1, as the command in its own process
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1
    return int(reply["code"])


def forwarded(argv: list[str]) -> bool:
    """Whether ``argv`` goes to the service: ``search`` or ``status`` of a local index, without
    ``--verbose`` (its log is this process's) or ``--help``, unless the service is off."""
    if os.environ.get("CODESEARCH_SERVICE", "").strip().lower() in OFF:
        return False
    if not (hasattr(socket, "AF_UNIX") and hasattr(os, "getuid")):  # Windows: each command in its own process
        return False
    if not argv or argv[0] not in FORWARDED:
        return False
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg in ("-h", "--help", "-v", "--verbose") or arg.startswith("--storage-option"):
            return False
        if arg.startswith("--index-dir"):  # an object-store URI reads credentials from this environment
            value = arg.partition("=")[2] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else "")
            if "://" in value:
                return False
    return True


def service_dir() -> str | None:
    """The user's folder of service sockets (created, mode 0700): in ``$XDG_RUNTIME_DIR``, else
    (or when a socket's path there would pass the system's limit) in the temporary folder. ``None``
    when there is no private one (another user owns it, or others may enter it)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    folders = [os.path.join(runtime, "codesearch")] if runtime and os.path.isdir(runtime) else []
    folders += [os.path.join(base, f"codesearch-{os.getuid()}") for base in (os.environ.get("TMPDIR"), "/tmp") if base]
    fits = [f for f in folders if len(os.fsencode(os.path.join(f, _socket_name("0" * 64)))) <= MAX_SOCKET_PATH]
    if not fits:
        return None
    folder = fits[0]
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return folder


def running_services(folder: str | None = None) -> list[int]:
    """The pids of the services running in ``folder`` (default: this user's :func:`service_dir`):
    those whose lock beside their socket is held (each writes its pid there)."""
    import fcntl

    where = folder or service_dir()
    if where is None or not os.path.isdir(where):
        return []
    pids = []
    for name in sorted(os.listdir(where)):
        if not name.endswith(".lock"):
            continue
        with open(os.path.join(where, name), encoding="utf-8") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:  # held: its service runs
                text = lock.read().strip()
                pids += [int(text)] if text.isdigit() else []
    return pids


def socket_path(key: str | None = None) -> str | None:
    """The socket of the service for ``key`` (default: this process's :func:`service_key`)."""
    folder = service_dir()
    return None if folder is None else os.path.join(folder, _socket_name(key or service_key()))


def _socket_name(key: str) -> str:
    return f"query-{key[:20]}.sock"


def service_key() -> str:
    """What a service must share with a client to answer for it: this interpreter, the files of
    this package (an upgrade or an edit), the installed packages (their folders' times) and the
    environment that decides how a query runs and with which model (not what each request sets:
    :data:`REQUEST_ENV`)."""
    digest = hashlib.sha256()
    digest.update(f"{__version__}\0{sys.executable}\0{sys.version}\0".encode())
    package = os.path.dirname(os.path.abspath(__file__))
    for folder, subfolders, names in os.walk(package):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        for name in sorted(names):
            try:
                info = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            digest.update(f"{folder}/{name}\0{info.st_mtime_ns}\0{info.st_size}\0".encode(errors="surrogateescape"))
    for entry in sys.path[1:]:  # not the first: the script's folder, or the current one under -m
        try:
            digest.update(f"{entry}\0{os.stat(entry).st_mtime_ns}\0".encode(errors="surrogateescape"))
        except OSError:
            continue
    for name in sorted(os.environ):
        if (name.startswith(KEY_ENV) or name in KEY_ENV_NAMES) and name not in REQUEST_ENV:
            digest.update(f"{name}={os.environ[name]}\0".encode(errors="surrogateescape"))
    return digest.hexdigest()


def _request(argv: list[str], key: str) -> dict[str, Any]:
    env = {name: os.environ.get(name) for name in REQUEST_ENV}
    ttys = [_isatty(sys.stdout), _isatty(sys.stderr)]
    if any(ttys) and env["COLUMNS"] is None:  # rich sizes a terminal from its file descriptors
        for fd in (0, 1, 2):
            try:
                size = os.get_terminal_size(fd)
            except OSError:
                continue
            env["COLUMNS"], env["LINES"] = str(size.columns), env["LINES"] or str(size.lines)
            break
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    return dict(key=key, argv=argv, cwd=os.getcwd(), tty=ttys, encoding=encoding, env=env)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _connect(path: str, wait_s: float = 0.0, started: Any = None) -> socket.socket | None:
    """A connection to the service at ``path``, waiting up to ``wait_s`` for the one ``started``
    (a process) to listen; ``None`` at once when that one failed (one that found another service
    starting exits 0: the wait goes on for that one)."""
    deadline = time.monotonic() + wait_s
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
            return conn
        except OSError:
            conn.close()
            if time.monotonic() >= deadline or (started is not None and started.poll() not in (None, 0)):
                return None
            time.sleep(0.02)


def _start(path: str, key: str) -> Any:
    """Start the service for ``path`` in the background (its own session, its log beside the
    socket): the process, or ``None`` when it could not be started. A second one started at the
    same moment finds the first and exits (code 0)."""
    import subprocess

    try:
        with open(path[: -len(".sock")] + ".log", "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "codesearch.daemon", path, key],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd="/",
                start_new_session=True,
                close_fds=True,
            )
    except OSError:
        return None


def send(conn: socket.socket, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode("utf-8")
    conn.sendall(_HEADER.pack(len(data)) + data)


def receive(conn: socket.socket) -> Any:
    """One message, or ``ValueError`` when the peer closed before it was whole."""
    (size,) = _HEADER.unpack(_read(conn, _HEADER.size))
    return json.loads(_read(conn, size).decode("utf-8"))


def _read(conn: socket.socket, size: int) -> bytes:
    parts, left = [], size
    while left:
        part = conn.recv(min(left, 1 << 20))
        if not part:
            raise ValueError("the connection closed mid-message")
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
