"""Near-duplicate passages collapsed at query time, so that a manual kept in five formats (html, pdf, roff, nroff
output, info) answers a query once, not five times.

Why at query time and not at ingest: every copy stays indexed, so `--where '*.pdf'` still finds the PDF's page,
deleting or editing one copy never leaves the others unindexed, and no ingest order or format preference has to
be guessed. The copies cut the text at different places (a PDF page, a man page section, an Info node), so a
result counts as a copy when nearly all of its word trigrams were already shown by better results from other
files (containment in their union, not equality with one of them). Templated texts that differ in a name or a
number keep their own trigrams around that word and are not collapsed. The best-ranked file the copy overlaps
lists the copy's path in `also_in`.
"""

from __future__ import annotations

import re
from typing import Sequence, TypeVar

T = TypeVar("T")

CONTAINMENT = 0.7  # share of a result's word trigrams already shown by better results from other files
MIN_SHINGLES = 8  # below this, only identical texts collapse ("Returns: None" under two headings is not a copy)
PROBES = 4  # windows of a result's text looked up verbatim in the better results before any tokenizing
PROBE_CHARS = 32
_WORD = re.compile(r"\w+")


def collapse_depth(k: int) -> int:
    """How many ranked hits to fetch so that k remain after collapsing."""
    return k + max(10, k)


def _shingles(text: str) -> tuple[tuple[str, ...], frozenset]:
    words = tuple(map(str.lower, _WORD.findall(text)))
    if len(words) < 3:
        return words, frozenset([words])
    return words, frozenset(zip(words, words[1:], words[2:]))


def _sources(flat: str, better: list[str], joined: str) -> list[int]:
    """The better results this text could be a copy of: those holding one of its windows (lower-cased, line breaks
    as spaces) verbatim; every one of them for a short text. Most results are nobody's copy and hold no window of
    another, so the exact test (word trigrams, ~50 µs a passage) runs only where it can say yes; a copy split over
    several better results holds windows in each part."""
    if len(flat) < (PROBES + 1) * PROBE_CHARS:
        return list(range(len(better)))  # short texts: the exact test is cheap
    step = len(flat) // (PROBES + 1)
    probes = [flat[j * step:j * step + PROBE_CHARS] for j in range(1, PROBES + 1)]
    if not any(p in joined for p in probes):  # `joined`: all of `better`, one search per window
        return []
    return [i for i, b in enumerate(better) if any(p in b for p in probes)]


def collapse_duplicates(results: Sequence[T], k: int) -> list[T]:
    """The first k results, in order, without copies of better ones; ranks renumbered; a kept result's `also_in`
    lists the paths of the copies it stands for. Results need `text`, `path`, `rank` and an `also_in` list.

    Runs on every search (BM25's whole budget is about a millisecond), so a result is tokenized only when a better
    one holds a window of its text."""
    kept: list[T] = []
    flats: list[str] = []
    joined = ""  # the flats, NUL-separated (no window spans two results)
    shingles: list[tuple[tuple[str, ...], frozenset] | None] = []  # tokenized only when a later result needs them

    def of(i: int) -> tuple[tuple[str, ...], frozenset]:
        if shingles[i] is None:
            shingles[i] = _shingles(kept[i].text)
        return shingles[i]

    for r in results:
        flat = r.text.lower().replace("\n", " ")  # a line break in one format is a space in another
        dup = None
        sources = _sources(flat, flats, joined)
        same = [i for i in sources if abs(len(flats[i]) - len(flat)) <= len(flat) // 8 + 8]  # could hold its words
        others = [i for i in sources if kept[i].path != r.path]  # (overlapping chunks of one file hold windows too)
        if same or others:
            words, sh = _shingles(r.text)
            dup = next((i for i in same if of(i)[0] == words), None)  # the same words
            if dup is None and others and len(sh) >= MIN_SHINGLES \
                    and len(sh & set().union(*(of(i)[1] for i in others))) >= CONTAINMENT * len(sh):
                overlap = {i: len(sh & of(i)[1]) for i in others}
                dup = min(overlap, key=lambda i: (-overlap[i], i))
        if dup is not None:
            other = kept[dup]
            if r.path != other.path and r.path not in other.also_in:
                other.also_in.append(r.path)
            continue
        if len(kept) == k:
            break
        kept.append(r)
        flats.append(flat)
        joined += "\0" + flat
        shingles.append(None)
    for rank, r in enumerate(kept, start=1):
        r.rank = rank
    return kept
