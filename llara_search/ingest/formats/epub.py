"""EPUB books: chapters in spine order (the reading order the book declares), each read as XHTML; the book's title
is the root of the heading path, the chapters' own headings (h1-h6) follow it. Navigation documents (the table of
contents) are not indexed: they only repeat the headings."""

from __future__ import annotations

from pathlib import Path

from .archive import Archive, local, resolve
from .base import ParsedDocument, ParseError, Section, SkipFile
from .html import parse_html

MAX_CHAPTERS = 5000


def parse_epub(path: Path, data: bytes) -> ParsedDocument:
    book = Archive(data, "EPUB")
    if not book.has("META-INF/container.xml"):
        raise ParseError("corrupt EPUB file: META-INF/container.xml is missing")
    opf = next((el.get("full-path", "") for el in book.xml("META-INF/container.xml").iter()
                if local(el.tag) == "rootfile" and el.get("full-path")), "")
    if not opf or not book.has(opf):
        raise ParseError("corrupt EPUB file: its package document (.opf) is missing")
    package = book.xml(opf)
    title = next((" ".join((el.text or "").split()) for el in package.iter() if local(el.tag) == "title"
                  and (el.text or "").strip()), None)
    manifest: dict[str, tuple[str, str, str]] = {}
    for el in package.iter():
        if local(el.tag) == "item" and el.get("id"):
            manifest[el.get("id", "")] = (resolve(opf, el.get("href", "")), el.get("media-type", ""),
                                          el.get("properties", ""))
    spine = [el.get("idref", "") for el in package.iter() if local(el.tag) == "itemref"
             and el.get("linear", "yes") != "no"]
    if any(local(el.tag) == "encryption" for el in ([] if not book.has("META-INF/encryption.xml") else
                                                    book.xml("META-INF/encryption.xml").iter())):
        raise SkipFile("EPUB with encrypted (DRM) content: cannot be read", warn=True, kind="encrypted")
    sections: list[Section] = []
    root = [title] if title else []
    for n, idref in enumerate(spine[:MAX_CHAPTERS]):
        if idref not in manifest:
            continue
        href, media, props = manifest[idref]
        if "nav" in props.split() or not book.has(href) or "html" not in media and not href.endswith(
                (".html", ".xhtml", ".htm")):
            continue
        chapter = parse_html(Path(href), book.read(href))
        for s in chapter.sections:
            heading = list(s.heading)
            if chapter.title and heading and heading[0] == chapter.title and (len(heading) > 1 or
                                                                               chapter.title == title):
                heading = heading[1:]  # the chapter's <title> when its own headings say more (or repeat the book)
            sections.append(Section(root + heading, s.blocks))
    if not sections:
        raise SkipFile("EPUB without text in its spine (images only?)", warn=True, kind="no-text")
    return ParsedDocument("epub", title or path.name, sections)
