"""Zip containers (EPUB, OpenDocument, Office Open XML) read with the standard library, within bounds: a zip bomb,
a member that claims gigabytes, an XML entity bomb or a thousand-level nesting is a one-line ParseError, never
memory or time.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from xml.etree import ElementTree as ET

from .base import ParseError

MAX_MEMBER = 64 * 2**20      # one XML part, uncompressed
MAX_TOTAL = 256 * 2**20      # all parts read from one file
MAX_RATIO = 200              # uncompressed / compressed size of one part (zip bombs reach thousands)
MAX_DEPTH = 200              # XML element nesting


class Archive:
    def __init__(self, data: bytes, kind: str):
        self.kind = kind
        self.read_total = 0
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            self.names = set(self.zip.namelist())
        except Exception as exc:  # noqa: BLE001 - a damaged central directory fails in many ways
            raise ParseError(f"corrupt {kind} file (not a readable zip: {str(exc)[:80] or type(exc).__name__})") \
                from None
        if len(self.names) > 100_000:
            raise ParseError(f"{kind} file with more than 100,000 parts: not read")

    def has(self, name: str) -> bool:
        return name in self.names

    def read(self, name: str) -> bytes:
        try:
            info = self.zip.getinfo(name)
        except KeyError:
            raise ParseError(f"corrupt {self.kind} file: part {name[:80]} is missing") from None
        if info.file_size > MAX_MEMBER:
            raise ParseError(f"{self.kind} part {name[:80]} is larger than {MAX_MEMBER // 2**20} MB: not read")
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 2**20:
            raise ParseError(f"{self.kind} part {name[:80]} expands {info.file_size // info.compress_size}-fold: "
                             "looks like a zip bomb, not read")
        if self.read_total + info.file_size > MAX_TOTAL:
            raise ParseError(f"{self.kind} file holds more than {MAX_TOTAL // 2**20} MB of text parts: not read")
        try:
            with self.zip.open(info) as fh:
                data = fh.read(MAX_MEMBER + 1)
        except Exception as exc:  # noqa: BLE001 - zlib, struct, CRC and zipfile errors of many kinds
            raise ParseError(f"corrupt {self.kind} file: part {name[:80]} ({str(exc)[:60] or type(exc).__name__})") \
                from None
        if len(data) > MAX_MEMBER:  # the header lied about the size
            raise ParseError(f"{self.kind} part {name[:80]} is larger than {MAX_MEMBER // 2**20} MB: not read")
        self.read_total += len(data)
        return data

    def xml(self, name: str) -> ET.Element:
        return parse_xml(self.read(name), f"{self.kind} part {name[:80]}")


def parse_xml(data: bytes, what: str) -> ET.Element:
    """ElementTree without entity declarations (no billion laughs, no external entities) and with bounded depth."""
    head = data[:4096]
    if b"<!ENTITY" in data[:65536] or b"<!ENTITY" in head.upper():
        raise ParseError(f"{what} declares XML entities: not read")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ParseError(f"corrupt {what}: {str(exc)[:80]}") from None
    _check_depth(root, what)
    return root


def _check_depth(root: ET.Element, what: str) -> None:
    stack = [(root, 0)]
    while stack:
        el, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ParseError(f"{what} nests XML deeper than {MAX_DEPTH} levels: not read")
        stack.extend((child, depth + 1) for child in el)


def local(tag: str) -> str:
    """`{namespace}name` -> name."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def resolve(base: str, target: str) -> str:
    """A relationship target relative to the part that names it, as a zip member name."""
    target = target.split("#", 1)[0]
    if target.startswith("/"):
        return target.lstrip("/")
    from urllib.parse import unquote

    return posixpath.normpath(posixpath.join(posixpath.dirname(base), unquote(target)))


def relationships(archive: Archive, part: str) -> dict[str, tuple[str, str]]:
    """Office Open XML relationships of `part`: id -> (type suffix, member name)."""
    rels = posixpath.join(posixpath.dirname(part), "_rels", posixpath.basename(part) + ".rels")
    if not archive.has(rels):
        return {}
    out = {}
    for rel in archive.xml(rels):
        if local(rel.tag) == "Relationship" and rel.get("TargetMode") != "External":
            out[rel.get("Id", "")] = (rel.get("Type", "").rsplit("/", 1)[-1], resolve(part, rel.get("Target", "")))
    return out


def squeeze(text: str) -> str:
    """Runs of blanks inside a line made one; lines kept."""
    return "\n".join(re.sub(r"[ \t\u00a0]+", " ", ln).strip() for ln in text.split("\n")).strip()
