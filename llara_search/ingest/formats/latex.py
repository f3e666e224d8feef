"""LaTeX (`.tex`, `.ltx`): sectioning commands (`\\part` ... `\\subparagraph`) make the heading path and `\\title` its
root; commands are reduced to the text they typeset (`\\emph{x}` -> x, `\\href{url}{label}` -> label, footnotes in
parentheses, citations as their keys), math is kept as its source (`$E = mc^2$`: what people search for), verbatim
and listings keep their lines, tables become rows with cells joined by " | ". The preamble, comments, labels,
references, figures' graphics, TikZ pictures and definitions are not indexed; zero-argument macros the document
defines (`\\newcommand{\\proj}{LLaRA}`) are expanded.

pylatexenc (LatexNodes2Text) was measured against this reader (benchmarks/parsing.py): it raised on `\\href`,
dropped verbatim blocks and wrote `<cit.>`/`<ref>` placeholders, so it is not used.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import OrderedDict
from pathlib import Path

from .base import Block, ParsedDocument, SectionBuilder, decode_text

_SECTIONS = {"part": 1, "chapter": 2, "section": 3, "subsection": 4, "subsubsection": 5, "paragraph": 6,
             "subparagraph": 7}
_SECTION_RE = re.compile(r"\\(part|chapter|section|subsection|subsubsection|paragraph|subparagraph)\*?\s*"
                         r"(?:\[[^\]]{0,500}\])?\s*(?=\{)")
_VERBATIM_ENVS = ("verbatim", "verbatim*", "Verbatim", "lstlisting", "minted", "alltt", "code", "BVerbatim",
                  "LVerbatim", "comment", "filecontents", "filecontents*")
_MATH_ENVS = ("equation", "equation*", "align", "align*", "gather", "gather*", "multline", "multline*", "eqnarray",
              "eqnarray*", "displaymath", "math", "flalign", "flalign*", "alignat", "alignat*")
_DROPPED_ENVS = ("tikzpicture", "pgfpicture", "comment", "filecontents", "filecontents*", "titlepage")
_DROP = {  # command -> number of mandatory arguments to skip
    "label": 1, "index": 1, "usepackage": 1, "RequirePackage": 1, "documentclass": 1, "vspace": 1, "hspace": 1,
    "includegraphics": 1, "bibliographystyle": 1, "bibliography": 1, "input": 1, "include": 1, "setlength": 2,
    "addtolength": 2, "setcounter": 2, "addtocounter": 2, "addcontentsline": 3, "pagestyle": 1,
    "thispagestyle": 1, "hypersetup": 1, "ref": 1, "eqref": 1, "pageref": 1, "autoref": 1, "cref": 1, "Cref": 1,
    "nameref": 1, "nocite": 1, "color": 1, "definecolor": 3, "graphicspath": 1, "linespread": 1,
    "newtheorem": 2, "geometry": 1, "author": 1, "date": 1, "title": 1, "thanks": 1, "vskip": 0, "hskip": 0,
    "newcounter": 1, "renewenvironment": 3, "newenvironment": 3, "newlength": 1, "settowidth": 2,
    "captionsetup": 1, "lstset": 1, "setminted": 1, "usetikzlibrary": 1, "pgfplotsset": 1, "tikzset": 1,
    "bibitem": 0, "newpage": 0, "clearpage": 0, "maketitle": 0, "tableofcontents": 0, "listoffigures": 0,
    "listoftables": 0, "centering": 0, "noindent": 0, "hline": 0, "toprule": 0, "midrule": 0, "bottomrule": 0,
    "cline": 1, "cmidrule": 1, "small": 0, "footnotesize": 0, "scriptsize": 0, "tiny": 0, "large": 0, "Large": 0,
    "LARGE": 0, "huge": 0, "Huge": 0, "normalsize": 0, "bfseries": 0, "itshape": 0, "ttfamily": 0,
    "rmfamily": 0, "sffamily": 0, "scshape": 0, "mdseries": 0, "upshape": 0, "em": 0, "bf": 0, "it": 0, "tt": 0,
    "rm": 0, "sf": 0, "sc": 0, "par": 0, "smallskip": 0, "medskip": 0, "bigskip": 0, "linebreak": 0,
    "pagebreak": 0, "nopagebreak": 0, "appendix": 0, "frontmatter": 0, "mainmatter": 0, "backmatter": 0,
    "printbibliography": 0, "printindex": 0, "makeatletter": 0, "makeatother": 0, "protect": 0, "relax": 0,
    "hfill": 0, "vfill": 0, "null": 0, "indent": 0, "raggedright": 0, "raggedleft": 0, "flushbottom": 0,
    "selectfont": 0, "fontsize": 2, "caption*": 0, "phantom": 1, "hphantom": 1, "vphantom": 1, "rule": 2,
    "addbibresource": 1, "DeclareMathOperator": 2, "onecolumn": 0, "twocolumn": 0, "FloatBarrier": 0,
    "pagenumbering": 1, "fontfamily": 1, "fontseries": 1, "fontshape": 1, "fontencoding": 1, "usefont": 4,
    "bookmarksetup": 1, "sisetup": 1, "tcbset": 1, "pgfkeys": 1, "setkeys": 2, "ExplSyntaxOn": 0,
    "ExplSyntaxOff": 0, "DocInput": 1, "EnableCrossrefs": 0, "DisableCrossrefs": 0, "CodelineIndex": 0,
    "RecordChanges": 0, "OnlyDescription": 0, "listfiles": 0, "nofiles": 0, "AtBeginDocument": 1,
    "AtEndDocument": 1, "numberwithin": 2, "PassOptionsToPackage": 2, "ProvidesPackage": 1, "ProvidesFile": 1,
    "NeedsTeXFormat": 1, "includeonly": 1, "pdfbookmark": 2, "bookmark": 1, "titleformat": 5, "titlespacing": 4,
    "newglossaryentry": 2, "newacronym": 3, "setbeamertemplate": 2, "usetheme": 1, "usecolortheme": 1,
    "setmainfont": 1, "setsansfont": 1, "setmonofont": 1, "tikz": 1,
}
_ASSIGNMENT = re.compile(r"\s*=?\s*-?[\d.]+\s*(?:pt|em|ex|cm|mm|in|bp|sp|pc|dd|mu|fil+|\\[A-Za-z]+)?"
                         r"(?:\s+(?:plus|minus)\s+-?[\d.]+\s*(?:pt|em|ex|fil+)?)*")
_KEYVALUES = re.compile(r"^\s*[\w@/.-]+\s*=")
_SYMBOLS = {"LaTeX": "LaTeX", "TeX": "TeX", "LaTeXe": "LaTeX2e", "ldots": "…", "dots": "…", "textendash": "–",
            "textemdash": "—", "textbackslash": "\\", "S": "§", "P": "¶", "copyright": "©", "textregistered": "®",
            "texttrademark": "™", "dag": "†", "ddag": "‡", "pounds": "£", "euro": "€", "ss": "ß", "o": "ø",
            "O": "Ø", "aa": "å", "AA": "Å", "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "l": "ł", "L": "Ł",
            "i": "ı", "quad": " ", "qquad": " ", "textasciitilde": "~", "textasciicircum": "^",
            "textunderscore": "_", "textbar": "|", "textless": "<", "textgreater": ">", "item": "\n- ",
            "newline": "\n", "today": "", "enspace": " ", "thinspace": " ", "textquotedbl": '"',
            "guillemotleft": "«", "guillemotright": "»", "textdegree": "°", "checkmark": "✓"}
_ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "=": "\u0304",
            ".": "\u0307", "c": "\u0327", "v": "\u030c", "u": "\u0306", "H": "\u030b", "k": "\u0328", "r": "\u030a",
            "d": "\u0323", "b": "\u0331"}
_ESCAPED = {"&": "&", "%": "%", "$": "$", "#": "#", "_": "_", "{": "{", "}": "}", " ": " ", ",": " ", ";": " ",
            ":": " ", "!": "", "/": "", "-": "", "@": "", "\\": "\n", "\n": " "}
MAX_NEST = 40
_ENVS = "|".join(re.escape(e) for e in _VERBATIM_ENVS + _MATH_ENVS + _DROPPED_ENVS)
_MATH_OR_VERBATIM = re.compile(r"\\begin\{(" + _ENVS + r")\}|\\verb\*?([^\sa-zA-Z*])|\$\$|\\\[|\\\(|(?<![\\$])\$")


def _comment_free(text: str) -> str:
    """Comments off (`%` to the end of the line, unless escaped), outside verbatim environments."""
    out, verbatim = [], None
    for line in text.split("\n"):
        if verbatim:
            out.append(line)
            if f"\\end{{{verbatim}}}" in line:
                verbatim = None
            continue
        m = re.search(r"\\begin\{(" + "|".join(re.escape(e) for e in _VERBATIM_ENVS) + r")\}", line)
        if m and f"\\end{{{m.group(1)}}}" not in line[m.end():]:
            verbatim = m.group(1)
        cut = re.search(r"(?<!\\)(?:\\\\)*%", line)
        if cut and not (m and cut.start() > m.start()):
            line = line[:cut.end() - 1]
            if not line.strip():
                continue  # a comment line does not end a paragraph
        out.append(line)
    return "\n".join(out)


_BRACE = re.compile(r"\\.|[{}]", re.S)
_LOCAL = threading.local()


def _pairs(s: str) -> dict[int, int]:
    """Where each `{` of `s` closes (index after its `}`), computed once per string: arguments are then found in
    constant time, however many unclosed braces a hostile file holds. A few strings are kept (the text being
    converted and the arguments it is inside of), per thread."""
    cache: OrderedDict[int, tuple[str, dict[int, int]]] = getattr(_LOCAL, "pairs", None) or OrderedDict()
    _LOCAL.pairs = cache
    hit = cache.get(id(s))
    if hit is not None and hit[0] is s:
        cache.move_to_end(id(s))
        return hit[1]
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE.finditer(s):
        c = m.group(0)
        if c == "{":
            stack.append(m.start())
        elif c == "}" and stack:
            pairs[stack.pop()] = m.end()
    cache[id(s)] = (s, pairs)
    if len(cache) > 2 * MAX_NEST:
        cache.popitem(last=False)
    return pairs


def _group(s: str, i: int) -> tuple[str, int]:
    """The balanced `{...}` group at s[i] (after blanks), as (content, index after it); ("", i) if none."""
    j = i
    while j < len(s) and s[j] in " \t\n":
        j += 1
    if j >= len(s) or s[j] != "{":
        return "", i
    end = _pairs(s).get(j)
    if end is None:  # never closed: not an argument
        return "", i
    return s[j + 1:end - 1], end


_OPTION = re.compile(r"[ \t]*\[((?:[^\[\]]|\[[^\[\]]{0,200}\]){0,500})\]")


def _optional(s: str, i: int) -> tuple[str | None, int]:
    """The `[...]` option at s[i] (after blanks; one level of nested brackets, 500 characters at most)."""
    m = _OPTION.match(s, i)
    return (m.group(1), m.end()) if m else (None, i)


class _Converter:
    def __init__(self) -> None:
        self.macros: dict[str, str] = {}
        self.held: list[str] = []

    def hold(self, text: str) -> str:
        self.held.append(text)
        return f"\x00{len(self.held) - 1}\x00"

    def protect(self, body: str) -> str:
        """Verbatim environments, `\\verb`, and math held aside (kept as written). One pass, each closer looked for
        once: an opener whose closer is nowhere after it stays text (linear in the input)."""
        out: list[str] = []
        pos = 0
        missing: set[str] = set()  # closers not found after some position: never found later either
        while True:
            m = _MATH_OR_VERBATIM.search(body, pos)
            if not m:
                out.append(body[pos:])
                return "".join(out)
            out.append(body[pos:m.start()])
            token = m.group(0)
            if m.group(1):  # \begin{env}
                name, closer = m.group(1), f"\\end{{{m.group(1)}}}"
            elif m.group(2):  # \verb|...|: the same delimiter, on the same line
                eol = body.find("\n", m.end())
                end = body.find(m.group(2), m.end(), len(body) if eol < 0 else eol)
                if end < 0:
                    out.append(token)
                    pos = m.end()
                    continue
                out.append(self.hold(body[m.end():end]))
                pos = end + 1
                continue
            else:
                name, closer = token, {"$$": "$$", "\\[": "\\]", "\\(": "\\)", "$": "$"}[token]
            end = -1 if closer in missing else body.find(closer, m.end())
            while closer == "$" and end > 0 and body[end - 1] == "\\":  # an escaped \$ is not a closer
                end = body.find(closer, end + 1)
            if end < 0:
                missing.add(closer)
                out.append(token)
                pos = m.end()
                continue
            inner = body[m.end():end]
            pos = end + len(closer)
            if name in _DROPPED_ENVS:
                continue
            if name in _MATH_ENVS:
                inner = re.sub(r"\\(?:label|nonumber|notag)\b(?:\{[^{}]*\})?", "", inner).strip()
                out.append("\n" + self.hold(inner) + "\n")
            elif name in _VERBATIM_ENVS:
                inner = re.sub(r"^(?:\[[^\]\n]*\])?(?:\{[^}\n]*\})?\n?", "", inner)  # options, minted's language
                out.append("\n\n" + self.hold("\x01" + inner.strip("\n")) + "\n\n")
            elif token == "$":
                out.append(self.hold("$" + inner.strip() + "$"))
            elif token == "\\(":
                out.append(self.hold("$" + inner.strip() + "$"))
            else:  # $$ ... $$ and \[ ... \]: display math
                out.append(self.hold(inner.strip()))

    def convert(self, s: str, depth: int = 0) -> str:
        out: list[str] = []
        i, n = 0, len(s)
        while i < n:
            c = s[i]
            if c == "\\" and i + 1 < n:
                m = re.match(r"[A-Za-z@]+\*?", s[i + 1:i + 60])
                if not m:
                    e = s[i + 1]
                    if e in _ACCENTS and i + 2 < n:
                        arg, j = _group(s, i + 2)
                        if j == i + 2:
                            arg, j = s[i + 2:i + 3], i + 3
                        base = arg.replace("\\i", "i").replace("\\j", "j")[:1]
                        out.append(unicodedata.normalize("NFC", base + _ACCENTS[e]) if base.isalpha() else base)
                        i = j
                        continue
                    out.append(_ESCAPED.get(e, e))
                    i += 2
                    continue
                name = m.group(0)
                i += 1 + len(name)
                text, i = self.command(name, s, i, depth)
                out.append(text)
                continue
            if c in "{}":
                i += 1
                continue
            if c == "~":
                out.append("\u00a0")
            elif c == "&":
                out.append(" | ")
            else:
                out.append(c)
            i += 1
        text = "".join(out)
        text = text.replace("---", "—").replace("--", "–").replace("``", "“").replace("''", "”")
        text = re.sub(r"\n[ \t]*\n(?=- )", "\n", text)  # list items stay one block, and table rows too
        return re.sub(r"(?<= \| )([^\n]*)\n[ \t]*\n(?=[^\n]* \| )", r"\1\n", text)

    def command(self, name: str, s: str, i: int, depth: int) -> tuple[str, int]:
        base = name.rstrip("*")
        if base in ("newcommand", "renewcommand", "providecommand", "def", "let", "DeclareRobustCommand"):
            return self.definition(base, s, i)
        if base == "iffalse":  # \\iffalse ... \\fi: a comment block
            end = s.find("\\fi", i)
            return "", (len(s) if end < 0 else end + 3)
        if base in _ACCENTS and len(base) == 1:  # \c{c}, \v{s}
            arg, j = _group(s, i)
            letter = arg[:1]
            return (unicodedata.normalize("NFC", letter + _ACCENTS[base]) if letter.isalpha() else letter), j
        if base in ("begin", "end"):
            env, j = _group(s, i)
            if base == "begin":
                if env in ("tabular", "tabular*", "tabularx", "array", "longtable", "supertabular"):
                    _, j = _optional(s, j)
                    if env in ("tabular*", "tabularx"):
                        _, j = _group(s, j)
                    _, j = _group(s, j)
                    return "\n", j
                opt, j = _optional(s, j)
                if env == "abstract":
                    return "\n\n\x02Abstract\x03\n\n", j
                return "\n" + (self.convert(opt, depth + 1) + "\n" if opt else ""), j
            return "\n", j
        if base in _DROP:
            j = i
            if base == "bibitem":
                _, j = _optional(s, j)
                key, j = _group(s, j)
                return f"\n[{key}] ", j
            for _ in range(3):  # options and arguments
                opt, j2 = _optional(s, j)
                if opt is None:
                    break
                j = j2
            for _ in range(_DROP[base]):
                _, j = _group(s, j)
                _, j = _optional(s, j)
            return "", j
        if base in self.macros:
            return self.macros[base], i
        if depth > MAX_NEST:
            return "", i
        if base in ("href",):
            _, j = _group(s, i)
            label, j = _group(s, j)
            return self.convert(label, depth + 1), j
        if base in ("url", "nolinkurl", "path"):
            arg, j = _group(s, i)
            return arg, j
        if base in ("footnote", "footnotetext", "marginpar", "thanks"):
            _, j = _optional(s, i)
            arg, j = _group(s, j)
            return " (" + self.convert(arg, depth + 1).strip() + ")", j
        if base.startswith("cite") or base in ("citep", "citet", "parencite", "textcite", "autocite"):
            _, j = _optional(s, i)
            _, j = _optional(s, j)
            keys, j = _group(s, j)
            return "[" + ", ".join(k.strip() for k in keys.split(",")) + "]", j
        if base == "item":
            opt, j = _optional(s, i)
            return "\n- " + (self.convert(opt, depth + 1) + ": " if opt else ""), j
        if base in ("caption",):
            _, j = _optional(s, i)
            arg, j = _group(s, j)
            return "\n" + self.convert(arg, depth + 1) + "\n", j
        if base in _SYMBOLS:
            return _SYMBOLS[base], (i + 2 if s[i:i + 2] == "{}" else i)
        # any other command: its optional argument goes, a TeX assignment (`\\tolerance=10000`) and a key=value
        # argument (`\\foosetup{bold, color=red}`) go, its other braced arguments are text
        if i < len(s) and s[i] in "= 0123456789-":
            m = _ASSIGNMENT.match(s, i)
            if m and re.search(r"\d", m.group(0)):
                return "", m.end()
        _, j = _optional(s, i)
        arg, after = _group(s, j)
        if after != j and _KEYVALUES.match(arg):
            return "", after
        return "", j

    def definition(self, kind: str, s: str, i: int) -> tuple[str, int]:
        """`\\newcommand{\\name}[n]{body}` / `\\def\\name{body}`: zero-argument ones are remembered, all dropped."""
        j = i
        if kind == "let":
            m = re.match(r"\s*\\[A-Za-z@]+\s*=?\s*(?:\\[A-Za-z@]+|.)", s[j:j + 200])
            return "", j + (m.end() if m else 0)
        if kind == "def":
            m = re.match(r"\s*\\([A-Za-z@]+)([^{]{0,100})", s[j:])
            if not m:
                return "", j
            name, params = m.group(1), m.group(2)
            body, j = _group(s, j + m.end())
        else:
            name_group, j = _group(s, j)
            if not name_group:
                m = re.match(r"\s*\\([A-Za-z@]+)", s[j:])
                name_group = m.group(0) if m else ""
                j += m.end() if m else 0
            name = name_group.strip().lstrip("\\")
            params, j = _optional(s, j)
            _, j2 = _optional(s, j)
            body, j = _group(s, j2)
        if name and not (params or "").strip("0 ") and len(self.macros) < 500 and "#" not in body:
            self.macros[name] = self.convert(body, MAX_NEST - 2)
        return "", j

    def restore(self, text: str) -> str:
        if "\x00" not in text:
            return text
        return re.sub(r"\x00(\d+)\x00", lambda m: self.held[int(m.group(1))] if int(m.group(1)) < len(self.held)
                      else "", text)


def _title(conv: _Converter, preamble: str) -> str | None:
    m = re.search(r"\\title\s*(?:\[[^\]]*\])?\s*(?=\{)", preamble)
    if not m:
        return None
    raw, _ = _group(preamble, m.end())
    raw = re.sub(r"\\thanks\s*\{[^{}]*\}", "", raw)
    title = " ".join(conv.restore(conv.convert(raw)).replace("\n", " ").split())
    return title or None


def parse_latex(path: Path, data: bytes) -> ParsedDocument:
    text = decode_text(data, path.name).replace("\r\n", "\n").replace("\r", "\n")
    text = _comment_free(text)
    conv = _Converter()
    begin = text.find("\\begin{document}")
    if begin >= 0:
        preamble, body = text[:begin], text[begin + len("\\begin{document}"):]
        end = body.find("\\end{document}")
        body = body[:end] if end >= 0 else body
    else:
        preamble, body = "", text
    conv.convert(preamble)  # the preamble's definitions; its text is not indexed
    title = _title(conv, preamble) or _title(conv, body)
    body = conv.protect(body)
    builder = SectionBuilder([title] if title else None)
    pos = 0
    marks = list(_SECTION_RE.finditer(body))
    pieces: list[tuple[int | None, str, str, int]] = []
    for k, m in enumerate(marks):
        heading, after = _group(body, m.end())
        pieces.append((None, "", body[pos:m.start()], pos))
        pieces.append((_SECTIONS[m.group(1)], heading, "", m.start()))
        pos = after
    pieces.append((None, "", body[pos:], pos))
    line_of = _LineIndex(text, body)
    top = min((_SECTIONS[m.group(1)] for m in marks), default=3)  # the abstract sits beside the first sections
    for level, heading, chunk, start in pieces:
        if level is not None:
            builder.heading(level, conv.restore(conv.convert(heading)).replace("\n", " "))
            continue
        converted = conv.convert(chunk)
        for part in re.split(r"\x02([^\x03]*)\x03", converted):
            if part.startswith("Abstract") and len(part) == 8:
                builder.heading(top, "Abstract")
                continue
            for para in re.split(r"\n[ \t]*\n", part):
                restored = conv.restore(para)
                if restored.startswith("\x01") or "\x01" in restored:  # a verbatim block: lines as written
                    restored = restored.replace("\x01", "")
                    block = restored.strip("\n")
                else:
                    lines = [" ".join(ln.split()) for ln in restored.split("\n")]
                    block = "\n".join(ln for ln in lines if ln)
                if block.strip():
                    line = line_of(start)
                    builder.add(Block(block, line, line))
    return ParsedDocument("latex", title, builder.result())


class _LineIndex:
    """Approximate source lines for blocks (the body's offsets shift once math is held aside): the piece's start."""

    def __init__(self, text: str, body: str):
        self.offset = text.find("\\begin{document}")
        self.offset = self.offset + len("\\begin{document}") if self.offset >= 0 else 0
        self.text = text

    def __call__(self, pos: int) -> int:
        return self.text.count("\n", 0, min(len(self.text), self.offset + pos)) + 1
