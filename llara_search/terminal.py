"""What a file gave us, made safe to print: one place that escapes names, headings and snippets for a terminal.

A file name may hold an escape sequence (`ESC[2J` clears the screen), a newline (one result printed as two), bidi
overrides (text shown in another order than it is) or bytes that are not UTF-8; a heading or a snippet may hold
the same. Everything the CLI and its log lines print from a file or a request goes through `clean` (plain text)
or `text` (a rich Text, never parsed as markup); `markup` is for the rare string spliced into rich markup.
"""

from __future__ import annotations

import re

from rich.markup import escape as _escape_markup
from rich.text import Text

# C0 and C1 controls, DEL, bidi embeddings/overrides/isolates and marks, line and paragraph separators, the BOM and
# lone surrogates (undecodable bytes of a file name, PEP 383)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff"
                     "\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}


def _one(m: re.Match) -> str:
    c = m.group()
    if c in _NAMED:
        return _NAMED[c]
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:  # an undecodable byte of a file name
        return f"\\x{n - 0xDC00:02x}"
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def clean(value: object) -> str:
    """`value` as one line of plain, inert characters: controls written as `\\n`, `\\e`, `\\x07`, `\\u202e`."""
    s = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_one, s) if _UNSAFE.search(s) else s


def text(value: object, style: str | None = None) -> Text:
    """A rich Text of `clean(value)`: printed as it reads, whatever brackets it holds."""
    return Text(clean(value), style=style or "")


def markup(value: object) -> str:
    """`clean(value)` with rich markup escaped, for splicing into a markup string."""
    return _escape_markup(clean(value))



__all__ = ["clean", "markup", "text"]
