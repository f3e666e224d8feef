"""Searching an index: one generation pinned per call, dense / BM25 / hybrid over it, near-copies collapsed, and
an optional second stage that re-ranks the first stage's candidates. `Engine.search`, `search_many`, `rerank`,
`reranker` and `embed` are these functions; `engine` is the `Engine` whose encoder, searcher and rerankers they use.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np

from .collapse import collapse_depth, collapse_duplicates
from .errors import EngineError, first_line
from .identity import model_identity
from .modes import default_mode
from .results import SearchResult
from .search import MODES, Searcher, fuse

if TYPE_CHECKING:
    from .rerank import Reranker, RerankOutcome

log = logging.getLogger(__name__)

MAX_K = 1000


PIECE = 256  # results read between two calls of a server's `check` (where a big request pauses for small ones)


def read(searcher: Searcher, hits: list[tuple[int, float]], probes: dict | None = None,
         check: Callable[[], None] | None = None) -> Iterator[SearchResult]:
    """The hits' rows, PIECE at a time with `check()` between (ranks count from 1 in each piece): reading and
    building a thousand results is a piece of work long enough to hold a small search waiting."""
    for start in range(0, len(hits), PIECE):
        if start and check is not None:
            check()
        yield from searcher.results(hits[start:start + PIECE], probes)


def collapsed(searcher: Searcher, hits: list[tuple[int, float]], k: int,
              check: Callable[[], None] | None = None) -> list[SearchResult]:
    """The top k of `hits` without near-copies. Copies are rare, so the texts of the first k alone are read first;
    deeper hits (fetched for the copies' places) are read, a slice at a time, only as far as copies made room."""
    probes: dict[int, bytes | None] = {}

    def texts():
        yield from read(searcher, hits[:k], probes, check)
        for start in range(k, len(hits), 64):
            yield from searcher.results(hits[start:start + 64], probes)

    return collapse_duplicates(texts(), k, lambda r: probes.get(r.chunk_id))


def _ranked(results: Iterable[SearchResult]) -> list[SearchResult]:
    out = list(results)
    for rank, r in enumerate(out, start=1):
        r.rank = rank
    return out


def search(engine, query: str, k: int = 10, mode: str | None = None, where: str | None = None, *,
           rerank: str | Reranker | None = None, rerank_depth: int | None = None,
           collapse: bool = True) -> list[SearchResult]:
    return search_many(engine, [query], k=k, mode=mode, where=where, rerank=rerank, rerank_depth=rerank_depth,
                       collapse=collapse)[0]


def search_many(engine, queries: Sequence[str], k: int = 10, mode: str | None = None,
                where: str | None = None, query_vectors: np.ndarray | None = None, *,
                rerank: str | Reranker | None = None, rerank_depth: int | None = None,
                collapse: bool = True, check: Callable[[], None] | None = None) -> list[list[SearchResult]]:
    """Search several queries with one batched encode (or with `query_vectors` already encoded).

    `collapse`: near-copies of a better result (the same manual as pdf, man page and info) are left out and
    named in its `also_in` (llara_search/collapse.py); evaluation and negative mining turn it off.

    `rerank`: a reranker (or its model name, loaded once and kept) re-scores the first stage's top
    `rerank_depth` candidates (collapsed first, so no copy takes a candidate's place) and the top-k by its score
    are returned, each with its first-stage rank and score; a reranker failure raises `EngineError` (the server
    answers in first-stage order instead: `rerank_candidates()`). `check`: called between queries, to stop a
    server's request at its deadline (it raises)."""
    mode = mode or default_mode(engine.info)  # None: dense, or BM25 in a text-only index
    if rerank is not None:
        from .rerank import DEFAULT_DEPTH

        depth = checked_rerank_depth(k, max(DEFAULT_DEPTH, k) if rerank_depth is None else rerank_depth)
        reranker = get_reranker(engine, rerank) if isinstance(rerank, str) else rerank
        first = search_many(engine, queries, k=depth, mode=mode, where=where, query_vectors=query_vectors,
                            collapse=collapse)
        return [o.results for o in rerank_candidates(engine, queries, first, k, reranker)]
    if mode not in MODES:
        raise EngineError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not 1 <= int(k) <= MAX_K:
        raise EngineError(f"k must be between 1 and {MAX_K}, not {k}")
    queries = list(queries)
    if any(not isinstance(q, str) or not q.strip() for q in queries):
        raise EngineError("every query must be a non-empty string")
    if not queries:
        return []
    searcher = engine.searcher
    pinned = searcher.refresh(need_ann=mode != "bm25")  # one generation for the whole call: never a mix
    gen = pinned[0]
    if gen.ntotal == 0:
        raise EngineError(f"index {engine.paths.root} is empty (0 chunks); ingest documents first")
    if mode != "bm25" and searcher.vectors is None:
        raise EngineError(f"index {engine.paths.root} is text-only (built with --model none); use --mode bm25")
    fetch = min(MAX_K, collapse_depth(k)) if collapse else k
    depth = max(fetch, 100) if mode == "hybrid" else fetch
    fusion = fusion_settings(engine) if mode == "hybrid" else {}
    dense: list[list[tuple[int, float]]] = [[] for _ in queries]
    if mode in ("dense", "hybrid"):
        if query_vectors is None and engine._encoder is not None and gen.fingerprint \
                and engine._encoder.fingerprint != gen.fingerprint:
            with engine._load_lock:
                engine._encoder = None  # a re-encode committed a new model/adapter: load the index's new one
        qv = query_vectors if query_vectors is not None else encode_queries(engine, queries)
        dense = searcher.dense(qv, depth, where, pinned=pinned)
    out = []
    for qi, q in enumerate(queries):
        if check is not None:
            check()
        if mode == "dense":
            hits = dense[qi]
        elif mode == "bm25":
            hits = searcher.bm25(q, fetch, where, pinned=pinned)
        else:
            hits = fuse(dense[qi], searcher.bm25(q, depth, where, pinned=pinned), fetch, **fusion)
        out.append(collapsed(searcher, hits, k, check) if collapse else _ranked(read(searcher, hits, None, check)))
    return out


def get_reranker(engine, model: str, *, base: str | None = None, normalize: bool = False,
             max_length: int | None = None, family: str = "auto") -> Reranker:
    """A second-stage reranker (cross-encoder or RankLLaMA; hub id or local folder), loaded on first use and
    kept for the life of the engine: loading a 7B reranker per query would cost more than the search."""
    key = (model_identity(model), base and model_identity(base), bool(normalize), max_length, family)
    with engine._rerank_lock:
        if key not in engine._rerankers:
            from .rerank import RerankError, load_reranker

            try:
                engine._rerankers[key] = load_reranker(model, base=base, family=family, device=engine.device,
                                                     dtype=engine.dtype, normalize=normalize, max_length=max_length)
            except RerankError as exc:
                raise EngineError(str(exc)) from None
            except OSError as exc:
                raise EngineError(f"cannot load reranker {model}: {first_line(exc)}") from None
        return engine._rerankers[key]


def checked_rerank_depth(k: int, depth: int) -> int:
    """`depth` checked against k (one clear line when it cannot fill the answer)."""
    from .rerank import RerankError, check_depth

    if not 1 <= int(k) <= MAX_K:
        raise EngineError(f"k must be between 1 and {MAX_K}, not {k}")
    try:
        return check_depth(depth, k)
    except RerankError as exc:
        raise EngineError(str(exc)) from None


def rerank_candidates(engine, queries: Sequence[str], candidates: Sequence[Sequence[SearchResult]], k: int,
                      reranker: Reranker, *, deadline: float | None = None,
                      fallback: bool = False) -> list[RerankOutcome]:
    """Re-score each query's first-stage `candidates` (all queries' pairs in one length-sorted pass) and keep
    the top-k by the reranker's score.

    `deadline` (a `time.monotonic()` value) bounds the wait for the reranker and the scoring. With
    `fallback=True` a failure (time budget, NaN scores, out of memory) answers each query with its first-stage
    top-k and the reason, instead of raising: a server never loses its first-stage answer to the reranker."""
    from .rerank import RerankError, RerankOutcome, RerankTimeout, reorder

    queries, candidates = list(queries), [list(c) for c in candidates]
    flat_q = [q for q, hits in zip(queries, candidates) for _ in hits]
    flat = [h for hits in candidates for h in hits]
    t = time.perf_counter()
    try:
        scores = reranker.score_pairs(flat_q, [h.text for h in flat], [h.heading for h in flat],
                                      deadline=deadline)
    except Exception as exc:  # noqa: BLE001 - with fallback, no reranker failure may cost the first stage's answer
        line = first_line(exc, default="")
        what = line if isinstance(exc, RerankError) else \
            f"reranker {reranker.name} failed: {type(exc).__name__}: {line}"
        if not fallback:
            if not isinstance(exc, RuntimeError):  # not a RerankError nor a torch failure (CUDA out of memory)
                raise
            raise EngineError(what) from None
        reason = f"{what}; answered in first-stage order"
        if isinstance(exc, RerankTimeout):
            reason += " (raise --rerank-budget-ms or lower --rerank-depth)"
        log.warning("re-ranking skipped: %s", reason, exc_info=not isinstance(exc, RerankError))
        ms = (time.perf_counter() - t) * 1000
        return [RerankOutcome(hits[:k], False, reranker.name, len(hits), 0, ms, reason) for hits in candidates]
    ms = (time.perf_counter() - t) * 1000
    out, pos = [], 0
    for hits in candidates:
        part = scores[pos:pos + len(hits)]
        pos += len(hits)
        out.append(RerankOutcome(reorder(hits, part, k), True, reranker.name, len(hits), len(hits), ms))
    return out


def encode_queries(engine, queries: Sequence[str], *, quick: bool = False) -> np.ndarray:
    return embed(engine, queries, "query", quick=quick)


def embed(engine, texts: Sequence[str], kind: str = "passage", *, quick: bool = False) -> np.ndarray:
    """Vectors of texts with the index's encoder, one forward at a time per seat (encoder/seats.py). `quick`: the
    seat of a few short interactive queries, which never waits behind a batch's forwards."""
    if kind not in ("passage", "query"):
        raise EngineError(f"kind must be 'passage' or 'query', not {kind!r}")
    encoder = engine.encoder
    with engine.seats.lock(quick=quick):
        return encoder.encode(list(texts), kind)


def fusion_settings(engine) -> dict:
    """How `hybrid` fuses: the index's calibrated dense weight when measured, else equal weights."""
    from .fusion import DEFAULT_DENSE_WEIGHT, FUSION_METHOD

    f = engine.info.get("fusion") or {}
    return {"method": f.get("method", FUSION_METHOD), "dense_weight": f.get("dense_weight", DEFAULT_DENSE_WEIGHT)}
