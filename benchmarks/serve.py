"""Query path and server: latency split (encode / ANN / re-rank / database) at ≥100k chunks with a tiny model, and
server throughput and errors under a bounded local load, against one client sending the same requests in turn.

The corpus is synthetic sentences (100k chunks of real text would need hours of parsing-free encoding here
anyway; the query path does not care what the words are). The index is IVF-PQ so that ANN and re-rank are
separate stages.

    python -m benchmarks.serve [--chunks 100000] [--requests 2000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .common import machine, record, start_server

WORDS = ("index query vector passage search model token cluster server backend frontend proxy config port timeout "
         "health check compile array gradient batch shard replica memory latency cache disk thread process").split()


def _records(n: int, seed: int = 0):
    rng = random.Random(seed)
    for i in range(n):
        yield str(i), f"Doc {i}", " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 40)))


def _pct(xs: list[float]) -> dict:
    return {"p50_ms": round(1000 * float(np.median(xs)), 3), "p99_ms": round(1000 * float(np.percentile(xs, 99)), 3)}


def latency_split(engine, queries: list[str], k: int = 10) -> dict:
    s = engine.searcher
    gen, ann = s.refresh()
    stages: dict[str, list[float]] = {"encode": [], "ann": [], "rerank": [], "database": [], "total": []}
    for q in queries:
        t0 = time.perf_counter()
        qv = engine.encode_queries([q])
        t1 = time.perf_counter()
        _, cand = ann.search(qv, ann.plan.rerank * k)
        cand = cand[0][cand[0] >= 0]
        t2 = time.perf_counter()
        exact = s.vectors.scores(qv, cand)[0]
        top = np.argsort(-exact, kind="stable")[:k]
        hits = [(int(cand[j]), float(exact[j])) for j in top]
        t3 = time.perf_counter()
        s.results(hits)
        t4 = time.perf_counter()
        for name, dt in zip(("encode", "ann", "rerank", "database", "total"),
                            (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
            stages[name].append(dt)
    return {name: _pct(v) for name, v in stages.items()}


def load_test(engine, queries: list[str], n_requests: int, concurrency: int) -> dict:
    import httpx

    from llara_search.serve import create_app

    base, server = start_server(create_app(engine, token="bench"))
    headers = {"Authorization": "Bearer bench"}

    def run(n: int, workers: int) -> dict:
        lat, errors = [], 0
        local = threading.local()

        def one(i: int) -> None:
            nonlocal errors
            client = getattr(local, "c", None) or httpx.Client(base_url=base, headers=headers, timeout=60)
            local.c = client
            t = time.perf_counter()
            try:
                r = client.post("/search", json={"query": queries[i % len(queries)], "k": 10})
                ok = r.status_code == 200 and len(r.json()["results"]) == 10
            except httpx.HTTPError:
                ok = False
            lat.append(time.perf_counter() - t)
            errors += int(not ok)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(n)))
        wall = time.perf_counter() - t0
        return {"requests": n, "concurrency": workers, "errors": errors, "requests_per_s": round(n / wall, 1),
                **_pct(lat)}

    sequential = run(max(100, n_requests // 10), 1)
    loaded = run(n_requests, concurrency)
    server.should_exit = True
    return {"sequential": sequential, "loaded": loaded,
            "throughput_ratio": round(loaded["requests_per_s"] / sequential["requests_per_s"], 2)}


def main(argv=None) -> dict:
    from llara_search import Engine
    from llara_search.ingest.pipeline import IngestOptions
    from llara_search.testing import make_tiny_llara, shared_tokenizer_dir

    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args(argv)
    rng = random.Random(1)
    queries = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for _ in range(200)]
    with tempfile.TemporaryDirectory() as tmp:
        model = make_tiny_llara(Path(tmp) / "model", tokenizer_dir=shared_tokenizer_dir())
        engine = Engine.open(Path(tmp) / "idx", create=True)
        t = time.perf_counter()
        rep = engine.ingest_records(_records(args.chunks), "synthetic", model=str(model),
                                    options=IngestOptions(index_type="ivfpq"))
        ingest_s = time.perf_counter() - t
        engine.search("warm up", k=10)
        split = latency_split(engine, queries)
        load = load_test(engine, queries, args.requests, args.concurrency)
        engine.close()
    res = {"chunks": rep.chunks_total, "index_type": rep.index_type, "ingest_s": round(ingest_s, 1),
           "latency_split": split, "server": load, "model": "tiny random Llama (hidden 64, 2 layers)",
           "machine": machine(),
           "command": f"python -m benchmarks.serve --chunks {args.chunks} --requests {args.requests} "
                      f"--concurrency {args.concurrency}"}
    record("serve", res)
    print(res)
    return res


if __name__ == "__main__":
    main()
