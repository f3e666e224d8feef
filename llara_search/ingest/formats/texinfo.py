"""GNU manuals: Info files (`*.info`, `*.info-N`) and Texinfo sources (`*.texi`).

Info is what makeinfo wrote from the Texinfo source: macros expanded, `@value`s substituted, `@include`d chapters
inlined, cross references resolved. When a folder holds both, the Info text is the better one to read; both are
parsed (a folder often has only one of them) and the duplicates are collapsed at query time (`search_collapse`).

Info: every node (after a `\\x1f` separator and its `File: ..., Node: ...` line) is read; headings are its
underlined titles (`***` chapter, `===` section, `---` subsection, `...` subsubsection). Menus and the tag table are
navigation and are dropped; `*Note Foo::` references keep their name.

Texinfo: `@chapter`/`@section`/... make the heading path (`@node` lines only name nodes), `@example` and friends
keep their lines as code, `@table`/`@itemize` items keep their labels, brace commands keep their text
(`@code{x}` -> x, `@xref{Node}` -> "See Node"), and what is only for other output formats (`@tex`, `@html`,
`@iftex`, `@titlepage`, `@menu`, `@ignore`, index entries, comments) is dropped.
"""

from __future__ import annotations

import re
from pathlib import Path

from .base import Block, ParsedDocument, SectionBuilder, SkipFile, decode_text, single_space_sentences

# ------------------------------------------------------------------------------------------------ Info
def _decode(data: bytes, name: str, declared: bytes) -> str:
    """GNU manuals declare their encoding (Info: `coding:` in the local variables at the end; Texinfo:
    `@documentencoding`); older ones are Latin-1."""
    try:
        return data.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError:
        pass
    m = re.search(declared, data[-3000:]) or re.search(declared, data[:20000])
    for enc in ([m.group(1).decode("ascii", "replace")] if m else []) + ["latin-1"]:
        try:
            return data.decode(enc).replace("\r\n", "\n")
        except (UnicodeDecodeError, LookupError):
            continue
    return decode_text(data, name).replace("\r\n", "\n")


_NODE_LINE = re.compile(r"^File:\s*[^,]*,\s*Node:\s*([^,\n]+)", re.M)
_UNDERLINE = {"*": 1, "=": 2, "-": 3, ".": 4}
_NOTE = re.compile(r"\*[Nn]ote[ \n]+([^:]+?)::|\*[Nn]ote[ \n]+([^:]+?):[ \n]*(?:\([^)]*\))?[^.,:]*[.,]", re.S)


def looks_like_info(head: str) -> bool:
    return "\x1f\nFile:" in head or bool(re.match(r"This is [^,\n]+\.info,? produced by makeinfo", head))


def _info_text(body: str) -> str:
    body = re.sub(r"(?ms)^\* Menu:.*\Z", "", body)  # menus end their node
    body = _NOTE.sub(lambda m: "see " + " ".join((m.group(1) or m.group(2)).split()), body)
    return body


def parse_info(path: Path, data: bytes) -> ParsedDocument:
    text = _decode(data, path.name, rb"coding:\s*([\w.-]+)")
    text = re.sub(r"\x00\x08\[[^\x00]*\x00\x08\]", "", text)  # makeinfo's index and image markers
    chunks = text.split("\x1f")
    title = None
    builder = SectionBuilder()
    line_no = 1
    nodes = 0
    for chunk in chunks:
        chunk_line = line_no  # source line on which this chunk starts
        line_no += chunk.count("\n")
        body = chunk.lstrip("\n")
        skipped = len(chunk) - len(body)
        m = _NODE_LINE.match(body)
        if not m:
            continue  # the preamble, the indirect table, the tag table, local variables
        nodes += 1
        node = m.group(1).strip()
        lines = body.split("\n")[1:]
        first = chunk_line + skipped + 1  # source line of lines[0]
        body_lines = _info_text("\n".join(lines)).split("\n")
        i = 0
        para: list[tuple[int, str]] = []

        def flush() -> None:
            if para:
                width = min(len(t) - len(t.lstrip()) for _, t in para)
                body = "\n".join(single_space_sentences(t[width:]) for _, t in para)
                builder.add(Block(body, para[0][0], para[-1][0]))
                para.clear()

        while i < len(body_lines):
            ln = body_lines[i]
            nxt = body_lines[i + 1] if i + 1 < len(body_lines) else ""
            u = nxt.strip()
            if (ln.strip() and u and len(set(u)) == 1 and u[0] in _UNDERLINE and len(u) >= max(3, len(ln.strip()) - 2)
                    and not ln.startswith(" ")):
                flush()
                level = 0 if node == "Top" else _UNDERLINE[u[0]]
                name = ln.strip()
                if level == 0:
                    title = title or name
                builder.heading(level, name)
                i += 2
                continue
            if not ln.strip():
                flush()
            elif re.match(r"^\s*-+ Footnotes -+\s*$", ln):
                flush()
            else:
                para.append((first + i, ln.rstrip()))
            i += 1
        flush()
    sections = builder.result()
    if not nodes:
        indirect = re.search(r"\x1f\nIndirect:\n((?:[^\n\x1f]+\n)+)", text)
        if indirect:
            parts = [p.split(":")[0] for p in indirect.group(1).split("\n") if p.strip()]
            raise SkipFile(f"Info index file; its text is in {', '.join(parts[:3])}"
                           f"{', …' if len(parts) > 3 else ''}", kind="link")
    if title:
        for s in sections:
            if not s.heading or s.heading[0] != title:
                s.heading = [title] + s.heading
    return ParsedDocument("info", title, sections)


# ------------------------------------------------------------------------------------------------ Texinfo
def looks_like_texinfo(head: str) -> bool:
    first = head.lstrip()[:200]
    return first.startswith("\\input texinfo") or bool(re.search(r"^@(setfilename|node|chapter|settitle)\b", head,
                                                                  re.M)) and head.count("\n@") >= 5


_HEADINGS = {
    "top": 0, "chapter": 1, "unnumbered": 1, "appendix": 1, "majorheading": 1, "chapheading": 1, "centerchap": 1,
    "section": 2, "unnumberedsec": 2, "appendixsec": 2, "appendixsection": 2, "heading": 2,
    "subsection": 3, "unnumberedsubsec": 3, "appendixsubsec": 3, "subheading": 3,
    "subsubsection": 4, "unnumberedsubsubsec": 4, "appendixsubsubsec": 4, "subsubheading": 4,
}
_DROP_ENVS = {"ignore", "iftex", "ifhtml", "ifxml", "ifdocbook", "iflatex", "tex", "html", "xml", "docbook", "latex",
              "titlepage", "direntry", "macro", "rmacro", "menu", "detailmenu", "ifnotinfo", "ifnotplaintext",
              "documentdescription", "copying", "nodedescriptionblock"}
_CODE_ENVS = {"example", "smallexample", "lisp", "smalllisp", "display", "smalldisplay", "format", "smallformat",
              "verbatim"}
_LIST_ENVS = {"table", "vtable", "ftable", "itemize", "enumerate", "multitable"}
_SKIP_LINES = {"c", "comment", "cindex", "findex", "vindex", "kindex", "pindex", "tindex", "setfilename",
               "documentencoding", "documentlanguage", "dircategory", "insertcopying", "contents", "shortcontents",
               "summarycontents", "printindex", "defindex", "defcodeindex", "synindex", "syncodeindex", "include",
               "paragraphindent", "firstparagraphindent", "exampleindent", "footnotestyle", "setchapternewpage",
               "headings", "evenheading", "oddheading", "everyheading", "evenfooting", "oddfooting", "everyfooting",
               "page", "need", "sp", "vskip", "noindent", "indent", "refill", "finalout", "smallbook", "afourpaper",
               "afivepaper", "afourlatex", "afourwide", "pagesizes", "cropmarks", "allowcodebreaks", "kbdinputstyle",
               "codequoteundirected", "codequotebacktick", "deftypefnnewline", "frenchspacing", "novalidate",
               "setcontentsaftertitlepage", "setshortcontentsaftertitlepage", "raisesections", "lowersections",
               "alias", "definfoenclose", "clickstyle", "documentdescription", "urefbreakstyle", "xrefautomaticsectiontitle",
               "validatemenus", "dircategory", "bye", "node", "anchor", "headitem", "columnfractions", "group", "end"}
_DEF_CATEGORY = {"deffn", "defvr", "deftypefn", "deftypevr", "deftp", "defop", "deftypeop", "defcv", "deftypecv",
                 "deffnx", "defvrx", "deftypefnx", "deftypevrx", "deftpx", "defopx", "deftypeopx", "defcvx",
                 "deftypecvx"}
_GLYPHS = {"dots": "…", "enddots": "…", "minus": "-", "result": "⇒", "expansion": "→", "print": "-|",
           "error": "error→", "equiv": "≡", "point": "∗", "bullet": "•", "copyright": "©", "registeredsymbol": "®",
           "TeX": "TeX", "LaTeX": "LaTeX", "tie": " ", "comma": ",", "atchar": "@", "lbracechar": "{",
           "rbracechar": "}", "backslashchar": "\\", "hashchar": "#", "euro": "€", "pounds": "£", "geq": "≥",
           "leq": "≤", "arrow": "→", "today": "", "ss": "ß", "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "o": "ø",
           "O": "Ø", "l": "ł", "L": "Ł", "aa": "å", "AA": "Å", "exclamdown": "¡", "questiondown": "¿",
           "quotedblleft": "“", "quotedblright": "”", "quoteleft": "‘", "quoteright": "’", "quotedblbase": "„",
           "quotesinglbase": "‚", "guillemetleft": "«", "guillemetright": "»", "guilsinglleft": "‹",
           "guilsinglright": "›", "textdegree": "°", "ordf": "ª", "ordm": "º", "DH": "Ð", "dh": "ð", "TH": "Þ",
           "th": "þ", "click": "→", "sub": "", "sup": "", "headitemfont": "", "thisfile": "", "thischapter": "",
           "thissection": "", "thispage": "", "thischaptername": "", "thissectionname": ""}
_DROP_BRACES = {"anchor", "image", "indexterm", "errormsg", "sortas", "seeentry", "seealso"}
_ACCENTS = {"'": "\u0301", '"': "\u0308", "^": "\u0302", "`": "\u0300", "~": "\u0303", "=": "\u0304",
            ",": "\u0327", "H": "\u030b", "v": "\u030c", "u": "\u0306", "dotaccent": "\u0307", "ringaccent": "\u030a",
            "ogonek": "\u0328", "ubaraccent": "\u0332", "udotaccent": "\u0323", "tieaccent": "\u0361"}


class _Inline:
    """Texinfo brace commands and @-escapes to text."""

    def __init__(self, values: dict[str, str]):
        self.values = values

    def __call__(self, s: str, depth: int = 0) -> str:
        import unicodedata

        if "@" not in s or depth > 20:
            return s
        out: list[str] = []
        i, n = 0, len(s)
        while i < n:
            c = s[i]
            if c != "@" or i + 1 >= n:
                out.append(c)
                i += 1
                continue
            e = s[i + 1]
            if e in "@{}":
                out.append(e)
                i += 2
                continue
            if e == "*":
                out.append("\n")
                i += 2
                continue
            if e in ".!?":
                out.append(e)
                i += 2
                continue
            if e in ":-/|&":
                i += 2
                continue
            if e in " \t\n":
                out.append(" ")
                i += 2
                continue
            if e == "\\":
                out.append("\\")
                i += 2
                continue
            if e in "'\"^`~=,":  # accents: @'e or @'{e}
                i += 2
                if i < n and s[i] == "{":
                    arg, i = self._braced(s, i)
                    base = self(arg, depth + 1)
                else:
                    base, i = (s[i], i + 1) if i < n else ("", i)
                out.append(unicodedata.normalize("NFC", base + _ACCENTS[e]) if base else "")
                continue
            m = re.match(r"[A-Za-z][\w-]*", s[i + 1:])
            if not m:
                out.append(e)
                i += 2
                continue
            name = m.group(0)
            i += 1 + len(name)
            if i < n and s[i] == "{":
                arg, i = self._braced(s, i)
                out.append(self._command(name, arg, depth))
            elif name in _GLYPHS:
                out.append(_GLYPHS[name])
            else:
                # a line command inside a paragraph (@tab, @item in a table row) or an unknown command
                out.append(" | " if name == "tab" else "")
                if i < n and s[i] == " ":
                    i += 1
        return "".join(out)

    @staticmethod
    def _braced(s: str, i: int) -> tuple[str, int]:
        """The argument inside the braces that open at s[i], and the index after them."""
        depth, j = 0, i
        while j < len(s):
            ch = s[j]
            if ch == "@" and j + 1 < len(s):
                j += 2
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return s[i + 1:j], j + 1
            j += 1
        return s[i + 1:], len(s)

    @staticmethod
    def _split(arg: str) -> list[str]:
        parts, depth, cur, j = [], 0, [], 0
        while j < len(arg):
            ch = arg[j]
            if ch == "@" and j + 1 < len(arg):
                cur.append(arg[j:j + 2])
                j += 2
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append("".join(cur).strip())
                cur = []
            else:
                cur.append(ch)
            j += 1
        parts.append("".join(cur).strip())
        return parts

    def _command(self, name: str, arg: str, depth: int) -> str:
        import unicodedata

        text = lambda x: self(x, depth + 1)  # noqa: E731
        if name in _GLYPHS and not arg.strip():
            return _GLYPHS[name]
        if name in _DROP_BRACES:
            return ""
        if name == "value":
            return self.values.get(arg.strip(), "")
        if name in ("xref", "pxref", "ref", "inforef"):
            a = self._split(arg)
            label = next((x for x in (a[1:3] if name != "inforef" else a[1:2]) if x), a[0])
            manual = a[4] if len(a) > 4 and a[4] else (a[3] if len(a) > 3 and a[3] and name != "inforef" else "")
            label = text(label) + (f" in {text(manual)}" if manual else "")
            return {"xref": "See ", "pxref": "see "}.get(name, "") + label
        if name in ("uref", "url"):
            a = self._split(arg)
            if len(a) > 2 and a[2]:
                return text(a[2])
            if len(a) > 1 and a[1]:
                return f"{text(a[1])} ({text(a[0])})"
            return text(a[0])
        if name == "email":
            a = self._split(arg)
            return text(a[1]) if len(a) > 1 and a[1] else text(a[0])
        if name in ("acronym", "abbr"):
            a = self._split(arg)
            return f"{text(a[0])} ({text(a[1])})" if len(a) > 1 and a[1] else text(a[0])
        if name == "footnote":
            return f" ({text(arg).strip()})"
        if name == "verb":
            return arg[1:-1] if len(arg) >= 2 else arg
        if name == "U":
            try:
                return chr(int(arg.strip(), 16))
            except (ValueError, OverflowError):
                return ""
        if name in _ACCENTS:
            base = text(arg)
            return unicodedata.normalize("NFC", base + _ACCENTS[name]) if base else ""
        if name == "dotless":
            return {"i": "ı", "j": "ȷ"}.get(arg.strip(), arg)
        if name in ("inlinefmt", "inlinefmtifelse", "inlineraw"):
            a = self._split(arg)
            if a and a[0].strip() in ("info", "plaintext"):
                return text(a[1]) if len(a) > 1 else ""
            return text(a[2]) if name == "inlinefmtifelse" and len(a) > 2 else ""
        if name in ("inlineifset", "inlineifclear"):
            a = self._split(arg)
            on = (a[0].strip() in self.values) == (name == "inlineifset")
            return text(a[1]) if on and len(a) > 1 else ""
        if name == "w":
            return text(arg).replace(" ", "\u00a0")
        if name == "math":
            return text(arg)
        return text(arg)  # @code, @samp, @var, @emph, @strong, @file, @option, @kbd, @key, @dfn, @cite, ...


def parse_texinfo(path: Path, data: bytes) -> ParsedDocument:
    text = _decode(data, path.name, rb"@documentencoding\s+([\w.-]+)")
    lines = text.split("\n")
    values: dict[str, str] = {}
    inline = _Inline(values)
    builder = SectionBuilder()
    title: str | None = None
    envs: list[str] = []  # open environments (code, list, containers)
    para: list[tuple[int, str]] = []
    code = False

    def flush() -> None:
        if para:
            raw = "\n".join(t for _, t in para)
            body = raw if code_env() == "verbatim" else inline(raw if code else _quotes(raw))
            if not code:
                body = "\n".join(" ".join(x.split()) if x.strip() else "" for x in body.split("\n"))
            builder.add(Block(body.strip("\n"), para[0][0], para[-1][0]))
            para.clear()

    def code_env() -> str | None:
        return next((e for e in reversed(envs) if e in _CODE_ENVS), None)

    bullet = False  # an @item of @itemize with its text on the next line
    skip_until: str | None = None
    skip_depth = 0
    for no, line in enumerate(lines, start=1):
        stripped = line.strip()
        if skip_until is not None:  # inside an environment we drop (nested ones of the same name count)
            if re.match(rf"^@{skip_until}\b", stripped):
                skip_depth += 1
            elif re.match(rf"^@end\s+{skip_until}\b", stripped):
                skip_depth -= 1
                if skip_depth == 0:
                    skip_until = None
            continue
        if code_env() == "verbatim":
            if stripped == "@end verbatim":
                flush()
                envs.pop()
                code = code_env() is not None
            else:
                para.append((no, line))
            continue
        m = re.match(r"^@([A-Za-z]+)\b\s?(.*)$", stripped) if stripped.startswith("@") else None
        cmd, rest = (m.group(1), m.group(2)) if m else (None, "")
        if cmd is not None and (not rest.startswith("{") or cmd in ("item", "itemx")) and cmd not in _GLYPHS:
            if cmd == "bye":
                break
            if cmd in ("c", "comment"):
                continue
            if cmd == "end":
                env = rest.split()[0] if rest.split() else ""
                flush()
                if env in envs:
                    while envs and envs.pop() != env:
                        pass
                code = code_env() is not None
                continue
            if cmd in _DROP_ENVS:
                flush()
                skip_until, skip_depth = cmd, 1
                continue
            if cmd == "ifset" or cmd == "ifclear":
                name = rest.strip()
                if (name in values) != (cmd == "ifset"):
                    flush()
                    skip_until, skip_depth = cmd, 1
                else:
                    envs.append(cmd)
                continue
            if cmd == "settitle":
                title = title or inline(rest).strip() or None
                continue
            if cmd == "set":
                parts = rest.split(None, 1)
                if parts:
                    values[parts[0]] = parts[1] if len(parts) > 1 else ""
                continue
            if cmd == "clear":
                values.pop(rest.strip(), None)
                continue
            if cmd in _HEADINGS:
                flush()
                name = inline(rest).strip()
                level = _HEADINGS[cmd]
                if level == 0:  # @top names the manual: the root of every heading path, not a level of its own
                    title = title or name
                else:
                    builder.heading(level, name)
                continue
            if cmd in _CODE_ENVS:
                flush()
                envs.append(cmd)
                code = True
                continue
            if cmd in _LIST_ENVS or cmd in ("quotation", "smallquotation", "cartouche", "indentedblock",
                                             "smallindentedblock", "raggedright", "flushleft", "flushright", "float",
                                             "ifinfo", "ifnottex", "ifnothtml", "ifplaintext", "ifnotdocbook",
                                             "ifnotlatex", "ifnotxml", "group", "sidebar", "displaymath"):
                flush()
                envs.append(cmd)
                if cmd in ("quotation", "smallquotation", "float", "sidebar") and rest.strip():
                    para.append((no, rest.strip().rstrip(",") + ":"))
                continue
            if cmd in ("item", "itemx", "headitem"):
                lst = next((e for e in reversed(envs) if e in _LIST_ENVS), None)
                if cmd == "item" and lst != "multitable":
                    flush()  # an item starts a paragraph; @itemx labels and table rows stay with it
                label = rest.strip()
                if lst == "itemize":
                    if label:
                        para.append((no, "• " + label))
                    else:
                        bullet = True
                elif label:
                    para.append((no, label))
                continue
            if cmd == "tab":
                if para:
                    para[-1] = (para[-1][0], para[-1][1] + " @tab " + rest)
                continue
            if cmd.startswith("def") and cmd not in ("defindex", "defcodeindex", "definfoenclose"):
                flush()
                args = _def_args(rest)
                if cmd in _DEF_CATEGORY and args:
                    args = args[1:]
                para.append((no, " ".join(args)))
                if not cmd.endswith("x"):
                    envs.append(cmd)
                continue
            if cmd in ("center", "exdent", "titlefont", "title", "subtitle", "author"):
                flush()
                para.append((no, rest))
                flush()
                continue
            if cmd in _SKIP_LINES:
                if cmd in ("node",):
                    flush()
                continue
            if cmd in ("macro", "rmacro"):
                skip_until, skip_depth = cmd, 1
                continue
            # an unknown line command: its argument may be text (@exdent-like) or not; keep it only in paragraphs
            if rest.strip():
                para.append((no, rest))
            continue
        if not stripped:
            if code:
                para.append((no, ""))
            else:
                flush()
            continue
        if no == 1 and stripped.startswith("\\input"):
            continue
        if bullet:
            line, bullet = "• " + line.lstrip(), False
        para.append((no, line))
    flush()
    sections = builder.result()
    if title:
        for s in sections:
            if not s.heading or s.heading[0] != title:
                s.heading = [title] + s.heading
    for s in sections:
        for b in s.blocks:
            b.text = b.text.strip("\n")
    return ParsedDocument("texinfo", title, sections)


def _quotes(text: str) -> str:
    """TeX quotes in running text: ``like this'' is “like this”."""
    return text.replace("``", "\u201c").replace("''", "\u201d")


def _def_args(rest: str) -> list[str]:
    """Arguments of a @def line: braces group words (`{Shell Builtin}`)."""
    out, i = [], 0
    while i < len(rest):
        if rest[i].isspace():
            i += 1
            continue
        if rest[i] == "{":
            arg, i = _Inline._braced(rest, i)
            out.append(_Inline({})(arg))
            continue
        j = i
        while j < len(rest) and not rest[j].isspace():
            if rest[j] == "{":
                _, j = _Inline._braced(rest, j)
                continue
            j += 1
        out.append(_Inline({})(rest[i:j]))
        i = j
    return out
