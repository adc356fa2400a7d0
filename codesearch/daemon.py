"""The per-user query service: answers the ``search`` and ``status`` commands that
:mod:`codesearch.launch` forwards, from a process that has imported lancedb, loaded the query
model and opened the indexes already.

Owns the service's life and its answers:

- started by a client as ``python -m codesearch.daemon SOCKET KEY``; one per socket (an
  exclusive lock beside it: a second one started at the same moment exits at once);
- listens before it imports anything heavy, so the first client's connection waits in the
  backlog instead of failing;
- serves its own user only: the socket is 0600 in a 0700 folder, and the peer's user id is
  checked where the system reports it; a request for another key (another install or
  environment) gets no answer but the key, and its client runs the command itself;
- runs each command with :func:`codesearch.cli.main`, as the program would, one at a time: for
  its duration the current folder, the standard streams and the environment that says what the
  terminal is and where indexes live are the client's, so the output is the same, byte for
  byte, and the library's log lines reach the client's stderr;
- keeps what it opened (:class:`codesearch.search.Searchers`: the indexes, one query model per
  model): a query reads each index as last committed, like any long-lived reader;
- exits after ``CODESEARCH_SERVICE_IDLE`` seconds (default 600) without a request, and removes
  its socket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import sys
import threading
import time
from typing import IO, Any

from codesearch.heap import bound_heap
from codesearch.launch import REQUEST_ENV, receive, send

log = logging.getLogger(__name__)
IDLE_S = 600.0


def main(argv: list[str] | None = None) -> int:
    path, key = sys.argv[1:3] if argv is None else argv
    lock = _lock(path)
    if lock is None:  # another service holds this socket
        return 0
    server = _listen(path)
    bound_heap()  # it lives for many queries (codesearch.heap)
    from codesearch import cli
    from codesearch.search import Searchers
    from codesearch.store import lance  # noqa: F401  (lancedb and pyarrow: imported once, here)

    cli.searchers = Searchers()
    logging.getLogger().addHandler(_ClientStderr(cli.LOG_FORMAT))  # cli's basicConfig then adds none of its own
    logging.getLogger().setLevel(logging.WARNING)
    idle = float(os.environ.get("CODESEARCH_SERVICE_IDLE") or IDLE_S)
    print(f"codesearch service {os.getpid()}: listening on {path}", file=sys.stderr, flush=True)
    try:
        Service(server, key, idle).serve()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # before the lock goes: no other service can have bound it since
        server.close()
        lock.close()
    print(f"codesearch service {os.getpid()}: idle for {idle:g} s, exiting", file=sys.stderr, flush=True)
    return 0


class Service:
    def __init__(self, server: socket.socket, key: str, idle_s: float) -> None:
        self.server, self.key, self.idle_s = server, key, idle_s
        self.last = time.monotonic()
        self.busy = 0
        self._state = threading.Lock()
        self._running = threading.Lock()  # one command at a time: the folder and streams are the process's

    def serve(self) -> None:
        self.server.settimeout(1.0)
        while True:
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                with self._state:
                    if not self.busy and time.monotonic() - self.last > self.idle_s:
                        return
                continue
            with self._state:
                self.busy += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(30.0)
                if not same_user(conn):
                    return
                request = receive(conn)
                if not isinstance(request, dict) or request.get("key") != self.key:
                    send(conn, {"key": self.key})  # its client runs the command itself
                    return
                conn.settimeout(None)
                with self._running:
                    reply = self.run(request)
                send(conn, reply)
        except (OSError, ValueError):  # the client went away: nothing to answer
            pass
        except Exception:
            log.exception("codesearch service: a request failed")
        finally:
            with self._state:
                self.busy -= 1
                self.last = time.monotonic()

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one command as the program would, in the client's folder, terminal and streams."""
        from codesearch.cli import main as cli_main

        out: list[list[Any]] = []
        ttys = request.get("tty") or [False, False]
        encoding = str(request.get("encoding") or "utf-8")
        streams = _Stream(1, bool(ttys[0]), encoding, out), _Stream(2, bool(ttys[1]), encoding, out)
        env = request.get("env") or {}
        saved_env = {name: os.environ.get(name) for name in REQUEST_ENV}
        saved_streams = sys.stdout, sys.stderr
        try:
            os.chdir(request["cwd"])
        except (OSError, KeyError, TypeError):
            return {"key": None}  # its folder is gone: the client runs it (and says so)
        try:
            _set_env({name: env.get(name) for name in REQUEST_ENV})
            sys.stdout, sys.stderr = streams
            try:
                code = cli_main([str(arg) for arg in request["argv"]])
            except SystemExit as exc:  # argparse: a usage error, --version
                code = _exit_code(exc)
        finally:
            sys.stdout, sys.stderr = saved_streams
            _set_env(saved_env)
            os.chdir("/")
        return {"key": self.key, "out": out, "code": code}


def same_user(conn: socket.socket) -> bool:
    """Whether the peer runs as this user (where the system says; the socket's and folder's
    modes keep others out everywhere)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return True
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    return uid == os.getuid()


class _Stream:
    """A client's stdout or stderr: what is written, in order, tagged with the stream."""

    errors = "strict"

    def __init__(self, number: int, tty: bool, encoding: str, out: list[list[Any]]) -> None:
        self.number, self.tty, self.encoding, self.out = number, tty, encoding, out

    def isatty(self) -> bool:
        return self.tty

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def write(self, text: str) -> int:
        if text:
            if self.out and self.out[-1][0] == self.number:
                self.out[-1][1] += text
            else:
                self.out.append([self.number, text])
        return len(text)


class _ClientStderr(logging.Handler):
    """The CLI's log format, written to whatever ``sys.stderr`` is when a record comes: the
    client's, during its command."""

    def __init__(self, log_format: str) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(log_format))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def _set_env(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(value)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    sys.stderr.write(f"{exc.code}\n")  # as Python does for sys.exit("message")
    return 1


def _lock(path: str) -> IO[str] | None:
    import fcntl

    handle = open(path[: -len(".sock")] + ".lock", "a+", encoding="utf-8")  # noqa: SIM115 (held for the life)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _listen(path: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a service that was killed left it
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)
    try:
        server.bind(path)
    finally:
        os.umask(umask)
    os.chmod(path, 0o600)
    server.listen(64)
    return server


if __name__ == "__main__":
    sys.exit(main())
