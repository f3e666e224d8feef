"""Near-duplicate passages collapsed at query time, so that a manual kept in five formats (html, pdf, roff, nroff
output, info) answers a query once, not five times.

Why at query time and not at ingest: every copy stays indexed, so `--where '*.pdf'` still finds the PDF's page,
deleting or editing one copy never leaves the others unindexed, and no ingest order or format preference has to
be guessed. The copies cut the text at different places (a PDF page, a man page section, an Info node), so a
result counts as a copy when nearly all of its word trigrams were already shown by better results from other
files (containment in their union, not equality with one of them). Templated texts that differ in a name or a
number keep their own trigrams around that word and are not collapsed. The best-ranked file the copy overlaps
lists the copy's path in `also_in`.

Cost: a result is compared only with the better results it could be a copy of, found by looking up its windows
in a dictionary of the windows of the results kept so far (and its whole text, for exact copies). The windows'
hashes are computed once, when the chunk is stored (`probe`, the `chunks.probe` column): finding them in each
result's text at query time cost more than the BM25 search it trimmed at k=1000 (1.2-2x); looking up stored hashes
costs a fifth of it. Rows stored before the column existed have them computed from their text, as before. A
candidate's words are compared first and its trigrams hashed only when a containment test needs them (most candidates
are a file's own chunks that start alike, for which the words settle it), and the containment test stops as soon as
enough of the text is found: a quarter less time per query at k=1000 on HAProxy's docs. The windows
start where every format cuts a text the same way (after a sentence end; for texts with few sentences, after
clause ends and line breaks too), so a copy cut or wrapped elsewhere still shares them. The lookup costs the same
per result at k=1000 as at k=10: scanning all kept text for each result instead (as this module once did) made
k=1000 quadratic, 0.7-1 s per query, far more than the search it trimmed (benchmarks/hostile_serve.py). Among the
first SMALL results a short text is compared with all of them, as before; past them, a short passage is found as a
copy only through a shared window or an identical text.
"""

from __future__ import annotations

import re
from array import array
from typing import Callable, Iterable, TypeVar

import xxhash

T = TypeVar("T")

CONTAINMENT = 0.7  # share of a result's word trigrams already shown by better results from other files
MIN_SHINGLES = 8  # below this, only identical texts collapse ("Returns: None" under two headings is not a copy)
PROBE_CHARS = 32  # characters of a window
FEW_WINDOWS = 4  # a text with fewer sentence windows than this is also cut at clause ends and line breaks
SMALL = 16  # up to this many kept results, a short text is compared with all of them (the test is cheap)
SHORT_CHARS = 200  # a "short text"
_WORD = re.compile(r"\w+")
_SENTENCE_WINDOW = re.compile(r"[.?] (?=(.{%d}))" % PROBE_CHARS)  # the lookahead: windows may hold the next end
_CLAUSE_WINDOW = re.compile(r"[;:] (?=(.{%d}))" % PROBE_CHARS)


def collapse_depth(k: int) -> int:
    """How many ranked hits to fetch so that k remain after collapsing."""
    return k + max(10, k)


def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.lower()))


def _trigrams(words: tuple[str, ...]) -> frozenset:
    """The hashes of the words' trigrams (ints: a set of tuples would give the garbage collector thousands of objects
    to walk at k=1000)."""
    if len(words) < 3:
        return frozenset([hash(words)])
    return frozenset(map(hash, zip(words, words[1:], words[2:])))


def _windows(low: str, flat: str) -> list[str]:
    """The text's windows: PROBE_CHARS characters of `flat` after each sentence end, and its start; for a text with
    few sentences (code, a list, a table) after clause ends and line breaks (of `low`, which still has its line
    breaks) too. Sentence and clause windows come from one findall each (C, no per-window Python): a find loop
    cost a third more, a split as much, and together they were half the collapse at k=1000."""
    out = [flat.lstrip()[:PROBE_CHARS]]
    out += _SENTENCE_WINDOW.findall(flat)
    if len(out) < FEW_WINDOWS:
        out += _CLAUSE_WINDOW.findall(flat)
        if len(out) < FEW_WINDOWS:
            i = low.find("\n")
            while i >= 0:
                i += 1
                w = flat[i:i + PROBE_CHARS]
                if len(w) == PROBE_CHARS:
                    out.append(w)
                i = low.find("\n", i)
    return out


def _hash(text: str) -> int:
    return xxhash.xxh3_64_intdigest(text.encode("utf-8", "surrogatepass"))


def _flat(text: str) -> str:
    return text.lower().replace("\n", " ")  # a line break in one format is a space in another


def probe(text: str) -> bytes:
    """What collapsing needs of a text, stored with its chunk: the hash of the whole text (lower-cased, line breaks
    as spaces) and of each of its windows, little-endian 64-bit."""
    low = text.lower()
    flat = low.replace("\n", " ")
    return array("Q", [_hash(flat), *map(_hash, _windows(low, flat))]).tobytes()


def _contained(sh: frozenset, others: list[int], trigrams_of: Callable[[int], frozenset]) -> bool:
    """Whether CONTAINMENT of `sh` is in the union of the others' trigrams: what is left of `sh` shrinks one other at
    a time, and the answer is known as soon as few enough are left (building the union cost a set of every other's
    trigrams per result)."""
    allowed = len(sh) - CONTAINMENT * len(sh)  # at most this many may be missing
    left: set | frozenset = sh
    for i in others:
        left = left.difference(trigrams_of(i))
        if len(left) <= allowed:
            return True
    return False


def collapse_duplicates(results: Iterable[T], k: int, probes: Callable[[T], bytes | None] | None = None
                        ) -> list[T]:
    """The first k results, in order, without copies of better ones; ranks renumbered; a kept result's `also_in`
    lists the paths of the copies it stands for. Results need `text`, `path`, `rank` and an `also_in` list;
    `probes(result)` gives its stored `probe` (None: computed from the text).

    Runs on every search (BM25's whole budget is about a millisecond), so a result is tokenized only when a better
    one shares a window of its text."""
    kept: list[T] = []
    lengths: list[int] = []
    starts: list[int] = []  # each kept result's first window
    window_of: dict[int, int] = {}  # window hash -> the best kept result holding it
    flat_of: dict[int, int] = {}  # whole text hash -> the first kept result with that text
    words: list[tuple[str, ...] | None] = []  # each kept result's words, tokenized only when a later result needs them
    trigrams: list[frozenset | None] = []  # and their trigrams, hashed only when a containment test needs them
    hold_window = window_of.setdefault  # the best kept result keeps a window
    window_holder = window_of.get

    def words_of(i: int) -> tuple[str, ...]:
        if words[i] is None:
            words[i] = _words(kept[i].text)
        return words[i]

    def trigrams_of(i: int) -> frozenset:
        if trigrams[i] is None:
            trigrams[i] = _trigrams(words_of(i))
        return trigrams[i]

    for r in results:
        blob = probes(r) if probes is not None else None
        windows = memoryview(blob if blob is not None else probe(r.text)).cast("Q").tolist()
        flat = windows.pop(0)
        n = len(r.text)
        dup = flat_of.get(flat)  # the same text, wrapped the same or otherwise
        if dup is not None and _flat(kept[dup].text) != _flat(r.text):
            dup = None  # (two texts sharing a 64-bit hash)
        if dup is None:
            if n < SHORT_CHARS and len(kept) <= SMALL:
                sources = range(len(kept))  # short texts among few results: the exact test is cheap
            else:  # the kept results this text could be a copy of, best first
                found = set(map(window_holder, windows))
                found.discard(None)
                sources = sorted(found) if found else ()
            if sources:
                path = r.path
                same = [i for i in sources if abs(lengths[i] - n) <= n // 8 + 8  # could hold its words
                        and (kept[i].path != path or starts[i] == windows[0])]  # (a file's overlapping chunks)
                others = [i for i in sources if kept[i].path != path]  # (a file's overlapping chunks share windows)
                if same or others:
                    mine = _words(r.text)
                    dup = next((i for i in same if words_of(i) == mine), None)  # the same words
                    if dup is None and others:
                        sh = _trigrams(mine)
                        if len(sh) >= MIN_SHINGLES and _contained(sh, others, trigrams_of):
                            overlap = {i: len(sh & trigrams_of(i)) for i in others}
                            dup = min(overlap, key=lambda i: (-overlap[i], i))
        if dup is not None:
            other = kept[dup]
            if r.path != other.path and r.path not in other.also_in:
                other.also_in.append(r.path)
            continue
        if len(kept) == k:
            break
        i = len(kept)
        flat_of.setdefault(flat, i)
        for w in windows:
            hold_window(w, i)
        kept.append(r)
        lengths.append(n)
        starts.append(windows[0])
        words.append(None)
        trigrams.append(None)
    for rank, r in enumerate(kept, start=1):
        r.rank = rank
    return kept
