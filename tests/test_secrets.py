"""Secrets stay out of the index: secret-bearing files are left out, secrets inside files are
redacted before chunking (lines do not move), and ``status`` says how much was held back."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codesearch.files import SkipStats, find_secrets, is_secret_file, redact, walk
from codesearch.files.secrets import HINTS, PATTERNS

# Built at run time, so this file itself holds no token a scanner would flag.
AWS_KEY = "AKIA" + "IOSFODNN7" + "EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0" + "k1L2m3N4o5P6q7R8"
SLACK = "xoxb-" + "123456789012-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
GOOGLE = "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
JWT = "eyJ" + "hbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
KEY_BLOCK = (
    "-----BEGIN " + "RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA7bq98dTk1Qo1\n"
    "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5\n"
    "-----END " + "RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("secret", "kind"),
    [
        (AWS_KEY, "aws access key"),
        (GITHUB, "github token"),
        (SLACK, "slack token"),
        (STRIPE, "stripe key"),
        (GOOGLE, "google api key"),
        (JWT, "json web token"),
        (KEY_BLOCK, "private key"),
    ],
)
def test_each_token_format_is_found_and_redacted(secret: str, kind: str) -> None:
    text = f"config = {{\n    'token': '{secret}',\n}}\n"
    (finding,) = find_secrets(text)
    assert finding.kind == kind and text[finding.start : finding.end] == secret
    redacted, count = redact(text)
    assert count == 1 and secret not in redacted and f"«redacted {kind}»" in redacted
    assert redacted.count("\n") == text.count("\n")  # every line stays where it was


def test_an_aws_secret_key_is_found_after_its_name_only() -> None:
    text = f'aws_secret_access_key = "{AWS_SECRET}"\nchecksum = "{AWS_SECRET}"\n'
    redacted, count = redact(text)
    assert count == 1 and redacted.splitlines()[1] == f'checksum = "{AWS_SECRET}"'


def test_every_pattern_has_hints() -> None:
    assert [kind for kind, _pattern in PATTERNS] == list(HINTS)
    assert all(HINTS[kind] for kind in HINTS)


SECRETS = [AWS_KEY, GITHUB, SLACK, STRIPE, GOOGLE, JWT, KEY_BLOCK, f'aws_secret_access_key = "{AWS_SECRET}"']
# near misses and the letters a case-insensitive pattern also reads as ASCII (\u017f: s, \u212a: K)
FRAGMENTS = [
    *SECRETS, "AKIA", "ghp_", "xox", "eyJ", "sk-ant-", "npm_", "glpat-", "_live_", "AIza", "T3BlbkFJ",
    "AWS_SECRET_ACCESS_KEY=", "aws_\u017fecret_access_\u212aey: ", "-----BEGIN ", "PRIVATE KEY-----", "\n",
    "https://hooks.slack.com/services/", "pypi-AgEIcHlwaS5vcmc", "github_pat_", " = ", "'", "x" * 40,
]  # fmt: skip


# strings each pattern matches, drawn from the pattern itself (the look-behind one from its fragments)
MATCHING = [st.from_regex(pattern, fullmatch=True) for _kind, pattern in PATTERNS if "(?<=" not in pattern.pattern]


@settings(max_examples=200, deadline=None, derandomize=True)  # the same examples every run
@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=30), *MATCHING), max_size=12))
def test_the_hints_find_exactly_what_the_patterns_alone_find(parts: list[str]) -> None:
    text = "".join(parts)
    assert find_secrets(text) == find_secrets(text, hints=False)


def test_ordinary_code_is_left_alone() -> None:
    code = (
        "def parse(token: str) -> list[str]:\n"
        '    """Split an API key header (e.g. Authorization: Bearer <token>)."""\n'
        "    sha = 'da39a3ee5e6b4b0d3255bfef95601890afd80709'\n"
        "    key = os.environ['AWS_SECRET_ACCESS_KEY']\n"
        "    return token.split('-----BEGIN')\n"
    )
    assert find_secrets(code) == [] and redact(code) == (code, 0)


def test_secret_bearing_files_are_known_by_name() -> None:
    for rel in (".env", "app/.env.production", "certs/server.pem", "deploy/id_rsa", "home/.netrc", ".aws/credentials"):
        assert is_secret_file(rel), rel
    for rel in (".env.example", "deploy/id_rsa.pub", "src/keys.py", "docs/env.md", "environment.yml"):
        assert not is_secret_file(rel), rel


def test_the_walk_leaves_secret_files_out_and_counts_them(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"GITHUB_TOKEN={GITHUB}\n")
    (tmp_path / ".env.example").write_text("GITHUB_TOKEN=\n")
    (tmp_path / "server.pem").write_text(KEY_BLOCK)
    (tmp_path / "app.py").write_text("print('hello')\n")
    stats = SkipStats()
    found = {source.rel for source in walk(tmp_path, stats=stats)}
    assert "app.py" in found and ".env" not in found and "server.pem" not in found
    assert stats.counts["secret"] == 2
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text('{"auths": {}}\n')
    off = SkipStats()
    assert ".docker/config.json" in {s.rel for s in walk(tmp_path, stats=off, secrets="off")}
    assert off.counts["secret"] == 0


def codesearch(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("codesearch"))
    env = {**os.environ, "CODESEARCH_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
@pytest.mark.e2e
def test_no_secret_reaches_the_index_and_status_says_what_was_held_back(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / ".env").write_text(f"STRIPE_KEY={STRIPE}\n")
    (root / "id_ed25519").write_text(KEY_BLOCK)
    (root / "settings.py").write_text(
        '"""Settings of the demo service."""\n\n'
        f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\n'
        f'GITHUB_TOKEN = "{GITHUB}"\n\n\n'
        "def connect_to_storage(bucket: str) -> str:\n"
        '    """Open the storage bucket with the configured credentials."""\n'
        '    return f"s3://{bucket}"\n'
    )
    (root / "deploy.md").write_text(f"# Deploy\n\nUse this key:\n\n{KEY_BLOCK}\n\nThen run the deploy script.\n")
    index_dir = tmp_path / "index"
    done = codesearch("index", str(root), "--index-dir", str(index_dir), "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert stats["secrets_redacted"] == 3 and stats["skipped"] == {"secret": 2}

    # nothing secret anywhere in the index folder's bytes (text, terms, vectors' keys...)
    blob = b"".join(p.read_bytes() for p in index_dir.rglob("*") if p.is_file())
    for secret in (AWS_KEY, GITHUB, STRIPE, "MIIEowIBAAKCAQEA7bq98dTk1Qo1"):
        assert secret.encode() not in blob, secret

    found = json.loads(
        codesearch("search", "connect to storage", "--index-dir", str(index_dir), "--json", home=tmp_path).stdout
    )
    by_symbol = {r["symbol"]: r for r in found}
    assert by_symbol["connect_to_storage"]["start_line"] == 7  # lines did not move
    status = json.loads(codesearch("status", "--index-dir", str(index_dir), "--json", home=tmp_path).stdout)
    assert status["secrets"] == {"files": 2, "chunks_redacted": 2}
    human = codesearch("status", "--index-dir", str(index_dir), home=tmp_path).stdout
    assert "held back: 2 secret-bearing files left out, 2 chunks with secrets redacted" in human

    skipped = codesearch("index", str(root), "--secrets", "skip", "--json", home=tmp_path)  # default location
    assert json.loads(skipped.stdout)["skipped"] == {"secret": 4}  # the two files with secrets too

    # index folders are user-only, given or default
    (default,) = (tmp_path / "indexes").iterdir()
    for folder in (index_dir, default):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def _index_bytes(index_dir: Path) -> bytes:
    """Every byte of every file under the index folder: tables, their old versions, fragments,
    deletion files and indexes, the vector cache, meta and snapshot."""
    return b"".join(path.read_bytes() for path in sorted(index_dir.rglob("*")) if path.is_file())


@pytest.mark.slow
@pytest.mark.e2e
def test_switching_secrets_off_back_to_redact_leaves_no_secret_on_disk(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / ".docker").mkdir(parents=True)
    (root / ".docker" / "config.json").write_text(f'{{"auths": {{"ghcr.io": {{"auth": "{GITHUB}"}}}}}}\n')
    (root / "settings.py").write_text(
        '"""Settings of the demo service."""\n\n'
        f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\n\n\n'
        "def connect_to_storage(bucket: str) -> str:\n"
        '    """Open the storage bucket with the configured credentials."""\n'
        '    return f"s3://{bucket}"\n'
    )
    (root / "deploy.md").write_text(f"# Deploy\n\nUse this key:\n\n{KEY_BLOCK}\n\nThen run the deploy script.\n")
    (root / "util.py").write_text("def add(a: int, b: int) -> int:\n    return a + b\n")
    index_dir = tmp_path / "index"
    secrets = (AWS_KEY, GITHUB, "MIIEowIBAAKCAQEA7bq98dTk1Qo1")

    off = codesearch("index", str(root), "--index-dir", str(index_dir), "--secrets", "off", "--json", home=tmp_path)
    assert off.returncode == 0, off.stderr
    assert json.loads(off.stdout)["files"] == 4
    blob = _index_bytes(index_dir)
    for secret in secrets:  # indexed as asked: the grep below can see them where they are
        assert secret.encode() in blob, secret
    found = codesearch("search", AWS_KEY, "--index-dir", str(index_dir), "--mode", "lexical", "--json", home=tmp_path)
    assert [r["path"] for r in json.loads(found.stdout)][:1] == ["settings.py"]

    # back to the default: nothing changed on disk but the policy, and that is a change
    again = codesearch("index", str(root), "--index-dir", str(index_dir), "--json", home=tmp_path)
    assert again.returncode == 0, again.stderr
    stats = json.loads(again.stdout)
    assert stats["files"] == 3 and stats["files_deleted"] == 1  # .docker/config.json is a secret-bearing file
    assert stats["secrets_redacted"] == 2 and stats["skipped"] == {"secret": 1}
    blob = _index_bytes(index_dir)
    for secret in secrets:  # in no table, old version, fragment or index, in any case
        assert secret.encode() not in blob and secret.lower().encode() not in blob.lower(), secret
    for query in (AWS_KEY, GITHUB):
        gone = codesearch("search", query, "--index-dir", str(index_dir), "--mode", "lexical", "--json", home=tmp_path)
        assert gone.returncode == 0 and all(query not in r["snippet"] for r in json.loads(gone.stdout)), query
    found = codesearch("search", "connect to storage", "--index-dir", str(index_dir), "--json", home=tmp_path)
    by_symbol = {r["symbol"]: r for r in json.loads(found.stdout)}
    assert (
        by_symbol["connect_to_storage"]["start_line"] == 6
        and "«redacted" not in by_symbol["connect_to_storage"]["snippet"]
    )
    status = json.loads(codesearch("status", "--index-dir", str(index_dir), "--json", home=tmp_path).stdout)
    assert status["secrets"] == {"files": 1, "chunks_redacted": 2}
