"""File names as the index stores and shows them: printable text that maps back to the exact name.

A POSIX file name is bytes. Python hands one that is not UTF-8 over with lone surrogates
(``surrogateescape``: byte 0xE9 becomes ``\\udce9``), which no UTF-8 column (Arrow, LanceDB)
accepts, and a name may hold control characters (a newline) that would break every line of
output. :func:`stored_path` escapes exactly these, plus the backslash so the form stays
reversible:

- a byte that is not UTF-8: ``\\xNN`` (NN >= 80); another lone surrogate (Windows): ``\\uNNNN``
- a control character: ``\\xNN`` (NN < 20, or 7f); a C1 control or a line or paragraph
  separator: ``\\uNNNN``
- a backslash: ``\\\\``

Every other name, which is nearly all of them, is stored as it is (spaces, quotes, brackets,
leading dashes and any Unicode normalisation included). :func:`disk_path` inverts the mapping,
so the store's path names the real file for reading, stale checks, the watcher and editor URIs.
Both work on whole posix paths relative to the indexed root.
"""

from __future__ import annotations

import re
from pathlib import Path

_NEEDS_ESCAPE = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_ESCAPED = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})")


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char == "\\":
        return "\\\\"
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    if code >= 0x80:  # C1 controls, separators, other lone surrogates: as the code point
        return f"\\u{code:04x}"
    return f"\\x{code:02x}"


def _unescape(match: re.Match[str]) -> str:
    escape = match.group(1)
    if escape == "\\":
        return "\\"
    code = int(escape[1:], 16)
    if escape[0] == "x" and code >= 0x80:
        return chr(0xDC00 + code)  # back to the byte, as os.fsencode writes it
    return chr(code)


def stored_path(rel: str) -> str:
    """The printable, valid UTF-8 form of the posix path ``rel`` (as ``os`` names it)."""
    return _NEEDS_ESCAPE.sub(_escape, rel) if _NEEDS_ESCAPE.search(rel) else rel


def disk_path(stored: str) -> str:
    """The path ``os`` knows for a :func:`stored_path` (the inverse)."""
    return _ESCAPED.sub(_unescape, stored) if "\\" in stored else stored


def disk_file(root: Path, stored: str) -> Path:
    """The file of ``root`` that the stored path names."""
    return root / disk_path(stored)
