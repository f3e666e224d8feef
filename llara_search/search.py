"""Search over one pinned generation: dense (ANN + exact re-rank), BM25 (the lexical index) and hybrid (RRF)."""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np

from .index import AnnIndex, VectorStore
from .errors import EmptyIndexError
from .index.generations import load_ann
from .layout import IndexPaths
from .lexical import LexicalIndex
from .results import SearchResult
from .store import Store

log = logging.getLogger(__name__)

MODES = ("dense", "bm25", "hybrid")
RRF_K = 60
EXACT_FILTER_MAX = 50_000  # a filter this selective is scored exactly over its allowed ids


class GenerationPin:
    """The newest committed generation without a database round trip per search: writers rewrite `<index>/HEAD`
    after every commit that names or changes a generation, so while its stat is unchanged the generation read last
    time is still the newest. The database stays the truth: it is asked whenever HEAD changed, is missing (a
    read-only copy), or REVALIDATE_S passed (a writer killed between its commit and HEAD, a replica's folder synced
    behind its database)."""

    REVALIDATE_S = 1.0

    def __init__(self, paths: IndexPaths, store: Store):
        self.head = paths.head
        self.store = store
        self._seen: tuple | None = None
        self._gen = None
        self._checked = 0.0

    def current(self):
        try:
            st = os.stat(self.head)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        now = time.monotonic()
        if key is not None and key == self._seen and self._gen is not None and now - self._checked < self.REVALIDATE_S:
            return self._gen
        gen = self.store.current_generation()
        self._seen, self._gen, self._checked = key, gen, now
        return gen


class Searcher:
    """Holds the FAISS index of the latest committed generation and reloads it when a newer one is committed."""

    def __init__(self, paths: IndexPaths, store: Store, dim: int | None, backend=None):
        """`dim=None`: a text-only index (BM25 only), which has no vectors and no FAISS file. `backend`: the vector
        backend that opens generations (default: FAISS files)."""
        self.paths = paths
        self.store = store
        self.backend = backend
        self.vectors = VectorStore(paths.vectors, dim) if dim else None
        self.lexical = LexicalIndex(paths.lexical)
        self._pin = GenerationPin(paths, store)
        self._lock = threading.Lock()
        self.gen = None
        self.ann: AnnIndex | None = None

    def refresh(self, need_ann: bool = True):
        """Pin the newest committed generation (cheap when it has not changed). BM25 alone does not need the
        vector index, so `need_ann=False` leaves it unloaded (and a damaged index file does not stop BM25)."""
        gen = self._pin.current()
        if gen is None:
            raise EmptyIndexError(f"index {self.paths.root} has no committed data yet; run `llara-search ingest` first")
        with self._lock:
            if self.gen is None or gen.id != self.gen.id:
                self.gen, self.ann = gen, None
            if need_ann and self.ann is None and gen.index_file:
                self.ann = self.backend.open(gen) if self.backend is not None else \
                    load_ann(self.paths.generation_file(gen.id), gen)
            return self.gen, self.ann

    # ------------------------------------------------------------------------------------------------ dense
    def dense(self, qvecs: np.ndarray, k: int, where: str | None = None, nprobe: int | None = None,
              rerank: int | None = None, pinned=None) -> list[list[tuple[int, float]]]:
        """`pinned` = a (generation, index) pair from `refresh()`, so one search sees one generation throughout."""
        gen, ann = pinned or self.refresh()
        allowed = self.store.visible_chunk_ids(gen.id, where) if where else None
        if allowed is not None and len(allowed) == 0:
            return [[] for _ in range(len(qvecs))]
        if ann.exact:
            scores, ids = ann.search(qvecs, k, allowed=allowed, where=where)
            return [_pairs(i, s) for i, s in zip(ids, scores)]
        if allowed is not None and len(allowed) <= EXACT_FILTER_MAX:
            return self._exact(qvecs, allowed, k)
        n_cand = max(k, (rerank or ann.plan.rerank) * k)  # the depth tuned with nprobe at build time
        _, ids = ann.search(qvecs, n_cand, allowed=allowed, nprobe=nprobe, where=where)
        out = []
        for q, cand in zip(qvecs, ids):
            cand = cand[cand >= 0]
            if len(cand) == 0:
                out.append([])
                continue
            cand, scores = self._scores(q[None, :], cand)
            exact = scores[0]
            order = np.argsort(-exact, kind="stable")[:k]
            out.append([(int(cand[j]), float(exact[j])) for j in order])
        return out

    def _scores(self, qvecs: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores over the `ids` that still have a stored vector. Only a search that outlived the compaction
        grace period (its generation's removed chunks purged meanwhile) or a damaged index misses some; the first
        is answered without them, as `results` skips purged rows, and the second is for `doctor`, so it is logged."""
        kept, scores = self.vectors.stored_scores(qvecs, ids)
        if len(kept) < len(ids):
            log.warning("%d ranked chunks have no stored vector (purged, or a damaged index: run `llara-search "
                        "doctor`)", len(ids) - len(kept))
        return kept, scores

    def _exact(self, qvecs: np.ndarray, ids: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        ids, scores = self._scores(qvecs, ids)
        out = []
        for row in scores:
            top = np.argsort(-row, kind="stable")[:k]
            out.append([(int(ids[j]), float(row[j])) for j in top])
        return out

    # ------------------------------------------------------------------------------------------------ sparse
    def bm25(self, query: str, k: int, where: str | None = None, pinned=None) -> list[tuple[int, float]]:
        gen, _ = pinned or self.refresh(need_ann=False)
        g = gen.id
        return self.lexical.snapshot(g, rows=lambda: self.store.visible_chunk_texts(g)).search(query, k, where)

    # ------------------------------------------------------------------------------------------------ results
    def results(self, hits: list[tuple[int, float]], probes: dict[int, bytes | None] | None = None
                ) -> list[SearchResult]:
        """The hits' rows as results; `probes`, if given, gets each chunk's stored collapse probe."""
        records = self.store.chunk_records([i for i, _ in hits])
        out = []
        for i, score in hits:
            r = records.get(i)
            if r is None:  # purged between search and lookup (a reader two generations behind)
                continue
            if probes is not None:
                probes[i] = r.probe
            out.append(SearchResult(len(out) + 1, round(float(score), 6), i, r.path, r.heading or None, r.start_line,
                                    r.end_line, r.page, r.text, r.doc_key))
        return out


def rrf(rankings: list[list[tuple[int, float]]], k: int, k0: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: robust to BM25 and cosine living on different scales."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (i, _) in enumerate(ranking, start=1):
            fused[i] = fused.get(i, 0.0) + 1.0 / (k0 + rank)
    return sorted(fused.items(), key=lambda x: (-x[1], x[0]))[:k]


FUSIONS = ("rrf", "minmax", "zscore")


def fuse(dense: list[tuple[int, float]], bm25: list[tuple[int, float]], k: int, *, method: str = "rrf",
         dense_weight: float = 0.5, k0: int = RRF_K) -> list[tuple[int, float]]:
    """One ranking from a dense and a BM25 ranking (each best first): `dense_weight` of the dense half's evidence
    plus the rest of BM25's. `rrf` adds weighted reciprocal ranks; `minmax` and `zscore` add the scores after
    normalizing each list (to [0, 1], or to mean 0 and deviation 1). A hit that one list lacks gets that list's
    lowest value (0 for RRF)."""
    if method not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {method!r}")
    parts = []
    for ranking, weight in ((dense, float(dense_weight)), (bm25, 1.0 - float(dense_weight))):
        if method == "rrf" or not ranking:
            values = [1.0 / (k0 + r) for r in range(1, len(ranking) + 1)]
            floor = 0.0
        else:
            raw = np.array([s for _, s in ranking], dtype=np.float64)
            if method == "minmax":
                span = raw.max() - raw.min()
                norm = (raw - raw.min()) / span if span > 0 else np.ones_like(raw)
            else:
                sd = raw.std()
                norm = (raw - raw.mean()) / sd if sd > 0 else np.zeros_like(raw)
            values, floor = norm.tolist(), float(norm.min())
        parts.append(({i: v for (i, _), v in zip(ranking, values)}, floor, weight))
    ids = {i for table, _, _ in parts for i in table}
    fused = {i: sum(w * table.get(i, floor) for table, floor, w in parts) for i in ids}
    return sorted(fused.items(), key=lambda x: (-x[1], x[0]))[:k]


def _pairs(ids: np.ndarray, scores: np.ndarray) -> list[tuple[int, float]]:
    return [(int(i), float(s)) for i, s in zip(ids, scores) if i >= 0]


__all__ = ["EmptyIndexError", "FUSIONS", "MODES", "SearchResult", "Searcher", "fuse", "rrf"]
