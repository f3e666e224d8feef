"""The second stage around a reranker, without torch: errors, the outcome of one re-ranking, the serving policy,
and how scores reorder first-stage hits.

Kept apart from `model.py` so that the engine, the server and the CLI can speak about re-ranking (and refuse bad
options) without importing torch; a reranker's weights are loaded only when one is asked for.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

# How many first-stage candidates are re-scored unless told otherwise, chosen by measurement
# (`python -m benchmarks.rerank`, benchmarks/RESULTS.md): on BEIR SciFact BM25's document recall is 0.87 at 20
# candidates, 0.90 at 50, 0.92 at 100 and 0.94 at 200, so the gain per added candidate halves past 100 while the
# reranker's cost grows linearly; 100 candidates x ~200 tokens is ~20k tokens, under a second for a 7B RankLLaMA
# on one GPU at the throughput we measured for the same architecture (31.6k tokens/s, H100), 200 would not be.
# (BEIR and FlagEmbedding's evaluations re-rank the top 100 too.) On a CPU a MiniLM-sized cross-encoder needs
# seconds for 100 candidates: use a smaller --rerank-depth there.
DEFAULT_DEPTH = 100
MAX_DEPTH = 1000  # the first stage's own k limit
DEFAULT_BUDGET_MS = 2000.0  # per request in `serve`: past it the answer is the first stage's order, said so
FAMILIES = ("auto", "cross-encoder", "rankllama")


class RerankError(RuntimeError):
    """A reranker cannot be used as asked; the message is one line saying what is wrong and what to do."""


class NotARerankerError(RerankError):
    """The model has no single-score classification head (a base LM, an embedding model, an NLI classifier)."""


class RerankerOutputError(RerankError, FloatingPointError):
    """The reranker produced NaN or inf scores (broken weights, or fp16 overflow)."""


class RerankTimeout(RerankError):
    """The time budget ran out before every candidate was scored."""


@dataclass
class RerankOutcome:
    """One query's re-ranking: the top-k results and whether the reranker's order is what they are in.

    `applied=False` means `results` are the first stage's top-k, unchanged, for the reason given: a server never
    loses its first-stage answer to a reranker that failed or ran out of time.
    """

    results: list
    applied: bool
    model: str
    candidates: int  # first-stage candidates offered to the reranker (the depth, or fewer when the index is small)
    scored: int  # candidates scored: all when applied, 0 otherwise
    ms: float
    reason: str | None = None

    def to_dict(self) -> dict:
        d = {"model": self.model, "applied": self.applied, "candidates": self.candidates, "scored": self.scored,
             "ms": round(self.ms, 2)}
        if self.reason:
            d["reason"] = self.reason
        return d


@dataclass
class RerankPolicy:
    """How a long-running server re-ranks: one reranker loaded at start and kept warm, used by default or on
    request, with a cap on candidates and a time budget per request."""

    reranker: Any
    by_default: bool = True
    depth: int = DEFAULT_DEPTH
    max_depth: int = 4 * DEFAULT_DEPTH
    budget_ms: float | None = DEFAULT_BUDGET_MS
    model: str = field(default="")

    def __post_init__(self) -> None:
        self.model = self.model or getattr(self.reranker, "name", "reranker")
        check_depth(self.depth, 1)
        if self.max_depth < self.depth:
            raise RerankError(f"--rerank-max-depth ({self.max_depth}) is below --rerank-depth ({self.depth})")


def check_depth(depth: int, k: int) -> int:
    """The reranker chooses the top-k among `depth` candidates, so fewer than k candidates cannot fill the answer."""
    depth = int(depth)
    if depth < int(k):
        raise RerankError(f"--rerank-depth ({depth}) is below k ({k}): the reranker picks the top {k} from the "
                          f"first stage's top {depth}; raise the depth to at least {k} or lower k")
    if depth > MAX_DEPTH:
        raise RerankError(f"--rerank-depth must be at most {MAX_DEPTH}, not {depth}")
    return depth


def reorder(hits: Sequence, scores: Sequence[float], k: int) -> list:
    """The top-k `hits` by reranker score (ties keep the first stage's order), ranks renumbered, each carrying its
    first-stage rank and score beside the reranker's."""
    order = sorted(range(len(hits)), key=lambda i: (-float(scores[i]), i))[:k]
    out = []
    for rank, i in enumerate(order, start=1):
        h = hits[i]
        out.append(dataclasses.replace(h, rank=rank, score=round(float(scores[i]), 6), first_stage_rank=h.rank,
                                       first_stage_score=h.score))
    return out


__all__ = ["DEFAULT_BUDGET_MS", "DEFAULT_DEPTH", "FAMILIES", "MAX_DEPTH", "NotARerankerError", "RerankError",
           "RerankOutcome", "RerankPolicy", "RerankTimeout", "RerankerOutputError", "check_depth", "reorder"]
