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
_WORD = re.compile(r"\w+")


def collapse_depth(k: int) -> int:
    """How many ranked hits to fetch so that k remain after collapsing."""
    return k + max(10, k)


def _shingles(text: str) -> tuple[tuple[str, ...], frozenset]:
    words = tuple(w.lower() for w in _WORD.findall(text))
    if len(words) < 3:
        return words, frozenset([words])
    return words, frozenset(zip(words, words[1:], words[2:]))


def collapse_duplicates(results: Sequence[T], k: int) -> list[T]:
    """The first k results, in order, without copies of better ones; ranks renumbered; a kept result's `also_in`
    lists the paths of the copies it stands for. Results need `text`, `path`, `rank` and an `also_in` list."""
    kept: list[T] = []
    by_words: dict[tuple[str, ...], int] = {}
    owner: dict[tuple, list[int]] = {}  # trigram -> kept results holding it
    for r in results:
        words, sh = _shingles(r.text)
        dup = by_words.get(words)
        if dup is None and len(sh) >= MIN_SHINGLES:
            covered = 0
            overlap: dict[int, int] = {}
            for s in sh:
                others = [i for i in owner.get(s, ()) if kept[i].path != r.path]
                if others:
                    covered += 1
                    for i in others:
                        overlap[i] = overlap.get(i, 0) + 1
            if covered >= CONTAINMENT * len(sh):
                dup = min(overlap, key=lambda i: (-overlap[i], i))
        if dup is not None:
            other = kept[dup]
            if r.path != other.path and r.path not in other.also_in:
                other.also_in.append(r.path)
            continue
        if len(kept) == k:
            break
        idx = len(kept)
        kept.append(r)
        by_words.setdefault(words, idx)
        for s in sh:
            owner.setdefault(s, []).append(idx)
    for rank, r in enumerate(kept, start=1):
        r.rank = rank
    return kept
