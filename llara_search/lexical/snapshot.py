"""BM25 over one generation: its segments, the chunks each has lost since it was written, and its own statistics.

Scores are Okapi BM25 as Lucene computes it (k1=1.2, b=0.75, idf = ln(1 + (N - df + 0.5) / (df + 0.5))) with N, the
mean chunk length and every df counted over exactly the chunks visible in this generation, and a query term
counted as often as it occurs. A chunk's score does not depend on which segment holds it, so merging segments never
changes a ranking. Scoring is exhaustive over the query terms' postings, vectorized: the postings of all terms are
gathered at once, weighted, and summed per chunk (a dense accumulator when the postings are many, a sort of the
matched chunks when they are few), then the k best are selected in linear time.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict

import numpy as np

from .analyzer import query_analysis, term_hashes
from .segment import Segment

K1, B = 1.2, 0.75
_SPARSE_SHARE = 8  # score through a sort of the matched chunks when postings < chunks / this
IMPACT_CACHE = 4_000_000  # postings per segment whose saturated term frequency is kept between queries (16 MB)


class SegmentView:
    """A segment as one generation sees it: which of its chunks are gone, each chunk's length norm, and (filled as
    queries use them) each term's df among the live chunks and its postings' saturated frequencies."""

    def __init__(self, seg: Segment, dead: np.ndarray | None):
        self.seg = seg
        self.dead = dead if dead is not None and dead.any() else None
        n_dead = 0 if self.dead is None else int(self.dead.sum())
        self.n_live = seg.n_docs - n_dead
        dl = seg.doc_len
        self.len_live = int(dl.sum(dtype=np.int64)) - (int(dl[self.dead].sum(dtype=np.int64)) if n_dead else 0)
        self.norm: np.ndarray | None = None
        self._df: dict[int, int] = {}
        self._impact: dict[int, np.ndarray] = {}
        self._impact_size = 0

    def set_norm(self, avgdl: float) -> None:
        """k1·(1 - b + b·len/avgdl) per chunk, infinite for the chunks that are gone (their weight becomes 0)."""
        norm = (K1 * (1 - B + B * self.seg.doc_len.astype(np.float32) / np.float32(avgdl))).astype(np.float32)
        if self.dead is not None:
            norm[self.dead] = np.inf
        self.norm = norm

    def live_df(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Document frequency of each term among the chunks this generation still has (cached per term)."""
        df = ends - starts
        if self.dead is None:
            return df
        df = df.copy()
        for j in np.flatnonzero(df):
            s = int(starts[j])
            got = self._df.get(s)
            if got is None:
                got = self._df[s] = int(df[j]) - int(np.count_nonzero(self.dead[self.seg.post_doc[s:int(ends[j])]]))
            df[j] = got
        return df

    def impact(self, a: int, b: int) -> np.ndarray:
        """tf / (tf + norm) of postings a..b (one term): the query-independent part of their BM25 weight, kept
        for the next query with this term while the cache has room."""
        got = self._impact.get(a)
        if got is None:
            tf = self.seg.post_tf[a:b].astype(np.float32)
            got = tf / (tf + self.norm[self.seg.post_doc[a:b]])
            if self._impact_size + len(got) <= IMPACT_CACHE:
                self._impact[a] = got
                self._impact_size += len(got)
        return got

    def top(self, starts: np.ndarray, ends: np.ndarray, weights: np.ndarray, k: int,
            allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The k best (chunk ids, scores) of this segment, and every chunk tied with the k-th; positive scores only."""
        seg = self.seg
        sel = np.flatnonzero(ends - starts)
        if len(sel) == 0:
            return _EMPTY_IDS, _EMPTY_SCORES
        spans = list(zip(starts[sel].tolist(), ends[sel].tolist()))
        if len(spans) == 1:
            (a, b), = spans
            cand = seg.post_doc[a:b]
            scores = (self.impact(a, b) * weights[sel[0]]).astype(np.float64)  # float32 products, as bincount sums
        else:
            docs = np.concatenate([seg.post_doc[a:b] for a, b in spans])
            contrib = np.concatenate([self.impact(a, b) for a, b in spans])
            contrib *= np.repeat(weights[sel], [b - a for a, b in spans])
            if len(docs) * _SPARSE_SHARE < seg.n_docs:
                cand, inverse = np.unique(docs, return_inverse=True)
                scores = np.bincount(inverse, weights=contrib)
            else:
                scores = np.bincount(docs, weights=contrib, minlength=seg.n_docs)
                cand = None
        if allowed is not None:
            scores = scores * (allowed if cand is None else allowed[cand])
        pos, scores = best_positions(scores, k)
        if cand is not None:
            pos = cand[pos]
        return seg.chunk_ids[pos], scores


BLOCK = 64


def best_positions(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and scores of the k best positive scores, and of every score tied with the k-th (the caller breaks
    ties by chunk id), in position order.

    Why not argpartition: over a segment's 131,072 scores, most of them tied at 0, it took 1.7-6 ms, and it ran
    once per segment per query (BM25 at a million passages was 2.5x bm25s). Instead, the k-th best of the blocks'
    maxima is a lower bound of the k-th best score (k different chunks reach it), found in a 64th of the scores;
    only the few scores at or above it are selected from (0.2 ms)."""
    n = len(scores)
    tiny = np.finfo(np.float64).tiny
    if n >= 4 * BLOCK * k:
        maxima = scores[:n // BLOCK * BLOCK].reshape(-1, BLOCK).max(axis=1)
        floor = np.partition(maxima, len(maxima) - k)[len(maxima) - k]
        pos = np.flatnonzero(scores >= max(floor, tiny))
    else:
        pos = np.flatnonzero(scores > 0)
    top = scores[pos]
    if len(top) > k:
        kth = np.partition(top, len(top) - k)[len(top) - k]
        keep = np.flatnonzero(top >= kth)
        pos, top = pos[keep], top[keep]
    return pos, top


_EMPTY_IDS = np.zeros(0, np.int64)
_EMPTY_SCORES = np.zeros(0, np.float64)


class Snapshot:
    """The lexical index of one generation, ready to search (immutable; safe to share between threads)."""

    def __init__(self, generation: int, views: list[SegmentView]):
        self.generation = generation
        self.views = [v for v in views if v.n_live > 0]
        self.n_live = sum(v.n_live for v in self.views)
        total = sum(v.len_live for v in self.views)
        self.avgdl = max(total / self.n_live, 1.0) if self.n_live else 1.0
        for v in self.views:
            v.set_norm(self.avgdl)
        self._masks: OrderedDict[str, list[np.ndarray]] = OrderedDict()

    def live_ids(self) -> np.ndarray:
        """Every chunk id this generation holds, ascending."""
        parts = [v.seg.chunk_ids if v.dead is None else v.seg.chunk_ids[~v.dead] for v in self.views]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def search(self, query: str, k: int, where: str | None = None) -> list[tuple[int, float]]:
        """Top-k `(chunk id, score)` by BM25, best first (ties by chunk id); only chunks under `where` if given."""
        if k <= 0 or not self.views:
            return []
        plain, idents = query_analysis(query)
        terms = Counter(plain)
        if idents:  # an identifier's own term where this generation has it, else its parts
            held = self._df(term_hashes([w for w, _ in idents])) > 0
            for (w, parts), h in zip(idents, held):
                terms.update([w] if h else parts)
        if not terms:
            return []
        hashes = term_hashes(terms)
        qtf = np.fromiter(terms.values(), np.float64, len(terms))
        ranges = [v.seg.term_ranges(hashes) for v in self.views]
        df = sum(v.live_df(s, e) for v, (s, e) in zip(self.views, ranges))
        if not df.any():
            return []
        idf = np.log1p((self.n_live - df + 0.5) / (df + 0.5))
        weights = np.where(df > 0, qtf * idf * (K1 + 1), 0).astype(np.float32)
        masks = self._allowed(where) if where else [None] * len(self.views)
        found = [v.top(s, e, weights, k, m) for v, (s, e), m in zip(self.views, ranges, masks)]
        if len(found) == 1:
            ids, scores = found[0]
        else:
            ids = np.concatenate([f[0] for f in found])
            scores = np.concatenate([f[1] for f in found])
        order = np.lexsort((ids, -scores))[:k]
        return [(int(i), float(s)) for i, s in zip(ids[order], scores[order])]

    def _df(self, hashes: np.ndarray) -> np.ndarray:
        return sum(v.live_df(*v.seg.term_ranges(hashes)) for v in self.views)

    def _allowed(self, where: str) -> list[np.ndarray]:
        """Per segment, which chunks' document paths match the `--where` glob (kept for the last 64 globs)."""
        got = self._masks.get(where)
        if got is None:
            from ..store.fulltext import glob_regex, path_glob

            pattern = re.compile(glob_regex(path_glob(where)), re.DOTALL)
            got = [v.seg.path_mask(pattern) for v in self.views]
            self._masks[where] = got
            while len(self._masks) > 64:
                self._masks.popitem(last=False)
        return got
