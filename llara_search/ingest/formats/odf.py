"""OpenDocument text, presentations and spreadsheets (`.odt`, `.odp`, `.ods`, read from their content.xml):
`text:h` outline levels make the heading path, paragraphs and list items are blocks, tables are rows with cells
joined by " | "; a presentation has one section per slide (its name) with the speaker notes; a spreadsheet one per
sheet, rows bounded (`MAX_ROWS`)."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from .archive import Archive, local, squeeze
from .base import Block, ParsedDocument, SectionBuilder, SkipFile

MAX_ROWS = 5000  # rows read per sheet (a sheet of a million rows is data, not a document)
MAX_CELLS = 200_000
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"


def odf_text(el: ET.Element) -> str:
    """The text of an element: spans and links flattened, `text:s` spaces, tabs and line breaks kept; notes and
    annotations dropped (iteratively: no recursion on hostile nesting)."""
    out: list[str] = []
    stack: list[tuple[bool, object]] = [(False, el)]
    while stack:
        is_text, item = stack.pop()
        if is_text:
            out.append(item)  # type: ignore[arg-type]
            continue
        node: ET.Element = item  # type: ignore[assignment]
        name = local(node.tag)
        if name in ("note", "annotation", "tracked-changes", "sequence-decls"):
            continue
        if name == "s":
            count = node.get(f"{{{_TEXT}}}c", "1") or "1"
            out.append(" " * (min(100, int(count)) if count.isdigit() else 1))
        elif name == "tab":
            out.append("\t")
        elif name == "line-break":
            out.append("\n")
        elif node.text:
            out.append(node.text)
        for child in reversed(list(node)):
            if child.tail:
                stack.append((True, child.tail))
            stack.append((False, child))
    return "".join(out)


def _rows(table: ET.Element, budget: list[int]) -> tuple[list[str], bool]:
    rows, cut = [], False
    for row in table.iter():
        if local(row.tag) != "table-row":
            continue
        if len(rows) >= MAX_ROWS or budget[0] <= 0:
            cut = True
            break
        cells = []
        for cell in row:
            if local(cell.tag) not in ("table-cell", "covered-table-cell"):
                continue
            budget[0] -= 1
            text = " ".join(squeeze(odf_text(p)) for p in cell if local(p.tag) in ("p", "h", "list"))
            cells.append(text.strip())
        while cells and not cells[-1]:
            cells.pop()
        if any(cells):
            rows.append(" | ".join(cells))
    return rows, cut


def parse_odf(path: Path, data: bytes) -> ParsedDocument:
    kind = {".odt": "ODT", ".odp": "ODP", ".ods": "ODS"}.get(path.suffix.lower(), "OpenDocument")
    doc = Archive(data, kind)
    if not doc.has("content.xml"):
        raise SkipFile(f"{kind} file without content.xml (encrypted or not OpenDocument)", warn=True,
                       kind="encrypted")
    content = doc.xml("content.xml")
    body = next((el for el in content.iter() if local(el.tag) == "body"), None)
    title = None
    if doc.has("meta.xml"):
        title = next((squeeze(el.text or "") for el in doc.xml("meta.xml").iter() if local(el.tag) == "title"
                      and (el.text or "").strip()), None)
    builder = SectionBuilder([title] if title else None)
    warnings: list[str] = []
    budget = [MAX_CELLS]
    if body is None:
        raise SkipFile(f"{kind} file without a body", warn=True, kind="no-text")
    for part in body:
        what = local(part.tag)
        if what == "spreadsheet":
            for sheet in part:
                if local(sheet.tag) != "table":
                    continue
                builder.heading(1, sheet.get("{urn:oasis:names:tc:opendocument:xmlns:table:1.0}name") or "Sheet")
                rows, cut = _rows(sheet, budget)
                for r in rows:
                    builder.add(Block(r))
                if cut:
                    warnings.append(f"sheet {sheet.get('{urn:oasis:names:tc:opendocument:xmlns:table:1.0}name')}: "
                                    f"only the first {len(rows)} rows indexed")
        elif what == "presentation":
            for n, page in enumerate((p for p in part if local(p.tag) == "page"), 1):
                name = page.get("{urn:oasis:names:tc:opendocument:xmlns:drawing:1.0}name") or ""
                texts, notes = [], []
                for el in page.iter():
                    if local(el.tag) == "notes":
                        notes.extend(squeeze(odf_text(p)) for p in el.iter() if local(p.tag) == "p")
                for frame in page:
                    if local(frame.tag) == "notes":
                        continue
                    texts.extend(squeeze(odf_text(p)) for p in frame.iter() if local(p.tag) in ("p", "h"))
                texts = [t for t in texts if t]
                head = texts[0] if texts and (not name or name.startswith(("page", "Slide"))) else name
                builder.heading(1, f"Slide {n}: {head}" if head else f"Slide {n}")
                body_text = "\n".join(texts[1:] if head == (texts[0] if texts else None) else texts)
                if body_text.strip():
                    builder.add(Block(body_text))
                if any(notes):
                    builder.add(Block("Notes: " + "\n".join(t for t in notes if t)))
        else:  # text (and drawing) documents
            in_tables = {id(p) for t in part.iter() if local(t.tag) == "table" for p in t.iter()
                         if local(p.tag) in ("p", "h")}
            for el in part.iter():
                name = local(el.tag)
                if name == "h":
                    level = el.get(f"{{{_TEXT}}}outline-level", "1")
                    builder.heading(int(level) if level.isdigit() and 0 < int(level) < 11 else 1,
                                    squeeze(odf_text(el)))
                elif name == "p" and id(el) not in in_tables:
                    text = squeeze(odf_text(el))
                    if text:
                        builder.add(Block(text))
                elif name == "table":
                    rows, _ = _rows(el, budget)
                    if rows:
                        builder.add(Block("\n".join(rows)))
    sections = builder.result()
    if not sections:
        raise SkipFile(f"{kind} file without text", warn=True, kind="no-text")
    return ParsedDocument(kind.lower(), title or path.name, sections, warnings=warnings)
