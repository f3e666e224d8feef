"""GPU: RankLLaMA at the LLaMA-2-7B architecture (random weights, bf16) re-ranking 100 candidates of up to 200
tokens per query, our `Reranker` against the straightforward loop in the same run.

The baseline is the model card's scoring written as a loop over the candidates: pairs in input order, a fixed
batch of 16, `tokenizer(query, document)` padded on the right with unk (as Tevatron trains and infers), the
model's own `logits[:, 0]`. Ours: the same pairs tokenized once, sorted by length, batched by a token budget, one
forward per batch, the score head on the last real token only. Figures: per-query latency p50/p99 of each,
tokens/s, and that as a fraction of the bf16 matmul rate measured in the same run (2·params per token).

    python -m benchmarks.rerank_gpu [--queries 30] [--candidates 100] [--tokens 200] [--tokenizer DIR]
    python -m benchmarks.rerank_gpu --tiny      # a dry run of the same code at a tiny shape (CPU is fine)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from .common import machine, record, scifact_texts


def candidates(tokenizer, n_queries: int, n_cand: int, max_tokens: int) -> tuple[list[str], list[list[str]]]:
    """SciFact abstracts cut so that a pair is about `max_tokens` tokens (most abstracts are longer)."""
    docs, queries, _ = scifact_texts(n_cand * 4, n_queries)
    cut = []
    for ids in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        cut.append(tokenizer.decode(ids[:max_tokens - 32]))  # + "query: ..." and "document:" ~ max_tokens
    rng = np.random.default_rng(0)
    return queries, [[cut[i] for i in rng.choice(len(cut), n_cand, replace=False)] for _ in queries]


def straightforward_loop(model, tokenizer, query: str, docs: list[str], batch_size: int = 16) -> np.ndarray:
    out = []
    for i in range(0, len(docs), batch_size):
        enc = tokenizer([f"query: {query}"] * len(docs[i:i + batch_size]),
                        [f"document:  {d}" for d in docs[i:i + batch_size]], padding=True, return_tensors="pt")
        with torch.inference_mode():
            logits = model(**enc.to(model.device)).logits
        out.append(logits[:, 0].float().cpu().numpy())
    return np.concatenate(out)


def main(argv=None) -> dict:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from llara_search.rerank import Reranker
    from llara_search.testing import shared_tokenizer_dir, train_fallback_tokenizer

    from .common import WORK
    from .gpu import llama7b_config, matmul_tflops

    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--tiny", action="store_true", help="a tiny shape, to check the script without a GPU")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        raise SystemExit("benchmarks.rerank_gpu needs a CUDA GPU (or --tiny for a dry run)")
    device = torch.device("cuda" if cuda else "cpu")
    tok_dir = args.tokenizer or shared_tokenizer_dir()
    if tok_dir is None:  # the LLaMA-2 tokenizer is only needed for realistic token counts
        tok_dir = WORK / "fallback-tokenizer"
        train_fallback_tokenizer(tok_dir)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    tokenizer.pad_token, tokenizer.padding_side = tokenizer.unk_token, "right"
    if args.tiny:
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=4, pad_token_id=0)
        args.queries, args.candidates = min(args.queries, 4), min(args.candidates, 20)
    else:
        config = llama7b_config(len(tokenizer))
    config.num_labels = 1
    dtype = torch.bfloat16 if cuda else torch.float32
    torch.set_default_dtype(dtype)
    with device:
        model = LlamaForSequenceClassification(config).eval()
    torch.set_default_dtype(torch.float32)
    params = sum(p.numel() for p in model.parameters())
    reranker = Reranker(model, tokenizer, name="rankllama-7b-arch-random", family="rankllama", device=device,
                        dtype=dtype)
    queries, docs = candidates(tokenizer, args.queries + 2, args.candidates, args.tokens)
    peak = matmul_tflops() if cuda else None

    def sync():
        if cuda:
            torch.cuda.synchronize()

    for q, d in zip(queries[:2], docs[:2]):  # warm-up both
        reranker.score(q, d)
        straightforward_loop(model, tokenizer, q, d)
    ours_ms, base_ms, diffs, n_tokens = [], [], [], 0
    for q, d in zip(queries[2:], docs[2:]):
        sync()
        t = time.perf_counter()
        ours = reranker.score(q, d)
        sync()
        ours_ms.append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        base = straightforward_loop(model, tokenizer, q, d)
        sync()
        base_ms.append(1000 * (time.perf_counter() - t))
        diffs.append(float(np.abs(ours - base).max()))
        n_tokens += sum(len(ids) for ids, _ in reranker.tokenize([q] * len(d), d))
    tps = n_tokens / (sum(ours_ms) / 1000)
    res = {"shape": "LLaMA-2-7B (LlamaForSequenceClassification, 1 label)" if not args.tiny else "tiny dry run",
           "params": params, "dtype": str(dtype).replace("torch.", ""), "queries": len(ours_ms),
           "candidates_per_query": args.candidates, "max_pair_tokens": args.tokens,
           "mean_pair_tokens": round(n_tokens / (len(ours_ms) * args.candidates), 1),
           "ours_p50_ms": round(float(np.percentile(ours_ms, 50)), 1),
           "ours_p99_ms": round(float(np.percentile(ours_ms, 99)), 1),
           "baseline_p50_ms": round(float(np.percentile(base_ms, 50)), 1),
           "baseline_p99_ms": round(float(np.percentile(base_ms, 99)), 1),
           "speedup": round(sum(base_ms) / sum(ours_ms), 2), "tokens_per_s": round(tps),
           "mfu": round(tps * 2 * params / (peak * 1e12), 3) if peak else None,
           "matmul_bf16_tflops": round(peak, 1) if peak else None,
           "max_abs_diff_vs_loop": max(diffs), "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)
           if cuda else None, "machine": machine(), "command": "python -m benchmarks.rerank_gpu"}
    if not args.tiny:
        record("rerank_gpu_7b", res)
    print(res)
    return res


if __name__ == "__main__":
    main()
