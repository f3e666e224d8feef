"""What every format parser produces, and the helpers they share (text decoding, paragraphs, heading stacks).

A *block* is the smallest unit the chunker will not split unless it must (a paragraph, a code block, a table, a
notebook cell, a PDF page's paragraph). Sections carry the heading path. Line numbers are 1-based and refer to the
source file; character offsets refer to the decoded text (for text formats) or the extracted text (html, pdf, docx).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class ParseError(Exception):
    """A file that cannot be read as a document; the message is the one-line reason shown to the user."""


class SkipFile(Exception):
    """Not a document we index (binary, image, a scanned PDF): counted as skipped, not as a failure.

    `warn=True` puts the reason in the ingest report's warnings, for files the user would expect to be indexed
    (a PDF without a text layer, a man page that only points to another one). `kind` groups skipped files in the
    report (`unsupported`, `binary`, `empty`, `too-large`, `no-text`, `needs-extra` with the pip command in the
    reason...); the report's summary counts files per kind.
    """

    def __init__(self, reason: str, warn: bool = False, *, kind: str = "other"):
        super().__init__(reason)
        self.warn = warn
        self.kind = kind


@dataclass
class Block:
    text: str
    start_line: int | None = None
    end_line: int | None = None
    page: int | None = None
    char_start: int = 0


@dataclass
class Section:
    heading: list[str]
    blocks: list[Block] = field(default_factory=list)


@dataclass
class ParsedDocument:
    format: str
    title: str | None
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)  # one line each, shown in the ingest report


# ------------------------------------------------------------------------------------------------ text decoding
def decode_text(data: bytes, name: str = "file") -> str:
    """BOM, else UTF-8 (a few bad bytes replaced), else the best-looking legacy code page: `ingest/decode.py`."""
    from ..decode import BrokenText, decode_text as decode

    try:
        return decode(data, name)
    except BrokenText as exc:
        raise ParseError(str(exc)) from None


def looks_binary(data: bytes) -> bool:
    head = data[:8192]
    if not head:
        return False
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False  # UTF-16 text has NULs
    return b"\x00" in head


# ------------------------------------------------------------------------------------------------ shared helpers
def line_offsets(text: str) -> tuple[list[str], list[int]]:
    """The lines of `text` and the character offset at which each starts."""
    lines = text.split("\n")
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    return lines, offsets


def paragraph_blocks(lines: list[str], first_line: int, offsets: list[int]) -> list[Block]:
    """Blank-line separated paragraphs of `lines` (0-based index i is source line first_line+i)."""
    blocks: list[Block] = []
    start = None
    for i, line in enumerate(lines + [""]):
        if line.strip() and start is None:
            start = i
        elif not line.strip() and start is not None:
            text = "\n".join(lines[start:i]).rstrip()
            blocks.append(Block(text, first_line + start, first_line + i - 1,
                                char_start=offsets[first_line - 1 + start]))
            start = None
    return blocks


def push_heading(stack: list[tuple[int, str]], sections: list[Section], level: int, name: str) -> None:
    """Open a new section at `level`: close deeper or equal headings, keep the path of the ones above."""
    while stack and stack[-1][0] >= level:
        stack.pop()
    stack.append((level, name))
    sections.append(Section([t for _, t in stack]))


def pack_lines(lines: list[str], size: int) -> list[str]:
    """Consecutive lines joined into pieces of about `size` characters (text without paragraph breaks)."""
    out, cur, n = [], [], 0
    for line in lines:
        cur.append(line)
        n += len(line) + 1
        if n >= size:
            out.append("\n".join(cur))
            cur, n = [], 0
    if cur:
        out.append("\n".join(cur))
    return out


class SectionBuilder:
    """Collects blocks under a heading path that parsers change as they meet headings (one per nesting level)."""

    def __init__(self, root: list[str] | None = None):
        self.root = list(root or [])
        self.stack: list[tuple[int, str]] = []
        self.sections: list[Section] = [Section(list(self.root))]

    def heading(self, level: int, name: str) -> None:
        name = " ".join(name.split())
        if not name:
            return
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, name))
        self.sections.append(Section(self.root + [t for _, t in self.stack]))

    def add(self, block: Block) -> None:
        if block.text.strip():
            self.sections[-1].blocks.append(block)

    def result(self) -> list[Section]:
        return [s for s in self.sections if s.blocks]


_WS_TAIL = re.compile(r"[ \t]+$", re.M)


def tidy_lines(text: str) -> str:
    """Trailing spaces off every line and runs of blank lines squeezed to one (rendered formats leave both)."""
    text = _WS_TAIL.sub("", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


_HYPHENATED = re.compile(r"(\w*[^\W\d_])[-\u2010\u00ad]\n([ \t]*)([^\W\d_]\w*)(\S*)([^\n]*)")


def dehyphenate(text: str, vocabulary: set[str]) -> str:
    """Join words a typesetter broke at a line end ("incor-\\nporates"): into one word when the document uses it
    whole elsewhere, else keeping the hyphen ("non-\\ninteractive" -> "non-interactive"). The rest of the second
    line stays on its own line."""

    def join(m: re.Match) -> str:
        a, indent, b, attached, rest = m.groups()
        word = (a + b) if (a + b).lower() in vocabulary else f"{a}-{b}"
        rest = rest.strip(" \t")
        return f"{word}{attached}\n{indent}{rest}" if rest else word + attached

    for _ in range(4):  # a line can both end a broken word and start one
        new = _HYPHENATED.sub(join, text)
        if new == text:
            break
        text = new
    return text


_SENTENCE_SPACE = re.compile(r"(?<=[.!?:;,)\]])[ ]{2,}(?=\S)")


def single_space_sentences(text: str) -> str:
    """Typewriter spacing (two spaces after a sentence, as Info and nroff write it) made one space; indentation
    and code alignment elsewhere are left alone."""
    return _SENTENCE_SPACE.sub(" ", text)
