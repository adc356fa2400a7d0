"""What a user installs works without the development tools: every third-party module that
``codesearch/`` and ``lsp/`` import at run time is a declared dependency of the distribution (so
``pip install`` without extras gives a ``codesearch serve`` that starts), the distribution has a
name of its own on PyPI, and the VS Code extension's ``.vsix`` builds from a clean checkout.

The installed product itself (wheel, fresh venv, no extras, index/search/status and the language
server over stdio) is driven by ``.ci/user_install.sh`` in CI."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import codesearch
from codesearch.chunking.languages import SPECS

# the checkout under test (PYTHONPATH=/other/checkout runs these tests against that one)
ROOT = Path(codesearch.__file__).resolve().parents[1]
RUNTIME_PACKAGES = ("codesearch", "lsp")
DEV_EXTRAS = {"dev", "test", "tests", "lint", "docs", "typing"}
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
NPM = shutil.which("npm")
EXTENSION = ROOT / "vscode-extension"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution_of(requirement: str) -> str:
    return normalize(re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0])


def extras_of(requirement: str) -> set[str]:
    match = re.match(r"\s*[\w.-]+\s*\[([^\]]*)\]", requirement)
    return {normalize(e) for e in match.group(1).split(",")} if match else set()


class _Imports(ast.NodeVisitor):
    """Top-level module names imported by one file; ``eager`` ones run when the module is imported
    (not inside a function, an ``if TYPE_CHECKING:`` block or a ``try`` that catches ImportError)."""

    def __init__(self) -> None:
        self.found: list[tuple[str, int, bool]] = []
        self._lazy = 0

    def _nested(self, node: ast.AST, lazy: bool) -> None:
        self._lazy += lazy
        self.generic_visit(node)
        self._lazy -= lazy

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._nested(node, True)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._nested(node, True)

    def visit_If(self, node: ast.If) -> None:
        self._nested(node, "TYPE_CHECKING" in ast.unparse(node.test))

    def visit_Try(self, node: ast.Try) -> None:
        caught = " ".join(ast.unparse(h.type) for h in node.handlers if h.type is not None)
        self._nested(node, "ImportError" in caught or "ModuleNotFoundError" in caught)

    def visit_Import(self, node: ast.Import) -> None:
        self.found += [(alias.name.split(".")[0], node.lineno, not self._lazy) for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self.found.append((node.module.split(".")[0], node.lineno, not self._lazy))

    def visit_Call(self, node: ast.Call) -> None:  # importlib.import_module("literal")
        module = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
        if ast.unparse(node.func).endswith("import_module") and isinstance(module, str):
            self.found.append((module.split(".")[0], node.lineno, False))
        self.generic_visit(node)


def third_party_imports() -> dict[str, tuple[str, bool]]:
    """module → (first place it is imported, whether any import of it is eager)."""
    own = set(RUNTIME_PACKAGES) | {p.parent.name for p in ROOT.glob("*/__init__.py")}
    skip = set(sys.stdlib_module_names) | own | {"__future__"}
    found: dict[str, tuple[str, bool]] = {}
    for package in RUNTIME_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            visitor = _Imports()
            visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
            for top, line, eager in visitor.found:
                if top not in skip:
                    where, was_eager = found.get(top, (f"{path.relative_to(ROOT)}:{line}", False))
                    found[top] = (where, was_eager or eager)
    # the tree-sitter grammars are loaded by module name (chunking/languages.py)
    for spec in SPECS.values():
        found.setdefault(spec.module.split(".")[0], ("codesearch/chunking/languages.py (SPECS)", False))
    return found


def test_every_runtime_import_is_a_declared_dependency() -> None:
    core = {distribution_of(r) for r in PROJECT["dependencies"]}
    extras = {
        distribution_of(r)
        for name, requirements in PROJECT.get("optional-dependencies", {}).items()
        if name not in DEV_EXTRAS
        for r in requirements
    }
    providers = metadata.packages_distributions()
    imports = third_party_imports()
    assert {"torch", "pygls", "lsprotocol"} <= imports.keys(), sorted(imports)  # the scan sees the imports
    problems = []
    for module, (where, eager) in sorted(imports.items()):
        # not installed here (flash_attn without a GPU): its distribution is named like the module
        distributions = {normalize(d) for d in providers.get(module, [])} or {normalize(module)}
        if not distributions & (core | extras):
            problems.append(f"{module} ({where}, from {sorted(distributions)}) is not a runtime dependency")
        elif eager and not distributions & core:
            problems.append(f"{module} ({where}) is imported at module level but only declared in an extra")
    assert not problems, "\n".join(problems)


def test_the_distribution_is_ours_and_every_install_line_names_it() -> None:
    name = normalize(PROJECT["name"])
    # "codesearch" on PyPI is another project: `pip install codesearch` gets someone else's software
    assert name != "codesearch"
    assert PROJECT["scripts"]["codesearch"] == "codesearch.launch:main"  # the command keeps its name
    # an extra that names the project itself (dev pulls in distributed) must use the project's name,
    # or pip fetches the other project from PyPI
    for extra, requirements in PROJECT["optional-dependencies"].items():
        for requirement in requirements:
            if extras_of(requirement) & set(PROJECT["optional-dependencies"]):
                assert distribution_of(requirement) == name, (extra, requirement)

    readme = (ROOT / "README.md").read_text()
    for installer in ("pip install", "pipx install", "uv tool install"):
        assert re.search(rf"{installer} (?:'|\")?{re.escape(PROJECT['name'])}\b", readme), installer
    assert "download.pytorch.org/whl/cpu" in readme  # the CPU-only torch build on a normal machine

    wrong = re.compile(r"\b(?:pip|pipx|uv tool|uv pip) install +(?:--\S+ +)*['\"]?codesearch(?![\w-])")
    texts = [ROOT / "README.md", *(ROOT / "codesearch").rglob("*.py"), *(ROOT / "lsp").rglob("*.py")]
    texts += [EXTENSION / "README.md", *(EXTENSION / "src").rglob("*.ts")]
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in texts
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if wrong.search(line)
    ]
    assert not hits, "these tell users to install PyPI's other codesearch:\n" + "\n".join(hits)


@pytest.mark.e2e
@pytest.mark.skipif(NPM is None and not os.environ.get("CI"), reason="needs npm (CI has it)")
def test_the_vsix_builds_from_a_clean_checkout(tmp_path: Path) -> None:
    """``npm run package`` (vsce package) on a tree that was never compiled: the extension's
    ``vscode:prepublish`` script must build dist/extension.js first."""
    assert NPM is not None, "CI must have npm"
    assert (EXTENSION / "node_modules").is_dir(), "run `make extension-tools` (npm ci) first"
    built = {"node_modules", "dist", "out", "test-results", "codesearch.vsix"}
    clean = tmp_path / "vscode-extension"
    shutil.copytree(EXTENSION, clean, ignore=lambda folder, names: [n for n in names if n in built])
    (clean / "node_modules").symlink_to(EXTENSION / "node_modules")
    done = subprocess.run([NPM, "run", "package"], cwd=clean, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with zipfile.ZipFile(clean / "codesearch.vsix") as vsix:
        entry = vsix.read("extension/dist/extension.js")
    assert b"codesearch.openSearch" in entry  # the extension's own code, bundled
