"""Rich Text Format (`.rtf`): the text of the document, read by a small tokenizer (control words, groups, `\\'hh`
bytes in the document's code page, `\\uN` characters). Paragraphs are blocks; paragraphs whose style is a heading
(`\\outlinelevelN`, or a stylesheet entry named "heading N") make the heading path; table cells are joined by
" | ". Font and colour tables, the stylesheet, document info, pictures, objects, headers and footers and every
`{\\* ...}` destination are not indexed. Linear in the input: no recursion, bounded group depth."""

from __future__ import annotations

import re
from pathlib import Path

from .base import Block, ParsedDocument, ParseError, SectionBuilder

_TOKEN = re.compile(rb"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?|\\'([0-9a-fA-F]{2})|\\(.)|([{}])|[\r\n]+|([^\\{}\r\n]+)", re.S)
_SKIP_DESTINATIONS = {
    b"fonttbl", b"colortbl", b"stylesheet", b"info", b"pict", b"object", b"header", b"footer", b"headerl",
    b"headerr", b"headerf", b"footerl", b"footerr", b"footerf", b"listtable", b"listoverridetable", b"rsidtbl",
    b"themedata", b"colorschememapping", b"datastore", b"latentstyles", b"xmlnstbl", b"generator", b"filetbl",
    b"revtbl", b"pgdsctbl", b"fldinst", b"bkmkstart", b"bkmkend", b"field_inst", b"nonshppict", b"shppict",
    b"shpinst", b"sp", b"sn", b"sv", b"xe", b"tc", b"txe", b"atnid", b"atnauthor", b"annotation", b"mmathPr",
    b"userprops", b"docvar", b"wgrffmtfilter", b"operator", b"author", b"title", b"subject", b"keywords",
    b"comment", b"doccomm", b"company", b"category", b"falt", b"panose", b"fname", b"listtext", b"pntext",
    b"passwordhash", b"protusertbl", b"mhtmltag", b"htmltag", b"ftnsep", b"ftnsepc", b"aftnsep", b"aftnsepc",
}
_SPECIAL = {b"par": "\n\n", b"sect": "\n\n", b"page": "\n\n", b"line": "\n", b"tab": "\t", b"cell": " | ",
            b"nestcell": " | ", b"row": "\n", b"nestrow": "\n", b"emdash": "—", b"endash": "–", b"bullet": "•",
            b"lquote": "‘", b"rquote": "’", b"ldblquote": "“", b"rdblquote": "”", b"emspace": " ",
            b"enspace": " ",
            b"qmspace": " ", b"~": "\u00a0", b"-": "", b"_": "-", b"zwj": "", b"zwnj": ""}
MAX_DEPTH = 1000


def parse_rtf(path: Path, data: bytes) -> ParsedDocument:
    if not data.lstrip().startswith(b"{\\rtf"):
        raise ParseError("not an RTF file (it does not start with {\\rtf)")
    codepage = "cp1252"
    m = re.search(rb"\\ansicpg(\d{3,5})", data[:4096])
    if m:
        codepage = f"cp{int(m.group(1))}"
        try:
            "".encode(codepage)
        except LookupError:
            codepage = "cp1252"
    # the stylesheet's heading styles: \sN ... heading N;
    heading_styles: dict[int, int] = {}
    styles = re.finditer(rb"\{[^{}]*?\\s(\d{1,5})\b[^{}]*?\s(?:heading|Heading|HEADING) ?(\d)[^{};]*;", data[:200_000])
    for sm in styles:
        heading_styles[int(sm.group(1))] = int(sm.group(2))
    out: list[str] = []
    paragraphs: list[tuple[int | None, str]] = []
    stack: list[tuple[bool, int]] = []  # (skipping, uc) saved at each "{"
    skipping, uc, pending_skip = False, 1, 0
    level: int | None = None
    hexbuf = bytearray()
    first_in_group = False
    star = False

    def flush_hex() -> None:
        if hexbuf:
            out.append(hexbuf.decode(codepage, "replace"))
            hexbuf.clear()

    def end_paragraph() -> None:
        nonlocal level
        flush_hex()
        text = "".join(out).strip()
        out.clear()
        if text:
            paragraphs.append((level, text))
        level = None

    for tok in _TOKEN.finditer(data):
        word, num, hexbyte, sym, brace, text = tok.groups()
        if hexbyte is None:
            flush_hex()
        if brace == b"{":
            if len(stack) >= MAX_DEPTH:
                raise ParseError(f"RTF groups nested deeper than {MAX_DEPTH}")
            stack.append((skipping, uc))
            first_in_group, star = True, False
            continue
        if brace == b"}":
            if stack:
                skipping, uc = stack.pop()
            first_in_group = False
            continue
        if sym == b"*" and first_in_group:
            star = True
            continue
        if word is not None:
            if first_in_group and (word in _SKIP_DESTINATIONS or star):
                skipping = True
            first_in_group = False
            if skipping:
                continue
            if word == b"uc" and num is not None:
                uc = max(0, min(int(num), 10))
            elif word == b"u" and num is not None:
                cp = int(num)
                cp = cp + 65536 if cp < 0 else cp
                out.append(chr(cp) if 0 < cp < 0x110000 and not 0xD800 <= cp <= 0xDFFF else "")
                pending_skip = uc
            elif word in (b"par", b"sect", b"page"):
                end_paragraph()
            elif word == b"pard":
                pass
            elif word == b"outlinelevel" and num is not None:
                level = int(num) + 1
            elif word == b"s" and num is not None and int(num) in heading_styles:
                level = heading_styles[int(num)]
            elif word in _SPECIAL:
                out.append(_SPECIAL[word])
            elif word == b"bin" and num is not None:
                pass  # binary data is skipped with its group (pictures)
            continue
        first_in_group = False
        if skipping:
            continue
        if pending_skip and (hexbyte is not None or text is not None or sym is not None):
            if text is not None and len(text) > pending_skip:
                text = text[pending_skip:]
                pending_skip = 0
            else:
                pending_skip -= 1 if text is None else len(text)
                pending_skip = max(0, pending_skip)
                continue
        if hexbyte is not None:
            hexbuf.append(int(hexbyte, 16))
        elif sym is not None:
            s = sym.decode("latin-1")
            out.append(_SPECIAL.get(sym, s if s in "\\{}" else ""))
        elif text is not None:
            out.append(text.decode(codepage, "replace"))
    end_paragraph()
    builder = SectionBuilder()
    title = None
    for lvl, text in paragraphs:
        text = re.sub(r"[ \t]+", " ", text).strip(" |")
        if not text:
            continue
        if lvl is not None and len(text) < 300:
            builder.heading(lvl, text)
            title = title or text
        else:
            builder.add(Block(text))
    return ParsedDocument("rtf", title or path.name, builder.result())
