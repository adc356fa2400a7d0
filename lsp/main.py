"""Starting the language server: arguments, logging to stderr, and a stdout kept for protocol
messages only (anything else that writes to file descriptor 1 lands on stderr)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from codesearch import __version__

HOST = "127.0.0.1"  # never another interface


class _ClientLog(logging.Handler):
    """Warnings and errors of the library also go to the client (``window/logMessage``)."""

    def emit(self, record: logging.LogRecord) -> None:
        from lsprotocol import types

        from lsp.server import server

        kind = types.MessageType.Error if record.levelno >= logging.ERROR else types.MessageType.Warning
        message = types.LogMessageParams(type=kind, message=self.format(record))
        server.soon(server.window_log_message, message)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codesearch serve", description="the codesearch language server")
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default)")
    transport.add_argument("--tcp", type=int, metavar="PORT", help=f"listen on {HOST}:PORT instead of stdio")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    parser.add_argument("--version", action="version", version=f"codesearch {__version__}")
    args = parser.parse_args(argv)
    os.environ.setdefault("LANCEDB_LOG", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="codesearch-lsp %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pygls").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    client_log = _ClientLog(logging.WARNING)
    client_log.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logging.getLogger("codesearch").addHandler(client_log)

    from lsp.server import server

    if args.tcp is not None:
        server.start_tcp(HOST, args.tcp)
        return 0
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints (a library, a C extension) go to stderr
    sys.stdout = sys.stderr
    code = 0
    try:
        server.start_io(sys.stdin.buffer, protocol_out)  # returns at the end of stdin: a client gone without exit
    except Exception:
        logging.getLogger("codesearch.lsp").exception("the server failed")
        code = 1
    server.stop_and_exit(code, "the end of stdin")  # as exit does: bounded, never through interpreter shutdown
    return code
