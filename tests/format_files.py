"""Small real files of every document format, written here with zipfile and plain text (the way python-docx or
LibreOffice would lay them out), for the parser tests and benchmarks/parsing.py. No binary fixture is committed."""

from __future__ import annotations

import zipfile
from pathlib import Path
from xml.sax.saxutils import escape


def _zip(path: Path, parts: dict[str, str | bytes], first: tuple[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        if first:  # mimetype first and stored, as EPUB and ODF require
            z.writestr(zipfile.ZipInfo(first[0]), first[1], compress_type=zipfile.ZIP_STORED)
        for name, data in parts.items():
            z.writestr(name, data)
    return path


# ------------------------------------------------------------------------------------------------ EPUB
def make_epub(path: Path, title: str, chapters: list[tuple[str, list[str]]], spine_order: list[int] | None = None
              ) -> Path:
    """chapters: (heading, paragraphs); the spine lists them in `spine_order` (default: as given), while the
    manifest lists them reversed, so that a reader following the manifest gets the order wrong."""
    order = spine_order or list(range(len(chapters)))
    parts: dict[str, str | bytes] = {
        "META-INF/container.xml": '<?xml version="1.0"?><container version="1.0" '
        'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" '
        'media-type="application/oebps-package+xml"/></rootfiles></container>'}
    items, refs = [], []
    for i in reversed(range(len(chapters))):
        items.append(f'<item id="c{i}" href="text/ch{i}.xhtml" media-type="application/xhtml+xml"/>')
    items.append('<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>')
    refs = [f'<itemref idref="c{i}"/>' for i in order]
    parts["OEBPS/content.opf"] = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">'
        f'<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{escape(title)}</dc:title>'
        '<dc:identifier id="id">x</dc:identifier></metadata>'
        f'<manifest>{"".join(items)}</manifest><spine><itemref idref="nav" linear="no"/>{"".join(refs)}</spine>'
        '</package>')
    parts["OEBPS/nav.xhtml"] = ('<html xmlns="http://www.w3.org/1999/xhtml"><body><nav><ol>' +
                                "".join(f"<li>{escape(h)}</li>" for h, _ in chapters) + "</ol></nav></body></html>")
    for i, (heading, paras) in enumerate(chapters):
        parts[f"OEBPS/text/ch{i}.xhtml"] = (
            '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head>'
            f'<title>{escape(title)}</title></head><body><h1>{escape(heading)}</h1>' +
            "".join(f"<p>{escape(p)}</p>" for p in paras) + "</body></html>")
    return _zip(path, parts, ("mimetype", "application/epub+zip"))


# ------------------------------------------------------------------------------------------------ OpenDocument
_ODF_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
           'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
           'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
           'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
           'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
           'xmlns:dc="http://purl.org/dc/elements/1.1/"')


def _odf(path: Path, mimetype: str, body: str, title: str | None = None) -> Path:
    parts: dict[str, str | bytes] = {
        "content.xml": f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {_ODF_NS}>'
                       f"<office:body>{body}</office:body></office:document-content>",
        "META-INF/manifest.xml": '<?xml version="1.0"?><manifest:manifest '
                                 'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"/>'}
    if title:
        parts["meta.xml"] = (f'<?xml version="1.0"?><office:document-meta {_ODF_NS}><office:meta>'
                             f"<dc:title>{escape(title)}</dc:title></office:meta></office:document-meta>")
    return _zip(path, parts, ("mimetype", mimetype))


def make_odt(path: Path, title: str, sections: list[tuple[int, str, list[str]]],
             table: list[list[str]] | None = None) -> Path:
    body = ""
    for level, heading, paras in sections:
        body += f'<text:h text:outline-level="{level}">{escape(heading)}</text:h>'
        for p in paras:
            words = escape(p).split(" ", 1)
            rest = f"<text:s/>{words[1]}" if len(words) > 1 else ""  # a text:s space element inside
            body += f'<text:p><text:span>{words[0]}</text:span>{rest}</text:p>'
    if table:
        body += "<table:table>" + "".join(
            "<table:table-row>" + "".join(f"<table:table-cell><text:p>{escape(c)}</text:p></table:table-cell>"
                                          for c in row) + "</table:table-row>" for row in table) + "</table:table>"
    return _odf(path, "application/vnd.oasis.opendocument.text", f"<office:text>{body}</office:text>", title)


def make_ods(path: Path, sheets: dict[str, list[list[str]]]) -> Path:
    body = "".join(f'<table:table table:name="{escape(name)}">' + "".join(
        "<table:table-row>" + "".join(f"<table:table-cell><text:p>{escape(c)}</text:p></table:table-cell>"
                                      for c in row) + "</table:table-row>" for row in rows) + "</table:table>"
        for name, rows in sheets.items())
    return _odf(path, "application/vnd.oasis.opendocument.spreadsheet",
                f"<office:spreadsheet>{body}</office:spreadsheet>")


def make_odp(path: Path, slides: list[tuple[str, list[str], str]]) -> Path:
    """slides: (title, body lines, notes)."""
    body = ""
    for n, (title, lines, notes) in enumerate(slides, 1):
        body += (f'<draw:page draw:name="page{n}"><draw:frame><draw:text-box><text:p>{escape(title)}</text:p>'
                 "</draw:text-box></draw:frame><draw:frame><draw:text-box>" +
                 "".join(f"<text:p>{escape(x)}</text:p>" for x in lines) + "</draw:text-box></draw:frame>" +
                 (f"<presentation:notes><draw:frame><draw:text-box><text:p>{escape(notes)}</text:p></draw:text-box>"
                  "</draw:frame></presentation:notes>" if notes else "") + "</draw:page>")
    return _odf(path, "application/vnd.oasis.opendocument.presentation",
                f"<office:presentation>{body}</office:presentation>")


# ------------------------------------------------------------------------------------------------ Office Open XML
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
_P = 'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" ' \
     'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" ' \
     f'xmlns:r="{_REL}"'


def _rels(items: list[tuple[str, str, str]]) -> str:
    return (f'<?xml version="1.0"?><Relationships xmlns="{_PKG}">' + "".join(
        f'<Relationship Id="{i}" Type="{_REL}/{t}" Target="{target}"/>' for i, t, target in items) +
        "</Relationships>")


def _sp(text_lines: list[str], ph: str | None) -> str:
    nv = f'<p:nvPr><p:ph type="{ph}"/></p:nvPr>' if ph else "<p:nvPr/>"
    paras = "".join(f"<a:p><a:r><a:t>{escape(t)}</a:t></a:r></a:p>" for t in text_lines)
    return (f'<p:sp><p:nvSpPr><p:cNvPr id="1" name="s"/><p:cNvSpPr/>{nv}</p:nvSpPr><p:txBody><a:bodyPr/>{paras}'
            "</p:txBody></p:sp>")


def make_pptx(path: Path, slides: list[tuple[str, list[str], str]], order: list[int] | None = None) -> Path:
    """slides: (title, body lines, notes); the presentation lists them in `order` (slide files are numbered as
    given, so a reader going by file name gets a different order)."""
    order = order or list(range(len(slides)))
    parts: dict[str, str | bytes] = {
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                               'content-types"/>',
        "_rels/.rels": _rels([("rId1", "officeDocument", "ppt/presentation.xml")]),
        "ppt/presentation.xml": f'<?xml version="1.0"?><p:presentation {_P}><p:sldIdLst>' + "".join(
            f'<p:sldId id="{256 + k}" r:id="rId{i + 1}"/>' for k, i in enumerate(order)) +
        "</p:sldIdLst></p:presentation>",
        "ppt/_rels/presentation.xml.rels": _rels([(f"rId{i + 1}", "slide", f"slides/slide{i + 1}.xml")
                                                  for i in range(len(slides))]),
    }
    for i, (title, lines, notes) in enumerate(slides):
        n = i + 1
        parts[f"ppt/slides/slide{n}.xml"] = (
            f'<?xml version="1.0"?><p:sld {_P}><p:cSld><p:spTree>{_sp([title], "title")}{_sp(lines, "body")}'
            f'{_sp([str(n)], "sldNum")}</p:spTree></p:cSld></p:sld>')
        if notes:
            parts[f"ppt/slides/_rels/slide{n}.xml.rels"] = _rels([("rId1", "notesSlide",
                                                                   f"../notesSlides/notesSlide{n}.xml")])
            parts[f"ppt/notesSlides/notesSlide{n}.xml"] = (
                f'<?xml version="1.0"?><p:notes {_P}><p:cSld><p:spTree>{_sp(["slide image"], "sldImg")}'
                f'{_sp([notes], "body")}</p:spTree></p:cSld></p:notes>')
    return _zip(path, parts)


class XlsxDate(float):
    """A cell holding an Excel serial date (shown through a date number format)."""


def make_xlsx(path: Path, sheets: dict[str, list[list[str | int | float]]]) -> Path:
    """Strings go to the shared string table (as Excel writes them), numbers stay inline, `XlsxDate` cells get the
    style of a built-in date format."""
    shared: list[str] = []
    parts: dict[str, str | bytes] = {
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                               'content-types"/>',
        "_rels/.rels": _rels([("rId1", "officeDocument", "xl/workbook.xml")]),
    }
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rels = []
    sheet_tags = []
    for k, (name, rows) in enumerate(sheets.items(), 1):
        rels.append((f"rId{k}", "worksheet", f"worksheets/sheet{k}.xml"))
        sheet_tags.append(f'<sheet name="{escape(name)}" sheetId="{k}" r:id="rId{k}"/>')
        xml_rows = []
        for r, row in enumerate(rows, 1):
            cells = []
            for c, value in enumerate(row):
                ref = f"{chr(65 + c)}{r}"
                if isinstance(value, str):
                    shared.append(value)
                    cells.append(f'<c r="{ref}" t="s"><v>{len(shared) - 1}</v></c>')
                elif isinstance(value, XlsxDate):
                    cells.append(f'<c r="{ref}" s="1"><v>{float(value):g}</v></c>')
                else:
                    cells.append(f'<c r="{ref}"><v>{value}</v></c>')
            xml_rows.append(f'<row r="{r}">{"".join(cells)}</row>')
        parts[f"xl/worksheets/sheet{k}.xml"] = (f'<?xml version="1.0"?><worksheet {ns}><sheetData>{"".join(xml_rows)}'
                                                "</sheetData></worksheet>")
    rels.append((f"rId{len(sheets) + 1}", "sharedStrings", "sharedStrings.xml"))
    rels.append((f"rId{len(sheets) + 2}", "styles", "styles.xml"))
    parts["xl/styles.xml"] = (f'<?xml version="1.0"?><styleSheet {ns}><cellXfs count="2"><xf numFmtId="0"/>'
                              '<xf numFmtId="14" applyNumberFormat="1"/></cellXfs></styleSheet>')
    parts["xl/workbook.xml"] = (f'<?xml version="1.0"?><workbook {ns} xmlns:r="{_REL}"><sheets>{"".join(sheet_tags)}'
                                "</sheets></workbook>")
    parts["xl/_rels/workbook.xml.rels"] = _rels(rels)
    parts["xl/sharedStrings.xml"] = (f'<?xml version="1.0"?><sst {ns}>' + "".join(
        f"<si><t>{escape(s)}</t></si>" for s in shared) + "</sst>")
    return _zip(path, parts)


def make_rtf(path: Path, title: str, paragraphs: list[str], table: list[list[str]] | None = None) -> Path:
    """A WordPad-like RTF: font and colour tables, a stylesheet with a heading style, `\\'e9` and `\\u` escapes."""
    def esc(s: str) -> str:
        out = []
        for ch in s:
            if ch in "\\{}":
                out.append("\\" + ch)
            elif ord(ch) < 128:
                out.append(ch)
            elif ord(ch) < 256:
                out.append(f"\\'{ord(ch):02x}")
            else:
                out.append(f"\\u{ord(ch) if ord(ch) < 32768 else ord(ch) - 65536}?")
        return "".join(out)

    body = [r"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0\fswiss Helvetica;}}{\colortbl;\red0\green0\blue0;}",
            r"{\stylesheet{\s0 Normal;}{\s1\b\fs32 heading 1;}}",
            r"{\info{\title secret info title}{\author secret author}}",
            rf"\pard\s1\b\fs32 {esc(title)}\b0\fs24\par"]
    for p in paragraphs:
        body.append(rf"\pard\s0 {esc(p)}\par")
    for row in table or []:
        body.append(r"\trowd\cellx2000\cellx4000 " + "".join(rf"\intbl {esc(c)}\cell " for c in row) + r"\row")
    body.append(r"{\*\generator secret generator;}{\pict\pngblip 89504e47}}")
    path.write_text("\n".join(body), encoding="ascii")
    return path
