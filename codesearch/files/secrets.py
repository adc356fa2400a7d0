"""Secrets: what never reaches the index.

Two layers, both on by default (``--secrets redact``):

- **secret-bearing files** (:data:`SECRET_FILES`, gitignore patterns: ``.env`` files, private
  keys and certificates, keystores, credential stores such as ``.netrc``, ``.git-credentials``,
  ``.pypirc``, ``.npmrc``, ``.aws/credentials``) are left out of the walk and counted as
  ``secret``. Templates such as ``.env.example`` and public keys (``*.pub``) are kept.
- **secrets inside files** (:data:`PATTERNS`: private key blocks and high-confidence token
  formats, AWS, GitHub, GitLab, Slack, Stripe, Google, OpenAI, Anthropic, npm, PyPI, JWTs) are
  replaced by ``«redacted KIND»`` before chunking, so neither the stored text nor a vector ever
  holds them. Line numbers do not move: a multi-line key block keeps its line count. A pattern
  scans only a text holding one of its literal :data:`HINTS` (11x faster on Django's files,
  ``benchmarks/secrets_scan.py``; the same findings).

``--secrets skip`` leaves out every file with a secret in it instead; ``--secrets off`` indexes
everything as it is (for a tree known to be clean).

:data:`REDACTION_VERSION` names the patterns and the mark (a digest of both, so no change to them
goes unnoticed): it is part of each indexed file's row policy (``codesearch.options``), so a file
redacted with other patterns is read again by the next run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pathspec

POLICIES = ("redact", "skip", "off")
MARK = "«redacted"

SECRET_FILES: tuple[str, ...] = (
    ".env",
    ".env.*",
    "!.env.example",
    "!.env.sample",
    "!.env.template",
    "!.env.dist",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "!*.pub",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".htpasswd",
    ".aws/credentials",
    ".docker/config.json",
    "*.tfstate",
    "*.tfstate.backup",
)

_FILES = pathspec.PathSpec.from_lines("gitwildmatch", SECRET_FILES)

# (kind, pattern): high-confidence formats only; a false positive costs a redacted line.
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "private key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?"
            r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
            re.S,
        ),
    ),
    ("aws access key", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    (
        "aws secret key",
        re.compile(r"(?i)(?<=aws_secret_access_key)(?:\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"),
    ),
    ("github token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})\b")),
    ("gitlab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20}\b")),
    ("slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,250}\b")),
    ("slack webhook", re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/]{20,}")),
    ("stripe key", re.compile(r"\b(?:sk|rk)_live_[A-Za-z0-9]{24,99}\b")),
    ("google api key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("anthropic key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{32,}\b")),
    ("openai key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}\b")),
    ("npm token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("pypi token", re.compile(r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}\b")),
    ("json web token", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b")),
)

# What each pattern cannot match without (literal substrings, or one case-insensitive literal as
# its pattern's own flag reads it): a text holding none of a kind's hints skips that pattern's
# scan. Found: exactly what the patterns alone find, at several times the speed (a substring test
# is a fast scan, most patterns are not); every kind has its hints (tests check both).
HINTS: dict[str, tuple[str | re.Pattern[str], ...]] = {
    "private key": ("PRIVATE KEY",),
    "aws access key": ("AKIA", "ASIA", "ABIA", "ACCA"),
    "aws secret key": (re.compile("aws_secret_access_key", re.I),),
    "github token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "gitlab token": ("glpat-",),
    "slack token": ("xox",),
    "slack webhook": ("https://hooks.slack.com/services/",),
    "stripe key": ("_live_",),
    "google api key": ("AIza",),
    "anthropic key": ("sk-ant-",),
    "openai key": ("T3BlbkFJ",),
    "npm token": ("npm_",),
    "pypi token": ("pypi-AgEIcHlwaS5vcmc",),
    "json web token": ("eyJ",),
}

REDACTION_VERSION = hashlib.blake2b(
    repr([MARK, *((kind, pattern.pattern, pattern.flags) for kind, pattern in PATTERNS)]).encode(), digest_size=4
).hexdigest()


def is_secret_file(rel: str) -> bool:
    """Whether the posix path ``rel`` names a secret-bearing file (by name alone)."""
    return _FILES.match_file(rel)


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int


def find_secrets(text: str, hints: bool = True) -> list[Finding]:
    """Secrets in ``text``, in order, without overlaps (the earliest, then the longest wins).
    ``hints=False``: every pattern scans the whole text (the same findings, slower: the reference
    the tests and ``benchmarks/secrets_scan.py`` check the hints against)."""
    found = sorted(
        (
            Finding(kind, m.start(), m.end())
            for kind, pattern in PATTERNS
            if not hints or _hinted(text, kind)
            for m in pattern.finditer(text)
        ),
        key=lambda f: (f.start, -(f.end - f.start)),
    )
    kept: list[Finding] = []
    for finding in found:
        if not kept or finding.start >= kept[-1].end:
            kept.append(finding)
    return kept


def _hinted(text: str, kind: str) -> bool:
    """Whether ``text`` holds one of ``kind``'s :data:`HINTS` (else its pattern cannot match)."""
    return any((hint in text) if isinstance(hint, str) else hint.search(text) is not None for hint in HINTS[kind])


def redact(text: str) -> tuple[str, int]:
    """``text`` with every secret replaced by ``«redacted KIND»`` (its newlines kept, so lines
    stay where they were), and how many there were."""
    findings = find_secrets(text)
    if not findings:
        return text, 0
    parts: list[str] = []
    position = 0
    for finding in findings:
        parts.append(text[position : finding.start])
        newlines = text.count("\n", finding.start, finding.end)
        parts.append(f"{MARK} {finding.kind}»" + "\n" * newlines)
        position = finding.end
    parts.append(text[position:])
    return "".join(parts), len(findings)
