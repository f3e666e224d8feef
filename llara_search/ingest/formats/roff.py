"""roff documents beyond man pages: articles and books written with the -ms, -me, -mm and -mom macro packages
(`.ms`, `.me`, `.mm`, `.mom`, `.roff`, `.tr`, or roff saved as `.txt`).

They run through the man page interpreter (`man.py`: requests, escapes, strings, conditionals, page-defined
macros, tbl) with each package's own macros on top: titles (`.TL`, `.TITLE`), headings (`.NH`/`.SH` of -ms whose
text follows on the next lines, `.sh`/`.uh` of -me, `.H`/`.HU` of -mm, `.HEADING`/`.HEAD` of -mom), paragraphs,
displays kept line by line, footnotes and abstracts as blocks, font macros reduced to their text. Macros that only
set the page (sizes, columns, headers and footers, table of contents entries) leave nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

from .base import ParsedDocument, Section, SkipFile, decode_text
from .man import _Roff, _args, parse_man

_PACKAGE_MACROS = {
    "ms": re.compile(r"^\.(NH|TL|AU|AI|AB|AE|LP|PP|QP|XP|DS|DE|FS|FE|KS|KE|RP|ND|XS|XE)\b", re.M),
    "me": re.compile(r"^\.(sh|uh|pp|lp|ip|np|bu|\(q|\)q|\(l|\)l|\(b|\)b|\(z|\)z|\(f|\)f|\(x|\)x|\+c|\$c|tp|he|fo)"
                     r"(?=\s|$)", re.M),
    "mm": re.compile(r"^\.(H\s+\d|HU|P|AL|BL|DL|ML|RL|VL|LI|LE|DS|DE|AS|AE|MT|SK|SA|TC|ND|LO|LT|FC|SG)(?=\s|$)",
                     re.M),
    "mom": re.compile(r"^\.(PRINTSTYLE|START|TITLE|DOCTITLE|AUTHOR|HEADING|HEAD|SUBHEAD|SUBSUBHEAD|DOCTYPE|"
                      r"COPYSTYLE|FAMILY|PT_SIZE|LS|QUOTE|BLOCKQUOTE|LIST|ITEM|FOOTNOTE|CHAPTER_TITLE|COLLATE)"
                      r"(?=\s|$)", re.M),
}
_EXT_PACKAGE = {".ms": "ms", ".me": "me", ".mm": "mm", ".mom": "mom"}


def roff_package(head: str) -> str | None:
    """The macro package a roff document is written for, by the macros it uses most (None: not such a document)."""
    counts = {name: len(pattern.findall(head)) for name, pattern in _PACKAGE_MACROS.items()}
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] >= 3 else None


def looks_like_roff_document(head: str) -> bool:
    """roff saved as `.txt` or without extension: many lines are requests, and a package's macros are among them."""
    lines = [ln for ln in head.split("\n", 2000)[:2000] if ln.strip()]
    if len(lines) < 4:
        return False
    if re.search(r"^[.'][ \t]*(TH|Dt)\b", head, re.M):
        return False  # a man page
    requests = sum(1 for ln in lines if re.match(r"^[.'][A-Za-z(+$\\\"]", ln))
    return requests >= max(4, len(lines) // 8) and roff_package(head) is not None


_FONTLIKE = {"B", "I", "R", "BI", "IB", "RB", "BR", "IR", "RI", "CW", "UL", "BX", "SM", "LG", "NL", "b", "i", "r",
             "bi", "u", "q", "bx", "sm", "rb", "ft", "ul", "cu", "ds", "as", "nr", "if", "ie", "el", "\\\"", "FT"}


class _Package(_Roff):
    """The man interpreter with one macro package's own macros handled first."""

    def __init__(self, lines: list[str], package: str):
        super().__init__(lines)
        self.package = package
        self.collect: int | None = None  # a heading (level; 0: the title) being gathered from text lines
        self.collected: list[str] = []
        self.handler = {"ms": self._ms, "me": self._me, "mm": self._mm, "mom": self._mom}[package]

    # -------------------------------------------------------------------------------------------- headings
    def emit(self, text: str, line_no: int, brk: bool = False) -> None:
        if self.collect is not None:
            self.collected.append(text)
            return
        super().emit(text, line_no, brk)

    def begin_heading(self, level: int) -> None:
        self.end_heading()
        self.flush()
        self.nofill = False
        self.collect, self.collected = level, []

    def end_heading(self) -> None:
        if self.collect is None:
            return
        level, self.collect = self.collect, None
        self.set_heading(level, " ".join(" ".join(self.collected).split()))
        self.collected = []

    def set_heading(self, level: int, name: str) -> None:
        name = " ".join(name.replace("\x00", "").split())
        if not name:
            return
        self.flush()
        if level == 0:
            if self.title is None:
                self.title = name
                self.builder.root = [name]
                if not self.builder.stack:
                    self.builder.sections[-1].heading = [name]
                return
            level = 1
        self.builder.heading(level, name)

    def run(self) -> None:
        super().run()
        self.end_heading()
        self.flush()

    def _man(self, name: str, rest: str, no: int, queue: list[tuple[str, int]]) -> None:
        if name not in _FONTLIKE:
            self.end_heading()
        if self.handler(name, _args(rest), rest, no, queue):
            return
        super()._man(name, rest, no, queue)

    # -------------------------------------------------------------------------------------------- helpers
    def font(self, args: list[str], no: int, order: str) -> None:
        """Font macros: `.B text post pre` (ms), `.b text post` (me), alternating `.B a b c` (mm)."""
        if not args:
            return
        if order == "ms":
            text = (args[2] if len(args) > 2 else "") + args[0] + (args[1] if len(args) > 1 else "")
        elif order == "me":
            text = args[0] + (args[1] if len(args) > 1 else "")
        else:
            text = "".join(args)
        self.emit(self.esc(text), no)

    def skip_to(self, queue: list[tuple[str, int]], *ends: str) -> None:
        while queue:
            line, _ = queue.pop()
            if line[:1] in ".'" and line[1:].strip().split(" ")[0] in ends:
                return

    def display(self, on: bool) -> None:
        self.flush()
        self.nofill = on

    # -------------------------------------------------------------------------------------------- packages
    def _ms(self, name: str, args: list[str], rest: str, no: int, queue: list[tuple[str, int]]) -> bool:
        if name == "TL":
            self.begin_heading(0)
        elif name == "NH":
            level = int(args[0]) if args and args[0].isdigit() else 1
            self.begin_heading(max(1, min(level, 6)))
        elif name == "SH":
            if args and not args[0].isdigit():  # `.SH Title` as man pages write it
                self.set_heading(1, self.esc(" ".join(args)))
            else:
                self.begin_heading(max(1, min(int(args[0]) if args else 1, 6)))
        elif name == "AB":
            if not (args and args[0] == "no"):
                self.set_heading(1, "Abstract")
        elif name in ("AE", "AU", "AI", "QP", "XP", "QS", "QE", "FS", "FE", "KS", "KE", "KF"):
            self.flush()
        elif name in ("DS", "ID", "LD", "CD", "BD", "RD"):
            self.display(True)
        elif name == "DE":
            self.display(False)
        elif name in ("XS", "XA"):
            self.skip_to(queue, "XE")
        elif name in ("B", "I", "R", "BI", "CW", "BX", "UL", "SM", "LG", "NL"):
            if name in ("SM", "LG", "NL") and not args:
                return True
            self.font(args, no, "ms")
        elif name in ("RP", "ND", "DA", "TC", "1C", "2C", "MC", "RS", "RE", "OH", "EH", "OF", "EF", "P1", "PX"):
            pass
        else:
            return False
        return True

    def _me(self, name: str, args: list[str], rest: str, no: int, queue: list[tuple[str, int]]) -> bool:
        if name == "sh":
            level = int(args[0]) if args and args[0].isdigit() else 1
            self.set_heading(max(1, min(level, 6)), self.esc(" ".join(args[1:2])))
        elif name in ("uh", "+c", "$c"):
            self.set_heading(1, self.esc(" ".join(args[:1])))
        elif name in ("pp", "lp", "hl", "np", "bu", "(q", ")q", "(f", ")f", "(d", ")d"):
            self.flush()
        elif name == "ip":
            self.flush()
            if args and args[0].strip():
                self.emit(self.esc(args[0]), no)
                self.brk = True
        elif name in ("(l", "(b", "(z", "(c"):
            self.display(True)
        elif name in (")l", ")b", ")z", ")c"):
            self.display(False)
        elif name == "(x":
            self.skip_to(queue, ")x")
        elif name in ("b", "i", "r", "bi", "u", "bx", "sm", "rb"):
            self.font(args, no, "me")
        elif name == "q":
            if args:
                self.emit(self.esc("“" + args[0] + "”" + (args[1] if len(args) > 1 else "")), no)
        else:
            return False
        return True

    def _mm(self, name: str, args: list[str], rest: str, no: int, queue: list[tuple[str, int]]) -> bool:
        if name == "H":
            level = int(args[0]) if args and args[0].isdigit() else 1
            self.set_heading(max(1, min(level, 7)), self.esc(" ".join(args[1:3])))
        elif name == "HU":
            self.set_heading(1, self.esc(" ".join(args[:1])))
        elif name == "TL":
            self.begin_heading(0)
        elif name in ("AS",):
            self.set_heading(1, "Abstract")
        elif name in ("AE", "AL", "BL", "DL", "ML", "RL", "VL", "LE", "FS", "FE", "AU", "NS", "NE", "SG", "FC"):
            self.flush()
            if name == "FC" and args:
                self.emit(self.esc(" ".join(args)), no)
        elif name == "LI":
            self.flush()
            if args and args[0].strip():
                self.emit(self.esc(args[0]), no)
        elif name in ("DS", "DF"):
            self.display(True)
        elif name == "DE":
            self.display(False)
        elif name in ("B", "I", "R", "BI", "IB", "RB", "BR", "IR", "RI"):
            self.font(args, no, "mm")
        elif name in ("MT", "SK", "SP", "TC", "ND", "PH", "PF", "OH", "EH", "OF", "EF", "LO", "LT", "IA", "IE", "WA",
                      "WE", "SA", "nP", "OK", "PM", "HM", "COVER", "COVEND", "S"):
            self.flush()
        else:
            return False
        return True

    def _mom(self, name: str, args: list[str], rest: str, no: int, queue: list[tuple[str, int]]) -> bool:
        off = bool(args) and args[0].upper() in ("OFF", "END", "QUIT", "EXIT", "X", "NO")
        if name in ("TITLE", "DOCTITLE", "CHAPTER_TITLE", "SUBTITLE", "AUTHOR"):
            args = [a for a in args if a not in ("DOC_COVER", "COVER")]
        if name in ("TITLE", "DOCTITLE", "CHAPTER_TITLE"):
            self.set_heading(0, self.esc(" ".join(args)))
        elif name in ("SUBTITLE", "AUTHOR", "EDITOR", "COPYRIGHT", "MISC", "CHAPTER"):
            if args:
                self.flush()
                self.emit(self.esc(" ".join(args)), no)
                self.flush()
        elif name == "HEADING":
            level = int(args[0]) if args and args[0].isdigit() else 1
            words = [a for a in args[1:] if a not in ("PARAHEAD", "NAMED")]
            self.set_heading(max(1, min(level, 6)), self.esc(" ".join(words[-1:])))
        elif name in ("HEAD", "SUBHEAD", "SUBSUBHEAD", "PARAHEAD"):
            level = {"HEAD": 1, "SUBHEAD": 2, "SUBSUBHEAD": 3, "PARAHEAD": 4}[name]
            self.set_heading(level, self.esc(" ".join(args)))
        elif name in ("QUOTE", "BLOCKQUOTE", "CODE", "EPIGRAPH"):
            self.display(not off if name != "EPIGRAPH" else False)
        elif name in ("LIST", "FOOTNOTE", "ENDNOTE", "SIDENOTE", "ITEM", "NEWPAGE", "COLLATE", "START", "BR",
                      "LINEBREAK", "SP", "SECTION", "TOC"):
            self.flush()
        elif name.isupper() and len(name) > 2 or name in ("PT", "LS", "LL", "FT", "SS", "SP", "HY", "RW", "EW"):
            pass  # the many style macros of mom (PT_SIZE, FAMILY, PRINTSTYLE, ...): no text
        else:
            return False
        return True


def parse_roff(path: Path, data: bytes) -> ParsedDocument:
    text = decode_text(data, path.name)
    lines = text.replace("\r\n", "\n").split("\n")
    package = _EXT_PACKAGE.get(path.suffix.lower())
    if package is None and not re.search(r"^[.'][ \t]*(TH|Dt)\b", text[:65536], re.M):
        package = roff_package(text[:200_000])  # a `.roff` file that is a man page (`.TH`) stays one
    if package is None:
        return parse_man(path, data)
    roff = _Package(lines, package)
    roff.run()
    sections = roff.builder.result()
    if not sections and roff.links:
        raise SkipFile(f"roff document only sources others (.so {roff.links[0]}); skipped", warn=True, kind="link")
    return ParsedDocument(f"roff-{package}", roff.title or (path.name if sections else None),
                          [Section(s.heading, s.blocks) for s in sections])
