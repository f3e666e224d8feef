"""Markdown (CommonMark, GitHub tables, MyST) rendered to clean text with its source line ranges.

markdown-it-py gives real headings (not `#` inside code) and the line range of every block. Blocks are then
rendered from the token tree: emphasis and link markup go and their words stay, images keep their alt text,
inline code stays `code`, code blocks keep their code (without the fence lines), lists keep their markers,
tables become "a | b" rows, HTML blocks their text.

MyST (Sphinx/Jupyter Book markdown, jupytext notebooks) is understood too: `{role}`text`` keeps the role's text,
```` ```{directive} ```` and `:::{directive}` blocks are handled like their rst twins (admonition content kept
with a label, `code-cell` code kept, `{eval-rst}` rendered as rst, toctrees dropped...), `(label)=` targets,
`+++` cell breaks and `%` comments are not indexed. YAML (`---`) or TOML (`+++`) front matter is never indexed;
its `title` becomes the root of the heading path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .base import Block, ParsedDocument, SectionBuilder, decode_text, line_offsets
from .rst import admonition_label, directive_kind, html_text, qualify, render_rst, role_text

_FENCE = re.compile(r"^(\s{0,3})(`{3,}|~{3,})(.*)$")
_COLON_FENCE = re.compile(r"^(\s{0,3})(:{3,})\s*(\{[\w:.+-]+\}.*|[\w-]+.*)?$")
_MYST_TARGET = re.compile(r"^\s{0,3}\([^()\s]+\)=\s*$")
_CELL_BREAK = re.compile(r"^\+\+\+(\s*\{.*\})?\s*$")
_MYST_HINT = re.compile(r"^(```+|~~~+|:::+)\s*\{[\w:.+-]+\}|^\s*\([^()\s]+\)=\s*$|\{[\w:.+-]+\}`", re.M)
_ROLE_TAIL = re.compile(r"\{([\w:.+-]+)\}$")


# ------------------------------------------------------------------------------------------------ front matter
def _front_matter(lines: list[str]) -> tuple[str | None, int]:
    """(the title, the number of lines the front matter takes) of YAML `---` or TOML `+++` front matter."""
    if not lines or lines[0].strip() not in ("---", "+++"):
        return None, 0
    fence = lines[0].strip()
    ends = {"---", "..."} if fence == "---" else {"+++"}
    for i in range(1, min(len(lines), 500)):
        if lines[i].strip() in ends:
            body = "\n".join(lines[1:i])
            return _title_of(body, fence), i + 1
    return None, 0


def _title_of(body: str, fence: str) -> str | None:
    if fence == "---":
        try:
            import yaml

            meta = yaml.safe_load(body)
            if isinstance(meta, dict) and isinstance(meta.get("title"), (str, int, float)):
                return str(meta["title"]).strip() or None
            return None
        except Exception:  # noqa: BLE001 - invalid YAML: fall back to a plain `title:` line
            pass
    m = re.search(r"^title\s*[:=]\s*['\"]?(.*?)['\"]?\s*$", body, re.M)
    return m.group(1).strip() or None if m else None


def _preprocess(lines: list[str], myst: bool) -> list[str]:
    """MyST colon fences become backtick fences (markdown-it knows those); targets, cell breaks and comments
    become blank lines. Line count and numbering are kept."""
    out: list[str] = []
    fence: str | None = None  # the closing fence of a code block we are in
    colon_stack: list[int] = []
    for line in lines:
        if fence is not None:
            out.append(line)
            if line.strip().startswith(fence[0]) and set(line.strip()) == {fence[0]} and len(line.strip()) >= len(
                    fence):
                fence = None
            continue
        m = _FENCE.match(line)
        if m and not (m.group(2)[0] == "`" and "`" in m.group(3)):
            fence = m.group(2)  # code, or a MyST directive whose content is preprocessed when it is rendered
            out.append(line)
            continue
        if myst:
            c = _COLON_FENCE.match(line)
            if c and (c.group(3) or colon_stack):
                n = len(c.group(2))
                if c.group(3):
                    name = c.group(3).strip()
                    name = name if name.startswith("{") else "{" + name.split()[0] + "}" + name[len(
                        name.split()[0]):]
                    colon_stack.append(n)
                    out.append(c.group(1) + "`" * n + name)
                    continue
                if colon_stack and n >= colon_stack[-1]:
                    out.append(c.group(1) + "`" * colon_stack.pop())
                    continue
            if _MYST_TARGET.match(line) or _CELL_BREAK.match(line) or re.match(r"^%(\s|$)", line):
                out.append("")
                continue
        out.append(line)
    return out


# ------------------------------------------------------------------------------------------------ token tree
@dataclass
class _Node:
    token: object
    children: list["_Node"] = field(default_factory=list)

    @property
    def type(self) -> str:
        t = self.token.type
        return t[:-5] if t.endswith("_open") else t


def _tree(tokens) -> list[_Node]:
    root = _Node(None)
    stack = [root]
    for tok in tokens:
        if tok.nesting == 1:
            node = _Node(tok)
            stack[-1].children.append(node)
            stack.append(node)
        elif tok.nesting == -1:
            if len(stack) > 1:
                stack.pop()
        else:
            stack[-1].children.append(_Node(tok))
    return root.children


class _Markdown:
    def __init__(self, myst: bool):
        from markdown_it import MarkdownIt

        self.md = MarkdownIt("commonmark").enable("table")
        self.md.normalizeLink = lambda url: url  # link targets are dropped: no need to percent-encode them
        self.md.validateLink = lambda url: True
        self.myst = myst
        self.module: str | None = None

    # -------------------------------------------------------------------------------------------- inline
    def inline(self, children) -> str:
        out: list[str] = []
        for tok in children or []:
            t = tok.type
            if t == "text":
                out.append(tok.content)
            elif t == "code_inline":
                m = _ROLE_TAIL.search(out[-1]) if out and self.myst else None
                if m:  # MyST role: {func}`jax.jit`
                    out[-1] = out[-1][: m.start()]
                    out.append(role_text(m.group(1), tok.content))
                else:
                    out.append(f"`{tok.content}`")
            elif t in ("softbreak", "hardbreak"):
                out.append("\n")
            elif t == "image":
                alt = self.inline(tok.children) if tok.children else tok.content
                out.append(alt)
            elif t == "html_inline":
                if re.match(r"<br\s*/?>", tok.content, re.I):
                    out.append("\n")
        return "".join(out)

    # -------------------------------------------------------------------------------------------- blocks
    def render(self, src: str, first_line: int, emit, heading=None) -> None:
        """Render `src` (whose first line is source line `first_line`): `emit(Block)` for each top-level block,
        `heading(level, text)` for headings (None: headings are emitted as text)."""
        for node in _tree(self.md.parse(src)):
            tok = node.token
            a, b = (tok.map or [0, 1])
            start, end = first_line + a, first_line + max(a, b - 1)
            if node.type == "heading":
                text = self.inline(node.children[0].token.children if node.children else []).strip()
                text = text.replace("`", "")
                if heading is not None:
                    heading(int(tok.tag[1]), text)
                elif text:
                    emit(Block(text, start, end))
                continue
            if tok.type in ("fence",) and tok.info.strip().startswith("{"):
                self.directive(tok, start, emit)
                continue
            text = self.text(node).strip("\n")
            if text.strip():
                emit(Block(text, start, end))

    def text(self, node: _Node, depth: int = 0) -> str:
        """A block node as text (nested blocks joined by blank lines; list items keep their markers)."""
        tok = node.token
        t = node.type
        if t == "paragraph":
            return self.inline(node.children[0].token.children if node.children else [])
        if t == "inline":
            return self.inline(tok.children)
        if t in ("fence", "code_block"):
            if t == "fence" and tok.info.strip().startswith("{"):
                parts: list[str] = []
                self.directive(tok, 1, lambda blk: parts.append(blk.text))
                return "\n\n".join(parts)
            return tok.content.rstrip("\n")
        if t == "html_block":
            return html_text(tok.content) if not tok.content.lstrip().startswith("<!--") else ""
        if t == "hr":
            return ""
        if t == "heading":
            return self.inline(node.children[0].token.children if node.children else []).replace("`", "")
        if t in ("bullet_list", "ordered_list"):
            items = []
            for n, item in enumerate(node.children):
                marker = "-" if t == "bullet_list" else f"{item.token.info or n + 1}."
                body = "\n".join(x for x in (self.text(c, depth + 1) for c in item.children) if x.strip())
                lines = body.split("\n") if body else [""]
                pad = " " * (len(marker) + 1)
                items.append("\n".join([f"{marker} {lines[0]}"] + [pad + ln if ln else "" for ln in lines[1:]]))
            return "\n".join(items)
        if t == "table":
            rows = []
            for sect in node.children:
                for tr in sect.children:
                    cells = [self.inline(c.children[0].token.children if c.children else []) for c in tr.children]
                    rows.append(" | ".join(x.strip() for x in cells))
            return "\n".join(rows)
        # blockquote, list item or any other container: its blocks
        return "\n\n".join(x for x in (self.text(c, depth + 1) for c in node.children) if x.strip())

    # -------------------------------------------------------------------------------------------- MyST
    def directive(self, tok, start: int, emit) -> None:
        info = tok.info.strip()
        m = re.match(r"\{([\w:.+-]+)\}\s*(.*)$", info)
        if not m:
            return
        name, arg = m.group(1), m.group(2).strip()
        kind = directive_kind(name)
        short = name.lower().split(":")[-1]
        lines = tok.content.split("\n")
        # options: `:key: value` lines, or a YAML block between `---` lines, at the top of the content
        k = 0
        options: dict[str, str] = {}
        if lines and lines[0].strip() == "---":
            end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
            if end is not None:
                k = end + 1
        while k < len(lines) and re.match(r"^\s*:[\w.-]+:(\s|$)", lines[k]):
            om = re.match(r"^\s*:([\w.-]+):\s*(.*)$", lines[k])
            options[om.group(1)] = om.group(2)
            k += 1
        body = "\n".join(lines[k:])
        body_line = start + 1 + k  # source line of the content's first line
        if kind == "context":
            if arg and arg.lower() != "none":
                self.module = arg.split()[0]
            return
        if kind == "drop":
            if options.get("alt"):
                emit(Block(options["alt"], start, start))
            return
        if kind == "raw":
            if "html" in arg.lower():
                text = html_text(body)
                if text:
                    emit(Block(text, body_line, start + len(lines)))
            return
        if kind == "code":
            code = body.strip("\n")
            if short == "math" and arg:
                emit(Block(arg, start, start))
            if code.strip():
                emit(Block(code, body_line, start + len(lines)))
            return
        if kind == "autosummary":
            names = [qualify(self.module, ln.strip().lstrip("~")) for ln in lines[k:] if ln.strip()]
            if names:
                emit(Block("\n".join(names), body_line, start + len(lines)))
            return
        if kind == "rst":
            for blk in render_rst(body, body_line):
                emit(blk)
            return
        inner: list[Block] = []
        self.render("\n".join(_preprocess(body.split("\n"), True)), body_line, inner.append)
        if kind == "admonition":
            first, merge = admonition_label(short, arg)
            if inner and merge:
                inner[0].text = f"{first} {inner[0].text}"
            elif first:
                inner.insert(0, Block(first, start, start))
        elif kind == "object":
            sigs = [qualify(self.module, a) if short.startswith("auto") else a for a in arg.split("\n") if a]
            if sigs:
                inner.insert(0, Block("\n".join(sigs), start, start))
        elif arg and not re.fullmatch(r"[\d\s]*", arg) and short not in ("figure",):
            inner.insert(0, Block(arg, start, start))
        for blk in inner:
            emit(blk)


def parse_markdown(path: Path, data: bytes) -> ParsedDocument:
    text = decode_text(data, path.name).replace("\r\n", "\n").replace("\r", "\n")
    lines, offsets = line_offsets(text)
    fm_title, fm_lines = _front_matter(lines)
    body_lines = [""] * fm_lines + lines[fm_lines:]
    myst = bool(_MYST_HINT.search(text))
    body_lines = _preprocess(body_lines, myst)
    builder = SectionBuilder([fm_title] if fm_title else [])
    title = fm_title
    first_heading = True

    def heading(level: int, name: str) -> None:
        nonlocal title, first_heading
        if first_heading and fm_title and name == fm_title:
            first_heading = False  # the page repeats its front-matter title as its first heading
            return
        first_heading = False
        builder.heading(level, name)
        title = title or name

    def emit(block: Block) -> None:
        if block.start_line:
            block.char_start = offsets[min(block.start_line, len(offsets)) - 1]
        builder.add(block)

    _Markdown(myst).render("\n".join(body_lines), 1, emit, heading)
    return ParsedDocument("markdown", title, builder.result())
