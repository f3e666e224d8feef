"""Perl's POD (`.pod`, and the POD inside `.pm`/`.pl`/`.pod6`): `=head1`..`=head6` make the heading path under the
module's name (from `=head1 NAME`), `=item` starts a block with its label, verbatim (indented) paragraphs keep their
lines, formatting codes are reduced to their text (`L<text|target>` -> text, `E<gt>` -> >, `X<>` and `Z<>` dropped).
`=begin`/`=for` blocks for other formatters (html, man) and all code outside `=pod` ... `=cut` are not indexed.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from .base import Block, ParsedDocument, SectionBuilder, SkipFile, decode_text

_COMMAND = re.compile(r"^=([a-zA-Z]\w*)(?:[ \t]+(.*))?$")
_ENTITIES = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/", "quot": '"', "amp": "&", "apos": "'"}
_CODE_OPEN = re.compile(r"([BCEFILSXZ])(<+)(\s?)")


def pod_text(s: str) -> str:
    """Formatting codes to text, with `C<< a > b >>` (multi-bracket) forms and nesting; linear in the input."""
    if "<" not in s:
        return s
    out: list[str] = []
    stack: list[tuple[str, int, int]] = []  # (code, bracket count, output position)
    i, n = 0, len(s)
    while i < n:
        m = _CODE_OPEN.match(s, i) if s[i] in "BCEFILSXZ" else None
        if m:
            stack.append((m.group(1), len(m.group(2)), len(out)))
            i = m.end()
            continue
        if stack and s[i] == ">":
            code, count, start = stack[-1]
            close = ">" * count
            if count == 1 or (s.startswith(close, i) and (i == 0 or s[i - 1] in " \t\n")):
                stack.pop()
                inner = "".join(out[start:]).rstrip() if count > 1 else "".join(out[start:])
                del out[start:]
                out.append(_code(code, inner))
                i += count
                continue
        out.append(s[i])
        i += 1
    return "".join(out)


def _code(code: str, inner: str) -> str:
    if code in ("X", "Z"):
        return ""
    if code == "E":
        name = inner.strip()
        if name in _ENTITIES:
            return _ENTITIES[name]
        if re.fullmatch(r"0x[0-9a-fA-F]{1,6}|\d{1,7}", name):
            cp = int(name, 16) if name.startswith("0x") else int(name)
            return chr(cp) if 0 < cp < 0x110000 and not 0xD800 <= cp <= 0xDFFF else ""
        return html.unescape(f"&{name};") if re.fullmatch(r"[A-Za-z]{2,10}", name) else ""
    if code == "L":
        if "|" in inner:
            return inner.split("|", 1)[0]
        target = inner.split("/", 1)
        if len(target) == 2 and target[1]:
            return target[1].strip('"') + (f" in {target[0]}" if target[0] else "")
        return inner.strip('"')
    if code == "S":
        return inner.replace(" ", "\u00a0")
    return inner


def pod_regions(text: str) -> list[tuple[int, list[str]]]:
    """The POD paragraphs of a Perl file: from a line starting with `=word` to `=cut` (all of a `.pod`)."""
    lines = text.split("\n")
    regions: list[tuple[int, list[str]]] = []
    cur: list[str] | None = None
    start = 0
    for no, line in enumerate(lines):
        if cur is None:
            if re.match(r"^=[a-zA-Z]", line) and not line.startswith("=cut"):
                cur, start = [line], no
            continue
        if re.match(r"^=cut\b", line):
            regions.append((start, cur))
            cur = None
            continue
        cur.append(line)
    if cur is not None:
        regions.append((start, cur))
    return regions


def parse_pod(path: Path, data: bytes) -> ParsedDocument:
    text = decode_text(data, path.name).replace("\r\n", "\n").replace("\r", "\n")
    regions = pod_regions(text)
    if not regions:
        if path.suffix.lower() == ".pod":
            regions = [(0, text.split("\n"))]
        else:
            raise SkipFile("Perl source without POD documentation: nothing to index", kind="no-text")
    builder = SectionBuilder()
    title: str | None = None
    in_name = False
    skipping: str | None = None  # inside =begin FORMAT ... =end FORMAT for another formatter
    for start, lines in regions:
        para: list[str] = []
        para_start = start

        def flush() -> None:
            nonlocal para, title
            if not para:
                return
            first = para[0]
            body = "\n".join(para)
            para = []
            if skipping:
                return
            m = _COMMAND.match(first)
            if m:
                handle(m.group(1), pod_text(" ".join((m.group(2) or "").split()) + (
                    " " + " ".join(body.split("\n")[1:]) if "\n" in body else "")).strip())
                return
            if first[:1] in " \t":  # verbatim: lines as written, common indent off
                ls = body.split("\n")
                indent = min((len(x) - len(x.lstrip()) for x in ls if x.strip()), default=0)
                builder.add(Block("\n".join(x[indent:] for x in ls), para_start + 1, para_start + len(ls)))
                return
            out = pod_text(body)
            if in_name and title is None:
                m2 = re.match(r"\s*([\w:.\-]+)\s+-+\s", out)
                if m2:
                    title = m2.group(1)
                    builder.root = [title]
                    for s in builder.sections:
                        if not s.blocks or s is builder.sections[-1]:
                            s.heading = [title] + s.heading
            builder.add(Block(out, para_start + 1, para_start + len(body.split("\n"))))

        def handle(cmd: str, arg: str) -> None:
            nonlocal in_name
            if cmd.startswith("head") and cmd[4:].isdigit():
                in_name = cmd == "head1" and arg.strip().upper() == "NAME"
                builder.heading(int(cmd[4:]), arg)
            elif cmd == "item":
                if arg and arg not in ("*", "-") and not re.fullmatch(r"\d+\.?", arg):
                    builder.add(Block(arg, para_start + 1, para_start + 1))
            elif cmd == "encoding" or cmd in ("pod", "over", "back", "cut", "end"):
                pass
            elif cmd == "for":
                fmt, _, rest = arg.partition(" ")
                if fmt.lower() in ("text", ":text") and rest.strip():
                    builder.add(Block(rest.strip(), para_start + 1, para_start + 1))

        for offset, line in enumerate(lines + [""]):
            no = start + offset
            m = _COMMAND.match(line)
            if m and m.group(1) in ("begin", "end"):
                flush()
                fmt = (m.group(2) or "").split()[0].lower() if (m.group(2) or "").split() else ""
                if m.group(1) == "begin" and fmt not in ("text", ":text", "pod"):
                    skipping = fmt or "?"
                elif m.group(1) == "end":
                    skipping = None
                continue
            if not line.strip():
                flush()
                continue
            if m and para:  # a command starts a new paragraph even without a blank line before it
                flush()
            if not para:
                para_start = no
            para.append(line)
    return ParsedDocument("pod", title, builder.result())
