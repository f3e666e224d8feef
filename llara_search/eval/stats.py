"""Per-query retrieval metrics and the paired bootstrap: what tells a real difference between two models from
the luck of which queries were asked. Shared by the retrain verdict and the benchmarks."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def ndcg_at(ranking: Sequence[int], relevant: set[int], k: int = 10) -> float:
    """Binary-relevance nDCG@k of one ranked list of unit ids."""
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(r + 2) for r, i in enumerate(ranking[:k]) if i in relevant)
    ideal = sum(1.0 / math.log2(r + 2) for r in range(min(k, len(relevant))))
    return dcg / ideal


def recall_at(ranking: Sequence[int], relevant: set[int], k: int = 100) -> float:
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n: int = 10_000, seed: int = 0) -> dict:
    """Mean of a − b over queries with a 95% interval from resampling the queries (paired)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) == 0:
        return {"diff": 0.0, "ci95": [0.0, 0.0], "significant": False}
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n, len(d)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"diff": round(float(d.mean()), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "significant": bool(lo > 0 or hi < 0)}


__all__ = ["ndcg_at", "paired_bootstrap", "recall_at"]
