"""AsciiDoc (`.adoc`, `.asciidoc`, `.asc`, and AsciiDoc saved as `.txt`, as git's own Documentation is): read, not
rendered.

Section titles (`= Title` ... `====== Title`, and the two-line titles of classic AsciiDoc) make the heading path,
with the document title at its root. `include::` is followed inside the ingested folders only (never outside them,
never in a cycle, never deeper than `MAX_DEPTH`), `{attribute}` references take the values the document defines,
`ifdef::`/`ifndef::`/`ifeval::` leave their content in place (every variant a reader could see is searchable) and
their own lines out. Macros keep only what a reader sees (`linkgit:git-commit[1]` -> git-commit(1), `link:`,
`xref:`, `<<id,label>>` -> their labels), formatting marks go, listing/literal blocks keep their lines verbatim,
tables become one line per row with cells joined by " | ". Comments, passthrough blocks, attribute entries and
block attribute lines (`[source,python]`, `[[anchor]]`) are not indexed.

A maintained library (asciidoc-py, `pip install asciidoc`) was measured against this reader on git's manual
(benchmarks/parsing.py): it renders the whole document to HTML first, which was two orders of magnitude slower
and lost nothing this reader keeps; see benchmarks/RESULTS.md.
"""

from __future__ import annotations

import html
import os
import re
from contextvars import ContextVar
from pathlib import Path

from .base import Block, ParsedDocument, SectionBuilder, SkipFile, decode_text

# The folders an ingest reads: `include::` may not leave them. Set by `parse_file(..., roots=...)`; when unset, the
# including file's own folder is the only root.
INCLUDE_ROOTS: ContextVar[tuple[Path, ...] | None] = ContextVar("asciidoc_include_roots", default=None)

MAX_DEPTH = 16            # nested includes (Asciidoctor's default is 64; real manuals use 2-3)
MAX_INCLUDED_BYTES = 32 * 2**20   # all included files of one document together
MAX_INCLUDES = 2000       # include directives followed per document
MAX_LINES = 2_000_000     # lines after includes
MAX_INLINE = 100_000      # characters of one paragraph that inline markup is looked for in

# ------------------------------------------------------------------------------------------------ detection
_STRONG = re.compile(r"^(include|ifdef|ifndef|ifeval|endif|image|toc)::[^\s\[]*\[.*\]\s*$|"
                     r"linkgit:[\w.-]+\[\d\]|^\[\[[\w:.-]+\]\]\s*$|^= \S.*\n(?::[\w-]+:|\S+)", re.M)
_WEAK = {
    "attribute": re.compile(r"^:!?[\w][\w-]*!?:(?:[ \t].*)?$", re.M),
    "block attribute": re.compile(r"^\[(?:source|verse|listing|literal|quote|NOTE|TIP|IMPORTANT|WARNING|CAUTION|"
                                  r"cols=.*|options=.*|horizontal|appendix|glossary|bibliography|abstract)"
                                  r"(?:,[^\]]*)?\]\s*$", re.M),
    "table": re.compile(r"^\|===\s*$", re.M),
    "admonition": re.compile(r"^(?:NOTE|TIP|IMPORTANT|WARNING|CAUTION): \S", re.M),
    "labeled list": re.compile(r"^\S[^\n]*?[^:\s]::\s*$", re.M),
    "xref": re.compile(r"<<[\w:.-]+(?:,[^>]*)?>>|\b(?:link|xref):[^\s\[]*\[[^\]\n]*\]"),
    "delimited block": re.compile(r"^(?:-{4,}|\.{4,}|\*{4,}|_{4,}|\+{4,})\s*$\n(?:.*\n){0,200}?^(?:-{4,}|\.{4,}|"
                                  r"\*{4,}|_{4,}|\+{4,})\s*$", re.M),
    "two-line title": re.compile(r"\A\s*(\S[^\n]{0,200})\n=+\s*\n"),
}


def looks_like_asciidoc(head: str) -> bool:
    """AsciiDoc saved as `.txt`: `Content-type: text/asciidoc`, or directives and macros only AsciiDoc writes
    (`include::x[]`, `linkgit:x[1]`, `[[anchor]]`, a `= Title` with its header) with some of its weaker signs
    (attribute entries, block attribute lines, tables, labeled lists, `<<xref>>`, delimited blocks, a two-line
    document title), or three kinds of the weaker signs. reStructuredText's `.. directive::` wins."""
    if re.search(r"^Content-type: text/asciidoc\s*$", head[:4096], re.M):
        return True
    if re.search(r"^\.\.\s+[\w:.+-]+::", head, re.M):
        return False
    strong = len(_STRONG.findall(head))
    if strong >= 2:
        return True
    kinds = sum(1 for name, pattern in _WEAK.items() if pattern.search(head))
    return (strong >= 1 and kinds >= 1) or kinds >= 3


# ------------------------------------------------------------------------------------------------ inline text
_BUILTIN_ATTRS = {
    "nbsp": "\u00a0", "zwsp": "", "empty": "", "blank": "", "sp": " ", "space": " ", "amp": "&", "lt": "<", "gt": ">",
    "startsb": "[", "endsb": "]", "vbar": "|", "caret": "^", "asterisk": "*", "tilde": "~", "plus": "+",
    "backslash": "\\", "backtick": "`", "apos": "'", "quot": '"', "two-colons": "::", "two-semicolons": ";;",
    "cpp": "C++", "pp": "++", "deg": "°", "ldquo": "“", "rdquo": "”", "lsquo": "‘", "rsquo": "’",
    "litdd": "--",
    "amp-amp": "&&", "brvbar": "¦", "wj": "", "lf": "\n", "dollar": "$",
}
_ATTR_REF = re.compile(r"(?<!\\)\{([A-Za-z0-9_][\w-]*)\}")
_PROTECT = re.compile(r"(?<![\w\\])(`+|\+{1,3})(?=\S)([^\n]{1,300}?)(?<=\S)\1(?![\w`+])|pass:[a-z,]*\[([^\]\n]{0,1000})\]")
_LINKGIT = re.compile(r"\blinkgit:([\w.-]+)\[(\d+)\]")
_XREF = re.compile(r"<<([\w#:./-]{1,200}?)(?:,\s*([^<>]{0,300}?))?>>|\bxref:([^\s\[]{1,300})\[([^\]\n]{0,300})\]")
_URL_MACRO = re.compile(r"(?<![\w/])(?:link:|mailto:)?((?:https?|ftp|irc|file)://[^\s\[<>]{1,1000}|"
                        r"\{[\w-]{1,100}\}[^\s\[<>]{0,1000}|"
                        r"(?<=link:)[^\s\[]{1,1000}|(?<=mailto:)[^\s\[]{1,300})\[([^\]]{0,500})\]")
_INLINE_MACRO = re.compile(r"(?<![\w:])(image|footnote|footnoteref|kbd|btn|menu|anchor|indexterm2?|stem|latexmath|"
                           r"asciimath|icon|link|mailto|ifdef|ifndef|pass)"
                           r":([^\s\[]{0,300})\[([^\]\n]{0,1000})\]")
_INDEX_TERMS = re.compile(r"\(\(\(([^()\n]{0,300})\)\)\)|\(\(([^()\n]{1,300})\)\)")
_INLINE_ANCHOR = re.compile(r"\[\[\[?[\w:.-]{1,200}(?:,[^\]]{0,200})?\]\]\]?|\[#[\w:.-]{1,200}(?:\.[\w-]+)*\]"
                            r"(?=#)|\[\.[\w-]+(?:\.[\w-]+)*\](?=[#*_`])")
_QUOTES = [
    (re.compile(r"``([^\n]{1,300}?)''"), r"“\1”"),  # classic ``quoted''
    (re.compile(r"(?<![\w\\])\*\*(?=\S)([^\n]{1,300}?)(?<=\S)\*\*"), r"\1"),
    (re.compile(r"(?<![\w*\\])\*(?=[^\s*])([^\n]{1,300}?)(?<=[^\s*])\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<![\w\\])__(?=\S)([^\n]{1,300}?)(?<=\S)__"), r"\1"),
    (re.compile(r"(?<![\w_\\])_(?=[^\s_])([^\n]{1,300}?)(?<=[^\s_])_(?![\w_])"), r"\1"),
    (re.compile(r"(?<![\w#\\])##?(?=[^\s#])([^\n]{1,300}?)(?<=[^\s#])##?(?![\w#])"), r"\1"),
    (re.compile(r"(?<![\w'\\])'(?=[^\s'])([^'\n]{1,300}?)(?<=[^\s'])'(?![\w'])"), r"\1"),  # classic 'emphasis'
    (re.compile(r"(?<![\w\\^])\^(?=\S)([^\s^]{1,100})\^"), r"\1"),
    (re.compile(r"(?<![\w\\~])~(?=\S)([^\s~]{1,100})~"), r"\1"),
]
_SMART_QUOTES = re.compile(r"([\"'])`([^`\n]{1,300}?)`\1")
_ENTITY = re.compile(r"&(?:#\d{1,7}|#x[0-9a-fA-F]{1,6}|[A-Za-z]{2,10});")
_ESCAPE = re.compile(r"\\([*_`#+{}\[\]<>'~^\\|.-])")
_HARD_BREAK = re.compile(r"[ \t]\+$", re.M)
_TAG = re.compile(r"</?[A-Za-z][\w-]*(?:\s[^<>]{0,500})?/?>")


def _label_of(ident: str) -> str:
    """What `<<some-section>>` shows when it names no label: the id as words (Asciidoctor ids are `_title_words`)."""
    return re.sub(r"[_-]+", " ", ident.split("#")[-1].split(".")[0]).strip()


class Inline:
    """Inline substitutions: attribute references, then macros, formatting marks and escapes; code spans and
    passthroughs are held aside first so that `*.c` inside backquotes stays as written."""

    def __init__(self, attrs: dict[str, str], titles: dict[str, str]):
        self.attrs = attrs
        self.titles = titles  # anchor id -> section title, for `<<id>>`

    def attributes(self, text: str) -> str:
        if "{" not in text:
            return text

        def sub(m: re.Match) -> str:
            name = m.group(1).lower()
            if name in self.attrs:
                return self.attrs[name]
            return _BUILTIN_ATTRS.get(name, m.group(0))

        for _ in range(3):  # an attribute whose value refers to another
            new = _ATTR_REF.sub(sub, text)
            if new == text:
                break
            text = new
        return text

    def __call__(self, text: str) -> str:
        text = self.attributes(text)
        if len(text) > MAX_INLINE:  # a paragraph this long is data, not prose: its marks stay (bounded cost)
            return text
        if "`" in text:  # Asciidoctor's typographic quotes: "`double`" and '`single`'
            text = _SMART_QUOTES.sub(lambda m: ("“%s”" if m.group(1) == '"' else "‘%s’") % m.group(2), text)
        held: list[str] = []

        def hold(value: str) -> str:
            held.append(value)
            return f"\x00{len(held) - 1}\x00"

        def protect(m: re.Match) -> str:
            if m.group(3) is not None:
                return hold(_TAG.sub("", m.group(3)))
            inner = m.group(2)
            if m.group(1).startswith("+") and "<" in inner:  # +++<br>+++: raw HTML
                inner = _TAG.sub("", inner)
            return hold(inner)

        text = _PROTECT.sub(protect, text)
        text = _LINKGIT.sub(lambda m: hold(f"{m.group(1)}({m.group(2)})"), text)
        text = _XREF.sub(self._xref, text)
        text = _URL_MACRO.sub(lambda m: m.group(2).split(",")[0].strip('"') or m.group(1), text)
        text = _INLINE_MACRO.sub(self._macro, text)
        text = _INDEX_TERMS.sub(lambda m: m.group(2) or "", text)
        text = _INLINE_ANCHOR.sub("", text)
        if any(c in text for c in "*_#'^~`"):
            for pattern, repl in _QUOTES:
                text = pattern.sub(repl, text)
        text = _HARD_BREAK.sub("", text)
        text = _ESCAPE.sub(r"\1", text)
        if "&" in text:
            text = _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
        if held:
            text = re.sub(r"\x00(\d+)\x00", lambda m: held[int(m.group(1))] if int(m.group(1)) < len(held) else "",
                          text)
        return text

    def _xref(self, m: re.Match) -> str:
        ident, label = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
        if label and label.strip():
            return label.strip().strip('"')
        ident = ident.strip()
        return self.titles.get(ident) or self.titles.get(ident.split("#")[-1]) or _label_of(ident)

    @staticmethod
    def _macro(m: re.Match) -> str:
        name, target, body = m.group(1), m.group(2), m.group(3)
        if name in ("anchor", "indexterm", "ifdef", "ifndef"):
            return ""
        if name == "indexterm2":
            return body
        if name == "kbd" or name == "btn":
            return body
        if name == "menu":
            return " > ".join([target] + [p.strip() for p in body.split(">") if p.strip()])
        if name in ("footnote", "footnoteref"):
            text = body.split(",", 1)[1] if name == "footnoteref" and "," in body else body
            return f" ({text.strip()})" if text.strip() else ""
        if name in ("image", "icon"):
            alt = body.split(",")[0].strip().strip('"')
            return alt
        if name in ("link", "mailto"):
            return body.split(",")[0].strip('"') or target
        return body  # stem, latexmath, asciimath, pass: the source text


# ------------------------------------------------------------------------------------------------ reading lines
class _Line:
    __slots__ = ("text", "no", "offset")

    def __init__(self, text: str, no: int, offset: int):
        self.text, self.no, self.offset = text, no, offset


_INCLUDE = re.compile(r"^include::([^\[\s][^\[]*)\[(.*)\]\s*$")
_CONDITIONAL = re.compile(r"^(ifdef|ifndef|ifeval|endif)::([^\[\s]*)\[(.*)\]\s*$")
_ATTR_ENTRY = re.compile(r"^:(!?)([A-Za-z0-9_][\w-]*)(!?):(?:[ \t]+(.*?))?[ \t]*$")
_TAG_LINE = re.compile(r"\b(?:tag|end)::[\w*!-]+\[\]")


class _Reader:
    """The preprocessor: include directives, conditionals, attribute entries and comments, line by line."""

    def __init__(self, path: Path, roots: tuple[Path, ...]):
        self.roots = roots
        self.attrs: dict[str, str] = {}
        self.warnings: list[str] = []
        self.lines: list[_Line] = []
        self.included_bytes = 0
        self.includes = 0

    def within_roots(self, target: Path) -> bool:
        return any(target == r or target.is_relative_to(r) for r in self.roots)

    def read(self, text: str, path: Path, stack: tuple[Path, ...], origin: _Line | None, leveloffset: int) -> None:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        pos = 0
        in_comment = False
        in_verbatim = ""
        prev = ""
        for i, raw in enumerate(lines):
            if len(self.lines) >= MAX_LINES:
                self.warn("document too long: the rest is not indexed")
                return
            here = origin or _Line("", i + 1, pos)
            pos += len(raw) + 1
            stripped = raw.rstrip()
            if in_comment:
                if stripped.startswith("////") and stripped == "/" * len(stripped):
                    in_comment = False
                continue
            if stripped.startswith("////") and stripped == "/" * len(stripped):
                in_comment = True
                continue
            if in_verbatim:  # inside listings and passthroughs only include:: is a directive (as in Asciidoctor)
                if stripped == in_verbatim:
                    in_verbatim = ""
                elif not stripped.startswith("include::"):
                    self.lines.append(_Line(raw, here.no, here.offset))
                    continue
            elif re.fullmatch(r"(-{4,}|\.{4,}|\+{4,}|`{3,}[\w+-]*)", stripped) and (
                    not prev.strip() or _is_underline(stripped, prev) is None):
                in_verbatim = "```" if stripped.startswith("```") else stripped
            prev = stripped
            if stripped.startswith("//") and not in_verbatim:
                continue
            if not in_verbatim and stripped.startswith(("if", "endif")):
                m = _CONDITIONAL.match(stripped)
                if m:
                    if m.group(1) in ("ifdef", "ifndef") and m.group(3).strip():  # one-line form: its text
                        self.lines.append(_Line(m.group(3), here.no, here.offset))
                    continue
            if stripped.startswith("include::"):
                m = _INCLUDE.match(stripped)
                if m:
                    self.include(m.group(1), m.group(2), path, stack, here, leveloffset)
                    continue
            if not in_verbatim and stripped.startswith(":"):
                m = _ATTR_ENTRY.match(stripped)
                if m:
                    self.attribute(m, lines, i)
                    self.lines.append(_Line("", here.no, here.offset))  # ends a paragraph, as in AsciiDoc
                    continue
            if leveloffset and not in_verbatim and stripped.startswith("=") and re.match(r"={1,6}\s+\S", stripped):
                marks = len(stripped) - len(stripped.lstrip("="))
                level = max(1, min(6, marks + leveloffset))
                raw = "=" * level + stripped[marks:]
            self.lines.append(_Line(raw, here.no, here.offset))

    def attribute(self, m: re.Match, lines: list[str], i: int) -> None:
        name = m.group(2).lower()
        if m.group(1) or m.group(3):
            self.attrs.pop(name, None)
            return
        value = m.group(4) or ""
        j = i
        while value.endswith((" \\", " +")) and j + 1 < len(lines):  # a value continued on the next line
            j += 1
            value = value[:-2] + " " + lines[j].strip()
        self.attrs[name] = value

    def include(self, target: str, opts: str, path: Path, stack: tuple[Path, ...], here: _Line,
                leveloffset: int) -> None:
        target = Inline(self.attrs, {}).attributes(target.strip())
        if re.match(r"^[a-z]+://", target):
            self.warn(f"include of a URL not followed: {target[:200]}")
            return
        if "{" in target:
            self.warn(f"include with an undefined attribute not followed: {target[:200]}")
            return
        self.includes += 1
        if self.includes > MAX_INCLUDES:
            if self.includes == MAX_INCLUDES + 1:
                self.warn(f"more than {MAX_INCLUDES} includes: the rest are not followed")
            return
        if len(stack) >= MAX_DEPTH:
            self.warn(f"includes nested deeper than {MAX_DEPTH} not followed: {target[:200]}")
            return
        try:
            resolved = Path(os.path.realpath(_antora(path, target) or path.parent / target))
        except (OSError, ValueError):
            self.warn(f"include not found: {target[:200]}")
            return
        if not self.within_roots(resolved):
            self.warn(f"include outside the ingested folders not followed: {target[:200]}")
            return
        if resolved in stack:
            self.warn(f"include cycle not followed: {target[:200]}")
            return
        try:
            if not resolved.is_file():
                self.warn(f"include not found: {target[:200]}")
                return
            size = resolved.stat().st_size
            if self.included_bytes + size > MAX_INCLUDED_BYTES:
                self.warn(f"included files beyond {MAX_INCLUDED_BYTES // 2**20} MB not followed: {target[:200]}")
                return
            data = resolved.read_bytes()
        except OSError as exc:
            self.warn(f"include not readable: {target[:200]} ({exc.strerror or type(exc).__name__})")
            return
        self.included_bytes += len(data)
        try:
            text = decode_text(data, resolved.name)
        except Exception:  # noqa: BLE001 - an undecodable include is skipped, the document is not
            self.warn(f"include is not text: {target[:200]}")
            return
        text = _select(text, _options(opts))
        offset = leveloffset
        lo = _options(opts).get("leveloffset", "")
        if re.fullmatch(r"[+-]?\d{1,2}", lo.strip()):
            offset = leveloffset + int(lo) if lo.strip()[0] in "+-" else int(lo)
        self.read(text, resolved, stack + (resolved,), here, offset)

    def warn(self, message: str) -> None:
        if len(self.warnings) < 20 and message not in self.warnings:
            self.warnings.append(message)


_FAMILIES = {"partial": "partials", "example": "examples", "page": "pages", "image": "images",
             "attachment": "attachments"}


def _antora(path: Path, target: str) -> Path | None:
    """An Antora resource id (`partial$intro.adoc`, `admin:example$conf.yml`) as a file of the module's folder
    (`modules/<module>/partials/intro.adoc`), found from the including file's place in the module."""
    m = re.match(r"^(?:(?:[\w.-]+@)?(?:[\w.-]+:){0,2}?([\w.-]+):)?(partial|example|page|image|attachment)\$(.+)$",
                 target)
    if not m:
        return None
    module_dir = next((p.parent for p in path.parents if p.name in _FAMILIES.values()), None)
    if module_dir is None:
        return None
    if m.group(1):
        module_dir = module_dir.parent / m.group(1)
    return module_dir / _FAMILIES[m.group(2)] / m.group(3)


def _options(opts: str) -> dict[str, str]:
    out = {}
    for m in re.finditer(r'([\w-]+)\s*=\s*("([^"]*)"|[^,]*)', opts):
        out[m.group(1)] = m.group(3) if m.group(3) is not None else m.group(2).strip()
    return out


def _select(text: str, opts: dict[str, str]) -> str:
    """The `lines=` and `tag(s)=` selections of an include."""
    lines = text.split("\n")
    if "lines" in opts:
        keep: list[str] = []
        for part in re.split(r"[;,]", opts["lines"]):
            m = re.fullmatch(r"\s*(-?\d+)\s*(?:\.\.\s*(-?\d+))?\s*", part)
            if m:
                a = int(m.group(1))
                b = int(m.group(2)) if m.group(2) else a
                b = len(lines) if b < 0 else b
                keep.extend(lines[max(0, a - 1):b])
        return "\n".join(keep)
    tags = [t for t in re.split(r"[;,]", opts.get("tags", opts.get("tag", ""))) if t and not t.startswith("!")]
    if tags and "*" not in tags and "**" not in tags:
        keep, depth = [], 0
        for line in lines:
            m = re.search(r"\b(tag|end)::([\w-]+)\[\]", line)
            if m and m.group(2) in tags:
                depth += 1 if m.group(1) == "tag" else -1
                continue
            if depth > 0 and not _TAG_LINE.search(line):
                keep.append(line)
        return "\n".join(keep)
    return text


# ------------------------------------------------------------------------------------------------ blocks
_SECTION = re.compile(r"^(={1,6})[ \t]+(\S.*?)(?:[ \t]+\1)?[ \t]*$")
_UNDERLINE = {"=": 0, "-": 1, "~": 2, "^": 3, "+": 4}
_DELIM = re.compile(r"^(-{4,}|\.{4,}|\*{4,}|={4,}|_{4,}|\+{4,}|/{4,}|--|`{3}[\w+-]*|[|,:!]={3,})\s*$")
_BLOCK_ATTR = re.compile(r"^\[(?:[^\[\]]|\[[^\]]*\])*\]\s*$")
_BLOCK_TITLE = re.compile(r"^\.([^\s.].*)$")
_LIST = re.compile(r"^[ \t]*(?:(\*{1,5}|-|\.{1,5}|\d{1,4}\.|[a-zA-Z]\.|[ivxIVX]{1,5}\))[ \t]+)(\S.*)$")
_CHECK = re.compile(r"^\[[ xX*]\][ \t]+")
_LABELED = re.compile(r"^[ \t]*(\S.*?)(:{2,4}|;;)(?:[ \t]+(\S.*))?$")
_ADMONITION = re.compile(r"^(NOTE|TIP|IMPORTANT|WARNING|CAUTION):[ \t]+")
_BLOCK_MACRO = re.compile(r"^([a-z][\w-]*)::([^\[\s]*)\[(.*)\]\s*$")
_CALLOUT = re.compile(r"^<(\d+|\.)>[ \t]+")

def _is_underline(line: str, title: str) -> int | None:
    s = line.rstrip()
    if len(s) < 2 or s[0] not in _UNDERLINE or s != s[0] * len(s):
        return None
    t = title.strip()
    if not t or abs(len(s) - len(t)) > 2 or not re.search(r"\w", t) or t[0] in "[.:/|*-=<":
        return None
    return _UNDERLINE[s[0]]


class _Blocks:
    def __init__(self, lines: list[_Line], inline: Inline):
        self.lines = lines
        self.inline = inline
        self.builder = SectionBuilder()
        self.title: str | None = None
        self.para: list[_Line] = []
        self.style: str = ""
        self.pending_title: str | None = None
        self.compound: list[str] = []  # open example/sidebar/quote/open blocks, innermost last
        self.after_term = False  # the last paragraph ended with a labeled list's term: its description follows
        self.attrline = ""  # the last block attribute line, whole (a table's `cols=`)

    # -------------------------------------------------------------------------------------------- output
    def flush(self) -> None:
        para, self.para = self.para, []
        style, self.style = self.style, ""
        self.attrline = ""
        after_term, self.after_term = self.after_term, False
        if not para:
            return
        if style in ("comment", "pass"):
            return
        verbatim = style in ("source", "listing", "literal", "stem", "latexmath", "asciimath") or (
            para[0].text[:1] in " \t" and not after_term and not _LIST.match(para[0].text)
            and not _LABELED.match(para[0].text))
        if verbatim:
            lines = [ln.text.rstrip() for ln in para]
            indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
            text = "\n".join(x[indent:] for x in lines)
        else:
            text = self.inline("\n".join(self._line(ln.text) for ln in para))
            last = para[-1].text
            self.after_term = bool(_LABELED.match(last)) and not _LABELED.match(last).group(3)
        self.emit(text, para[0], para[-1])

    def _line(self, line: str) -> str:
        """A line's list and admonition marks made plain (inline markup is done on the whole paragraph)."""
        line = line.strip()
        m = _ADMONITION.match(line)
        if m:
            line = m.group(1).capitalize() + ": " + line[m.end():]
        m = _LIST.match(line)
        if m:
            mark = m.group(1)
            body = _CHECK.sub("", m.group(2))
            line = ("- " if not mark[0].isalnum() else mark + " ") + body
        elif line == "+":
            return ""
        else:
            m = _LABELED.match(line)
            if m and not m.group(1).endswith(":"):
                line = m.group(1) + (": " + m.group(3) if m.group(3) else "")
        m = _CALLOUT.match(line)
        if m:
            line = line[m.end():]
        return line

    def emit(self, text: str, first: _Line, last: _Line) -> None:
        if self.pending_title:
            text = self.pending_title + "\n" + text
            self.pending_title = None
        text = "\n".join(ln for ln in text.split("\n") if ln.strip() != "+").strip("\n")
        if text.strip():
            self.builder.add(Block(text, first.no, max(first.no, last.no), char_start=first.offset))

    def heading(self, level: int, raw: str) -> None:
        self.flush()
        self.pending_title = None
        title = " ".join(self.inline(raw).split())
        if not title:
            return
        if level == 0:
            if self.title is None:
                self.title = title
                self.builder.root = [title]
                self.builder.sections[-1].heading = [title] if not self.builder.stack else \
                    self.builder.sections[-1].heading
                return
            level = 1
        self.builder.heading(level, title)

    # -------------------------------------------------------------------------------------------- driver
    def run(self) -> None:
        lines = self.lines
        n = len(lines)
        i = 0
        anchor: str | None = None
        while i < n:
            ln = lines[i]
            s = ln.text.rstrip()
            st = s.strip()
            if not st:
                self.flush()
                i += 1
                continue
            if not self.para:
                m = _SECTION.match(s) if s[:1] == "=" else None
                if m:
                    if anchor:
                        self.inline.titles.setdefault(anchor, self.inline(m.group(2)))
                        anchor = None
                    self.heading(len(m.group(1)) - 1, m.group(2))
                    self.style = ""
                    i += 1
                    continue
                if i + 1 < n and s[:1] not in " \t":
                    level = _is_underline(lines[i + 1].text, s)
                    if level is not None and not _DELIM.match(s) and not _BLOCK_ATTR.match(s):
                        if anchor:
                            self.inline.titles.setdefault(anchor, self.inline(s))
                            anchor = None
                        self.heading(level, s)
                        self.style = ""
                        i += 2
                        continue
                dm = _DELIM.match(s)
                if dm:
                    i = self.delimited(dm.group(1), i)
                    continue
                if _BLOCK_ATTR.match(s) and not s.startswith("[[["):
                    m = re.match(r"^\[\[([\w:.-]+)(?:,[^\]]*)?\]\]$", s) or re.match(r"^\[#([\w:.-]+)", s)
                    if m:
                        anchor = m.group(1)
                    else:
                        self.attrline = s
                        self.style = s[1:-1].split(",")[0].split("#")[0].split(".")[0].strip().lower() or \
                            self.style
                        if self.style.upper() in ("NOTE", "TIP", "IMPORTANT", "WARNING", "CAUTION"):
                            self.pending_title = (self.pending_title + "\n" if self.pending_title else "") + \
                                self.style.capitalize() + ":"
                            self.style = ""
                    i += 1
                    continue
                m = _BLOCK_TITLE.match(s)
                if m and not s.startswith("..") and i + 1 < n and lines[i + 1].text.strip():
                    self.pending_title = self.inline(m.group(1).strip())
                    i += 1
                    continue
                m = _BLOCK_MACRO.match(st)
                if m:
                    self.block_macro(m, ln)
                    i += 1
                    continue
                if s in ("'''", "---", "***", "<<<", "- - -", "* * *"):
                    i += 1
                    continue
            elif _DELIM.match(s) and s.strip() != "--" or (s.strip() == "--" and not self.para):
                self.flush()
                continue
            elif s == "+":  # list continuation: the next block belongs to this item
                self.flush()
                i += 1
                continue
            self.para.append(ln)
            i += 1
        self.flush()

    def delimited(self, delim: str, i: int) -> int:
        """A delimited block: verbatim (listing, literal, fenced, passthrough, comment), table, or compound
        (example, sidebar, quote, open) whose delimiters only separate blocks."""
        self.flush()
        style, self.style = self.style, ""
        attrline, self.attrline = self.attrline, ""
        kind = delim[0]
        end = "```" if delim.startswith("```") else delim
        if kind in "-.`+/" and delim != "--" or kind in "|,:!":
            body: list[_Line] = []
            j = i + 1
            while j < len(self.lines) and self.lines[j].text.rstrip() != end:
                body.append(self.lines[j])
                j += 1
            if kind in "+/" or style in ("comment", "pass"):
                self.pending_title = None
                return j + 1
            if kind in "|,:!":
                self.table(body, kind, self.lines[i], attrline)
                return j + 1
            if body:
                text = "\n".join(_CALLOUT_END.sub("", b.text.rstrip()) for b in body)
                if style in ("verse", "quote"):  # a verse in a literal block: text with its lines
                    text = self.inline(text)
                self.emit(_dedent(text), body[0], body[-1])
            else:
                self.pending_title = None
            return j + 1
        # compound blocks: an admonition style names it; the content is read as ordinary blocks
        if self.compound and self.compound[-1] == delim:  # the closing delimiter
            self.compound.pop()
            self.pending_title = None
            return i + 1
        if len(self.compound) < 64:
            self.compound.append(delim)
        if style.upper() in ("NOTE", "TIP", "IMPORTANT", "WARNING", "CAUTION"):
            self.pending_title = (self.pending_title + "\n" if self.pending_title else "") + style.capitalize() + ":"
        return i + 1

    def table(self, body: list[_Line], kind: str, start: _Line, attrs: str) -> None:
        """One line per row, cells joined by " | " (cell specs like `2+a|` dropped)."""
        text = "\n".join(b.text for b in body)
        if kind in ",:":
            rows = [" | ".join(c.strip().strip('"') for c in row.split(kind)) for row in text.split("\n")
                    if row.strip()]
        else:
            cells: list[str] = []
            ncols = _cols(attrs)
            for line in text.split("\n"):
                if _DELIM.match(line) or (_BLOCK_ATTR.match(line) and not line.startswith("|")):
                    continue  # the delimiters and attribute lines of blocks inside `a|` cells
                if not line.strip():
                    if cells and ncols is None:
                        ncols = len(cells)
                    continue
                parts = (_CELL if kind == "|" else _BANG_CELL).split(line)
                if len(parts) == 1:  # a cell's text continues on this line
                    if cells:
                        cells[-1] += "\n" + line.strip()
                    continue
                if parts[0].strip() and cells:
                    cells[-1] += " " + parts[0].strip()
                cells.extend(p.strip() for p in parts[1:])
                if ncols is None and len(parts) > 2:
                    ncols = len(parts) - 1
            ncols = max(1, ncols or 1)
            rows = [" | ".join(c for c in cells[k:k + ncols]) for k in range(0, len(cells), ncols)]
        rows = [self.inline(r.replace("\\|", "|")) for r in rows if r.strip(" |")]
        if rows:
            self.emit("\n".join(rows), body[0] if body else start, body[-1] if body else start)
        else:
            self.pending_title = None

    def block_macro(self, m: re.Match, ln: _Line) -> None:
        self.flush()
        name, attrs = m.group(1), m.group(3)
        text = ""
        if name == "image":
            alt = attrs.split(",")[0].strip().strip('"')
            text = alt
        elif name not in ("toc", "video", "audio", "include", "ifdef", "ifndef", "ifeval", "endif"):
            text = attrs.split(",")[0].strip().strip('"') if "=" not in attrs.split(",")[0] else ""
        if text or self.pending_title:
            self.emit(self.inline(text), ln, ln)


_SPEC = r"(?:(?:^|(?<=\s))(?=[\d<^>.adehlmsv])(?:\d+(?:\.\d+)?[+*])?(?:[<^>])?(?:\.[<^>])?[adehlmsv]?)?"
_CELL = re.compile(_SPEC + r"(?<!\\)\|")
_BANG_CELL = re.compile(_SPEC + r"(?<!\\)!")


def _cols(attrs: str) -> int | None:
    """The column count a table's `cols=` attribute gives (`3*`, `1,2,3`), if any."""
    m = re.search(r'cols\s*=\s*"?([^"\]]*)"?', attrs)
    if not m:
        return None
    spec = m.group(1).strip()
    if re.fullmatch(r"\d+\*.*", spec):
        return int(spec.split("*")[0])
    parts = [p for p in re.split(r"[,;]", spec) if p.strip()]
    return len(parts) or None


_CALLOUT_END = re.compile(r"[ \t]*(?:(?://|#|;;|--)[ \t]*)?(?:<(?:\d+|!--\d+--)>[ \t]*)+$")


def _dedent(text: str) -> str:
    lines = text.split("\n")
    indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
    return "\n".join(x[indent:] for x in lines)


def _anchors(lines: list[_Line]) -> dict[str, str]:
    """Section ids -> titles (`[[id]]`/`[#id]` above a title, and Asciidoctor's automatic `_title_words` ids), so
    that `<<id>>` reads as the title it points to, before or after it."""
    titles: dict[str, str] = {}
    anchor = None
    for k, ln in enumerate(lines):
        s = ln.text.rstrip()
        m = re.match(r"^\[\[([\w:.-]+)(?:,[^\]]*)?\]\]$|^\[#([\w:.-]+)[^\]]*\]$", s)
        if m:
            anchor = m.group(1) or m.group(2)
            continue
        title = None
        m = _SECTION.match(s) if s[:1] == "=" else None
        if m:
            title = m.group(2)
        elif k + 1 < len(lines) and s and s[:1] not in " \t[." and _is_underline(lines[k + 1].text, s) is not None:
            title = s
        if title:
            clean = re.sub(r"[`*_'#]", "", title).strip()
            if anchor:
                titles.setdefault(anchor, clean)
            titles.setdefault("_" + re.sub(r"\W+", "_", clean.lower()).strip("_"), clean)
        anchor = None if s else anchor
    return titles


# ------------------------------------------------------------------------------------------------ entry point
def _roots_for(path: Path) -> tuple[Path, ...]:
    roots = INCLUDE_ROOTS.get()
    if roots:
        return tuple(Path(os.path.realpath(r if r.is_dir() else r.parent)) for r in roots)
    return (Path(os.path.realpath(path.parent)),)


def parse_asciidoc(path: Path, data: bytes) -> ParsedDocument:
    if data.lstrip()[:15] == b"-----BEGIN PGP ":  # `.asc` is also the name of armored keys and signatures
        raise SkipFile("PGP key or signature (.asc), not AsciiDoc", kind="binary")
    text = decode_text(data, path.name)
    try:
        real = Path(os.path.realpath(path))
    except (OSError, ValueError):
        real = path
    reader = _Reader(path, _roots_for(path))
    reader.read(text, real, (real,), None, 0)
    inline = Inline(reader.attrs, _anchors(reader.lines))
    blocks = _Blocks(reader.lines, inline)
    blocks.run()
    sections = blocks.builder.result()
    title = blocks.title or reader.attrs.get("doctitle")
    if not title and sections and not any(s.heading for s in sections):
        stem = path.name.split(".")[0]  # a fragment meant for inclusion: its name is what it is about
        for s in sections:
            s.heading = [stem]
    return ParsedDocument("asciidoc", title, sections, warnings=reader.warnings)
