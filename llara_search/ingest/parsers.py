"""The one dispatch from a file to its parser: by extension, then by content where extensions lie or are absent
(a man page named `foo.txt`, a Sphinx source saved as `.txt`, a compressed `bash.1.gz`).

Every parser lives in `llara_search.ingest.formats` (one module per format family) and returns a
`ParsedDocument`; `parse_file` then cleans it the same way for every format (`clean.py`: NFC, no control
characters, no markup-only blocks).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from .clean import clean_document
from .decode import decode_notes
from .formats.asciidoc import INCLUDE_ROOTS, looks_like_asciidoc, parse_asciidoc
from .formats.base import (Block, ParsedDocument, ParseError, Section, SkipFile, decode_text,  # noqa: F401
                           looks_binary)
from .formats.docx import parse_docx
from .formats.html import parse_html
from .formats.man import looks_like_formatted_man, looks_like_roff, parse_formatted_man, parse_man
from .formats.markdown import parse_markdown
from .formats.notebook import parse_ipynb
from .formats.pdf import parse_pdf
from .formats.epub import parse_epub
from .formats.latex import parse_latex
from .formats.odf import parse_odf
from .formats.pptx import parse_pptx
from .formats.rtf import parse_rtf
from .formats.xlsx import parse_xlsx
from .formats.org import parse_org
from .formats.pod import parse_pod
from .formats.roff import looks_like_roff_document, parse_roff
from .formats.rst import looks_like_rst, parse_rst
from .formats.texinfo import looks_like_info, looks_like_texinfo, parse_info, parse_texinfo
from .formats.text import parse_underlined  # BEIR records and plain text

# The version of what the parsers make of a file, stored with every document. Bump it whenever any parser's output
# changes (cleaner text, new headings, a format newly read): the next ingest re-parses files whose bytes did not
# change, and only chunks whose text changed are encoded again (the others keep their vectors by content hash).
PARSER_VERSION = "5"

TEXT_EXT = {".txt", ".text", ".log", ".cfg", ".conf", ".ini", ".toml", ".yaml", ".yml", ".csv", ".tsv", ".json",
            ".py", ".sh", ".c", ".h", ".js", ".ts", ".go", ".rs", ".java"}
BINARY_EXT = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".bmp", ".webp", ".tif", ".tiff", ".mp3", ".mp4",
              ".wav", ".avi", ".mov", ".zip", ".tgz", ".7z", ".tar", ".whl", ".so", ".o", ".a",
              ".dll", ".exe", ".bin", ".pyc", ".woff", ".woff2", ".ttf", ".otf", ".eot", ".db", ".sqlite", ".pkl",
              ".npy", ".npz", ".pt", ".safetensors", ".class", ".jar", ".doc", ".xls", ".ppt",
              ".dia", ".fig", ".psd", ".ai", ".eps", ".ps", ".dot", ".gv", ".graffle", ".dvi"}
COMPRESSED = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}
MAX_DECOMPRESSED = 64 * 2**20

# man page sections: bash.1, printf.3p, openssl.1ssl, perlfunc.3pm, tclsh.n; roff sources under their own names
_MAN_EXT = re.compile(r"\.([1-9][a-z0-9+]{0,8}|n|l|man|roff|mdoc|mandoc)$", re.I)
_FORMATTED_MAN_EXT = {".0", ".cat"}
_INFO_EXT = re.compile(r"\.info(-\d+)?$", re.I)

Parser = Callable[[Path, bytes], ParsedDocument]


def parse_text(path: Path, data: bytes) -> ParsedDocument:
    return parse_underlined(decode_text(data, path.name), "text")


PARSERS: dict[str, Parser] = {
    ".md": parse_markdown, ".markdown": parse_markdown, ".mdx": parse_markdown, ".myst": parse_markdown,
    ".mkd": parse_markdown, ".mdown": parse_markdown, ".qmd": parse_markdown,
    ".rst": parse_rst, ".rest": parse_rst,
    ".html": parse_html, ".htm": parse_html, ".xhtml": parse_html,
    ".pdf": parse_pdf, ".ipynb": parse_ipynb, ".docx": parse_docx,
    ".texi": parse_texinfo, ".texinfo": parse_texinfo, ".txi": parse_texinfo,
    ".ms": parse_roff, ".me": parse_roff, ".mm": parse_roff, ".mom": parse_roff, ".tr": parse_roff,
    ".roff": parse_roff,
    ".epub": parse_epub, ".odt": parse_odf, ".odp": parse_odf, ".ods": parse_odf, ".pptx": parse_pptx,
    ".xlsx": parse_xlsx, ".xlsm": parse_xlsx, ".rtf": parse_rtf,
    ".org": parse_org, ".tex": parse_latex, ".ltx": parse_latex, ".latex": parse_latex,
    ".pod": parse_pod, ".pm": parse_pod, ".pl": parse_pod, ".pod6": parse_pod,
    ".adoc": parse_asciidoc, ".asciidoc": parse_asciidoc, ".asc": parse_asciidoc, ".ad": parse_asciidoc,
}
# containers read as bytes: no text decoding, no binary check, never inside .gz
_BINARY_PARSERS = {parse_pdf, parse_docx, parse_ipynb, parse_epub, parse_odf, parse_pptx, parse_xlsx}
_CONTENT_SNIFFED = {parse_text, parse_man, parse_formatted_man, parse_rst, parse_info, parse_texinfo}


def _by_name(name: str) -> Parser | None:
    lower = name.lower()
    ext = Path(lower).suffix
    if lower.endswith(".rst.txt"):  # Sphinx copies its sources into _sources/ under this name
        return parse_rst
    if _INFO_EXT.search(lower):
        return parse_info
    if ext in PARSERS:
        return PARSERS[ext]
    if ext in _FORMATTED_MAN_EXT:
        return parse_formatted_man
    if _MAN_EXT.search(lower) and not re.search(r"\.\d+\.\d+$", lower):  # not a version number like lib-1.2
        return parse_man
    if ext in BINARY_EXT:
        return None
    if ext in TEXT_EXT or ext == "" or re.fullmatch(r"\.\d+", ext) or ext in {".1", ".5", ".8"}:
        return parse_text
    return None


def parser_for(path: Path) -> Parser | None:
    """The parser a file's name asks for, or None when it is not a document we read (images, archives,
    binaries). Content can still change the choice among the text formats (`parse_file`)."""
    name = path.name
    ext = path.suffix.lower()
    if ext in COMPRESSED:
        inner = _by_name(name[: -len(ext)])
        return inner if inner is not None and inner not in _BINARY_PARSERS else None
    return _by_name(name)


def _sniff(parser: Parser, head: str, ext: str) -> Parser:
    """Among the text formats, what the content says wins over the name."""
    if looks_like_info(head):
        return parse_info
    if looks_like_texinfo(head):
        return parse_texinfo
    if parser is parse_text and ext in (".txt", ".text", "") and looks_like_roff_document(head):
        return parse_roff  # -ms/-me/-mm/-mom saved as text (before the man test: they may use .SH too)
    if looks_like_roff(head, named=parser is parse_man):
        return parse_man
    if looks_like_formatted_man(head):
        return parse_formatted_man
    if parser in (parse_man, parse_formatted_man, parse_info, parse_texinfo):
        return parse_text  # named like one of these, but plain text inside
    if parser is parse_text and ext in (".txt", ".text", "") and looks_like_rst(head):
        return parse_rst
    if parser is parse_text and ext in (".txt", ".text", "") and looks_like_asciidoc(head):
        return parse_asciidoc
    return parser


def _decompress(path: Path, data: bytes) -> tuple[Path, bytes]:
    import bz2
    import gzip
    import lzma

    import io

    ext = path.suffix.lower()
    kind = COMPRESSED[ext]
    try:
        if kind == "gzip":
            fh = gzip.GzipFile(fileobj=io.BytesIO(data))
        elif kind == "bz2":
            fh = bz2.BZ2File(io.BytesIO(data))
        else:
            fh = lzma.LZMAFile(io.BytesIO(data))
        with fh:
            out = fh.read(MAX_DECOMPRESSED + 1)
    except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        raise ParseError(f"corrupt {ext[1:]} file: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}") \
            from None
    if len(out) > MAX_DECOMPRESSED:
        raise ParseError(f"decompresses to more than {MAX_DECOMPRESSED // 2**20} MB")
    return path.with_name(path.name[: -len(ext)]), out


_LEGACY = {".doc": "legacy Word binary format: save it as .docx, .odt or .rtf to index it",
           ".xls": "legacy Excel binary format: save it as .xlsx or .ods to index it",
           ".ppt": "legacy PowerPoint binary format: save it as .pptx or .odp to index it"}


def _unsupported(path: Path) -> SkipFile:
    """Why a file's name rules it out, and which kind of skip that is (for the grouped ingest summary)."""
    ext = path.suffix.lower()
    if ext in _LEGACY:
        return SkipFile(f"{ext}: {_LEGACY[ext]}", kind="unsupported")
    if ext in BINARY_EXT or ext in COMPRESSED:
        return SkipFile(f"binary file type ({ext})", kind="binary")
    return SkipFile(f"unsupported format {ext or '(no extension)'}", kind="unsupported")


def parse_file(path: Path, data: bytes, roots: list[Path] | None = None) -> ParsedDocument:
    """`roots`: the folders being ingested; a document may pull in other files (AsciiDoc `include::`) only from
    inside them (by default: the file's own folder)."""
    token = INCLUDE_ROOTS.set(tuple(roots) if roots else None)
    try:
        return _parse_file(path, data)
    finally:
        INCLUDE_ROOTS.reset(token)


def _parse_file(path: Path, data: bytes) -> ParsedDocument:
    parser = parser_for(path)
    if parser is None:
        raise _unsupported(path)
    if not data.strip():
        raise SkipFile("empty file", kind="empty")
    if path.suffix.lower() in COMPRESSED:
        path, data = _decompress(path, data)
        if not data.strip():
            raise SkipFile("empty file", kind="empty")
    head = data[:65536].decode("utf-8", "replace") if parser in _CONTENT_SNIFFED else ""
    info = parser in _CONTENT_SNIFFED and looks_like_info(head)  # Info index markers hold NUL bytes
    if (parser not in _BINARY_PARSERS or parser is parse_ipynb) and not info and looks_binary(data):
        raise SkipFile("binary data, not text", kind="binary")
    if parser in _CONTENT_SNIFFED:
        parser = _sniff(parser, head, path.suffix.lower())
    with decode_notes() as notes:  # warnings of the text decoding (bad bytes replaced, a guessed code page)
        doc = parser(path, data)
    doc.warnings[:0] = notes
    doc = clean_document(doc)
    if not doc.sections:  # a valid file with nothing to index (a toctree page, an empty notebook)
        raise SkipFile("no text to index (only markup or whitespace)", warn=True, kind="no-text")
    return doc


__all__ = ["PARSER_VERSION", "Block", "ParseError", "ParsedDocument", "Section", "SkipFile", "decode_text",
           "looks_binary", "parse_file", "parse_underlined", "parser_for"]
