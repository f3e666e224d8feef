"""PDF: a chain of extractors, so that one library's limits never lose a valid document.

pypdfium2 (PDFium, Apache-2.0/BSD-3) reads first: it is ~10x faster than pypdf and has no per-font limits (pypdf 7
gives up on simple fonts with more than 256 glyph widths, which groff writes). pypdf (BSD-3) reads what PDFium
refuses. Text is kept per page (`Block.page`); the document outline, when there is one, gives the heading path.
A PDF whose pages carry no text at all (a scan) is skipped with a warning, since we do not OCR; an encrypted or
truly corrupt one is a one-line failure.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from .base import Block, ParsedDocument, ParseError, Section, SkipFile, pack_lines

NO_TEXT = "no text layer; OCR is not supported"
_PARA_CHARS = 800  # a page without blank lines is cut into pieces of about this size


class _Encrypted(Exception):
    pass


@dataclass
class _Extracted:
    pages: list[str]
    title: str | None
    outline: list[tuple[int, int, str]]  # (level, 0-based page, title)


# ------------------------------------------------------------------------------------------------ extractors
def _pdfium(data: bytes) -> _Extracted:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise _Encrypted() from None
        raise
    try:
        pages = []
        for i in range(len(pdf)):
            page = pdf[i]
            try:
                textpage = page.get_textpage()
                try:
                    pages.append(textpage.get_text_range())
                finally:
                    textpage.close()
            finally:
                page.close()
        title = None
        try:
            title = (pdf.get_metadata_dict(skip_empty=True) or {}).get("Title")
        except Exception:  # noqa: BLE001 - broken metadata must not lose the text
            pass
        outline = []
        try:
            for item in pdf.get_toc(max_depth=8):
                if hasattr(item, "get_title"):  # pypdfium2 5
                    dest = item.get_dest()
                    name, page_index = item.get_title(), (dest.get_index() if dest is not None else None)
                else:  # pypdfium2 4
                    name, page_index = item.title, item.page_index
                if page_index is not None and page_index >= 0 and name:
                    outline.append((int(item.level), int(page_index), name))
        except Exception:  # noqa: BLE001 - a broken outline only costs the headings
            outline = []
        return _Extracted(pages, title, outline)
    finally:
        pdf.close()


def _pypdf(data: bytes) -> _Extracted:
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its font warnings are not the user's business
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            if not reader.decrypt(""):
                raise _Encrypted()
        except _Encrypted:
            raise
        except Exception:  # noqa: BLE001 - pypdf raises several types for unsupported encryption
            raise _Encrypted() from None
    pages = []
    failed = 0
    for page in reader.pages:
        try:
            pages.append(page.extract_text() or "")
        except Exception:  # noqa: BLE001 - one bad page must not lose the others
            pages.append("")
            failed += 1
    if failed == len(pages) and pages:
        raise ValueError(f"pypdf could not extract any of {len(pages)} pages")
    title = None
    try:
        title = (reader.metadata.title if reader.metadata else None) or None
    except Exception:  # noqa: BLE001
        title = None
    outline: list[tuple[int, int, str]] = []
    try:
        def walk(items, level):
            for it in items:
                if isinstance(it, list):
                    walk(it, level + 1)
                else:
                    n = reader.get_destination_page_number(it)
                    if n is not None and n >= 0 and getattr(it, "title", None):
                        outline.append((level, n, str(it.title)))
        walk(reader.outline, 0)
    except Exception:  # noqa: BLE001
        outline = []
    return _Extracted(pages, title, outline)


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0][:150] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


EXTRACTORS = (("pypdfium2", _pdfium), ("pypdf", _pypdf))


def parse_pdf(path: Path, data: bytes, extractors=EXTRACTORS) -> ParsedDocument:
    warnings: list[str] = []
    errors: list[str] = []
    got: _Extracted | None = None
    used = ""
    for name, extract in extractors:
        try:
            result = extract(data)
        except ImportError:
            continue
        except _Encrypted:
            raise ParseError("encrypted PDF (password required)") from None
        except Exception as exc:  # noqa: BLE001 - each library raises its own zoo of types on damaged files
            errors.append(f"{name}: {_reason(exc)}")
            continue
        if got is None or _chars(result.pages) > _chars(got.pages):
            got, used = result, name
        if _chars(result.pages):  # text found: later extractors are only for what this one could not read
            break
    if got is None and not errors:
        raise SkipFile("a PDF needs a PDF reader: pip install pypdfium2", warn=True, kind="needs-extra")
    if got is None:
        raise ParseError(f"corrupt PDF ({'; '.join(errors)})")
    if errors:
        warnings.append(f"read with {used}; {errors[0]}")
    pages = [_clean_page(p) for p in got.pages]
    if not any(p.strip() for p in pages):
        raise SkipFile(NO_TEXT, warn=True, kind="no-text")
    empty = [i + 1 for i, p in enumerate(pages) if not p.strip()]
    if empty and len(pages) > 1:
        warnings.append(f"{len(empty)} of {len(pages)} pages have no text layer ({_ranges(empty)}); "
                        "OCR is not supported")
    title = got.title.strip() if got.title and got.title.strip() else None
    if title and re.fullmatch(r"(?i)untitled( document)?|anonymous|none|\(?unspecified\)?", title):
        title = None  # placeholders PDF writers put in (ReportLab: "untitled")
    sections = _sections(pages, title, got.outline)
    return ParsedDocument("pdf", title, sections, warnings)


def _chars(pages: list[str]) -> int:
    return sum(len(p.strip()) for p in pages)


def _ranges(nums: list[int]) -> str:
    out, start = [], None
    for i, n in enumerate(nums):
        if start is None:
            start = n
        if i + 1 == len(nums) or nums[i + 1] != n + 1:
            out.append(str(start) if start == n else f"{start}-{n}")
            start = None
    text = ", ".join(out[:8])
    return "pages " + text + (", …" if len(out) > 8 else "")


def _clean_page(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub("[\ufffe\u00ad]\n?", "", text)  # PDFium's soft hyphen at a line break: the word is whole again
    text = text.replace("\x02", "")
    return text


def _norm(s: str) -> str:
    return re.sub(r"\W+", " ", s).strip().casefold()


def _sections(pages: list[str], title: str | None, outline: list[tuple[int, int, str]]) -> list[Section]:
    """Blocks per page; the outline's entries open sections where their title is found on their page (else at
    the top of the page)."""
    root = [title] if title else []
    by_page: dict[int, list[tuple[int, str]]] = {}
    for level, page, name in outline:
        by_page.setdefault(page, []).append((level, name))
    sections: list[Section] = [Section(list(root))]
    stack: list[tuple[int, str]] = []

    def open_section(level: int, name: str) -> None:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, " ".join(name.split())))
        sections.append(Section(root + [t for _, t in stack]))

    pos = 0
    for n, text in enumerate(pages):
        if sections[-1].blocks:  # a chunk never spans pages, so that its page number is exact
            sections.append(Section(list(sections[-1].heading)))
        pending = list(by_page.get(n, []))
        lines = text.split("\n")
        found = {}
        for level, name in pending:
            key = _norm(name)
            for i, line in enumerate(lines):
                norm = _norm(line)  # the heading line may carry the section number the outline leaves out
                if i not in found and key and (norm == key or (norm.endswith(" " + key) and re.fullmatch(
                        r"[\w.]{1,12} " + re.escape(key), norm))):
                    found[i] = (level, name)
                    break
        for level, name in pending:  # entries whose title is not on the page open at its top
            if (level, name) not in found.values():
                open_section(level, name)
        segment: list[str] = []

        def flush() -> None:
            nonlocal pos
            body = "\n".join(segment)
            segment.clear()
            paras = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
            out = []
            for p in paras:
                out.extend(pack_lines(p.split("\n"), _PARA_CHARS) if len(p) > 2 * _PARA_CHARS else [p])
            for p in out:
                sections[-1].blocks.append(Block(p, page=n + 1, char_start=pos))
                pos += len(p) + 2

        for i, line in enumerate(lines):
            if i in found:
                flush()
                open_section(*found[i])
                continue
            segment.append(line)
        flush()
    return [s for s in sections if s.blocks]
