"""File names as the index stores them: text that any database takes, mapping back to the exact bytes on disk.

POSIX file names are bytes. Python hands names that are not valid UTF-8 over as strings holding lone surrogates
(PEP 383), which neither SQLite's nor PostgreSQL's text columns accept: one such name used to abort a whole ingest.
The stored form writes each undecodable byte as `\\xNN` and doubles backslashes (so that a name really spelled
`\\xff` stays distinct); every other name, the overwhelming majority, is stored exactly as it is. The stored form
is also what people see (after `terminal.clean`), so `--where`, `delete` and the reports all speak one spelling.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_NEEDS_ESCAPE = re.compile(r"[\\\udc80-\udcff]")
_ESCAPED = re.compile(r"\\(\\|x[0-9a-fA-F]{2})")


def to_stored(path: str | os.PathLike) -> str:
    """The database spelling of a file name (identity unless it holds a backslash or an undecodable byte)."""
    s = os.fspath(path)
    if isinstance(s, bytes):
        s = os.fsdecode(s)
    if not _NEEDS_ESCAPE.search(s):
        return s
    return _NEEDS_ESCAPE.sub(lambda m: "\\\\" if m.group() == "\\" else f"\\x{ord(m.group()) - 0xDC00:02x}", s)


def from_stored(stored: str) -> str:
    """The file-system string (surrogate-escaped, as os functions take it) of a stored name."""
    if "\\" not in stored:
        return stored
    raw = bytearray()
    pos = 0
    for m in _ESCAPED.finditer(stored):
        raw += os.fsencode(stored[pos:m.start()])
        raw += b"\\" if m.group(1) == "\\" else bytes([int(m.group(1)[1:], 16)])
        pos = m.end()
    raw += os.fsencode(stored[pos:])
    return os.fsdecode(bytes(raw))


def fs_path(stored: str) -> Path:
    """The file a stored name stands for."""
    return Path(from_stored(stored))


__all__ = ["from_stored", "fs_path", "to_stored"]
