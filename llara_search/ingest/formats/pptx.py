"""PowerPoint (`.pptx`, Office Open XML read with the standard library): one section per slide, in the order the
presentation lists them, headed by its number and title; the other text frames and tables are its blocks, the
speaker notes follow as "Notes: ..."."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from .archive import Archive, local, relationships, squeeze
from .base import Block, ParsedDocument, Section, SkipFile

MAX_SLIDES = 5000
_TITLE_TYPES = {"title", "ctrTitle"}
_SKIPPED_PLACEHOLDERS = {"sldNum", "dt", "ftr", "hdr", "sldImg"}


def _paragraphs(el: ET.Element) -> list[str]:
    out = []
    for p in el.iter():
        if local(p.tag) != "p":
            continue
        parts = []
        for r in p.iter():
            name = local(r.tag)
            if name == "t" and r.text:
                parts.append(r.text)
            elif name == "br":
                parts.append("\n")
            elif name == "tab":
                parts.append("\t")
        text = squeeze("".join(parts))
        if text:
            out.append(text)
    return out


def _placeholder(shape: ET.Element) -> str | None:
    for el in shape.iter():
        if local(el.tag) == "ph":
            return el.get("type", "body")
    return None


def _shapes(tree: ET.Element) -> tuple[str, list[str]]:
    """(title, other text blocks) of a slide, tables as rows with cells joined by " | "."""
    title, blocks = "", []
    for shape in tree.iter():
        name = local(shape.tag)
        if name == "sp":
            ph = _placeholder(shape)
            if ph in _SKIPPED_PLACEHOLDERS:
                continue
            text = "\n".join(_paragraphs(shape))
            if not text:
                continue
            if ph in _TITLE_TYPES and not title:
                title = " ".join(text.split())
            else:
                blocks.append(text)
        elif name == "tbl":
            rows = []
            for tr in shape.iter():
                if local(tr.tag) == "tr":
                    cells = [" ".join(_paragraphs(tc)) for tc in tr if local(tc.tag) == "tc"]
                    if any(cells):
                        rows.append(" | ".join(cells))
            if rows:
                blocks.append("\n".join(rows))
    return title, blocks


def parse_pptx(path: Path, data: bytes) -> ParsedDocument:
    deck = Archive(data, "PPTX")
    main = "ppt/presentation.xml"
    if not deck.has(main):
        raise SkipFile("PPTX file without ppt/presentation.xml (encrypted or not PowerPoint)", warn=True,
                       kind="encrypted")
    rels = relationships(deck, main)
    order = [el.get("{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id", "")
             for el in deck.xml(main).iter() if local(el.tag) == "sldId"]
    slides = [rels[r][1] for r in order if r in rels and rels[r][0] == "slide"]
    title = None
    if deck.has("docProps/core.xml"):
        title = next((squeeze(el.text or "") for el in deck.xml("docProps/core.xml").iter()
                      if local(el.tag) == "title" and (el.text or "").strip()), None)
    sections: list[Section] = []
    for n, part in enumerate(slides[:MAX_SLIDES], 1):
        if not deck.has(part):
            continue
        slide_title, blocks = _shapes(deck.xml(part))
        notes_part = next((target for kind, target in relationships(deck, part).values() if kind == "notesSlide"),
                          None)
        if notes_part and deck.has(notes_part):
            notes_tree = deck.xml(notes_part)
            notes = [t for shape in notes_tree.iter() if local(shape.tag) == "sp"
                     and _placeholder(shape) in ("body", None) for t in _paragraphs(shape)]
            if notes:
                blocks.append("Notes: " + "\n".join(notes))
        heading = f"Slide {n}: {slide_title}" if slide_title else f"Slide {n}"
        section = Section(([title] if title else []) + [heading], [Block(b) for b in blocks])
        if not blocks and slide_title:
            section.blocks = [Block(slide_title)]
        if section.blocks:
            sections.append(section)
    if not sections:
        raise SkipFile("PPTX file without text on its slides", warn=True, kind="no-text")
    warnings = [f"only the first {MAX_SLIDES} slides indexed"] if len(slides) > MAX_SLIDES else []
    return ParsedDocument("pptx", title or path.name, sections, warnings=warnings)
