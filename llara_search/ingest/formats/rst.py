"""reStructuredText rendered to clean text, line by line (source line numbers kept), without docutils' errors on the
Sphinx directives and roles it does not know.

- Roles keep their text (`:func:`~jax.jit`` -> jax.jit, `:ref:`the guide <guide>`` -> the guide), links and
  emphasis their words, inline literals stay `code`.
- Directive markup goes, content stays: admonitions keep their text under a label ("Note: ..."), code blocks
  their code, autodoc and domain directives the object names users search for (qualified by `currentmodule`:
  `.. autosummary::` under `jax.numpy` lists `jax.numpy.abs`), tables their cells, figures their captions.
- What is not text is dropped: comments, targets, substitution definitions (their references are replaced by the
  text), toctrees, images, includes, raw non-HTML output, option lines, document metadata fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .base import Block, ParsedDocument, SectionBuilder, decode_text, line_offsets
from .text import underlined_headings

_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:.+-]+?)::(?:\s+(.*?))?\s*$")
_SUBST_DEF = re.compile(r"^(\s*)\.\.\s+\|([^|]+)\|\s+([\w:.-]+)::\s*(.*?)\s*$")
_TARGET = re.compile(r"^\s*(\.\.\s+_[^:]*(:|$)|__\s+\S|\.\.\s+__:)")
_FOOTNOTE = re.compile(r"^(\s*)\.\.\s+\[([^\]]+)\]\s*(.*)$")
_COMMENT = re.compile(r"^(\s*)\.\.(\s.*)?$")
_OPTION = re.compile(r"^\s*:[^:\s`][^:`]*:(\s.*)?$")
_FIELD = re.compile(r"^(\s*):([^:\s`][^:`]*):(\s+(.*))?$")
_GRID_BORDER = re.compile(r"^\s*\+([-=+:]+\+)+\s*$")
_SIMPLE_BORDER = re.compile(r"^\s*=+( +=+)+\s*$|^\s*-+( +-+)+\s*$")

# directive families (the name without its domain prefix, lower case)
_DROP = {"toctree", "contents", "include", "literalinclude", "image", "meta", "index", "highlight", "sectionauthor",
         "codeauthor", "moduleauthor", "default-role", "default-domain", "role", "class", "rst-class", "cssclass",
         "tabularcolumns", "sectnum", "section-numbering", "header", "footer", "title", "graphviz", "digraph",
         "graph", "inheritance-diagram", "mermaid", "plot", "bibliography", "footbib", "target-notes", "todolist",
         "spelling:word-list", "nbgallery", "program", "testsetup", "testcleanup", "raw-cell", "tags", "py:module",
         "automodapi", "autoprogram", "jinja", "card-carousel", "button-ref", "button-link", "iframe",
         "youtube", "video", "thumbnail", "gallery", "galleryitem", "ipython-directive-placeholder"}
_CONTEXT = {"currentmodule", "module", "py:currentmodule", "py:module", "js:module", "c:namespace", "cpp:namespace",
            "js:class-context"}
_CODE = {"code-block", "code", "sourcecode", "ipython", "jupyter-execute", "doctest", "testcode", "testoutput",
         "math", "productionlist", "prompt", "console", "code-cell", "parsed-literal", "highlight-block", "jupyter-input",
         "jupyter-output", "exec_code", "runblock", "command-output", "program-output", "tab-code", "code-tab",
         "literal", "output"}
_ADMONITIONS = {"note": "Note", "warning": "Warning", "tip": "Tip", "important": "Important", "hint": "Hint",
                "caution": "Caution", "attention": "Attention", "danger": "Danger", "error": "Error",
                "seealso": "See also", "todo": "To do", "versionadded": "New in version", "versionchanged":
                "Changed in version", "deprecated": "Deprecated since version", "versionremoved":
                "Removed in version", "admonition": ""}
_OBJECT = re.compile(r"^(auto\w*|(\w+:)?(function|class|method|attribute|data|exception|decorator|staticmethod|"
                     r"classmethod|property|type|macro|member|var|struct|union|enum|enumerator|enum-class|"
                     r"enum-struct|option|envvar|describe|object|cmdoption|confval|setting|event|directive|role|"
                     r"concept|alias|functionparam|interface|namespace|template|callable|module-level))$")
_LAYOUT_ARGS = re.compile(r"^[\d\s]*$|^(\d+\s+){1,3}\d+$")  # `.. grid:: 1 2 2 2`


@dataclass
class _Out:
    start: int  # 1-based source lines
    end: int
    text: str


def looks_like_rst(head: str) -> bool:
    """Sphinx sources saved as .txt (Django, many others): directives or roles, not just underlined titles."""
    directives = len(re.findall(r"^\s*\.\.\s+[\w:.+-]+::", head, re.M))
    roles = len(re.findall(r":[\w:.+-]+:`[^`]+`", head))
    return directives >= 2 or (directives >= 1 and roles >= 1) or roles >= 4


# ------------------------------------------------------------------------------------------------ inline markup
_LITERAL = re.compile(r"``(.+?)``", re.S)
_ROLE = re.compile(r"(?<![\w`]):((?:[\w.+-]+:)*[\w.+-]+):`((?:[^`\\]|\\.)+)`(?!`)|`((?:[^`\\]|\\.)+)`:((?:[\w.+-]+:)*[\w.+-]+):")
_LINK = re.compile(r"`([^`<]*?)\s*<([^`>]+)>`__?|`([^`]+)`__?")
_INTERPRETED = re.compile(r"(?<![\w`])`([^`]+)`(?!\w)")
_REF_WORD = re.compile(r"(?<![\w/:.`])([A-Za-z][\w.-]*[A-Za-z0-9])__?(?=[\s.,;:!?)\]'\"]|$)")
_FOOTREF = re.compile(r"\s?\[(#[\w-]*|\*|\d+)\]_")
_CITEREF = re.compile(r"\[([A-Za-z][\w.-]*)\]_")
_STRONG = re.compile(r"(?<![\w*\\])\*\*(?=\S)(.+?)(?<=\S)\*\*(?![\w*])", re.S)
_EMPH = re.compile(r"(?<![\w*\\])\*(?=[^\s*])(.+?)(?<=[^\s*\\])\*(?![\w*])", re.S)
_SUBST_REF = re.compile(r"\|([^|\s][^|]*?)\|(__?)?")


def role_text(role: str, text: str) -> str:
    """What a role shows: the explicit title of `title <target>`, the target otherwise (without `~`/`!`)."""
    text = text.replace("\\`", "`")
    m = re.fullmatch(r"(.*?)\s*<([^<>]+)>", text, re.S)
    if m and m.group(1).strip():
        return m.group(1).strip()
    if m:
        text = m.group(2)
    text = text.strip()
    if text.startswith(("~", "!")):
        text = text[1:]
    name = role.split(":")[-1]
    if name in ("guilabel", "menuselection"):
        text = text.replace("&", "").replace("-->", ">")
    return text


def render_inline(text: str, substitutions: dict[str, str] | None = None) -> str:
    subs = substitutions or {}
    saved: list[str] = []

    def keep(s: str) -> str:
        saved.append(s)
        return f"\x00{len(saved) - 1}\x00"

    text = _LITERAL.sub(lambda m: keep(f"`{m.group(1)}`"), text)
    text = _ROLE.sub(lambda m: keep(role_text(m.group(1) or m.group(4), m.group(2) if m.group(2) is not None
                                              else m.group(3))), text)
    text = _LINK.sub(lambda m: keep(m.group(1).strip() if m.group(1) and m.group(1).strip() else
                                    (m.group(2) if m.group(2) else m.group(3))), text)
    text = _INTERPRETED.sub(lambda m: keep(m.group(1)), text)
    if subs:
        text = _SUBST_REF.sub(lambda m: keep(subs[m.group(1)]) if m.group(1) in subs else m.group(0), text)
    text = _FOOTREF.sub("", text)
    text = _CITEREF.sub(r"[\1]", text)
    text = _STRONG.sub(r"\1", text)
    text = _EMPH.sub(r"\1", text)
    text = _REF_WORD.sub(r"\1", text)
    text = re.sub(r"\\(.)", r"\1", text)  # backslash escapes
    text = text.replace("\\", "")
    while "\x00" in text:
        new = re.sub(r"\x00(\d+)\x00", lambda m: saved[int(m.group(1))], text)
        if new == text:
            break
        text = new
    return text


# ------------------------------------------------------------------------------------------------ blocks
def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


class _Renderer:
    def __init__(self, lines: list[str], substitutions: dict[str, str]):
        self.lines = lines
        self.subs = substitutions
        self.module: str | None = None

    def inline(self, text: str) -> str:
        return render_inline(text, self.subs)

    def _block_end(self, i: int, end: int, indent: int) -> int:
        """Index after the block of lines indented more than `indent` starting at i (blank lines inside)."""
        j = i
        last = i
        while j < end:
            ln = self.lines[j]
            if ln.strip():
                if _indent(ln) <= indent:
                    break
                last = j + 1
            j += 1
        return last

    def _code(self, i: int, j: int) -> _Out | None:
        body = [ln for ln in self.lines[i:j]]
        while body and not body[0].strip():
            body.pop(0)
            i += 1
        while body and not body[-1].strip():
            body.pop()
        if not body:
            return None
        width = min(_indent(ln) for ln in body if ln.strip())
        return _Out(i + 1, i + len(body), "\n".join(ln[width:].rstrip() for ln in body))

    def render(self, start: int, end: int) -> list[_Out]:
        out: list[_Out] = []
        i = start
        lines = self.lines
        while i < end:
            line = lines[i]
            if not line.strip():
                i += 1
                continue
            ind = _indent(line)
            stripped = line.strip()
            if stripped.startswith(".."):
                i = self._explicit(i, end, ind, out)
                continue
            if stripped.startswith("__ "):
                i = self._block_end(i + 1, end, ind)
                continue
            if _GRID_BORDER.match(line) or _SIMPLE_BORDER.match(line):
                i += 1
                continue
            # a paragraph: consecutive non-blank lines (definition lists and field bodies stay with their term)
            j = i
            while j < end and lines[j].strip() and not (j > i and lines[j].strip().startswith(".. ")):
                j += 1
            para = lines[i:j]
            literal = para[-1].rstrip().endswith("::")
            text_lines = []
            for k, ln in enumerate(para):
                if _GRID_BORDER.match(ln) or _SIMPLE_BORDER.match(ln):
                    continue
                s = ln[min(ind, _indent(ln)):].rstrip()
                m = _FIELD.match(s)
                if m:
                    name, value = m.group(2), (m.group(4) or "").strip()
                    if not value and " " not in name:
                        continue  # document metadata (:orphan:, :nosearch:, :tocdepth: ...)
                    s = f"{m.group(1)}{name}: {value}" if value else f"{m.group(1)}{name}:"
                if s.lstrip().startswith("|") and s.rstrip().endswith("|") and s.count("|") >= 2:
                    s = " | ".join(c.strip() for c in s.strip().strip("|").split("|"))  # table row
                elif s.lstrip().startswith("| "):
                    s = s.replace("| ", "", 1)  # line block
                text_lines.append(s)
            if literal and text_lines:
                last = text_lines[-1].rstrip()
                text_lines[-1] = last[:-2].rstrip() if last == "::" or last.endswith(" ::") else last[:-1]
            text = self.inline("\n".join(text_lines)).strip()
            if text:
                out.append(_Out(i + 1, j, text))
            i = j
            if literal:  # the indented block after "::" is code
                k = i
                while k < end and not lines[k].strip():
                    k += 1
                if k < end and _indent(lines[k]) > ind:
                    e = self._block_end(k, end, ind)
                    code = self._code(k, e)
                    if code:
                        out.append(code)
                    i = e
        return out

    def _explicit(self, i: int, end: int, ind: int, out: list[_Out]) -> int:
        """`.. something`: a directive, footnote, target, substitution definition or comment."""
        line = self.lines[i]
        m = _SUBST_DEF.match(line)
        if m:
            j = self._block_end(i + 1, end, ind)
            kind, value = m.group(3), m.group(4)
            if kind == "replace":
                extra = " ".join(ln.strip() for ln in self.lines[i + 1:j] if ln.strip() and not _OPTION.match(ln))
                self.subs[m.group(2)] = self.inline(f"{value} {extra}".strip())
            elif kind == "unicode":
                self.subs[m.group(2)] = _unicode(value)
            else:
                self.subs.setdefault(m.group(2), "")
            return j
        if _TARGET.match(line):
            return self._block_end(i + 1, end, ind)
        m = _FOOTNOTE.match(line)
        if m:
            j = self._block_end(i + 1, end, ind)
            body = [m.group(3)] + [ln.strip() for ln in self.lines[i + 1:j]]
            text = self.inline("\n".join(b for b in body if b))
            if text:
                out.append(_Out(i + 1, j, f"[{m.group(2)}] {text}"))
            return j
        m = _DIRECTIVE.match(line)
        if not m:  # a comment, with its indented block
            return self._block_end(i + 1, end, ind)
        return self._directive(i, end, ind, m.group(2), (m.group(3) or "").strip(), out)

    def _directive(self, i: int, end: int, ind: int, name: str, arg: str, out: list[_Out]) -> int:
        j = self._block_end(i + 1, end, ind)
        # argument continuation lines and options come first, up to a blank line; then the content
        k = i + 1
        args = [arg] if arg else []
        options: dict[str, str] = {}
        while k < j and self.lines[k].strip():
            ln = self.lines[k]
            om = _FIELD.match(ln.strip()) if _OPTION.match(ln) else None
            if om:
                options[om.group(2)] = (om.group(4) or "").strip()
            elif options:  # an option's value continued
                last = next(reversed(options))
                options[last] = (options[last] + " " + ln.strip()).strip()
            else:
                args.append(ln.strip())
            k += 1
        content_start = k
        key = name.lower()
        short = key.split(":")[-1]
        kind = directive_kind(name)
        if kind == "context":
            if arg and arg.lower() != "none":
                self.module = arg.split()[0]
            return j
        if kind == "drop":
            if short == "image" and options.get("alt"):
                out.append(_Out(i + 1, i + 1, self.inline(options["alt"])))
            return j
        if kind == "raw":
            if "html" in arg.lower():
                text = html_text("\n".join(self.lines[content_start:j]))
                if text:
                    out.append(_Out(content_start + 1, j, text))
            return j
        if kind == "code":
            code = self._code(content_start, j)
            if short in ("math",) and args:
                out.append(_Out(i + 1, i + 1, " ".join(args)))
            if code:
                if short == "parsed-literal":
                    code.text = self.inline(code.text)
                out.append(code)
            return j
        if kind == "autosummary":
            names = []
            for ln in self.lines[content_start:j]:
                s = ln.strip()
                if s and not _OPTION.match(ln):
                    names.append(qualify(self.module, s.lstrip("~")))
            if names:
                out.append(_Out(content_start + 1, j, "\n".join(names)))
            return j
        if kind == "admonition":
            body = self.render(content_start, j)
            first, merge = admonition_label(short, self.inline("\n".join(args)))
            if body and merge:
                body[0] = _Out(body[0].start, body[0].end, f"{first} {body[0].text}")
            elif first:
                body.insert(0, _Out(i + 1, content_start, first))
            out.extend(body)
            return j
        if kind == "object":
            sigs = [qualify(self.module, a) if short.startswith("auto") else a for a in args]
            if sigs:
                out.append(_Out(i + 1, max(i + 1, content_start), "\n".join(sigs)))
            out.extend(self.render(content_start, j))
            return j
        if short in ("figure",):
            out.extend(self.render(content_start, j))
            return j
        if short == "csv-table" and options.get("header"):
            out.append(_Out(i + 1, i + 1, options["header"]))
        # any other directive (tables, tabs, cards, dropdowns, topics, rubrics, only, unknown extensions): its
        # argument when it is words, and its content rendered
        head = " ".join(args)
        if head and not _LAYOUT_ARGS.match(head):
            out.append(_Out(i + 1, i + 1, self.inline(head)))
        out.extend(self.render(content_start, j))
        return j



def qualify(module: str | None, name: str) -> str:
    """Autodoc names are relative to the current module: `abs` under `jax.numpy` is `jax.numpy.abs`."""
    name = name.strip()
    if not module or not re.match(r"^[A-Za-z_][\w.]*", name):
        return name
    if name == module or name.split(".")[0] == module.split(".")[0]:  # already absolute
        return name
    return f"{module}.{name}"


def directive_kind(name: str) -> str:
    """What a directive's markup holds (shared by rst and MyST markdown): context | drop | raw | code |
    autosummary | admonition | object | rst | generic."""
    key = name.lower()
    short = key.split(":")[-1]
    if key in _CONTEXT or short in ("currentmodule", "module"):
        return "context"
    if key in _DROP or short in _DROP:
        return "drop"
    if short == "raw":
        return "raw"
    if short in _CODE:
        return "code"
    if short in ("autosummary", "autosummary-table"):
        return "autosummary"
    if short in _ADMONITIONS:
        return "admonition"
    if short == "eval-rst":
        return "rst"
    if _OBJECT.match(short) or _OBJECT.match(key):
        return "object"
    return "generic"


def admonition_label(short: str, head: str) -> tuple[str, bool]:
    """The label line of an admonition ("Note:", "New in version 0.4."), and whether it starts the first paragraph
    of the content (True) or stands as its own line. `head` is the directive's argument, rendered."""
    label = _ADMONITIONS.get(short, short.capitalize())
    head = " ".join(head.split())
    if short == "admonition":
        return head, False
    if short.startswith(("version", "deprecated")):
        version, _, rest = head.partition(" ")
        return (f"{label} {version}: {rest}" if rest else f"{label} {version}".rstrip() + "."), False
    if head:
        return f"{label}: {head}", False
    return f"{label}:", True


def html_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "svg"]):
        tag.decompose()
    text = soup.get_text("\n")
    return "\n".join(t.strip() for t in text.split("\n") if t.strip())


def _unicode(value: str) -> str:
    out = []
    for tok in value.split():
        m = re.fullmatch(r"(?:0x|x|\\x|U\+|u|\\u|&#x)([0-9A-Fa-f]+);?", tok)
        if m:
            try:
                out.append(chr(int(m.group(1), 16)))
            except (ValueError, OverflowError):
                pass
        elif tok.isdigit():
            try:
                out.append(chr(int(tok)))
            except (ValueError, OverflowError):
                pass
        else:
            out.append(tok)
    return "".join(out)


def render_rst(text: str, first_line: int = 1) -> list[Block]:
    """Blocks of a piece of rst (MyST's `{eval-rst}`); `first_line` is the source line of its first line."""
    lines = text.replace("\r\n", "\n").split("\n")
    r = _Renderer(lines, _substitutions(lines))
    return [Block(o.text, o.start + first_line - 1, o.end + first_line - 1) for o in r.render(0, len(lines))]


def _substitutions(lines: list[str]) -> dict[str, str]:
    """Substitution definitions may follow their use: collect them first."""
    subs: dict[str, str] = {}
    for ln in lines:
        m = _SUBST_DEF.match(ln)
        if m and m.group(3) == "replace":
            subs[m.group(2)] = render_inline(m.group(4))
        elif m and m.group(3) == "unicode":
            subs[m.group(2)] = _unicode(m.group(4))
    return subs


def parse_rst(path: Path, data: bytes) -> ParsedDocument:
    text = decode_text(data, path.name).replace("\r\n", "\n").replace("\r", "\n")
    lines, offsets = line_offsets(text)
    heads = underlined_headings(lines)
    subs = _substitutions(lines)
    renderer = _Renderer(lines, subs)
    builder = SectionBuilder()
    title = None
    bounds = [(0, 0, None, -1)] + heads
    for n, (start, body, head, level) in enumerate(bounds):
        end = bounds[n + 1][0] if n + 1 < len(bounds) else len(lines)
        if head is not None:
            name = render_inline(head, subs).replace("`", "").strip()
            builder.heading(level, name)
            title = title or name
        for o in renderer.render(body, end):
            builder.add(Block(o.text, o.start, o.end, char_start=offsets[o.start - 1]))
    return ParsedDocument("rst", title, builder.result())
