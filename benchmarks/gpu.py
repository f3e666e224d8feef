"""GPU: the LLaRA encoder and a LoRA pretext training step at the LLaMA-2-7B architecture, in bf16.

Random weights (the released checkpoints cannot be downloaded here) time exactly like real ones. Figures:
- encode tokens/s of `LlaraEncoder` against the model-card loop (input order, batch 16) in the same run, and as a
  fraction of the bf16 matmul rate measured in the same run (model FLOPs utilisation, 2·params per token);
- LoRA (r=64, all 7 projections) pretext training tokens/s at cutoff 128, with gradient checkpointing.

    python -m benchmarks.gpu [--texts 1024] [--tokenizer DIR]
"""

from __future__ import annotations

import argparse
import time

import torch

from .common import machine, record, scifact_texts
from .encode import model_card_loop


def matmul_tflops(n: int = 8192, reps: int = 10) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e12


def llama7b_config(vocab: int):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                       bos_token_id=1, eos_token_id=2, pad_token_id=0)


def bench_encoder(tokenizer, texts: list[str], peak: float) -> dict:
    from transformers import LlamaModel

    from llara_search.encoder import EBAE_SUFFIX, LlaraEncoder

    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaModel(llama7b_config(len(tokenizer))).eval()
    torch.set_default_dtype(torch.float32)
    params = sum(p.numel() for p in model.parameters())
    enc = LlaraEncoder(model, tokenizer, name="llama-2-7b-arch-random", device=torch.device("cuda"),
                       dtype=torch.bfloat16, max_length=512, model_hash="random", adapter_hash=None,
                       show_progress=False)
    n_tokens = sum(len(x) + 2 + 19 for x in tokenizer(texts, add_special_tokens=False)["input_ids"])
    enc.encode_passages(texts[:64])  # warm-up
    torch.cuda.synchronize()
    t = time.perf_counter()
    ours = enc.encode_passages(texts)
    torch.cuda.synchronize()
    ours_s = time.perf_counter() - t
    tokenizer.padding_side = "left"
    with torch.inference_mode():
        model_card_loop(model, tokenizer, texts[:64], EBAE_SUFFIX)
        torch.cuda.synchronize()
        t = time.perf_counter()
        ref = model_card_loop(model, tokenizer, texts, EBAE_SUFFIX)
        torch.cuda.synchronize()
    base_s = time.perf_counter() - t
    tps = n_tokens / ours_s
    del model, enc
    torch.cuda.empty_cache()
    return {"texts": len(texts), "tokens": n_tokens, "params": params, "ours_s": round(ours_s, 2),
            "model_card_s": round(base_s, 2), "speedup": round(base_s / ours_s, 2), "tokens_per_s": round(tps),
            "mfu": round(tps * 2 * params / (peak * 1e12), 3),
            "max_abs_diff_vs_model_card": float(abs(ours - ref).max())}


def bench_training(tokenizer, texts: list[str], peak: float, batch: int = 16, steps: int = 6) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    from llara_search.encoder.prompts import PromptIds
    from llara_search.train.pretext import build_pretext_batch, pretext_forward
    from llara_search.train.trainer import LORA_TARGETS

    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(llama7b_config(len(tokenizer)))
    torch.set_default_dtype(torch.float32)
    model.config.use_cache = False
    peft_model = get_peft_model(model, LoraConfig(r=64, lora_alpha=16, lora_dropout=0.1, target_modules=LORA_TARGETS,
                                                  task_type="CAUSAL_LM"))
    peft_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    peft_model.enable_input_require_grads()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    prompt = PromptIds.for_tokenizer(tokenizer)
    times, toks = [], 0
    for step in range(steps + 2):
        chunk = texts[step * batch:(step + 1) * batch]
        nxt = texts[step * batch + 1:(step + 1) * batch + 1]
        b = build_pretext_batch(tokenizer, prompt, chunk, nxt, 128, True, torch.bfloat16)
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = pretext_forward(peft_model, b)
        out["total"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= 2:
            times.append(time.perf_counter() - t)
            toks += int(b.input_ids.numel())
    tps = toks / sum(times)
    n_params = sum(p.numel() for p in peft_model.parameters())
    mem = torch.cuda.max_memory_allocated() / 2**30
    return {"batch": batch, "cutoff_len": 128, "steps_timed": steps, "tokens_per_s": round(tps),
            "step_s": round(sum(times) / len(times), 3), "trainable_params": sum(p.numel() for p in params),
            "mfu_6n": round(tps * 6 * n_params / (peak * 1e12), 3), "peak_gpu_gib": round(mem, 1),
            "loss_last": round(float(out["total"]), 4)}


def main(argv=None) -> dict:
    from transformers import AutoTokenizer

    from llara_search.testing import shared_tokenizer_dir

    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=1024)
    ap.add_argument("--tokenizer", default=None)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks.gpu needs a CUDA GPU")
    tok = AutoTokenizer.from_pretrained(args.tokenizer or shared_tokenizer_dir())
    texts, _, source = scifact_texts(args.texts, 0)
    peak = matmul_tflops()
    res = {"machine": machine(), "data": source, "matmul_bf16_tflops": round(peak, 1),
           "encoder": bench_encoder(tok, texts, peak), "training": bench_training(tok, texts, peak),
           "command": "python -m benchmarks.gpu"}
    record("gpu_7b", res)
    print(res)
    return res


if __name__ == "__main__":
    main()
