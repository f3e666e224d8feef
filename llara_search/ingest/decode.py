"""Bytes to text for every text format, without silent garbling.

- A BOM decides (UTF-8, UTF-16, UTF-32), as before.
- Valid UTF-8 is UTF-8.
- UTF-8 with a few bad bytes (a stray byte from a bad copy, a truncated last character) is still UTF-8: at least as
  many valid multi-byte characters as bad bytes. The bad bytes become U+FFFD and the file gets a warning with the
  count; every other word stays as written and searchable. (Decoding such a file as a legacy code page, as a
  charset detector will, garbles every accented word of it.)
- Otherwise the file is taken for a legacy single-byte code page. Short documentation files defeat statistical
  detectors (charset-normalizer calls French cp1252 "cp1257", giving `cafķ`), so the candidates are scored by what
  their text looks like: words of one script, no symbols inside words, and in Latin scripts mostly-ASCII words
  (Cyrillic read as cp1252 gives words made only of accented letters, `Ïðèâåò`). The commonest code page wins ties.
  A choice that leaves words looking garbled is made anyway and said in a warning.

Warnings reach the ingest report through `decode_notes()` (parsers call `decode_text` deep inside; their
signatures stay as they are).
"""

from __future__ import annotations

import re
import unicodedata
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

_notes: ContextVar[list[str] | None] = ContextVar("decode_notes", default=None)

# the legacy code pages tried, commonest first (ties go to the earlier one)
LEGACY = ("cp1252", "cp1250", "cp1251", "koi8_r", "cp1253", "cp1254", "cp1257", "cp1255", "cp1256", "mac_roman",
          "cp437")
CONFIDENT = 0.9  # share of words with non-ASCII letters that must look right for a legacy choice without warning
_WORD = re.compile(r"\w+")
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))


@contextmanager
def decode_notes() -> Iterator[list[str]]:
    """Collects the warnings of every `decode_text` call made inside (one file's parse)."""
    notes: list[str] = []
    token = _notes.set(notes)
    try:
        yield notes
    finally:
        _notes.reset(token)


def _note(message: str) -> None:
    notes = _notes.get()
    if notes is not None:
        notes.append(message)


class BrokenText(ValueError):
    """Text that cannot be decoded at all (formats/base.py makes it the file's ParseError)."""


def decode_text(data: bytes, name: str = "file") -> str:
    """Text of `data`: BOM, else UTF-8 (a few bad bytes replaced, with a warning), else the best-looking legacy code
    page (a warning when it is a guess). Raises `BrokenText` only for text behind a UTF-16/32 BOM that is broken."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for bom, enc in ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
                     (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(enc)
            except UnicodeDecodeError as exc:
                raise BrokenText(f"invalid {enc.upper()} text at byte {exc.start}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    loose = data.decode("utf-8", "surrogateescape")
    bad = sum(1 for c in loose if "\udc80" <= c <= "\udcff")
    multibyte = sum(1 for c in loose if c > "\x7f" and not "\udc80" <= c <= "\udcff")
    if multibyte and bad <= multibyte:
        _note(f"{bad} byte{'s' if bad > 1 else ''} not valid UTF-8 replaced by U+FFFD (the rest is UTF-8)")
        return _replace_bad(loose)
    choice = best_legacy(data)
    if choice is None:
        _note(f"not UTF-8 and no legacy code page fits: {bad} byte{'s' if bad > 1 else ''} replaced by U+FFFD")
        return _replace_bad(loose)
    enc, text, share = choice
    if share < CONFIDENT:
        _note(f"not UTF-8; decoded as {enc}, a guess ({share:.0%} of its accented words look right): "
              "save the file as UTF-8 to be sure")
    return text


def _replace_bad(loose: str) -> str:
    return re.sub("[\udc80-\udcff]", "\ufffd", loose)


def best_legacy(data: bytes) -> tuple[str, str, float] | None:
    """(encoding, text, share of plausible words) of the best-looking single-byte code page, or None."""
    best: tuple[float, str, str, float] | None = None
    for enc in LEGACY:
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        if _PRINTABLE_ASCII.decode(enc) != _PRINTABLE_ASCII.decode("ascii"):
            continue
        good, total = _plausible_words(text)
        share = good / total if total else 1.0
        score = share - _junk(text) / max(1, total)
        if best is None or score > best[0] + 0.05:  # a later code page must look clearly better
            best = (score, enc, text, share)
    return None if best is None else best[1:]


def _script(c: str) -> str:
    try:
        return unicodedata.name(c).split()[0]
    except ValueError:
        return "?"


def _plausible_words(text: str) -> tuple[int, int]:
    """(plausible, all) words holding a non-ASCII character: one script, letters only, and in Latin mostly ASCII."""
    good = total = 0
    for w in _WORD.findall(text):
        if w.isascii():
            continue
        total += 1
        high = [c for c in w if c > "\x7f"]
        if not all(unicodedata.category(c).startswith("L") for c in high):
            continue
        scripts = {_script(c) for c in w if c.isalpha()}
        if len(scripts) > 1:
            continue
        if scripts == {"LATIN"} and len(w) >= 4 and len(high) > 0.7 * len(w):
            continue  # Cyrillic or Greek read as a Latin code page: words of accented letters only
        if any(a.islower() and b.isupper() and not (a + b).isascii() for a, b in zip(w, w[1:])):
            continue  # "cafÈ", "рТЙЧЕФ": a capital after a small letter, where the code page is wrong
        good += 1
    return good, total


def _junk(text: str) -> int:
    """Characters no document means: C1 controls and unassigned code points, symbols glued inside words."""
    n = sum(1 for c in text if "\x80" <= c <= "\x9f" or unicodedata.category(c) == "Cn")
    return n + len(re.findall(r"(?<=[^\W\d_])[^\w\s.,;:!?'\"()\[\]{}<>/\\@#%&*+=|~^`$-](?=[^\W\d_])", text))


__all__ = ["CONFIDENT", "LEGACY", "best_legacy", "decode_notes", "decode_text"]
