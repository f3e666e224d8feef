"""The last step of every parser: what reaches the index is NFC text without control characters, and no block is
only markup or whitespace.

Control characters (C0 and C1, except newline and tab) come from overstrikes, form feeds, terminal escapes and
PDF text layers; they break BM25 words and waste encoder tokens. NFC makes "é" one code point however the source
spelled it, so that the same word is the same token everywhere.
"""

from __future__ import annotations

import re
import unicodedata

from .formats.base import ParsedDocument, Section

_NEWLINES = re.compile(r"\r\n?|[\u2028\u2029\x85\x0b\x0c]")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ufeff\ufffe\uffff\ud800-\udfff]")
_HAS_WORD = re.compile(r"\w")
# CSI (colours, cursor moves, screen clears), OSC (window titles, hyperlinks) and two-character ESC sequences
_ESCAPES = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
                      r"|\x1b[@-Z\\-_]")


def clean_text(text: str) -> str:
    """NFC, every line break spelled "\\n", no control characters but "\\n" and "\\t", no trailing spaces;
    terminal escape sequences go whole (a colour code leaves no "[31m" behind)."""
    if "\x1b" in text or "\x9b" in text:
        text = _ESCAPES.sub("", text)
    text = _NEWLINES.sub("\n", text)
    text = _CONTROL.sub("", text)
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return re.sub(r"[ \t]+\n", "\n", text).strip("\n").rstrip()


def has_content(text: str) -> bool:
    """A block with no letter or digit at all is markup or decoration (rules, fences, lone brackets)."""
    return _HAS_WORD.search(text) is not None


def clean_document(doc: ParsedDocument) -> ParsedDocument:
    sections = []
    for s in doc.sections:
        heading = [h for h in (" ".join(clean_text(x).split()) for x in s.heading) if h]
        blocks = []
        for b in s.blocks:
            b.text = clean_text(b.text)
            if has_content(b.text):
                blocks.append(b)
        if blocks:
            sections.append(Section(heading, blocks))
    doc.sections = sections
    doc.title = " ".join(clean_text(doc.title).split()) or None if doc.title else None
    doc.warnings = [" ".join(clean_text(w).split()) for w in doc.warnings]
    return doc
