"""A real editor drives the language server: headless Neovim (Debian's ``neovim``) starts
``codesearch serve`` through its built-in LSP client on a fixture repository, waits for the
index, and runs ``workspace/symbol`` and ``codesearch/search``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_samples

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

NVIM = shutil.which("nvim")
SCRIPT = Path(__file__).parent / "editors" / "nvim_search.lua"
EXE = shutil.which("codesearch", path=str(Path(sys.executable).parent)) or "codesearch"


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().split("\n")) if text in line)


@pytest.mark.skipif(NVIM is None and not os.environ.get("CI"), reason="needs nvim (.ci/run installs Debian's neovim)")
def test_neovim_finds_the_symbol_and_line(tmp_path: Path) -> None:
    assert NVIM is not None, "CI must have nvim: .ci/run installs it"
    root = tmp_path / "repo"
    write_samples(root)
    out = tmp_path / "answers.json"
    env = {**os.environ, "CS_ROOT": str(root), "CS_OUT": str(out), "CS_CMD": EXE}
    done = subprocess.run(
        [NVIM, "--headless", "--clean", "-c", f"luafile {SCRIPT}"], env=env, capture_output=True, text=True, timeout=400
    )
    assert out.exists(), f"nvim wrote nothing: {done.stdout} {done.stderr}"
    answers = json.loads(out.read_text())
    assert "error" not in answers, answers

    links = root / "pkg" / "links.py"
    symbols = answers["symbols"]["result"]
    assert answers["symbols"].get("err") is None and answers["search"].get("err") is None
    assert symbols[0]["name"] == "parse_header_links" and "containerName" not in symbols[0]
    assert symbols[0]["location"]["uri"] == links.resolve().as_uri()
    assert symbols[0]["location"]["range"]["start"]["line"] == line_of(links, "def parse_header_links")

    found = {r["symbol"]: r for r in answers["search"]["result"]}
    assert "Session.cookies" in found, list(found)
    assert found["Session.cookies"]["range"]["start"]["line"] == line_of(links, "@property")
