"""Near-duplicate passages collapsed at query time, so that a manual kept in five formats (html, pdf, roff, nroff
output, info) answers a query once, not five times.

Why at query time and not at ingest: every copy stays indexed, so `--where '*.pdf'` still finds the PDF's page,
deleting or editing one copy never leaves the others unindexed, and no ingest order or format preference has to
be guessed. The copies cut the text at different places (a PDF page, a man page section, an Info node), so two
results count as the same passage when most of the smaller one's word trigrams are in the other one (containment,
not equality). The better ranked copy is kept and lists the others in `also_in`.
"""

from __future__ import annotations

import re
from typing import Sequence, TypeVar

T = TypeVar("T")

CONTAINMENT = 0.5  # share of the smaller passage's word trigrams found in a better result: the same passage
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
    """The first k results with near-copies of a better result removed; ranks renumbered; each kept result's
    `also_in` lists the paths of the copies it stands for."""
    kept: list[T] = []
    by_words: dict[tuple[str, ...], int] = {}
    kept_sizes: list[int] = []
    owner: dict[tuple, list[int]] = {}  # shingle -> kept results holding it
    for r in results:
        words, sh = _shingles(r.text)
        dup = None
        if words in by_words:
            dup = by_words[words]
        elif len(sh) >= MIN_SHINGLES:
            counts: dict[int, int] = {}
            for s in sh:
                for i in owner.get(s, ()):
                    counts[i] = counts.get(i, 0) + 1
            for i, n in sorted(counts.items(), key=lambda x: -x[1]):
                if kept_sizes[i] >= MIN_SHINGLES and n >= CONTAINMENT * min(len(sh), kept_sizes[i]):
                    dup = i
                    break
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
        kept_sizes.append(len(sh))
        for s in sh:
            owner.setdefault(s, []).append(idx)
    for rank, r in enumerate(kept, start=1):
        r.rank = rank
    return kept
