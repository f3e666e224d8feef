"""How much hybrid search trusts its dense half, measured once per index from the index's own chunks.

Equal-weight fusion helps when the two halves are about as good and hurts when one is far weaker: a random or
barely trained encoder dragged hybrid below BM25 alone (SciFact: 0.426 against 0.687). No labels exist at build
time, so the index asks itself: a span of words taken from a sampled chunk is a query whose answer is that
chunk's document. BM25 finds such spans almost always; an encoder that means something finds most of them, one
that does not finds few. The dense weight is half the square of the ratio of the two success rates (0.5 = equal
weights, when dense retrieves the spans as well as BM25 does), recorded with the generation and fingerprint it was
measured on, and measured again after a re-encode or once the corpus has doubled.

Why the square: reciprocal-rank values are flat (1/61 against 1/62), so even a small weight lets a weak half reorder
the strong one. benchmarks/adapt.py measured it: on HAProxy heading queries a dense half with 8 % of BM25's span
success, fused at the linear weight 0.041, cost 0.03 nDCG@10; squared (0.003) the weak half only breaks near-ties,
while two halves of equal success still get equal weights.
"""

from __future__ import annotations

import random
import re

FUSION_METHOD = "rrf"  # weighted reciprocal rank fusion (benchmarks/adapt.py compared it with score fusions)
DEFAULT_DENSE_WEIGHT = 0.5  # before any calibration (and for an index too small to calibrate)
PROBES = 100  # span queries per calibration
SPAN_WORDS = 12
MIN_CHUNKS = 20  # fewer chunks than this: too few to tell, keep the default
_WORD = re.compile(r"\S+")


def dense_weight(dense_mrr: float, bm25_mrr: float) -> float:
    """Half the square of the dense half's success relative to BM25's: equal success means equal weights, and a
    far weaker half fades out instead of reordering the stronger one (module docstring)."""
    if bm25_mrr <= 0:
        return DEFAULT_DENSE_WEIGHT
    return round(0.5 * min(1.0, max(0.0, dense_mrr / bm25_mrr)) ** 2, 4)


def span_queries(chunks: list[tuple[int, str, str | None]], n: int, seed: int = 0
                 ) -> list[tuple[str, str | None, int]]:
    """(query, document key, chunk id): a run of `SPAN_WORDS` words from each of `n` sampled chunks long enough."""
    rng = random.Random(seed)
    usable = [c for c in chunks if len(_WORD.findall(c[1])) >= SPAN_WORDS + 4]
    out = []
    for chunk_id, text, doc in rng.sample(usable, min(n, len(usable))):
        words = _WORD.findall(text)
        start = rng.randrange(0, len(words) - SPAN_WORDS + 1)
        out.append((" ".join(words[start:start + SPAN_WORDS]), doc, chunk_id))
    return out


def calibrate(engine, n: int = PROBES, seed: int = 0) -> dict:
    """Measure both halves on span queries from the current generation and return the fusion settings.
    `engine`: the index's `Engine`, of which only `store` and `search_many` are used (this module sits below it)."""
    gen = engine.store.current_generation()
    ids = [int(i) for i in engine.store.visible_chunk_ids(gen.id)]
    sample = random.Random(seed).sample(ids, min(len(ids), 4 * n))
    records = engine.store.chunk_records(sample)
    chunks = [(i, records[i].text, records[i].path) for i in sample if i in records]
    probes = span_queries(chunks, n, seed)
    out = {"method": FUSION_METHOD, "dense_weight": DEFAULT_DENSE_WEIGHT, "probes": len(probes),
           "generation": gen.id, "fingerprint": gen.fingerprint, "chunks": len(ids)}
    if len(ids) < MIN_CHUNKS or len(probes) < MIN_CHUNKS:
        return out | {"reason": "too few chunks to measure"}
    queries = [q for q, _, _ in probes]
    mrr = {}
    for mode in ("dense", "bm25"):
        hits = engine.search_many(queries, k=10, mode=mode)
        rr = []
        for (_, path, _), found in zip(probes, hits):
            rank = next((r.rank for r in found if r.path == path), None)
            rr.append(1.0 / rank if rank else 0.0)
        mrr[mode] = sum(rr) / len(rr)
    return out | {"dense_weight": dense_weight(mrr["dense"], mrr["bm25"]),
                  "dense_mrr@10": round(mrr["dense"], 4), "bm25_mrr@10": round(mrr["bm25"], 4)}


def needs_calibration(fusion: dict | None, gen, chunks_total: int) -> bool:
    """Measured on another encoder, never, or on a corpus less than half the size of today's."""
    if gen is None or not gen.index_file or chunks_total < MIN_CHUNKS:
        return False
    if not fusion or fusion.get("fingerprint") != gen.fingerprint:
        return True
    return chunks_total > 2 * int(fusion.get("chunks") or 0)


__all__ = ["DEFAULT_DENSE_WEIGHT", "FUSION_METHOD", "calibrate", "dense_weight", "needs_calibration",
           "span_queries"]
