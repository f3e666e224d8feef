"""Milvus Lite against FAISS on the same vectors, in one run: ingest time, latency, recall@10 against exact search.

Milvus Lite (`--vector-db ./x.milvus.db`) is Milvus's embedded build: in this version pure Python over FAISS, in the
process that opened it. It is NOT a Milvus cluster: these figures say what a laptop gets from Lite, not what a
cluster serves (a cluster runs the C++ engine on its own nodes; no cluster was available to measure).

Synthetic part (default): the low-rank clustered unit vectors of `benchmarks/index.py`, written once to a stored-vector
file; both backends are built from it by the same code an ingest runs (`AnnIndex.build(..., "ivfpq")` for FAISS's
ANN index, `MilvusBackend.build(..., "auto")` for Milvus Lite, each with its recall tuning), and searched the way
`Searcher.dense` does (candidates, then the exact re-rank from the stored vectors). Ground truth and the latency
baseline: exact inner-product search over all vectors (FAISS IndexFlatIP).

`--jax`: the issue's "Done when" check. `llara-search ingest ../shared/data/docs-jax/docs --vector-db jax.milvus.db
--model <tiny>` (a subprocess, as a user runs it), then dense queries through the engine and through `llara-search
query --mode dense`, compared with a FAISS exact index (`AnnIndex.build(..., index_type="flat")`, what an ingest
builds below 50k chunks) over the same stored vectors.

    python -m benchmarks.milvus [--n 100000 --dim 4096]
    python -m benchmarks.milvus --jax
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import RESULTS_JSON, SHARED, WORK, machine, record

CAVEAT = ("Milvus Lite is the embedded, single-process, pure-Python build of Milvus; a Milvus cluster runs the C++ "
          "engine on separate nodes and was not measured")


def _lat(xs: list[float]) -> tuple[float, float]:
    return round(1000 * float(np.median(xs)), 2), round(1000 * float(np.percentile(xs, 99)), 2)


def run(n: int, dim: int, n_queries: int = 100, k: int = 10) -> dict:
    import faiss

    from llara_search.index import AnnIndex, VectorStore
    from llara_search.index.milvus import MilvusBackend, normalize_uri
    from llara_search.layout import IndexPaths

    from .index import lowrank

    data = lowrank(n + n_queries, dim, max(64, n // 500), seed=1)
    x, q = data[:n], data[n:]
    ids = np.arange(1, n + 1, dtype=np.int64)
    out: dict = {"n": n, "dim": dim, "queries": n_queries, "data": "synthetic clustered unit vectors (lowrank)"}
    with tempfile.TemporaryDirectory(dir=WORK if WORK.is_dir() else None) as tmp:
        vs = VectorStore(Path(tmp) / "vectors", dim)
        for i in range(0, n, 50_000):
            vs.append(ids[i:i + 50_000], x[i:i + 50_000])
        flat = faiss.IndexFlatIP(dim)
        flat.add(vs.get(ids))  # the stored float16 values, as every backend sees them
        truth, lat = [], []
        for qi in range(n_queries):
            t = time.perf_counter()
            _, pos = flat.search(q[qi:qi + 1], k)
            lat.append(time.perf_counter() - t)
            truth.append(set(ids[pos[0]].tolist()))
        out["exact_flat"] = dict(zip(("p50_ms", "p99_ms"), _lat(lat)))
        del flat

        def measure(search, rerank: int) -> dict:
            lat, hits = [], 0
            for qi in range(n_queries):
                t = time.perf_counter()
                _, cand = search(q[qi:qi + 1], max(k, rerank * k))
                cand = cand[0][cand[0] >= 0]
                top = cand[np.argsort(-vs.scores(q[qi:qi + 1], cand)[0], kind="stable")[:k]]
                lat.append(time.perf_counter() - t)
                hits += len(set(top.tolist()) & truth[qi])
            p50, p99 = _lat(lat)
            return {"p50_ms": p50, "p99_ms": p99, "recall@10": round(hits / (n_queries * k), 4)}

        t = time.perf_counter()
        ann = AnnIndex.build(dim, ids, vs.get, index_type="ivfpq")  # FAISS's ANN index (auto picks it from 512 MB)
        out["faiss"] = {"index": ann.plan.factory, "nprobe": ann.plan.nprobe, "rerank": f"{ann.plan.rerank}×k",
                        "ingest_s": round(time.perf_counter() - t, 1),
                        "bytes_per_vector": round(ann.memory_bytes() / n, 1),
                        **measure(lambda qq, kk: ann.search(qq, kk), ann.plan.rerank)}
        del ann

        paths = IndexPaths(Path(tmp))
        backend = MilvusBackend(paths, normalize_uri(str(Path(tmp) / "bench.milvus.db")), "benchmark", dim)
        t = time.perf_counter()
        built = backend.build(1, None, vs, ids, ids, np.zeros(0, np.int64), index_type="auto", factory=None,
                              rebuild=True, attributes=lambda part: (["/bench/doc.md"] * len(part), ["md"] * len(part)))
        built.save()
        index = built.index
        out["milvus_lite"] = {"index": index.plan.factory, "search_param": index.plan.nprobe,
                              "rerank": f"{index.plan.rerank}×k", "ingest_s": round(time.perf_counter() - t, 1),
                              "disk_bytes_per_vector": round(backend.disk_bytes() / n, 1),
                              **measure(lambda qq, kk: index.search(qq, kk), index.plan.rerank)}
        backend.close()
    f, m = out["faiss"], out["milvus_lite"]
    out.update(lite_latency_ratio=round(m["p50_ms"] / f["p50_ms"], 1),
               lite_ingest_ratio=round(m["ingest_s"] / max(f["ingest_s"], 1e-3), 1),
               caveat=CAVEAT, machine=machine(), command=f"python -m benchmarks.milvus --n {n} --dim {dim}")
    return out


def jax(n_queries: int = 50, cli_queries: int = 3, reuse: bool = False) -> dict:
    """The Done-when check on the JAX docs: Milvus Lite's dense top-10 equals a FAISS exact index's. `reuse`: keep
    the index a previous run ingested (and its recorded ingest time)."""
    from llara_search.engine import Engine
    from llara_search.index import AnnIndex
    from llara_search.testing import make_tiny_llara, shared_tokenizer_dir

    docs = SHARED / "data" / "docs-jax" / "docs"
    if not docs.is_dir():
        raise SystemExit(f"{docs} is not here")
    WORK.mkdir(parents=True, exist_ok=True)
    model = WORK / "tiny-llara"
    if not (model / "config.json").is_file():
        make_tiny_llara(model, tokenizer_dir=shared_tokenizer_dir())
    index, db = WORK / "jax-milvus", WORK / "jax.milvus.db"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cli = [sys.executable, "-m", "llara_search"]
    previous = json.loads(RESULTS_JSON.read_text()).get("milvus_jax_top10") if RESULTS_JSON.exists() else None
    if reuse and previous and (index / "meta.sqlite").is_file():
        report, ingest_s = {"stages": previous["ingest_stages"]}, previous["ingest_s"]
    else:
        for p in (index, db):
            shutil.rmtree(p, ignore_errors=True)
        t = time.perf_counter()
        r = subprocess.run(cli + ["ingest", str(docs), "--index", str(index), "--vector-db", str(db), "--model",
                                  str(model), "--json"], capture_output=True, text=True, env=env)
        if r.returncode not in (0, 3):  # 3: some files failed (listed in the report), the rest is indexed
            raise SystemExit(r.stderr)
        report = json.loads(r.stdout)
        ingest_s = time.perf_counter() - t
    engine = Engine.open(index)
    gen = engine.store.current_generation()
    counts = engine.store.counts(gen.id)
    ids = engine.store.visible_chunk_ids(gen.id)
    vs = engine.searcher.vectors
    exact = AnnIndex.build(int(engine.info["dim"]), ids, vs.get, index_type="flat")
    rng = np.random.default_rng(0)
    sample = engine.store.chunk_records(rng.choice(ids, n_queries, replace=False).tolist())
    queries = [" ".join(((rec.heading or "") + " " + rec.text).split()[:12]) for rec in sample.values()]
    same = same_set = same_up_to_ties = 0
    lat, diffs = [], []
    for qtext in queries:
        t = time.perf_counter()
        got = engine.search(qtext, k=10, mode="dense", collapse=False)  # the vector store's top 10, every copy
        lat.append(time.perf_counter() - t)
        s, i = exact.search(engine.encode_queries([qtext]), 10)
        want = [int(x) for x in i[0] if x >= 0]
        mine = [h.chunk_id for h in got]
        same += mine == want
        same_set += set(mine) == set(want)
        diffs.append(float(np.abs(np.array([h.score for h in got]) - s[0][:len(got)]).max()))
        # equal scores may come in either order: compare the score of each rank, and the ids above the last tie
        scores_equal = np.allclose([h.score for h in got], s[0][:len(got)], atol=1e-5)
        same_up_to_ties += bool(scores_equal and set(mine) - set(want) <= {h.chunk_id for h in got
                                                                          if abs(h.score - got[-1].score) < 1e-5})
    engine.close()
    cli_same = 0
    for qtext in queries[:cli_queries]:
        r = subprocess.run(cli + ["query", qtext, "--index", str(index), "--mode", "dense", "--all-copies", "--json"],
                           capture_output=True, text=True, env=env)
        mine = [h["chunk_id"] for h in json.loads(r.stdout)["results"]]
        e2 = Engine.open(index)
        _, i = exact.search(e2.encode_queries([qtext]), 10)
        e2.close()
        cli_same += mine == [int(x) for x in i[0] if x >= 0]
    p50, p99 = _lat(lat)
    res = {"data": f"JAX docs ({counts['documents']} documents, {counts['chunks_total']} chunks), tiny model "
                   f"({model.name}, {gen.factory})",
           "ingest_s": round(ingest_s, 1), "ingest_stages": report["stages"], "queries": n_queries,
           "identical_top10": same, "same_top10_set": same_set,
           "identical_top10_up_to_tied_scores": same_up_to_ties,
           "max_abs_score_diff": float(f"{max(diffs):.2e}"),
           "note": "a random tiny model embeds all texts almost alike: top-10 scores often agree to 1e-5, and such "
                   "ties come back in either order from two engines' float arithmetic",
           "cli_queries": cli_queries, "cli_identical_top10": cli_same,
           "engine_dense_p50_ms": p50, "engine_dense_p99_ms": p99, "machine": machine(),
           "command": "python -m benchmarks.milvus --jax"}
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=4096)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--jax", action="store_true", help="the Done-when check on ../shared/data/docs-jax/docs")
    ap.add_argument("--reuse", action="store_true", help="with --jax: keep the index of the previous run")
    args = ap.parse_args(argv)
    if args.jax:
        res = jax(reuse=args.reuse)
        record("milvus_jax_top10", res)
    else:
        res = run(args.n, args.dim, args.queries)
        record(f"milvus_lite_vs_faiss_{args.n}x{args.dim}", res)
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
