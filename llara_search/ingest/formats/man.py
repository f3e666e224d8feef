"""man pages: roff sources (man and mdoc macros) and nroff-formatted output (`*.0`, `*.cat`, `man foo > foo.txt`).

Sources are interpreted, not rendered: `.TH`/`.Dt` give the page title, `.SH`/`.Sh` and `.SS`/`.Ss` the heading path
(`BASH(1) > OPTIONS`), paragraph macros cut blocks, font macros and escapes leave only their text, `.nf`/`.EX`
examples and `.TS` tables keep their lines. Macros the page defines itself (`.de`) are expanded, conditionals take
their nroff branch. Formatted output loses its overstrikes (`X\\bX` bold, `_\\bX` underline) and terminal escapes;
headings are recognised by indentation (section titles at the left margin, subsections a little in).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path

from .base import Block, ParsedDocument, Section, SectionBuilder, SkipFile, decode_text, dehyphenate

# ------------------------------------------------------------------------------------------------ detection
_TITLE_MACRO = re.compile(r"^[.'][ \t]*(TH|Dt|Dd|SH|Sh)\b", re.M)
_OVERSTRIKE = re.compile(r"[^\x08\n]\x08[^\x08\n]")
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_HEADER = re.compile(r"^\s*([\w.:+\-\[\]]+)\(([\w+]+)\)\s.*\S\s*$")


def looks_like_roff(head: str, named: bool = False) -> bool:
    """A file that begins with `.TH` or `'\\"` (the issue's rule), or with roff comments/definitions followed by a
    title or section macro (pod2man, help2man and hand-written pages start with comments). A file named like a man
    page (`named`) only needs a title or section macro near its top."""
    lines = [ln for ln in head.split("\n", 600)[:600] if ln.strip()]
    if not lines:
        return False
    first = lines[0].lstrip()
    if first.startswith(("'\\\"", ".TH ", ".TH\t", ".Dd", ".Dt ")) or first == ".TH":
        return True
    if re.match(r"^\.so\s+\S+\s*$", first) and len(lines) <= 3:
        return True  # a link page: `.so man1/other.1`
    if named or first.startswith((".\\\"", ".\\#", "'.\\\"", ".de ", ".ig", ".if ", ".ds ", ".nr ", ".\"", "\\\"")):
        return _TITLE_MACRO.search("\n".join(lines)) is not None
    return False


def looks_like_formatted_man(head: str) -> bool:
    if len(_OVERSTRIKE.findall(head[:20000])) >= 3 or len(_ANSI.findall(head[:20000])) >= 3:
        return True
    plain = _strip_terminal(head[:4000])
    first = next((ln for ln in plain.split("\n") if ln.strip()), "")
    m = _HEADER.match(first)
    return bool(m) and first.rstrip().endswith(f"{m.group(1)}({m.group(2)})")


# ------------------------------------------------------------------------------------------------ escapes
_GLYPHS = {
    "em": "—", "en": "–", "hy": "-", "bu": "•", "aq": "'", "dq": '"', "lq": "“", "rq": "”", "oq": "‘", "cq": "’",
    "Bq": "„", "bq": "‚", "Fo": "«", "Fc": "»", "fo": "‹", "fc": "›", "co": "©", "rg": "®", "tm": "™", "de": "°",
    "mu": "×", "di": "÷", "+-": "±", ">=": "≥", "<=": "≤", "!=": "≠", "==": "≡", "~=": "≅", "ap": "∼", "->": "→",
    "<-": "←", "<>": "↔", "=>": "⇒", "lA": "⇐", "rA": "⇒", "ua": "↑", "da": "↓", "sq": "□", "ci": "○", "ga": "`",
    "ha": "^", "ti": "~", "rs": "\\", "sl": "/", "ba": "|", "br": "│", "ul": "_", "ru": "_", "at": "@", "sh": "#",
    "Do": "$", "Eu": "€", "eu": "€", "Po": "£", "Ye": "¥", "Ct": "¢", "ss": "ß", "fi": "fi", "fl": "fl", "ff": "ff",
    "Fi": "ffi", "Fl": "ffl", "mc": "µ", "pc": "·", "OK": "✓", "lB": "[", "rB": "]", "lC": "{", "rC": "}",
    "la": "⟨", "ra": "⟩", "or": "|", "pl": "+", "mi": "−", "eq": "=", "sc": "§", "ps": "¶", "dg": "†", "dd": "‡",
    "%0": "‰", "12": "½", "14": "¼", "34": "¾", "S1": "¹", "S2": "²", "S3": "³", "if": "∞", "pd": "∂", "*a": "α",
    "*b": "β", "*g": "γ", "*d": "δ", "*e": "ε", "*l": "λ", "*m": "μ", "*p": "π", "*s": "σ", "*t": "τ", "*f": "φ",
    "*w": "ω", "*D": "Δ", "*S": "Σ", "*W": "Ω", "AE": "Æ", "ae": "æ", "OE": "Œ", "oe": "œ", "/o": "ø", "/O": "Ø",
    "-D": "Đ", "Sd": "ð", "TP": "Þ", "Tp": "þ", "r!": "¡", "r?": "¿", "an": "-", "rn": "‾", "lh": "☜", "rh": "☞",
    "tno": "~", "shc": "", "en-dash": "–",
}
_COMBINING = {":": "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", ",": "\u0327",
              "o": "\u030a", "v": "\u030c"}
_STRINGS = {"lq": "“", "rq": "”", "R": "®", "Tm": "™", "S": "", "Lq": "“", "Rq": "”"}
_DELIMITED = set("hvwlLXZDbxNoSHYABCEIMORTUVW")  # escapes with a quoted argument: \h'1i' \w'text' \X'...'


def _glyph(name: str) -> str:
    if name in _GLYPHS:
        return _GLYPHS[name]
    m = re.fullmatch(r"u([0-9A-Fa-f]{4,6})(?:_[0-9A-Fa-f_]+)?", name)
    if m:
        cp = int(m.group(1), 16)
        return chr(cp) if cp < 0x110000 and not 0xD800 <= cp <= 0xDFFF else ""
    if len(name) == 2 and name[0] in _COMBINING and name[1].isalpha():
        return unicodedata.normalize("NFC", name[1] + _COMBINING[name[0]])
    if len(name) == 2 and name[1] in _COMBINING and name[0].isalpha():
        return unicodedata.normalize("NFC", name[0] + _COMBINING[name[1]])
    return ""


def _read_name(s: str, i: int) -> tuple[str, int]:
    """The name after an escape at s[i]: `x`, `(xx` or `[long name]`."""
    if i >= len(s):
        return "", i
    if s[i] == "(":
        return s[i + 1:i + 3], i + 3
    if s[i] == "[":
        j = s.find("]", i + 1)
        if j < 0:
            return s[i + 1:], len(s)
        return s[i + 1:j], j + 1
    return s[i], i + 1


class Escapes:
    """roff escapes to text; `strings` are the page's `.ds` definitions."""

    def __init__(self) -> None:
        self.strings: dict[str, str] = dict(_STRINGS)

    def __call__(self, s: str, depth: int = 0) -> str:
        if "\\" not in s:
            return s
        out: list[str] = []
        i, n = 0, len(s)
        while i < n:
            c = s[i]
            if c != "\\" or i + 1 >= n:
                out.append(c)
                i += 1
                continue
            e = s[i + 1]
            i += 2
            if e in "\"#":  # comment to the end of the line
                break
            if e == "f" or e == "F":
                _, i = _read_name(s, i)
            elif e == "s":
                if i < n and s[i] in "+-":
                    i += 1
                if i < n and s[i] in "([":
                    _, i = _read_name(s, i)
                elif i < n and s[i] in "'":
                    j = s.find("'", i + 1)
                    i = n if j < 0 else j + 1
                elif i < n and s[i].isdigit():  # \sN: one digit
                    i += 1
            elif e == "*":
                name, i = _read_name(s, i)
                name = name.split(" ")[0]
                if depth < 8:
                    out.append(self(self.strings.get(name, ""), depth + 1))
            elif e in "ngkmMY":
                if i < n and s[i] in "+-" and e == "n":
                    i += 1
                _, i = _read_name(s, i)
            elif e == "(" or e == "[":
                name, i = _read_name(s, i - 1)
                out.append(_glyph(name))
            elif e in _DELIMITED:
                if i < n:
                    delim = s[i]
                    j = s.find(delim, i + 1)
                    arg = s[i + 1:j] if j >= 0 else ""
                    i = n if j < 0 else j + 1
                    if e == "N" and arg.isdigit() and 32 <= int(arg) < 0x110000:
                        out.append(chr(int(arg)))
                    elif e == "o":  # overstrike: the last glyph is what shows
                        out.append(self(arg, depth + 1)[-1:])
            elif e in "eE\\":
                out.append("\\")
            elif e in " ~0":
                out.append(" ")
            elif e == "t":
                out.append("\t")
            elif e == "-":
                out.append("-")
            elif e == "'":
                out.append("'")
            elif e == "`":
                out.append("`")
            elif e == "$":
                _, i = _read_name(s, i)
            elif e == "c":
                out.append("\x00")  # continuation: the next text joins this line (marker removed by the caller)
            elif e in "&|^%:,/){}dupraz!?":
                pass
            else:
                out.append(e)
        return "".join(out)


def _args(s: str) -> list[str]:
    """Macro arguments: blanks separate, double quotes group (`""` inside quotes is a quote)."""
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        while i < n and s[i] in " \t":
            i += 1
        if i >= n:
            break
        buf = []
        if s[i] == '"':
            i += 1
            while i < n:
                if s[i] == '"':
                    if i + 1 < n and s[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                if s[i] == "\\" and i + 1 < n:
                    buf.append(s[i:i + 2])
                    i += 2
                    continue
                buf.append(s[i])
                i += 1
        else:
            while i < n and s[i] not in " \t":
                if s[i] == "\\" and i + 1 < n:
                    buf.append(s[i:i + 2])
                    i += 2
                    continue
                buf.append(s[i])
                i += 1
        out.append("".join(buf))
    return out


# ------------------------------------------------------------------------------------------------ roff sources
_FONT = {"B", "I", "SM", "SB", "R", "CW"}
_ALTERNATING = {"BI", "IB", "BR", "RB", "IR", "RI"}
_PARAGRAPH = {"PP", "P", "LP", "sp", "HP", "Sp", "Pp", "Lp", "ns", "bp", "ne"}
_NOFILL_ON = {"nf", "EX", "Vb", "Bd", "ce", "Dl"}
_NOFILL_OFF = {"fi", "EE", "Ve", "Ed"}
_IGNORED = {"PD", "RS", "RE", "ad", "na", "hy", "nh", "in", "ti", "ll", "ps", "vs", "ft", "fam", "ta", "tr",
            "cc", "c2", "ec", "eo", "lf", "nr", "rr", "rm", "rn", "als", "mso", "do", "char", "fchar", "ev", "pl",
            "ul", "cu", "mk", "rt", "hw", "hc", "lg", "ss", "cs", "bd", "fp", "ch", "wh", "it", "em", "pso", "tm",
            "ab", "pc", "lt", "tl", "os", "rs", "fl", "nx", "rd", "sy", "pi", "cf", "trf", "UC", "AT", "DT", "IX",
            "UR", "UE", "MT", "ME", "Os", "Dd", "Bl", "El", "Bk", "Ek", "Sm", "Tg", "Bf", "Ef", "Rs", "Re", "Xc",
            "Ux", "an-trap", "YS", "hlm", "HTML", "LINKSTYLE", "URL", "warn", "kern", "blm", "shc", "ie",
            "el", "if", "ab", "PS", "PE", "EQ", "EN", "ig", "de", "am", "ds", "as", "cp", "dt", "vpt", "mso", "ec"}
_MDOC_CALLABLE = {"Ad", "An", "Ar", "Cd", "Cm", "Dv", "Er", "Ev", "Fa", "Fd", "Fl", "Fn", "Ft", "Ic", "In", "Li",
                  "Nm", "Op", "Ot", "Pa", "Va", "Vt", "Xr", "Em", "Sy", "Ms", "Tn", "Dq", "Qq", "Sq", "Pq", "Bq",
                  "Brq", "Aq", "Ql", "Do", "Dc", "Qo", "Qc", "So", "Sc", "Po", "Pc", "Bo", "Bc", "Bro", "Brc", "Ao",
                  "Ac", "Oo", "Oc", "Eo", "Ec", "Ns", "Pf", "No", "Xo", "Xc", "Bx", "Nx", "Fx", "Ox", "Dx", "At",
                  "Bsx", "St", "Lk", "Mt", "Ta", "Ux", "Sx", "Lb", "Fo", "Fc", "Ap", "Es", "En", "Ex", "Rv", "Tg"}
_OPEN = {"Op": ("[", "]"), "Dq": ("“", "”"), "Qq": ('"', '"'), "Sq": ("‘", "’"), "Pq": ("(", ")"),
         "Bq": ("[", "]"), "Brq": ("{", "}"), "Aq": ("<", ">"), "Ql": ("'", "'"), "En": ("", "")}
_DELIMS = {"Oo": "[", "Oc": "]", "Do": "“", "Dc": "”", "Qo": '"', "Qc": '"', "So": "‘", "Sc": "’", "Po": "(",
           "Pc": ")", "Bo": "[", "Bc": "]", "Bro": "{", "Brc": "}", "Ao": "<", "Ac": ">", "Eo": "", "Ec": ""}
_OS = {"Bx": "BSD", "Nx": "NetBSD", "Fx": "FreeBSD", "Ox": "OpenBSD", "Dx": "DragonFly", "Bsx": "BSD/OS",
       "At": "AT&T UNIX", "Ux": "UNIX"}
_PUNCT = {".", ",", ";", ":", "?", "!", ")", "]", "}"}


class _Roff:
    """A line-at-a-time interpreter of the man and mdoc macro packages, producing sections of blocks."""

    EXPANSION = 20  # lines processed per source line at most: a recursive macro cannot hang the ingest

    def __init__(self, lines: list[str]):
        self.src = lines
        self.esc = Escapes()
        self.macros: dict[str, list[str]] = {}
        self.builder = SectionBuilder()
        self.title: str | None = None
        self.name: str | None = None  # mdoc .Nm
        self.para: list[str] = []
        self.para_lines: list[int] = []
        self.nofill = False
        self.heading_next: int | None = None  # .SH without arguments: the next text line is the heading
        self.last_cond = True
        self.links: list[str] = []
        self.budget = self.EXPANSION * len(lines) + 10_000
        self.mdoc = False
        self.brk = False  # the next text starts a new line
        self.tag_next = False  # the next text is the tag of a `.TP` paragraph

    # -------------------------------------------------------------------------------------------- output
    def emit(self, text: str, line_no: int, brk: bool = False) -> None:
        """Add text to the paragraph: filled text flows on the current line, unless a break comes first (`.br`,
        a tag, a line that starts with a blank); no-fill text (examples) keeps its lines."""
        if self.heading_next is not None:
            level, self.heading_next = self.heading_next, None
            self.flush()
            self.builder.heading(level, text.replace("\x00", ""))
            return
        if self.para and self.para[-1].endswith("\x00"):
            self.para[-1] = self.para[-1][:-1] + text
        elif self.para and not self.nofill and not (brk or self.brk):
            self.para[-1] = self.para[-1].rstrip() + " " + text.lstrip()
        else:
            self.para.append(text)
        self.para_lines.append(line_no)
        self.brk = False
        if self.tag_next:  # the tag of `.TP` stands on its own line, its description follows
            self.tag_next, self.brk = False, True

    def flush(self) -> None:
        if self.para:
            text = "\n".join(p.replace("\x00", "") for p in self.para)
            if not self.nofill:  # filled text: one line per output line, long ones cut after sentences
                text = "\n".join(_sentences(line.strip()) for line in text.split("\n"))
            self.builder.add(Block(text.strip("\n"), min(self.para_lines), max(self.para_lines)))
        self.para, self.para_lines = [], []
        self.brk = self.tag_next = False

    # -------------------------------------------------------------------------------------------- driver
    def run(self) -> None:
        queue: list[tuple[str, int]] = [(ln, i + 1) for i, ln in enumerate(self.src)]
        queue.reverse()  # a stack: pop() takes the next line; expansions push theirs on top
        while queue:
            self.budget -= 1
            if self.budget < 0:
                break
            line, no = queue.pop()
            while line.endswith("\\") and not line.endswith("\\\\") and queue:  # escaped newline joins lines
                nxt, _ = queue.pop()
                line = line[:-1] + nxt
            if line.strip() in (".", "'"):  # an empty request
                continue
            if line[:1] in ".'" and len(line) > 1:
                self.request(line[1:].lstrip(" \t"), no, queue)
            elif not line.strip():
                if self.nofill:
                    self.para.append("")
                    self.para_lines.append(no)
                else:
                    self.flush()
            else:
                self.emit(self.esc(line), no, brk=line[:1] in " \t")
        self.flush()

    def _skip_block(self, queue: list[tuple[str, int]], rest: str) -> None:
        """Drop a `\\{ ... \\}` conditional body."""
        depth = rest.count("\\{") - rest.count("\\}")
        while depth > 0 and queue:
            line, _ = queue.pop()
            depth += line.count("\\{") - line.count("\\}")

    def _condition(self, rest: str) -> tuple[bool, str]:
        """Evaluate the few conditions pages use (`n` true: we are a terminal; `t`, `o`, `e`, registers and string
        comparisons false); returns (value, the rest of the line)."""
        rest = rest.lstrip()
        neg = rest.startswith("!")
        if neg:
            rest = rest[1:]
        m = re.match(r"([ntoevh])(?=\s|\\\{|$)", rest)
        if m:
            value = m.group(1) == "n"
            rest = rest[1:]
        elif rest[:1] in "dr" and re.match(r"[dr]\s*\S+", rest):
            m = re.match(r"([dr])\s*(\S+)", rest)
            value = m.group(1) == "d" and (m.group(2) in self.macros or m.group(2) in self.esc.strings)
            rest = rest[m.end():]
        elif rest[:1] in "'\"/" and len(rest) > 1:  # 'a'b': a string comparison
            d = rest[0]
            parts = rest[1:].split(d, 2)
            value = len(parts) == 3 and self.esc(parts[0]) == self.esc(parts[1])
            rest = parts[2] if len(parts) == 3 else ""
        else:  # a numeric expression: take the first blank-separated token
            m = re.match(r"\S+", rest)
            expr = m.group(0) if m else ""
            # `\n(.g`: running under groff, as man does on Linux (pages pick their groff branch on it: bash.1's .Q)
            value = bool(re.fullmatch(r"\(?[1-9]\d*\)?|\\n(?:\(\.g|\[\.g\])", expr))
            rest = rest[len(expr):]
        return value != neg, rest.lstrip()

    def _body(self, rest: str, no: int, queue: list[tuple[str, int]], take: bool) -> None:
        if not take:
            if "\\{" in rest:
                self._skip_block(queue, rest)
            return
        if rest.startswith("\\{"):
            rest = rest[2:]
            depth = 1 + rest.count("\\{") - rest.count("\\}")
            body: list[tuple[str, int]] = []
            if rest.strip() and rest.strip() != "\\":
                body.append((rest.replace("\\}", ""), no))
            while depth > 0 and queue:
                line, n2 = queue.pop()
                depth += line.count("\\{") - line.count("\\}")
                body.append((line.replace("\\}", ""), n2))
            for item in reversed([b for b in body if b[0].strip() not in ("", "\\")]):
                queue.append(item)
            return
        rest = rest.replace("\\}", "")
        if rest.strip():
            queue.append((rest if rest[:1] in ".'" else rest, no))

    def request(self, body: str, no: int, queue: list[tuple[str, int]]) -> None:
        if body.startswith(('\\"', "\\#")) or not body.strip():
            return
        m = re.match(r"(\S+)\s*(.*)$", body)
        name, rest = m.group(1), m.group(2)
        if name.startswith("\\\""):
            return
        if "\\\"" in rest:  # trailing comment
            rest = rest[:rest.index("\\\"")]
        if name in ("de", "de1", "am", "dei"):
            self._define(name, _args(rest), queue)
            return
        if name == "ig":
            end = "." + (_args(rest)[0] if _args(rest) else ".")
            while queue:
                line, _ = queue.pop()
                if line.strip() == end or (end == ".." and line.strip() == ".."):
                    break
            return
        if name in ("if", "ie"):
            value, tail = self._condition(rest)
            if name == "ie":
                self.last_cond = value
            self._body(tail, no, queue, value)
            return
        if name == "el":
            self._body(rest.lstrip(), no, queue, not self.last_cond)
            return
        if name in ("ds", "ds1", "as", "as1"):
            parts = rest.split(None, 1)
            if parts:
                value = parts[1] if len(parts) > 1 else ""
                value = value[1:] if value.startswith('"') else value
                self.esc.strings[parts[0]] = (self.esc.strings.get(parts[0], "") if name.startswith("as") else
                                              "") + value
            return
        if name in self.macros and name not in ("TH", "SH", "SS"):
            self._expand(name, _args(rest), no, queue)
            return
        if self.mdoc or name in ("Dd", "Dt", "Sh", "Ss", "Nm", "Nd", "It", "Bl", "Fl", "Ar", "Xr", "Op", "Pp"):
            if self._mdoc(name, rest, no):
                return
        self._man(name, rest, no, queue)

    def _define(self, kind: str, args: list[str], queue: list[tuple[str, int]]) -> None:
        end = "." + args[1] if len(args) > 1 else ".."
        body = []
        while queue:
            line, _ = queue.pop()
            if line.strip() == end or line.strip() == "..":
                break
            body.append(line.replace("\\\\", "\\"))  # copy mode: `\\$1` is `\$1` when the macro runs
        if args and args[0] not in ("TH", "SH", "SS", "TP", "IP", "PP", "B", "I", "BR", "Sh", "Ss"):
            self.macros[args[0]] = (self.macros.get(args[0], []) if kind == "am" else []) + body

    def _expand(self, name: str, args: list[str], no: int, queue: list[tuple[str, int]]) -> None:
        def sub(line: str) -> str:
            line = re.sub(r"\\\$(\d)", lambda m: args[int(m.group(1)) - 1] if 0 < int(m.group(1)) <= len(args)
                          else "", line)
            line = line.replace("\\$*", " ".join(args)).replace("\\$@", " ".join(f'"{a}"' for a in args))
            return re.sub(r"\\n\(\.\$|\\n\[\.\$\]", str(len(args)), line)

        for body_line in reversed(self.macros[name]):
            queue.append((sub(body_line), no))

    # -------------------------------------------------------------------------------------------- man(7)
    def _man(self, name: str, rest: str, no: int, queue: list[tuple[str, int]]) -> None:
        args = _args(rest)
        if name == "TH":
            if args:
                self.title = f"{self.esc(args[0])}({self.esc(args[1])})" if len(args) > 1 else self.esc(args[0])
            return
        if name in ("SH", "SS"):
            self.flush()
            self.nofill = False
            level = 1 if name == "SH" else 2
            if args:
                self.builder.heading(level, self.esc(" ".join(args)))
            else:
                self.heading_next = level
            return
        if name in _PARAGRAPH:
            self.flush()
            return
        if name in ("TP", "TQ"):
            if name == "TP":
                self.flush()
            self.tag_next = True
            self.brk = True
            return
        if name == "IP":
            self.flush()
            if args and args[0].strip():
                tag = self.esc(args[0]).strip()
                if tag:
                    self.emit(tag, no)
                    self.brk = True
            return
        if name == "br":
            self.brk = True
            return
        if name in _NOFILL_ON:
            self.flush()
            self.nofill = True
            if name == "ce":
                self.nofill = False
            return
        if name in _NOFILL_OFF:
            self.flush()
            self.nofill = False
            return
        if name in _FONT:
            if args:
                self.emit(self.esc(" ".join(args)), no)
            return
        if name in _ALTERNATING:
            if args:
                self.emit(self.esc("".join(args)), no)
            return
        if name == "SY":
            self.flush()
            if args:
                self.emit(self.esc(args[0]), no)
            return
        if name == "OP":
            if args:
                self.emit("[" + self.esc(" ".join(args)) + "]", no)
            return
        if name == "so":
            self.links.append(rest.strip())
            return
        if name == "TS":
            self._table(queue)
            return
        if name in ("EQ", "PS", "[", "G1"):
            end = {"EQ": "EN", "PS": "PE", "[": "]", "G1": "G2"}[name]
            while queue:
                line, _ = queue.pop()
                if line[:1] in ".'" and line[1:].strip().split(" ")[0] == end:
                    break
            return
        if name in ("MT", "UR") or name in _IGNORED:
            return
        # an unknown request or a macro defined elsewhere (not in this page): its arguments are not text we know

    def _table(self, queue: list[tuple[str, int]]) -> None:
        """tbl(1): options and format lines skipped, data rows kept with cells joined by " | "."""
        self.flush()
        rows: list[tuple[str, int]] = []
        while queue:
            line, no = queue.pop()
            if line[:1] in ".'" and line[1:].strip().startswith("TE"):
                break
            rows.append((line, no))
        tab = "\t"
        i = 0
        if rows and rows[0][0].rstrip().endswith(";"):
            m = re.search(r"tab\s*\((.)\)", rows[0][0])
            tab = m.group(1) if m else tab
            i = 1
        while i < len(rows) and not rows[i][0].rstrip().endswith("."):
            i += 1
        i += 1
        out_rows: list[str] = []
        first = None
        cell_buf: list[str] | None = None
        cells: list[str] = []
        for line, no in rows[i:]:
            first = first or no
            if cell_buf is not None:  # inside T{ ... T}
                if line.startswith("T}"):
                    cells.append(" ".join(cell_buf))
                    cell_buf = None
                    tail = line[2:]
                    if tail.startswith(tab):
                        cells.extend(self.esc(c).strip() for c in tail[1:].split(tab))
                        out_rows.append(" | ".join(c for c in cells))
                        cells = []
                    elif not tail.strip():
                        out_rows.append(" | ".join(cells))
                        cells = []
                elif line[:1] not in ".'":
                    cell_buf.append(self.esc(line).strip())
                continue
            if line.strip() in ("_", "=", "") or line[:1] in ".'" or line.rstrip().endswith(".") and \
                    re.fullmatch(r"[lrcnasLRCNAS^_=|\s\d.tbiBIwWfFpPvVeEz()]+", line.strip()):
                continue
            parts = line.split(tab)
            if parts[-1].rstrip().endswith("T{"):
                cells = [self.esc(c).strip() for c in parts[:-1]]
                cell_buf = []
                continue
            out_rows.append(" | ".join(self.esc(c).strip() for c in parts))
        text = "\n".join(r for r in out_rows if r.strip(" |"))
        if text:
            self.builder.add(Block(text, first, rows[-1][1] if rows else first))

    # -------------------------------------------------------------------------------------------- mdoc(7)
    def _mdoc(self, name: str, rest: str, no: int) -> bool:
        """BSD mdoc: True when handled."""
        args = _args(rest)
        if name in ("Dd", "Dt", "Os"):
            self.mdoc = True
            if name == "Dt" and args:
                self.title = f"{self.esc(args[0])}({self.esc(args[1])})" if len(args) > 1 else self.esc(args[0])
            return True
        if not self.mdoc:
            return False
        if name in ("Sh", "Ss"):
            self.flush()
            self.nofill = False
            self.builder.heading(1 if name == "Sh" else 2, self.esc(" ".join(args)))
            return True
        if name in ("Pp", "Lp", "Bl", "El", "Rs", "Re"):
            self.flush()
            return True
        if name == "It":
            self.flush()
            text = self._inline(args)
            if text:
                self.emit(text, no)
                self.brk = True  # the item's tag stands on its own line
            return True
        if name == "Bd":
            self.flush()
            self.nofill = any(a in ("-literal", "-unfilled") for a in args)
            return True
        if name == "Ed":
            self.flush()
            self.nofill = False
            return True
        if name in ("D1", "Dl"):
            self.flush()
            self.emit(self._inline(args), no)
            self.flush()
            return True
        if name == "Nm" and args and self.name is None:
            self.name = self.esc(args[0])
        if name == "Nd":
            self.emit("— " + self._inline(args), no)
            return True
        if name.startswith("%") and args:
            self.emit(self._inline(args), no)
            return True
        if name == "Ex":
            self.emit(f"The {self.name or 'utility'} utility exits 0 on success, and >0 if an error occurs.", no)
            return True
        if name == "Rv":
            self.emit("The function returns the value 0 if successful; otherwise the value -1 is returned and "
                      "the global variable errno is set to indicate the error.", no)
            return True
        if name in _MDOC_CALLABLE:
            text = self._inline([name] + args)
            if text:
                self.emit(text, no)
            return True
        return False

    def _inline(self, toks: list[str]) -> str:
        """Render a line of mdoc callable macros and words."""
        out: list[str] = []
        nospace = False
        i = 0

        def put(word: str, attach: bool = False) -> None:
            nonlocal nospace
            if not word:
                return
            if out and not (nospace or attach or word in _PUNCT or out[-1] in ("(", "[", "{", "“", "‘", "<")):
                out.append(" ")
            out.append(word)
            nospace = False

        while i < len(toks):
            t = toks[i]
            i += 1
            if t in _OPEN:
                o, c = _OPEN[t]
                # the enclosure runs to the end of the line, less trailing punctuation
                j = len(toks)
                while j > i and toks[j - 1] in _PUNCT:
                    j -= 1
                inner = self._inline(toks[i:j])
                put(o + inner + c)
                i = j
                continue
            if t in _DELIMS:
                if t.endswith("o") or t in ("Oo", "Do", "Qo", "So", "Po", "Bo", "Bro", "Ao", "Eo"):
                    put(_DELIMS[t])
                    nospace = True
                else:
                    out.append(_DELIMS[t])
                continue
            if t == "Fl":
                if i < len(toks) and toks[i] not in _MDOC_CALLABLE and toks[i] not in _PUNCT:
                    put("-" + self.esc(toks[i]))
                    i += 1
                else:
                    put("-")
                continue
            if t == "Xr":
                if i < len(toks):
                    name = self.esc(toks[i])
                    sec = toks[i + 1] if i + 1 < len(toks) and toks[i + 1] not in _PUNCT else ""
                    put(f"{name}({sec})" if sec else name)
                    i += 2 if sec else 1
                continue
            if t == "Fn":
                if i < len(toks):
                    fname = self.esc(toks[i])
                    j = i + 1
                    fargs = []
                    while j < len(toks) and toks[j] not in _PUNCT and toks[j] not in _MDOC_CALLABLE:
                        fargs.append(self.esc(toks[j]))
                        j += 1
                    put(f"{fname}({', '.join(fargs)})")
                    i = j
                continue
            if t == "Fo":
                if i < len(toks):
                    put(self.esc(toks[i]) + "(")
                    nospace = True
                    i += 1
                continue
            if t == "Fc":
                out.append(")")
                continue
            if t == "In":
                if i < len(toks):
                    put(f"#include <{self.esc(toks[i])}>")
                    i += 1
                continue
            if t == "Nm":
                if i < len(toks) and toks[i] not in _MDOC_CALLABLE and toks[i] not in _PUNCT:
                    continue  # its argument is the next word
                put(self.name or "")
                continue
            if t == "Ar" and (i >= len(toks) or toks[i] in _MDOC_CALLABLE or toks[i] in _PUNCT):
                put("file ...")
                continue
            if t == "Ns":
                nospace = True
                continue
            if t == "Ap":
                out.append("'")
                nospace = True
                continue
            if t == "Pf":
                if i < len(toks):
                    put(self.esc(toks[i]))
                    nospace = True
                    i += 1
                continue
            if t == "Ta":
                put("|")
                continue
            if t in _OS:
                put(_OS[t])
                continue
            if t in _MDOC_CALLABLE:
                continue  # a font/semantic macro: its words follow as plain words
            put(self.esc(t))
        return "".join(out)


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=[A-Z(\"'`])")


def _sentences(line: str, width: int = 240) -> str:
    """A long filled line cut after sentence ends, so that the chunker can split it between sentences."""
    if len(line) <= width:
        return line
    out, cur = [], ""
    for part in _SENTENCE_END.split(line):
        if cur and len(cur) + len(part) > width:
            out.append(cur)
            cur = part
        else:
            cur = f"{cur} {part}" if cur else part
    if cur:
        out.append(cur)
    return "\n".join(out)


def parse_man(path: Path, data: bytes) -> ParsedDocument:
    text = decode_text(data, path.name)
    roff = _Roff(text.replace("\r\n", "\n").split("\n"))
    roff.run()
    sections = roff.builder.result()
    if not sections and roff.links:
        raise SkipFile(f"man page only points to another one (.so {roff.links[0]}); skipped", warn=True,
                       kind="link")
    title = roff.title or (path.name if sections else None)
    if roff.title:
        sections = [Section([roff.title] + s.heading, s.blocks) for s in sections]
    return ParsedDocument("man", title, sections)


# ------------------------------------------------------------------------------------------------ formatted pages
def _strip_terminal(text: str) -> str:
    text = _ANSI.sub("", text)
    if "\x08" not in text:
        return text

    def pick(m: re.Match) -> str:
        a, b = m.group(1), m.group(2)
        if a == "_":
            return b
        if b == "_":
            return a
        return b

    pair = re.compile(r"([^\x08\n])\x08([^\x08\n])")
    for _ in range(8):
        new = pair.sub(pick, text)
        if new == text or "\x08" not in new:
            text = new
            break
        text = new
    return text.replace("\x08", "")


_SPACES = re.compile(r"(?<=\S)[ ]{2,}(?=\S)")  # justification spaces between words (indentation is kept)


def parse_formatted_man(path: Path, data: bytes) -> ParsedDocument:
    """nroff output: terminal decoration removed, page headers and footers dropped, headings by indentation."""
    text = decode_text(data, path.name)
    text = _strip_terminal(text.replace("\r\n", "\n").replace("\f", "\n"))
    lines = [ln.rstrip() for ln in text.split("\n")]
    nonblank = [ln for ln in lines if ln.strip()]
    if not nonblank:
        return ParsedDocument("man-formatted", None, [])
    header = " ".join(nonblank[0].split())
    m = _HEADER.match(nonblank[0])
    title = f"{m.group(1)}({m.group(2)})" if m else None
    footer = re.escape(" ".join(nonblank[-1].split()))
    footer = re.compile(re.sub(r"\d+$", r"\\d+", footer) + "$") if len(nonblank) > 1 else None
    keep: list[tuple[int, str]] = []
    for i, ln in enumerate(lines):
        norm = " ".join(ln.split())
        if norm and (norm == header or (footer is not None and footer.match(norm))):
            continue
        keep.append((i + 1, ln))
    indents = Counter(len(ln) - len(ln.lstrip()) for _, ln in keep if ln.strip() and ln[:1] == " ")
    total = sum(indents.values())
    # the body's left margin: the smallest indent of 5 or more that a good share of lines use (7 for man(7),
    # 5 for mdoc); subsection titles sit between the left edge and it
    body = min((k for k, n in indents.items() if k >= 5 and n >= 0.05 * total), default=7)
    builder = SectionBuilder([title] if title else [])
    para: list[tuple[int, str]] = []

    def flush() -> None:
        if para:
            width = min(len(t) - len(t.lstrip()) for _, t in para)
            block = "\n".join(_SPACES.sub(" ", t[width:]) for _, t in para)
            builder.add(Block(block, para[0][0], para[-1][0]))
            para.clear()

    for k, (no, ln) in enumerate(keep):
        if not ln.strip():
            flush()
            continue
        indent = len(ln) - len(ln.lstrip())
        nxt = next((t for _, t in keep[k + 1:] if t.strip()), "")
        nxt_indent = len(nxt) - len(nxt.lstrip())
        if indent == 0 and len(ln) < 80:
            flush()
            builder.heading(1, ln.strip())
            continue
        if 0 < indent < min(body, 5) and nxt_indent > indent and len(ln.strip()) < 70 and not ln.rstrip().endswith(
                (".", ",", ";")) and (k == 0 or not keep[k - 1][1].strip()):
            flush()
            builder.heading(2, ln.strip())
            continue
        para.append((no, ln))
    flush()
    sections = builder.result()
    vocab = _vocabulary(sections)
    for s in sections:
        for b in s.blocks:
            b.text = dehyphenate(b.text, vocab)
    return ParsedDocument("man-formatted", title, sections)


def _vocabulary(sections: list[Section]) -> set[str]:
    return {w.lower() for s in sections for b in s.blocks for w in re.findall(r"\w+", b.text)}
