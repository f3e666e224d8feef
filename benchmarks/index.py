"""Vector index: IVF-PQ + exact re-rank against exact flat search, measured in the same run.

Synthetic clustered unit vectors (real 4096-d LLaRA embeddings of 100k passages would take GPU-days here). Model
("lowrank", the default): a random cluster centre, plus variation along 64 directions shared by all clusters, plus
5% isotropic noise, L2-normalized: embeddings of real text vary along few directions. "isotropic" (centre + 60%
isotropic noise in every dimension) is the worst case for any compressed index: neighbours differ only by noise
spread evenly over all dimensions. Queries are fresh points from the same clusters. Reports build time, RAM per
vector, recall@10 after re-rank, and latency vs exact flat search.

    python -m benchmarks.index [--n 100000 --dim 4096] [--n 1000000 --dim 1024] [--data isotropic]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from .common import machine, record


def clustered(n: int, dim: int, n_clusters: int, seed: int, noise: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for i in range(0, n, 50_000):
        m = min(50_000, n - i)
        c = centres[rng.integers(0, n_clusters, m)]
        x = c + noise * rng.standard_normal((m, dim)).astype(np.float32)
        out[i:i + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def lowrank(n: int, dim: int, n_clusters: int, seed: int, latent: int = 64, noise: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    basis = 3 * rng.standard_normal((latent, dim)).astype(np.float32) / np.sqrt(latent)
    out = np.empty((n, dim), np.float32)
    for i in range(0, n, 50_000):
        m = min(50_000, n - i)
        x = centres[rng.integers(0, n_clusters, m)] + rng.standard_normal((m, latent)).astype(np.float32) @ basis
        x += noise * rng.standard_normal((m, dim)).astype(np.float32)
        out[i:i + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def run(n: int, dim: int, n_queries: int = 200, k: int = 10, data_model: str = "lowrank") -> dict:
    import faiss

    from llara_search.index import AnnIndex, VectorStore

    make = lowrank if data_model == "lowrank" else clustered
    data = make(n + n_queries, dim, max(64, n // 500), seed=1)
    x, q = data[:n], data[n:]
    ids = np.arange(1, n + 1, dtype=np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        vs = VectorStore(tmp, dim)
        for i in range(0, n, 100_000):
            vs.append(ids[i:i + 100_000], x[i:i + 100_000])
        t = time.perf_counter()
        ann = AnnIndex.build(dim, ids, vs.get, index_type="ivfpq")
        build_s = time.perf_counter() - t
        flat = faiss.IndexFlatIP(dim)
        flat.add(x)
        truth = np.empty((n_queries, k), np.int64)
        lat_flat = []
        for qi in range(n_queries):
            s = time.perf_counter()
            _, pos = flat.search(q[qi:qi + 1], k)
            lat_flat.append(time.perf_counter() - s)
            truth[qi] = ids[pos[0]]
        lat = []
        hits = 0
        for qi in range(n_queries):
            s = time.perf_counter()
            _, cand = ann.search(q[qi:qi + 1], ann.plan.rerank * k)
            cand = cand[0][cand[0] >= 0]
            exact = vs.scores(q[qi:qi + 1], cand)[0]
            top = cand[np.argsort(-exact)[:k]]
            lat.append(time.perf_counter() - s)
            hits += len(set(top.tolist()) & set(truth[qi].tolist()))
        res = {"n": n, "dim": dim, "factory": ann.plan.factory, "nprobe": ann.plan.nprobe,
               "rerank": f"{ann.plan.rerank}×k", "build_s": round(build_s, 1),
               "bytes_per_vector": round(ann.memory_bytes() / n, 1), "flat_bytes_per_vector": dim * 4,
               "recall@10": round(hits / (n_queries * k), 4),
               "p50_ms": round(1000 * float(np.median(lat)), 3), "p99_ms": round(1000 * float(np.percentile(lat, 99)), 3),
               "flat_p50_ms": round(1000 * float(np.median(lat_flat)), 3),
               "speedup_vs_flat": round(float(np.median(lat_flat) / np.median(lat)), 1),
               "data": f"synthetic clustered unit vectors ({data_model})", "machine": machine(),
               "command": f"python -m benchmarks.index --n {n} --dim {dim}"
                          + (f" --data {data_model}" if data_model != "lowrank" else "")}
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=4096)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--data", choices=("lowrank", "isotropic"), default="lowrank")
    args = ap.parse_args(argv)
    res = run(args.n, args.dim, args.queries, data_model=args.data)
    record(f"index_{args.n}x{args.dim}" + ("" if args.data == "lowrank" else f"_{args.data}")
           + f"_{os.cpu_count()}cores", res)  # the ratio to flat depends on the cores: keep each machine's
    print(res)
    return res


if __name__ == "__main__":
    main()
