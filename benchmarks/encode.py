"""Encoder throughput: LlaraEncoder vs the loop a user writes from the LLaRA model card, same model and texts.

The baseline keeps input order and a fixed batch size (16), as the README snippet does; ours tokenizes once, sorts by
length and batches by a token budget. Both produce the same embeddings (max |Δ| reported).

    python -m benchmarks.encode [--hidden 256 --layers 4 --docs 256 --queries 256]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch

from .common import WORK, machine, record, scifact_texts


def model_card_loop(model, tokenizer, texts, suffix, batch_size=16, max_length=512):
    prefix_ids = tokenizer('"')["input_ids"]
    suffix_ids = tokenizer(suffix)["input_ids"][1:]
    tokenizer.pad_token = tokenizer.unk_token
    tokenizer.padding_side = "left"
    out = []
    for i in range(0, len(texts), batch_size):
        feats = []
        for t in texts[i:i + batch_size]:
            ids = tokenizer(t, max_length=max_length, truncation=True, add_special_tokens=False)["input_ids"]
            ids = prefix_ids + ids + suffix_ids
            feats.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
        batch = tokenizer.pad(feats, padding=True, pad_to_multiple_of=8, return_tensors="pt").to(model.device)
        with torch.no_grad():
            h = model(**batch, output_hidden_states=True, return_dict=True).hidden_states[-1]
        out.append(torch.nn.functional.normalize(h[:, -8:, :].float().mean(1), dim=-1).cpu().numpy())
    return np.concatenate(out)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--docs", type=int, default=256)
    ap.add_argument("--queries", type=int, default=256)
    args = ap.parse_args(argv)
    from transformers import AutoModel

    from llara_search.encoder import EBAE_SUFFIX, LlaraEncoder
    from llara_search.testing import make_tiny_llara

    docs, queries, source = scifact_texts(args.docs, args.queries)
    texts = docs + queries
    random.Random(0).shuffle(texts)  # mixed lengths in arbitrary order, as a corpus arrives
    model_dir = make_tiny_llara(WORK / f"bench-llama-{args.hidden}x{args.layers}", hidden_size=args.hidden,
                                num_layers=args.layers, num_heads=4)
    torch.set_num_threads(torch.get_num_threads())
    enc = LlaraEncoder.from_pretrained(str(model_dir), show_progress=False)
    ref_model = AutoModel.from_pretrained(model_dir).eval()
    model_card_loop(ref_model, enc.tokenizer, texts[:16], EBAE_SUFFIX)  # warm-up
    enc.encode_passages(texts[:16])
    t = time.perf_counter()
    base = model_card_loop(ref_model, enc.tokenizer, texts, EBAE_SUFFIX)
    t_base = time.perf_counter() - t
    t = time.perf_counter()
    ours = enc.encode_passages(texts)
    t_ours = time.perf_counter() - t
    n_tokens = sum(enc.count_tokens(texts))
    res = {"texts": len(texts), "text_tokens": n_tokens, "data": source,
           "model": f"random Llama, hidden {args.hidden}, {args.layers} layers, vocab {len(enc.tokenizer)}",
           "baseline_texts_per_s": round(len(texts) / t_base, 1), "ours_texts_per_s": round(len(texts) / t_ours, 1),
           "speedup": round(t_base / t_ours, 2), "max_abs_diff": float(np.abs(base - ours).max()),
           "machine": machine(), "command": "python -m benchmarks.encode"}
    record("encode", res)
    print(res)
    return res


if __name__ == "__main__":
    main()
