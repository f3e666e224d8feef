"""Word documents (python-docx, the optional `docx` extra): Heading/Title styles make the heading path."""

from __future__ import annotations

import io
import re
from pathlib import Path

from .base import Block, ParsedDocument, ParseError, Section, SkipFile, push_heading


def parse_docx(path: Path, data: bytes) -> ParsedDocument:
    try:
        import docx  # python-docx, the optional `docx` extra
    except ImportError:
        raise SkipFile("a .docx file needs the docx extra: pip install 'llara-search[docx]'", warn=True,
                       kind="needs-extra") from None
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - zip/xml errors of many kinds
        raise ParseError(f"corrupt DOCX: {type(exc).__name__}") from None
    sections: list[Section] = [Section([])]
    stack: list[tuple[int, str]] = []
    title = None
    pos = 0
    for para in document.paragraphs:
        text = para.text.strip()
        if not text:
            continue
        style = (para.style.name or "") if para.style is not None else ""
        m = re.match(r"(Heading|Title)\s*(\d*)", style)
        if m:
            push_heading(stack, sections, int(m.group(2) or 1) if m.group(1) == "Heading" else 0, text)
            title = title or text
            continue
        sections[-1].blocks.append(Block(text, char_start=pos))
        pos += len(text) + 2
    for table in document.tables:
        rows = [" | ".join(c.text.strip() for c in row.cells) for row in table.rows]
        text = "\n".join(rows).strip()
        if text:
            sections[-1].blocks.append(Block(text, char_start=pos))
            pos += len(text) + 2
    return ParsedDocument("docx", title, [s for s in sections if s.blocks])
