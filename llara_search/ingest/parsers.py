"""Parsers: one function per format, each turning a file into sections of blocks with their provenance.

A *block* is the smallest unit the chunker will not split unless it must (a paragraph, a code fence, a table, a
notebook cell, a PDF page's paragraph). Sections carry the heading path. Line numbers are 1-based and refer to the
source file; character offsets refer to the decoded text (for text formats) or the extracted text (html, pdf, docx).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

TEXT_EXT = {".txt", ".text", ".log", ".cfg", ".conf", ".ini", ".toml", ".yaml", ".yml", ".csv", ".tsv", ".json",
            ".py", ".sh", ".c", ".h", ".js", ".ts", ".go", ".rs", ".java", ".man", ".1", ".5", ".8", ".tex"}
BINARY_EXT = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".bmp", ".webp", ".tif", ".tiff", ".mp3", ".mp4",
              ".wav", ".avi", ".mov", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".tar", ".whl", ".so", ".o", ".a",
              ".dll", ".exe", ".bin", ".pyc", ".woff", ".woff2", ".ttf", ".otf", ".eot", ".db", ".sqlite", ".pkl",
              ".npy", ".npz", ".pt", ".safetensors", ".class", ".jar", ".doc", ".xls", ".xlsx", ".ppt", ".pptx",
              ".odt", ".dia", ".fig", ".psd", ".ai", ".eps", ".ps", ".dot", ".gv", ".graffle"}


class ParseError(Exception):
    """A file that cannot be read as a document; the message is the one-line reason shown to the user."""


class SkipFile(Exception):
    """Not a document (binary, image): counted as skipped, not as a failure."""


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


# ------------------------------------------------------------------------------------------------ text decoding
def decode_text(data: bytes, name: str = "file") -> str:
    """UTF-8 (with or without BOM), UTF-16/32 with BOM, else the best guess of charset-normalizer."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for bom, enc in ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
                     (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(enc)
            except UnicodeDecodeError as exc:
                raise ParseError(f"invalid {enc.upper()} text at byte {exc.start}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    from charset_normalizer import from_bytes

    matches = from_bytes(data[:1_000_000])
    best = matches.best()
    if best is not None:
        # single-byte code pages often tie (cp1250 and cp1252 both decode French); on a tie, take Windows-1252,
        # by far the commonest legacy encoding of documentation ("naïve", not "naďve")
        tie = [m for m in matches if m.encoding == "cp1252" and m.chaos <= best.chaos
               and m.coherence >= best.coherence - 1e-9]
        best = tie[0] if tie else best
    if best is None or best.encoding in {"utf_8"}:
        raise ParseError(f"not valid UTF-8 (byte {first_bad}) and no other text encoding fits")
    try:
        return data.decode(best.encoding)
    except (UnicodeDecodeError, LookupError):
        raise ParseError(f"not valid UTF-8 (byte {first_bad}) and no other text encoding fits") from None


def looks_binary(data: bytes) -> bool:
    head = data[:8192]
    if not head:
        return False
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False  # UTF-16 text has NULs
    return b"\x00" in head


# ------------------------------------------------------------------------------------------------ plain text / rst
_ADORN = re.compile(r"^([=\-~^\"'`#*+:.<>_])\1{2,}\s*$")


def _paragraph_blocks(lines: list[str], first_line: int, offsets: list[int]) -> list[Block]:
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


def _line_offsets(text: str) -> tuple[list[str], list[int]]:
    lines = text.split("\n")
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    return lines, offsets


def parse_underlined(text: str, fmt: str) -> ParsedDocument:
    """reStructuredText and plain text: titles are lines underlined (and maybe overlined) with punctuation.

    Heading levels follow the order in which adornment styles first appear, as docutils defines them.
    """
    lines, offsets = _line_offsets(text)
    styles: list[tuple[str, bool]] = []
    heads: list[tuple[int, int, str, int]] = []  # (first line idx of heading, idx after heading, title, level)
    i = 0
    while i < len(lines) - 1:
        title, under = lines[i].rstrip(), lines[i + 1].rstrip()
        over = i > 0 and _ADORN.match(lines[i - 1] or "") is not None
        if (title.strip() and not _ADORN.match(title) and _ADORN.match(under)
                and len(under.strip()) >= max(3, len(title.strip()) - 1) and len(title.strip()) < 120
                and (i == 0 or not lines[i - 1].strip() or over)):
            style = (under.strip()[0], over and lines[i - 1].strip()[:1] == under.strip()[0])
            if style not in styles:
                styles.append(style)
            start = i - 1 if style[1] else i
            heads.append((start, i + 2, title.strip(), styles.index(style)))
            i += 2
            continue
        i += 1
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    bounds = [(0, 0, None, -1)] + heads
    for n, (start, body, title, level) in enumerate(bounds):
        end = bounds[n + 1][0] if n + 1 < len(bounds) else len(lines)
        if title is not None:
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
        blocks = _paragraph_blocks(lines[body:end], body + 1, offsets)
        if blocks:
            sections.append(Section([t for _, t in stack], blocks))
    title = heads[0][2] if heads else None
    return ParsedDocument(fmt, title, sections)


def parse_text(path: Path, data: bytes) -> ParsedDocument:
    return parse_underlined(decode_text(data, path.name), "text")


def parse_rst(path: Path, data: bytes) -> ParsedDocument:
    return parse_underlined(decode_text(data, path.name), "rst")


def _push_heading(stack: list[tuple[int, str]], sections: list[Section], level: int, name: str) -> None:
    """Open a new section at `level`: close deeper or equal headings, keep the path of the ones above."""
    while stack and stack[-1][0] >= level:
        stack.pop()
    stack.append((level, name))
    sections.append(Section([t for _, t in stack]))


# ------------------------------------------------------------------------------------------------ markdown
def parse_markdown(path: Path, data: bytes) -> ParsedDocument:
    """markdown-it-py gives real headings (not `#` inside code) and the source line range of every block."""
    from markdown_it import MarkdownIt

    text = decode_text(data, path.name)
    lines, offsets = _line_offsets(text)
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    sections: list[Section] = [Section([])]
    stack: list[tuple[int, str]] = []
    title = None
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            level = int(tok.tag[1])
            name = tokens[i + 1].content.strip() if i + 1 < len(tokens) else ""
            _push_heading(stack, sections, level, name)
            title = title or name
            i += 3
            continue
        if tok.level == 0 and tok.map and tok.nesting in (0, 1):
            a, b = tok.map
            body = "\n".join(lines[a:b]).strip("\n")
            if body.strip():
                sections[-1].blocks.append(Block(body, a + 1, b, char_start=offsets[a]))
            # skip to the matching close token of this top-level block
            if tok.nesting == 1:
                depth = 1
                while depth and i + 1 < len(tokens):
                    i += 1
                    depth += tokens[i].nesting
        i += 1
    return ParsedDocument("markdown", title, [s for s in sections if s.blocks])


# ------------------------------------------------------------------------------------------------ html
def parse_html(path: Path, data: bytes) -> ParsedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data, path.name), "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer", "template", "svg"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    root = soup.body or soup
    sections: list[Section] = [Section([title] if title else [])]
    stack: list[tuple[int, str]] = []
    pos = 0
    block_tags = {"p", "pre", "li", "table", "blockquote", "dd", "dt", "td", "th", "figcaption", "caption"}
    for el in root.find_all(True):
        name = el.name
        if name in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            level = int(name[1])
            head = el.get_text(" ", strip=True)
            if not head:
                continue
            _push_heading(stack, sections, level, head)
            title = title or head
        elif name in block_tags and not el.find_parent(list(block_tags)):
            txt = el.get_text("\n" if name == "pre" else " ", strip=name != "pre").strip()
            if txt:
                sections[-1].blocks.append(Block(txt, char_start=pos))
                pos += len(txt) + 2
    if not any(s.blocks for s in sections):
        txt = root.get_text("\n", strip=True)
        if txt:
            sections = [Section([title] if title else [], [Block(p, char_start=0) for p in txt.split("\n\n")])]
    return ParsedDocument("html", title, [s for s in sections if s.blocks])


# ------------------------------------------------------------------------------------------------ pdf
def parse_pdf(path: Path, data: bytes) -> ParsedDocument:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise ParseError("encrypted PDF (password required)")
            except ParseError:
                raise
            except Exception:  # noqa: BLE001 - pypdf raises several types for unsupported encryption
                raise ParseError("encrypted PDF (cannot decrypt)") from None
        pages = list(reader.pages)
    except ParseError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise ParseError(f"corrupt PDF: {str(exc).splitlines()[0][:150] if str(exc) else type(exc).__name__}") \
            from None
    title = None
    try:
        title = (reader.metadata.title if reader.metadata else None) or None
    except Exception:  # noqa: BLE001 - broken metadata must not lose the text
        title = None
    sections: list[Section] = []
    pos = 0
    for n, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as exc:  # noqa: BLE001 - one bad page must not lose the others
            text = ""
            if n == len(pages) and not sections:
                raise ParseError(f"corrupt PDF: page {n}: {type(exc).__name__}") from None
        paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
        if len(paras) == 1 and len(paras[0]) > 1500:  # pypdf often yields one blob per page: split on lines
            paras = _pack_lines(paras[0].split("\n"), 800)
        blocks = []
        for p in paras:
            blocks.append(Block(p, page=n, char_start=pos))
            pos += len(p) + 2
        if blocks:
            sections.append(Section([title] if title else [], blocks))
    return ParsedDocument("pdf", title, sections)


def _pack_lines(lines: list[str], size: int) -> list[str]:
    out, cur = [], []
    for line in lines:
        cur.append(line)
        if sum(len(x) + 1 for x in cur) >= size:
            out.append("\n".join(cur))
            cur = []
    if cur:
        out.append("\n".join(cur))
    return out


# ------------------------------------------------------------------------------------------------ notebooks
def parse_ipynb(path: Path, data: bytes) -> ParsedDocument:
    try:
        nb = json.loads(decode_text(data, path.name))
        cells = nb["cells"] if isinstance(nb, dict) else None
        if not isinstance(cells, list):
            raise ValueError("no cells list")
    except (ValueError, KeyError, TypeError) as exc:
        raise ParseError(f"broken notebook JSON: {str(exc).splitlines()[0][:150]}") from None
    sections: list[Section] = [Section([])]
    stack: list[tuple[int, str]] = []
    title = None
    pos = 0
    for n, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        if not src.strip():
            continue
        kind = cell.get("cell_type", "code")
        if kind == "markdown":
            for line in src.split("\n"):
                m = re.match(r"^(#{1,6})\s+(.*)", line)
                if m:
                    head = m.group(2).strip()
                    _push_heading(stack, sections, len(m.group(1)), head)
                    title = title or head
                    break
        text = src.strip() if kind == "markdown" else "```python\n" + src.strip() + "\n```"
        sections[-1].blocks.append(Block(text, start_line=n, end_line=n, char_start=pos))  # "lines" = cell numbers
        pos += len(text) + 2
    return ParsedDocument("ipynb", title, [s for s in sections if s.blocks])


# ------------------------------------------------------------------------------------------------ docx
def parse_docx(path: Path, data: bytes) -> ParsedDocument:
    import io

    try:
        import docx  # python-docx, the optional `docx` extra
    except ImportError:
        raise ParseError("a .docx file needs the docx extra: pip install 'llara-search[docx]'") from None
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
            _push_heading(stack, sections, int(m.group(2) or 1) if m.group(1) == "Heading" else 0, text)
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


# ------------------------------------------------------------------------------------------------ dispatch
PARSERS: dict[str, Callable[[Path, bytes], ParsedDocument]] = {
    ".md": parse_markdown, ".markdown": parse_markdown, ".mdx": parse_markdown,
    ".rst": parse_rst, ".rest": parse_rst,
    ".html": parse_html, ".htm": parse_html, ".xhtml": parse_html,
    ".pdf": parse_pdf, ".ipynb": parse_ipynb, ".docx": parse_docx,
}


def parser_for(path: Path) -> Callable[[Path, bytes], ParsedDocument] | None:
    """The parser for a file, or None when it is not a document we read (images, archives, binaries)."""
    ext = path.suffix.lower()
    if ext in PARSERS:
        return PARSERS[ext]
    if ext in BINARY_EXT:
        return None
    if ext in TEXT_EXT or ext == "" or re.fullmatch(r"\.\d", ext):
        return parse_text
    return None


def parse_file(path: Path, data: bytes) -> ParsedDocument:
    parser = parser_for(path)
    if parser is None:
        raise SkipFile(f"not a document type we read ({path.suffix or 'no extension'})")
    if not data.strip():
        raise ParseError("empty file")
    if parser not in (parse_pdf, parse_docx) and looks_binary(data):
        raise ParseError("binary data, not text")
    doc = parser(path, data)
    if not doc.sections:
        raise ParseError("no text found")
    return doc
