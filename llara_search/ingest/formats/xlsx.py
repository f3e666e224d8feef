"""Excel workbooks (`.xlsx`/`.xlsm`, Office Open XML read with the standard library): one section per sheet, named
after it, one line per row with the non-empty cells joined by " | ". Sheets are streamed and bounded: at most
`MAX_ROWS` rows per sheet and `MAX_CELLS` cells per workbook (the rest is reported, not read)."""

from __future__ import annotations

import datetime
import io
import re
from pathlib import Path
from xml.etree import ElementTree as ET

from .archive import Archive, local, relationships, squeeze
from .base import Block, ParsedDocument, ParseError, Section, SkipFile

MAX_ROWS = 5000
MAX_CELLS = 200_000
MAX_SHARED = 1_000_000
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


def _shared_strings(book: Archive, part: str | None) -> list[str]:
    if not part or not book.has(part):
        return []
    out = []
    for si in book.xml(part):
        if local(si.tag) != "si":
            continue
        out.append("".join(t.text or "" for t in si.iter() if local(t.tag) == "t" and not _in_phonetic(si, t)))
        if len(out) >= MAX_SHARED:
            break
    return out


def _in_phonetic(si: ET.Element, t: ET.Element) -> bool:
    return any(local(rph.tag) == "rPh" and t in list(rph.iter()) for rph in si)


_DATE_FORMATS = set(range(14, 23)) | {45, 46, 47}  # Excel's built-in date and time number formats


def _date_styles(book: Archive, part: str | None) -> set[int]:
    """Indexes of the cell styles that show a number as a date (built-in date formats, or custom ones with d/m/y)."""
    if not part or not book.has(part):
        return set()
    root = book.xml(part)
    custom = {int(el.get("numFmtId", "0")) for el in root.iter() if local(el.tag) == "numFmt"
              and el.get("numFmtId", "").isdigit() and re.search(r"[dy]|mm?[-/]", re.sub(r'"[^"]*"|\[[^]]*\]', "",
                                                                                       el.get("formatCode", "")))}
    xfs = next((el for el in root.iter() if local(el.tag) == "cellXfs"), None)
    if xfs is None:
        return set()
    out = set()
    for k, xf in enumerate(x for x in xfs if local(x.tag) == "xf"):
        fmt = xf.get("numFmtId", "0")
        if fmt.isdigit() and (int(fmt) in _DATE_FORMATS or int(fmt) in custom):
            out.add(k)
    return out


def _as_date(value: str) -> str:
    """An Excel serial day number (1900 system) as an ISO date, with the time when it has one."""
    try:
        serial = float(value)
    except ValueError:
        return value
    if not 0 < serial < 2_958_466:
        return value
    moment = datetime.datetime(1899, 12, 30) + datetime.timedelta(days=serial)
    return moment.strftime("%Y-%m-%d %H:%M" if serial % 1 else "%Y-%m-%d")


def _rows(data: bytes, shared: list[str], budget: list[int], dates: set[int]) -> tuple[list[str], bool]:
    rows: list[str] = []
    if b"<!ENTITY" in data[:65536]:
        raise ParseError("XLSX sheet declares XML entities: not read")
    try:
        for _, el in ET.iterparse(io.BytesIO(data), events=("end",)):
            if local(el.tag) != "row":
                continue
            if len(rows) >= MAX_ROWS or budget[0] <= 0:
                return rows, True
            cells = []
            for c in el:
                if local(c.tag) != "c":
                    continue
                budget[0] -= 1
                kind = c.get("t", "n")
                value = ""
                if kind == "inlineStr":
                    value = "".join(t.text or "" for t in c.iter() if local(t.tag) == "t")
                else:
                    v = next((x.text for x in c if local(x.tag) == "v"), None) or ""
                    if kind == "s":
                        value = shared[int(v)] if v.isdigit() and int(v) < len(shared) else ""
                    elif kind == "b":
                        value = "TRUE" if v == "1" else "FALSE"
                    elif kind == "n" and v and c.get("s", "0").isdigit() and int(c.get("s", "0")) in dates:
                        value = _as_date(v)
                    else:
                        value = v
                value = squeeze(value).replace("\n", " ")
                if value:
                    cells.append(value)
            el.clear()
            if cells:
                rows.append(" | ".join(cells))
    except ET.ParseError as exc:
        raise ParseError(f"corrupt XLSX sheet: {str(exc)[:80]}") from None
    return rows, False


def parse_xlsx(path: Path, data: bytes) -> ParsedDocument:
    book = Archive(data, "XLSX")
    main = "xl/workbook.xml"
    if not book.has(main):
        raise SkipFile("XLSX file without xl/workbook.xml (encrypted or not Excel)", warn=True, kind="encrypted")
    rels = relationships(book, main)
    shared = _shared_strings(book, next((t for k, t in rels.values() if k == "sharedStrings"), None))
    dates = _date_styles(book, next((t for k, t in rels.values() if k == "styles"), None))
    sheets = [(el.get("name", "Sheet"), rels.get(el.get(_R, ""), ("", ""))[1]) for el in book.xml(main).iter()
              if local(el.tag) == "sheet"]
    sections: list[Section] = []
    warnings: list[str] = []
    budget = [MAX_CELLS]
    for name, part in sheets:
        if not part or not book.has(part):
            continue
        rows, cut = _rows(book.read(part), shared, budget, dates)
        if cut:
            warnings.append(f"sheet {name}: only the first {len(rows)} rows indexed")
        if rows:
            sections.append(Section([name], [Block(r) for r in rows]))
    if not sections:
        raise SkipFile("XLSX workbook without any cell text", warn=True, kind="no-text")
    return ParsedDocument("xlsx", path.name, sections, warnings=warnings)
