#!/usr/bin/env python3
"""An editor's first contact with the installed language server, with the standard library only
(the user's venv needs nothing for it): start COMMAND on stdio in FOLDER's workspace, initialize,
wait until the folder is indexed ($/progress end), ask workspace/symbol, then shutdown and exit.

    lsp_client.py --root FOLDER --query TEXT --expect SYMBOL -- COMMAND [ARG...]

Exits 0 when the first symbol is SYMBOL and the server exits with code 0 after exit; otherwise
prints what went wrong (and the server's stderr) and exits 1. Used by .ci/user_install.sh."""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

TIMEOUT_S = float(os.environ.get("LSP_CLIENT_TIMEOUT_S", "300"))


class Failure(Exception):
    pass


class Connection:
    def __init__(self, command: list[str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr: list[bytes] = []
        self.next_id = 0
        assert self.process.stdout is not None and self.process.stderr is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.process.stderr,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        try:
            while True:
                length = None
                while True:
                    line = stream.readline()
                    if not line:
                        return
                    if line in (b"\r\n", b"\n"):
                        break
                    name, _, value = line.decode("ascii").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                if length is None:
                    raise Failure("a message without Content-Length")
                self.inbox.put(json.loads(stream.read(length)))
        finally:
            self.inbox.put(None)  # the server closed its stdout

    def _drain(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.stderr.append(line)

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self.process.stdin.flush()
        except BrokenPipeError as exc:
            raise Failure("the server closed its stdin (it died)") from exc

    def request(self, method: str, params: Any) -> int:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        return self.next_id

    def receive(self, deadline: float, wanted: Any) -> dict[str, Any]:
        """Messages until ``wanted(message)``; answers the server's requests on the way."""
        while True:
            try:
                message = self.inbox.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise Failure("timed out waiting for the server") from None
            if message is None:
                raise Failure(f"the server closed stdout (exit code {self.process.wait(10)})")
            if "method" in message and "id" in message:  # a request to the client: accept it
                self.send({"id": message["id"], "result": None})
            if message.get("method") == "window/showMessage" and message["params"].get("type") == 1:
                print(f"lsp_client: server error message: {message['params'].get('message')}", file=sys.stderr)
            if wanted(message):
                return message

    def answer(self, request_id: int, deadline: float) -> Any:
        message = self.receive(deadline, lambda m: m.get("id") == request_id and "method" not in m)
        if "error" in message:
            raise Failure(f"error answer: {message['error']}")
        return message.get("result")


def run(root: Path, query: str, expect: str, command: list[str]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    server = Connection(command, cwd=root)
    try:
        uri = root.resolve().as_uri()
        init = server.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": uri,
                "workspaceFolders": [{"uri": uri, "name": root.name}],
                "capabilities": {"window": {"workDoneProgress": True}, "workspace": {"workspaceFolders": True}},
                "clientInfo": {"name": "lsp_client.py"},
            },
        )
        capabilities = server.answer(init, deadline)["capabilities"]
        if not capabilities.get("workspaceSymbolProvider"):
            raise Failure(f"no workspaceSymbolProvider in {capabilities}")
        server.send({"method": "initialized", "params": {}})
        started = time.monotonic()
        server.receive(
            deadline, lambda m: m.get("method") == "$/progress" and m["params"].get("value", {}).get("kind") == "end"
        )
        print(f"lsp_client: indexed in {time.monotonic() - started:.1f}s")
        symbols = server.answer(server.request("workspace/symbol", {"query": query}), deadline)
        names = [s["name"] for s in symbols or []]
        if not names or names[0] != expect:
            raise Failure(f"workspace/symbol {query!r}: expected {expect!r} first, got {names[:5]}")
        print(f"lsp_client: workspace/symbol {query!r} -> {symbols[0]['name']} at {symbols[0]['location']['uri']}")
        server.answer(server.request("shutdown", None), deadline)
        server.send({"method": "exit"})
        code = server.process.wait(timeout=30)
        if code != 0:
            raise Failure(f"the server exited with code {code} after exit")
    except BaseException:
        if server.process.poll() is None:
            server.process.kill()
        server.process.wait()
        time.sleep(0.2)  # let the stderr reader finish
        sys.stderr.write("lsp_client: the server's stderr (last lines):\n")
        sys.stderr.write(b"".join(server.stderr[-30:]).decode(errors="replace"))
        raise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--query", required=True)
    parser.add_argument("--expect", required=True)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    try:
        run(args.root, args.query, args.expect, args.command)
    except Failure as exc:
        print(f"lsp_client: FAILED: {exc}", file=sys.stderr)
        return 1
    print("lsp_client: initialize, workspace/symbol, shutdown, exit: ok (exit code 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
