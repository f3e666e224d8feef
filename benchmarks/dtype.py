"""May an index be queried in a dtype other than the one it was built in? Rankings of bf16 vs fp32 encodings.

A GPU builds an index in bfloat16 (`auto` there); a laptop queries it in float32 (`auto` on a CPU), or the other way
round. The vectors differ by bf16 rounding through every layer. This measures what that does to rankings: the same
random model (the LLaMA-2-7B layer layout scaled down: head size 128, MLP 2.6875 × hidden, 32 layers by default)
encodes SciFact passages and queries in float32 and in bfloat16; passage vectors are rounded to float16 as the index
stores them; every (query dtype, passage dtype) pair is ranked exactly and compared with fp32×fp32 and with
bf16×bf16: top-10 overlap, top-1 agreement, and score differences next to the score gap between ranks 1 and 10.
Also the encode speed of bfloat16 relative to float32 on this machine (same run).

    python -m benchmarks.dtype [--hidden 512 --layers 32 --docs 200 --queries 100 --max-length 128]
    python -m benchmarks.dtype --data ../shared/data/beir-scifact   # when ../shared is elsewhere
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from .common import SHARED, WORK, machine, record, scifact_texts


def _texts(data: Path | None, n_docs: int, n_queries: int) -> tuple[list[str], list[str], str]:
    if data is None or not (data / "corpus.jsonl").is_file():
        return scifact_texts(n_docs, n_queries)
    docs = [json.loads(line) for _, line in zip(range(n_docs), (data / "corpus.jsonl").open())]
    qs = [json.loads(line)["text"] for _, line in zip(range(n_queries), (data / "queries.jsonl").open())]
    return [f"{d['title']} {d['text']}" for d in docs], qs, "SciFact abstracts and queries"


def _topk(scores: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def compare(scores: np.ndarray, ref: np.ndarray, k: int = 10) -> dict:
    """How far the ranking of `scores` is from that of `ref` (both queries × passages)."""
    a, b = _topk(scores, k), _topk(ref, k)
    overlap = np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)])
    top1 = float(np.mean(a[:, 0] == b[:, 0]))
    rows = np.arange(len(ref))[:, None]
    diff = np.abs(scores[rows, b] - ref[rows, b])  # the same (query, passage) pairs: ref's top-k
    return {f"top{k}_overlap": round(float(overlap), 4), "top1_agreement": round(top1, 4),
            "mean_abs_score_diff": float(f"{diff.mean():.3g}"), "max_abs_score_diff": float(f"{diff.max():.3g}")}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--docs", type=int, default=200)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--seeds", type=int, default=2, help="random models (different weights) to average over")
    ap.add_argument("--data", type=Path, default=SHARED / "data" / "beir-scifact")
    args = ap.parse_args(argv)
    from llara_search.encoder import LlaraEncoder
    from llara_search.testing import make_tiny_llara

    docs, queries, source = _texts(args.data, args.docs, args.queries)
    heads = max(1, args.hidden // 128)  # LLaMA-2: head size 128
    inter = round(args.hidden * 11008 / 4096)
    per_seed, speed = [], []
    for seed in range(args.seeds):
        model_dir = make_tiny_llara(WORK / f"dtype-llama-{args.hidden}x{args.layers}-s{seed}", hidden_size=args.hidden,
                                    num_layers=args.layers, num_heads=heads, intermediate_size=inter, seed=seed)
        vecs, secs = {}, {}
        for dt in ("float32", "bfloat16"):
            enc = LlaraEncoder.from_pretrained(str(model_dir), dtype=dt, device="cpu", max_length=args.max_length,
                                               show_progress=False)
            enc.encode_passages(docs[:8])  # warm-up
            t = time.perf_counter()
            p = enc.encode_passages(docs).astype(np.float16).astype(np.float32)  # stored as float16 in the index
            secs[dt] = time.perf_counter() - t
            vecs[dt] = (enc.encode_queries(queries), p)
            del enc
        speed.append(secs["float32"] / secs["bfloat16"])
        q32, p32 = vecs["float32"]
        q16, p16 = vecs["bfloat16"]
        s = {("float32", "float32"): q32 @ p32.T, ("bfloat16", "float32"): q16 @ p32.T,
             ("float32", "bfloat16"): q32 @ p16.T, ("bfloat16", "bfloat16"): q16 @ p16.T}
        ref32, ref16 = s[("float32", "float32")], s[("bfloat16", "bfloat16")]
        top = np.sort(ref32, axis=1)[:, ::-1]
        cos_pp = p32 @ p32.T
        per_seed.append({
            "pairs": {f"query {q} x passages {p}": {"vs_fp32_fp32": compare(v, ref32), "vs_bf16_bf16": compare(v, ref16)}
                      for (q, p), v in s.items()},
            "rank1_minus_rank10_score_gap": float(f"{np.mean(top[:, 0] - top[:, 9]):.3g}"),
            "mean_passage_passage_cosine": float(f"{cos_pp[np.triu_indices(len(docs), 1)].mean():.3g}"),
            "query_vector_cosine_fp32_vs_bf16": float(f"{np.mean(np.sum(q32 * q16, axis=1)):.6g}"),
            "passage_vector_cosine_fp32_vs_bf16": float(f"{np.mean(np.sum(p32 * p16, axis=1)):.6g}"),
        })
    pairs = {}
    for name in per_seed[0]["pairs"]:
        pairs[name] = {ref: {m: round(float(np.mean([r["pairs"][name][ref][m] for r in per_seed])), 4)
                             for m in per_seed[0]["pairs"][name][ref]} for ref in ("vs_fp32_fp32", "vs_bf16_bf16")}
    res = {
        "machine": machine(), "data": f"{source}: {len(docs)} passages, {len(queries)} queries",
        "model": f"random Llama, LLaMA-2-7B layout scaled down: hidden {args.hidden}, {args.layers} layers, {heads} "
                 f"heads of 128, MLP {inter}; {args.seeds} seeds (different weights), averaged",
        "max_length": args.max_length, "pairs": pairs,
        "per_seed": [{k: v for k, v in r.items() if k != "pairs"} for r in per_seed],
        "bf16_encode_speed_vs_fp32": round(float(np.mean(speed)), 3),
        "command": "python -m benchmarks.dtype",
    }
    record("dtype_rankings", res)
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
