"""BM25 (SQLite FTS5, or PostgreSQL with --db-url) on BEIR SciFact through `llara-search eval`, against a
straightforward in-memory BM25 in the same run (whole documents, Okapi k1=0.9 b=0.4 as Anserini's BEIR baseline, a
Python loop over every document's term counts: what a user writes with rank_bm25-style code). Figures: nDCG@10 of
each and per-query latency at k=10.

    python -m benchmarks.bm25 [--db-url postgresql+psycopg://USER@HOST:PORT/EMPTY_DB]
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from .common import SHARED, machine, record

_WORD = re.compile(r"\w+")


def naive_bm25(corpus: dict[str, str], queries: dict[str, str], k: int, k1: float = 0.9, b: float = 0.4):
    docs = {d: Counter(_WORD.findall(t.lower())) for d, t in corpus.items()}
    lens = {d: sum(c.values()) for d, c in docs.items()}
    avg = sum(lens.values()) / len(lens)
    df = Counter(w for c in docs.values() for w in c)
    n = len(docs)
    run, lat = {}, []
    for qid, q in queries.items():
        t = time.perf_counter()
        terms = _WORD.findall(q.lower())
        scores = {}
        for d, c in docs.items():
            s = 0.0
            for w in terms:
                f = c.get(w)
                if f:
                    idf = math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
                    s += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * lens[d] / avg))
            if s > 0:
                scores[d] = s
        top = sorted(scores.items(), key=lambda x: -x[1])[:k]
        lat.append(time.perf_counter() - t)
        run[qid] = {d: s for d, s in top if d != qid}
    return run, lat


def main(argv=None) -> dict:
    import argparse

    from llara_search import Engine
    from llara_search.eval import evaluate, load_beir, score_run

    root = SHARED / "data" / "beir-scifact"
    if not (root / "corpus.jsonl").is_file():
        raise SystemExit("benchmarks.bm25 needs ../shared/data/beir-scifact")
    ap = argparse.ArgumentParser()
    ap.add_argument("--db-url", default=None, help="an empty PostgreSQL database (default: SQLite)")
    args = ap.parse_args(argv)
    data = load_beir(root, "test")
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine.open(Path(tmp) / "idx", create=True, db_url=args.db_url)
        t = time.perf_counter()
        engine.ingest_records(data.corpus(), "beir:scifact", model="none")
        ingest_s = time.perf_counter() - t
        full = evaluate(engine, data, mode="bm25", k=100, run_file=Path(tmp) / "run.trec")
        qs = [data.queries[q] for q in data.qrels if q in data.queries]
        engine.search_many(qs[:10], k=10, mode="bm25")  # warm
        lat = []
        for q in qs:
            t = time.perf_counter()
            engine.search(q, k=10, mode="bm25")
            lat.append(time.perf_counter() - t)
        engine.close()
    corpus = {d: f"{title} {text}" for d, title, text in data.corpus()}
    judged = {q: data.queries[q] for q in data.qrels if q in data.queries}
    run, base_lat = naive_bm25(corpus, judged, 100)
    base = score_run(data.qrels, run)
    res = {"dataset": "BEIR SciFact test (300 queries, 5,183 documents)", "ndcg@10": full["ndcg@10"],
           "recall@100": full["recall@100"], "baseline_ndcg@10": round(base["ndcg@10"], 4),
           "baseline_recall@100": round(base["recall@100"], 4), "published_bm25_ndcg@10": 0.665,
           "p50_ms": round(1000 * float(np.median(lat)), 2), "p99_ms": round(1000 * float(np.percentile(lat, 99)), 2),
           "baseline_p50_ms": round(1000 * float(np.median(base_lat)), 2),
           "speedup": round(float(np.median(base_lat) / np.median(lat)), 1), "index_s": round(ingest_s, 1),
           "database": engine.store.dialect, "machine": machine(),
           "command": "python -m benchmarks.bm25" + (" --db-url postgresql+psycopg://USER@HOST/EMPTY_DB"
                                                     if args.db_url else "")}
    record("bm25_scifact" + ("" if engine.store.dialect == "sqlite" else f"_{engine.store.dialect}"), res)
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
