"""The verdict on a retrain: the current model against the new one on the held-out check, with an interval.

Dense is what a retrain changes, so the decision reads dense nDCG@10; hybrid (the same BM25 fused with each
model's dense ranking) is reported beside it because that is what many users search with. The verdict is stored
with the adapter (`verdict.json`) so that switching an index to a model judged worse asks for `--force`.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..eval.stats import ndcg_at, paired_bootstrap, recall_at
from ..lexical.analyzer import document_terms, query_terms
from ..search import fuse
from .heldout import HeldOutCheck

from ..verdict_record import (BETTER, SAME, UNJUDGED, VERDICT_FILE, WORSE, SwitchRefused, brief,  # noqa: F401
                              check_switch, load, save)

DEPTH = 100
BM25_K1, BM25_B = 1.2, 0.75  # as the lexical index scores (lexical/snapshot.py)

Encoder = Callable[[Sequence[str], str], np.ndarray]  # (texts, "passage" | "query") -> L2-normalized rows


def bm25_rankings(units: Sequence[str], queries: Sequence[str], depth: int = DEPTH) -> list[list[tuple[int, float]]]:
    """Okapi BM25 (Lucene's idf, k1 1.2, b 0.75) over the check's units, with the index's own analyzer."""
    docs = [Counter(document_terms(u)) for u in units]
    lengths = np.array([sum(c.values()) for c in docs], dtype=np.float64)
    avgdl = float(lengths.mean()) if len(lengths) else 1.0
    df: Counter = Counter()
    for c in docs:
        df.update(c.keys())
    n = len(docs)
    norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths / max(avgdl, 1e-9))
    out = []
    for q in queries:
        scores = np.zeros(n)
        for t in set(query_terms(q)):
            if t not in df:
                continue
            idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            tf = np.array([c.get(t, 0) for c in docs], dtype=np.float64)
            scores += idf * tf * (BM25_K1 + 1) / (tf + norm)
        top = np.argsort(-scores, kind="stable")[:depth]
        out.append([(int(i), float(scores[i])) for i in top if scores[i] > 0])
    return out


def dense_rankings(encode: Encoder, check: HeldOutCheck, depth: int = DEPTH) -> list[list[tuple[int, float]]]:
    p = encode(check.units, "passage")
    q = encode(check.queries, "query")
    scores = q @ p.T
    out = []
    for row in scores:
        top = np.argsort(-row, kind="stable")[:depth]
        out.append([(int(i), float(row[i])) for i in top])
    return out


def per_query(rankings: Sequence[Sequence[tuple[int, float]]], check: HeldOutCheck) -> dict[str, np.ndarray]:
    ids = [[i for i, _ in r] for r in rankings]
    return {"ndcg@10": np.array([ndcg_at(r, rel, 10) for r, rel in zip(ids, check.relevant)]),
            "recall@100": np.array([recall_at(r, rel, 100) for r, rel in zip(ids, check.relevant)])}


def score_model(encode: Encoder, check: HeldOutCheck, bm25: list | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Per-query metrics of one model, dense and (when BM25's rankings are given) hybrid."""
    dense = dense_rankings(encode, check)
    out = {"dense": per_query(dense, check)}
    if bm25 is not None:
        out["hybrid"] = per_query([fuse(d, b, DEPTH) for d, b in zip(dense, bm25)], check)
    return out


def decide(current: dict, new: dict, seed: int = 0) -> dict:
    """The verdict from two models' per-query scores: dense nDCG@10's paired interval decides."""
    comparison: dict = {}
    for mode in new:
        for metric in new[mode]:
            a, b = new[mode][metric], current[mode][metric]
            comparison.setdefault(mode, {})[metric] = {
                "current": round(float(b.mean()), 4), "new": round(float(a.mean()), 4),
                **paired_bootstrap(a, b, seed=seed)}
    key = comparison["dense"]["ndcg@10"]
    lo, hi = key["ci95"]
    verdict = BETTER if lo > 0 else WORSE if hi < 0 else SAME
    return {"verdict": verdict, "metric": "dense nDCG@10", "diff": key["diff"], "ci95": key["ci95"],
            "queries": int(len(next(iter(next(iter(new.values())).values())))), "comparison": comparison}


def judge(current: Encoder, new: Encoder, check: HeldOutCheck, seed: int = 0) -> dict:
    """Score both models on the whole check; the verdict with its cost."""
    if not check.enough:
        return {"verdict": UNJUDGED, "reason": f"only {len(check.queries)} judged pairs", "check": check.report}
    t = time.perf_counter()
    bm25 = bm25_rankings(check.units, check.queries)
    result = decide(score_model(current, check, bm25), score_model(new, check, bm25), seed=seed)
    result["check"] = check.report
    result["seconds"] = round(time.perf_counter() - t, 2)
    return result


def sentence(v: dict, adapter: Path, full: bool) -> str:
    """The verdict in one line a person acts on."""
    if v["verdict"] == UNJUDGED:
        return f"verdict: not judged ({v.get('reason')}); compare with `llara-search eval` before switching"
    interval = f"({v['diff']:+.3f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}] {v['metric']} on {v['queries']} " \
               "held-out pairs)"
    how = f"reencode --model {adapter}" if full else f"reencode --adapter {adapter}"
    if v["verdict"] == BETTER:
        return f"verdict: better {interval}: switch with `llara-search {how}`"
    if v["verdict"] == WORSE:
        return f"verdict: worse {interval}: keep the current model"
    return f"verdict: no measurable change {interval}: switching buys nothing measurable on your documents"


__all__ = ["BETTER", "SAME", "SwitchRefused", "UNJUDGED", "VERDICT_FILE", "WORSE", "bm25_rankings", "check_switch",
           "decide", "judge", "load", "save", "score_model", "sentence"]
