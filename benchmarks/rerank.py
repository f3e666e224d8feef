"""Re-ranking on CPU: our `Reranker` against the straightforward loop, and the first-stage depth worth re-ranking.

1. Speed: a cross-encoder of the ms-marco-MiniLM-L-6 shape (BERT, 6 layers, hidden 384, random weights, a WordPiece
   vocabulary of 30,522 trained here on the corpus) re-scores 100 candidates per query. Ours tokenizes once, sorts
   the pairs by length and batches them by a token budget; the baseline is the loop a user writes from the
   bge-reranker card: pairs in input order, a fixed batch of 16, padded to the longest of each batch. Same model,
   same pairs, in the same run; the largest score difference is reported.
2. Depth: BM25's document recall at 10..300 candidates on BEIR SciFact (a reranker can only lift what the first
   stage returned), beside what each depth costs the reranker above; this chose `DEFAULT_DEPTH`.

    python -m benchmarks.rerank [--queries 10] [--depth 100] [--layers 6 --hidden 384]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .common import SHARED, WORK, machine, record

DEPTHS = (10, 20, 50, 100, 200, 300)


def wordpiece_vocab(texts: list[str], size: int = 30522) -> dict[str, int]:
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train_from_iterator(texts, vocab_size=size, show_progress=False)
    return tok.get_vocab()


def make_cross_encoder(out: Path, texts: list[str], hidden: int, layers: int) -> Path:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    if (out / "config.json").is_file():
        return out
    tokenizer = BertTokenizer(vocab=wordpiece_vocab(texts))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=max(1, hidden // 32), intermediate_size=4 * hidden, num_labels=1)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def straightforward_loop(model, tokenizer, query: str, passages: list[str], batch_size: int = 16) -> np.ndarray:
    """What a user writes from the model card: input order, a fixed batch, padding to each batch's longest."""
    out = []
    for i in range(0, len(passages), batch_size):
        pairs = [[query, p] for p in passages[i:i + batch_size]]
        with torch.inference_mode():
            inputs = tokenizer(pairs, padding=True, truncation=True, return_tensors="pt", max_length=512)
            out.append(model(**inputs, return_dict=True).logits.view(-1).float().numpy())
    return np.concatenate(out)


def first_stage(data, depth: int) -> tuple[dict, dict]:
    """BM25 over a text-only index of the corpus: each judged query's candidates (chunks, best first)."""
    from llara_search import Engine

    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine.open(Path(tmp) / "idx", create=True)
        engine.ingest_records(data.corpus(), f"beir:{data.name}", model="none")
        qids = [q for q in data.qrels if q in data.queries]
        hits = {}
        for i in range(0, len(qids), 64):
            part = qids[i:i + 64]
            for q, h in zip(part, engine.search_many([data.queries[x] for x in part], k=depth, mode="bm25")):
                hits[q] = h
        engine.close()
    return hits, {q: data.queries[q] for q in qids}


def recall_at_depths(hits: dict, qrels: dict) -> dict[int, float]:
    out = {}
    for n in DEPTHS:
        per = []
        for q, rel in qrels.items():
            relevant = {d for d, s in rel.items() if s > 0}
            got = {h.doc_key for h in hits.get(q, [])[:n]}
            per.append(len(relevant & got) / len(relevant) if relevant else 0.0)
        out[n] = round(float(np.mean(per)), 4)
    return out


def main(argv=None) -> dict:
    from transformers import AutoModelForSequenceClassification

    from llara_search.eval import load_beir
    from llara_search.rerank import load_reranker

    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=6)
    args = ap.parse_args(argv)
    root = SHARED / "data" / "beir-scifact"
    if not (root / "corpus.jsonl").is_file():
        raise SystemExit("benchmarks.rerank needs ../shared/data/beir-scifact")
    data = load_beir(root, "test")
    load_before = round(os.getloadavg()[0], 1)  # other work on the machine slows both sides alike
    hits, queries = first_stage(data, max(DEPTHS))
    recall = recall_at_depths(hits, data.qrels)
    corpus_texts = [f"{t} {x}" for _, t, x in data.corpus()]
    model_dir = make_cross_encoder(WORK / f"rerank-bert-{args.hidden}x{args.layers}", corpus_texts, args.hidden,
                                   args.layers)
    reranker = load_reranker(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = reranker.tokenizer
    qids = sorted(queries)[:args.queries]
    cands = {q: hits[q][:args.depth] for q in qids}
    texts = {q: [f"{h.heading} {h.text}" if h.heading else h.text for h in cands[q]] for q in qids}
    reranker.score(queries[qids[0]], [h.text for h in cands[qids[0]]][:16], [h.heading for h in cands[qids[0]]][:16])
    straightforward_loop(model, tokenizer, queries[qids[0]], texts[qids[0]][:16])  # warm-up both
    ours_ms, base_ms, diffs, n_tokens = [], [], [], 0
    for q in qids:  # alternate, so that machine load drifts hit both alike
        t = time.perf_counter()
        ours = reranker.score(queries[q], [h.text for h in cands[q]], [h.heading for h in cands[q]])
        ours_ms.append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        base = straightforward_loop(model, tokenizer, queries[q], texts[q])
        base_ms.append(1000 * (time.perf_counter() - t))
        diffs.append(float(np.abs(ours - base).max()))
        n_tokens += sum(len(ids) for ids, _ in reranker.tokenize([queries[q]] * len(texts[q]), texts[q]))
    pairs = sum(len(cands[q]) for q in qids)
    res = {"model": f"random BERT cross-encoder, ms-marco-MiniLM-L-{args.layers} shape (hidden {args.hidden}, "
                    f"{args.layers} layers, vocab {len(tokenizer)})",
           "data": f"BEIR SciFact test: {len(qids)} queries x BM25 top {args.depth} (title + abstract)",
           "pairs": pairs, "mean_pair_tokens": round(n_tokens / pairs, 1), "torch_threads": torch.get_num_threads(),
           "ours_pairs_per_s": round(1000 * pairs / sum(ours_ms), 1),
           "baseline_pairs_per_s": round(1000 * pairs / sum(base_ms), 1),
           "speedup": round(sum(base_ms) / sum(ours_ms), 2),
           "ours_p50_ms": round(float(np.percentile(ours_ms, 50)), 1),
           "ours_p99_ms": round(float(np.percentile(ours_ms, 99)), 1),
           "baseline_p50_ms": round(float(np.percentile(base_ms, 50)), 1),
           "baseline_p99_ms": round(float(np.percentile(base_ms, 99)), 1),
           "max_abs_diff": max(diffs),
           "depth_study": {"first_stage": "BM25 (FTS5), document recall of the first N chunks, 300 queries",
                           "recall": recall, "cost": "linear in N (pairs/s does not depend on the depth)"},
           "load_average_1min": [load_before, round(os.getloadavg()[0], 1)],
           "machine": machine(), "command": "python -m benchmarks.rerank"}
    record("rerank_cpu", res)
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
