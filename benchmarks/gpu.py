"""The one script a bare GPU box runs: every fast path of the 7B encoder against its baseline, in one run.

    python -m benchmarks.gpu                      # CUDA, LLaMA-2-7B shape, bf16, sized for ~8 min on an H100/H200
    python -m benchmarks.gpu --device cpu --tiny  # the same code paths on a tiny model (CI runs this)

Imports only torch, transformers, peft, numpy (and faiss when present) besides this project's encoder, training and
index modules: no SQLAlchemy, FastAPI or server stack (tests/test_gpu_benchmark.py runs it with those blocked).
Random weights time exactly like real ones. Rows, each against a baseline measured in the same run:
- query encode p50/p99 at batch 1/8/32: eager vs the compiled static-shape path (encoder/static_query.py);
- bulk encode tokens/s: the pipeline (encoder/bulk.py) vs the loop of the previous release (per-batch host sync),
  and as model FLOPs utilisation (2·params per token) of a matmul rate measured in this run;
- cold query process (start-up, load, one query) vs a plain `AutoModel.from_pretrained(dir).to(device)` process,
  and our loader alone vs `from_pretrained`, with each process's peak RSS (benchmarks/load.py);
- LoRA (r=64, all 7 projections) pretext training tokens/s, 6·params per token against the matmul rate;
- IVF-PQ search + exact re-rank (what `Engine.search` does) over N synthetic D-d vectors, with recall@10.
Steps that would pass `--budget-s` are skipped and say so; a step that fails reports its error and the rest run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .common import WORK, machine, record, scifact_texts
from .load import compare, llama_config, tokenizer_for_benchmarks

SEVEN_B = dict(hidden=4096, layers=32, intermediate=11008, heads=32)
TINY = dict(hidden=64, layers=2, intermediate=192, heads=4)


# ------------------------------------------------------------------------------------------------ measurements
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, dtype: torch.dtype, n: int, reps: int = 10) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e12


def percentiles(times: list[float]) -> dict:
    ms = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def random_model(cls, config, device: torch.device, dtype: torch.dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            torch.manual_seed(0)
            return cls(config)
    finally:
        torch.set_default_dtype(old)


# ------------------------------------------------------------------------------------------------ steps
def bench_queries(enc, queries: list[str], reps: int, lengths: tuple[int, ...]) -> dict:
    """Eager and compiled calls interleaved (the same queries, one right after the other), so that a busy machine
    slows both alike."""
    rng = np.random.default_rng(0)
    batches = (1, 8, 32)
    queries, shortened = fit_queries(enc, queries, max(lengths))
    for b in batches:  # warm the eager path (allocator, kernels) before timing it
        enc.encode_queries(queries[:b])
    t = time.perf_counter()
    path = enc.compile_queries(lengths=lengths, batches=batches, warm=True)
    compile_s = time.perf_counter() - t
    calls = path.calls
    eager: dict[int, list[float]] = {b: [] for b in batches}
    ours: dict[int, list[float]] = {b: [] for b in batches}
    for b in batches:
        for r in range(reps):
            qs = [queries[i] for i in rng.integers(0, len(queries), b)]
            pair = ((None, eager[b]), (path, ours[b]))
            for static, times in pair if r % 2 else pair[::-1]:
                enc.static = static
                t = time.perf_counter()
                enc.encode_queries(qs)  # returns host vectors: synchronised
                times.append(time.perf_counter() - t)
    compiled_calls = path.calls - calls
    probe = queries[:32]
    enc.static = path
    with_compiled = enc.encode_queries(probe)
    enc.static = None
    diff = float(np.abs(with_compiled - enc.encode_queries(probe)).max())
    path.close()
    rows = {f"batch_{b}": {"eager": percentiles(eager[b]), "ours": percentiles(ours[b]),
                           "p50_speedup": round(float(np.median(eager[b]) / np.median(ours[b])), 2)}
            for b in batches}
    return {**rows, "compile_s": round(compile_s, 1), "mode": path.mode, "buckets": f"{lengths}x{batches}",
            "compiled_share": round(compiled_calls / max(1, reps * len(batches)), 2),
            "failed": path.failed, "max_abs_diff_vs_eager": diff, "queries": len(queries),
            "queries_shortened_to_fit": shortened}


def fit_queries(enc, queries: list[str], length: int) -> tuple[list[str], int]:
    """The queries with their last words dropped until each fits the longest bucket with its prompt (longer ones
    run eager in both arms and would measure nothing); how many were shortened."""
    room = length - len(enc.prompt.prefix) - len(enc.prompt.ebar_suffix)
    out, shortened = [], 0
    for q, n in zip(queries, enc.count_tokens(queries)):
        if n > room:
            shortened += 1
            words = q.split()
            while len(words) > 1 and enc.count_tokens([" ".join(words)])[0] > room:
                words = words[:-1]
            q = " ".join(words)
        out.append(q)
    return out, shortened


def previous_release_encode(enc, texts: list[str]) -> np.ndarray:
    """The bulk loop as it was: everything tokenized first, then per batch pad, forward, copy to the host, check."""
    from llara_search.encoder.batching import forward_in_batches
    from llara_search.encoder.forward import pooled_embeddings
    from llara_search.encoder.prompts import build_inputs, pad_left, tokenize_texts

    seqs = build_inputs(enc.prompt, tokenize_texts(enc.tokenizer, texts, enc.max_length), "passage")
    out = np.zeros((len(texts), enc.dim), dtype=np.float32)

    @torch.inference_mode()
    def forward(idx: list[int]) -> np.ndarray:
        ids, mask = pad_left([seqs[i] for i in idx], enc.prompt.pad_id)
        arr = pooled_embeddings(enc.model, ids.to(enc.device), mask.to(enc.device)).cpu().numpy()
        assert np.isfinite(arr).all()
        return arr

    forward_in_batches([len(s) for s in seqs], forward, out, max_tokens=enc.max_batch_tokens, max_batch=256)
    return out


def bench_bulk(enc, texts: list[str], peak_tflops: float, params: int) -> dict:
    n_tokens = sum(min(n, enc.max_length) + len(enc.prompt.prefix) + len(enc.prompt.ebae_suffix)
                   for n in enc.count_tokens(texts))  # real tokens, padding not counted
    enc.encode_passages(texts[:16])
    previous_release_encode(enc, texts[:16])
    ours_s = before_s = 0.0
    for first_ours in (False, True):  # previous, ours, ours, previous: drift in a busy machine cancels
        for is_ours in ((True, False) if first_ours else (False, True)):
            t = time.perf_counter()
            if is_ours:
                ours = enc.encode_passages(texts)
                ours_s += time.perf_counter() - t
            else:
                before = previous_release_encode(enc, texts)
                before_s += time.perf_counter() - t
    n_tokens *= 2
    tps = n_tokens / ours_s
    return {"texts": len(texts), "tokens": n_tokens // 2, "ours_s": round(ours_s, 3),
            "previous_s": round(before_s, 3),
            "ours_tokens_per_s": round(tps), "previous_tokens_per_s": round(n_tokens / before_s),
            "speedup": round(before_s / ours_s, 2), "mfu": round(tps * 2 * params / (peak_tflops * 1e12), 3),
            "max_abs_diff_vs_previous": float(np.abs(ours - before).max())}


def bench_training(tokenizer, config, texts: list[str], device: torch.device, dtype: torch.dtype,
                   peak_tflops: float, batch: int, steps: int, cutoff: int) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    from llara_search.encoder.prompts import PromptIds
    from llara_search.train.pretext import build_pretext_batch, pretext_forward
    from llara_search.train.trainer import LORA_TARGETS

    model = random_model(LlamaForCausalLM, config, device, dtype)
    model.config.use_cache = False
    peft_model = get_peft_model(model, LoraConfig(r=64, lora_alpha=16, lora_dropout=0.1, target_modules=LORA_TARGETS,
                                                  task_type="CAUSAL_LM"))
    peft_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    peft_model.enable_input_require_grads()
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    prompt = PromptIds.for_tokenizer(tokenizer)
    times, toks, loss = [], 0, float("nan")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(steps + 2):
        i = (step * batch) % max(1, len(texts) - batch - 1)
        b = build_pretext_batch(tokenizer, prompt, texts[i:i + batch], texts[i + 1:i + batch + 1], cutoff, True,
                                dtype)
        sync(device)
        t = time.perf_counter()
        out = pretext_forward(peft_model, b)
        out["total"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if step >= 2:  # the first two steps warm kernels and the allocator
            times.append(time.perf_counter() - t)
            toks += int(b.input_ids.numel())
        loss = float(out["total"])
    tps = toks / sum(times)
    n_params = sum(p.numel() for p in peft_model.parameters())
    res = {"batch": batch, "cutoff_len": cutoff, "steps_timed": steps, "tokens_per_s": round(tps),
           "step_s": round(sum(times) / len(times), 3), "trainable_params": sum(p.numel() for p in trainable),
           "mfu_6n": round(tps * 6 * n_params / (peak_tflops * 1e12), 3), "loss_last": round(loss, 4)}
    if device.type == "cuda":
        res["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 1)
    return res


def synthetic_vectors(n: int, dim: int, device: torch.device, seed: int = 1, latent: int = 64) -> np.ndarray:
    """Clustered unit vectors varying along few shared directions (benchmarks/index.py's "lowrank"), generated on
    the device in blocks (1M x 4096 in seconds on a GPU)."""
    g = torch.Generator(device=device).manual_seed(seed)
    n_clusters = max(64, n // 500)
    centres = torch.randn(n_clusters, dim, generator=g, device=device)
    basis = 3 * torch.randn(latent, dim, generator=g, device=device) / latent ** 0.5
    out = np.empty((n, dim), np.float32)
    for i in range(0, n, 50_000):
        m = min(50_000, n - i)
        pick = torch.randint(0, n_clusters, (m,), generator=g, device=device)
        x = centres[pick] + torch.randn(m, latent, generator=g, device=device) @ basis
        x += 0.05 * torch.randn(m, dim, generator=g, device=device)
        out[i:i + m] = torch.nn.functional.normalize(x, dim=1).cpu().numpy()
    return out


def bench_ivfpq(n: int, dim: int, train_size: int, device: torch.device, work: Path, n_queries: int = 200,
                k: int = 10) -> dict:
    import faiss

    from llara_search.index.ann import AnnIndex, plan_index
    from llara_search.index.vectors import VectorStore

    t = time.perf_counter()
    data = synthetic_vectors(n + n_queries, dim, device)
    x, q = data[:n], data[n:]
    ids = np.arange(1, n + 1, dtype=np.int64)
    store_dir = work / "vectors"
    shutil.rmtree(store_dir, ignore_errors=True)
    vs = VectorStore(store_dir, dim)
    for i in range(0, n, 100_000):
        vs.append(ids[i:i + 100_000], x[i:i + 100_000])
    plan = plan_index(n, dim, "ivfpq")
    index = faiss.index_factory(dim, plan.factory, faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(0).choice(n, size=min(n, train_size, plan.train_size), replace=False)
    index.train(np.ascontiguousarray(x[np.sort(sample)]))
    ann = AnnIndex(index, plan, n)
    for i in range(0, n, 65_536):
        ann.add(ids[i:i + 65_536], x[i:i + 65_536])
    build_s = time.perf_counter() - t
    # exact top-k on the device (blocks of the corpus against all queries)
    qt = torch.from_numpy(q).to(device)
    best_s = torch.full((n_queries, k), -2.0, device=device)
    best_i = torch.zeros((n_queries, k), dtype=torch.long, device=device)
    for i in range(0, n, 100_000):
        s = qt @ torch.from_numpy(x[i:i + 100_000]).to(device).T
        top = s.topk(min(k, s.shape[1]), dim=1)
        merged_s = torch.cat([best_s, top.values], 1)
        merged_i = torch.cat([best_i, top.indices + i + 1], 1)
        keep = merged_s.topk(k, dim=1).indices
        best_s, best_i = merged_s.gather(1, keep), merged_i.gather(1, keep)
    truth = best_i.cpu().numpy()
    del data, x
    lat, hits = [], 0
    for qi in range(n_queries):
        t = time.perf_counter()
        _, cand = ann.search(q[qi:qi + 1], plan.rerank * k)
        cand = cand[0][cand[0] >= 0]
        exact = vs.scores(q[qi:qi + 1], cand)[0]
        top = cand[np.argsort(-exact)[:k]]
        lat.append(time.perf_counter() - t)
        hits += len(set(top.tolist()) & set(truth[qi].tolist()))
    shutil.rmtree(store_dir, ignore_errors=True)
    return {"vectors": n, "dim": dim, "factory": plan.factory, "nprobe": plan.nprobe, "rerank": f"{plan.rerank}×k",
            "trained_on": int(len(sample)), "build_s": round(build_s, 1), **percentiles(lat),
            "recall@10": round(hits / (n_queries * k), 4), "faiss_threads": faiss.omp_get_max_threads()}


# ------------------------------------------------------------------------------------------------ driver
def parse(argv):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="a 64-wide 2-layer model and small sizes (CI, CPU)")
    ap.add_argument("--dtype", default=None, help="bfloat16 on CUDA, float32 on the CPU by default")
    for k in SEVEN_B:
        ap.add_argument(f"--{k}", type=int, default=None)
    ap.add_argument("--texts", type=int, default=None, help="bulk-encode texts (512, each encoded 4 times; tiny 48)")
    ap.add_argument("--query-reps", type=int, default=None, help="timed calls per batch size (50; tiny 5)")
    ap.add_argument("--query-lengths", default="64", help="compiled length buckets (comma-separated)")
    ap.add_argument("--train-batch", type=int, default=None)
    ap.add_argument("--train-steps", type=int, default=None)
    ap.add_argument("--vectors", type=int, default=None, help="IVF-PQ corpus size (1,000,000; tiny 5,000)")
    ap.add_argument("--dim", type=int, default=None, help="vector dimension (4096; tiny 64)")
    ap.add_argument("--train-size", type=int, default=65_536, help="IVF-PQ training sample")
    ap.add_argument("--skip", default="", help="comma-separated steps to skip: query,bulk,load,train,faiss")
    ap.add_argument("--budget-s", type=float, default=480, help="skip steps that start after this many seconds")
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--work-dir", default=str(WORK / "gpu"))
    ap.add_argument("--out", default=None, help="also write the results to this JSON file")
    ap.add_argument("--no-record", action="store_true", help="do not write benchmarks/results.json")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    t_start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: pass --device cpu (with --tiny for a quick run)")
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    shape = {k: getattr(args, k) or (TINY if args.tiny else SEVEN_B)[k] for k in SEVEN_B}
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    tiny = args.tiny
    n_texts = args.texts or (48 if tiny else 512)
    reps = args.query_reps or (5 if tiny else 50)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)

    tok = tokenizer_for_benchmarks(args.tokenizer)
    config = llama_config(len(tok), shape["hidden"], shape["layers"], shape["intermediate"], shape["heads"])
    docs, queries, source = scifact_texts(n_texts, 256)
    peak = matmul_tflops(device, dtype, 512 if tiny else (8192 if device.type == "cuda" else 2048))
    res: dict = {"machine": machine(), "device": str(device), "dtype": str(dtype).removeprefix("torch."),
                 "model": f"random Llama hidden {shape['hidden']}, {shape['layers']} layers, "
                          f"intermediate {shape['intermediate']}, vocab {len(tok)}",
                 "data": source, f"matmul_{str(dtype).removeprefix('torch.')}_tflops": round(peak, 3)}
    print(f"{res['machine']}\n{res['model']}, {res['dtype']} on {device}; matmul {peak:.3f} TFLOP/s", flush=True)

    def step(name: str, fn):
        if name in skip:
            res[name] = {"skipped": "--skip"}
        elif time.perf_counter() - t_start > args.budget_s:
            res[name] = {"skipped": f"past the {args.budget_s:.0f} s budget"}
        else:
            t = time.perf_counter()
            try:
                res[name] = fn()
            except Exception as exc:  # noqa: BLE001 - one failed step must not cost the other rows
                res[name] = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
                             if str(exc).strip() else type(exc).__name__}
            res[name]["step_s"] = round(time.perf_counter() - t, 1)
        print(f"{name}: {json.dumps(res[name])}", flush=True)

    from transformers import LlamaModel

    from llara_search.encoder.model import LlaraEncoder

    model = random_model(LlamaModel, config, device, dtype).eval()
    params = sum(p.numel() for p in model.parameters())
    model_dir = work / "model"
    if "load" not in skip:  # saved now, loaded by fresh processes after the in-process steps
        shutil.rmtree(model_dir, ignore_errors=True)
        model.save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
    enc = LlaraEncoder(model, tok, name="random-llama", device=device, dtype=dtype, max_length=512,
                       model_hash="random", show_progress=False)
    lengths = tuple(int(x) for x in args.query_lengths.split(","))
    step("query", lambda e=enc: bench_queries(e, queries, reps, lengths))
    step("bulk", lambda e=enc: bench_bulk(e, docs, peak, params))
    del enc, model
    torch._dynamo.reset()  # the compiled graphs (and on CUDA their graph memory pools) go with the model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    step("load", lambda: compare(model_dir, str(device), res["dtype"]))
    shutil.rmtree(model_dir, ignore_errors=True)
    step("train", lambda: bench_training(tok, config, docs, device, dtype, peak,
                                         args.train_batch or (2 if tiny else 16), args.train_steps or (2 if tiny else 6),
                                         64 if tiny else 128))
    try:
        import faiss  # noqa: F401  (present or not decides the row)

        step("faiss", lambda: bench_ivfpq(args.vectors or (5_000 if tiny else 1_000_000), args.dim or
                                          (64 if tiny else 4096), args.train_size, device, work))
    except ImportError:
        res["faiss"] = {"skipped": "faiss is not installed"}
    res["total_s"] = round(time.perf_counter() - t_start, 1)
    res["command"] = " ".join(["python -m benchmarks.gpu", *(sys.argv[1:] if argv is None else argv)])
    print(summary(res), flush=True)
    if not args.no_record:
        record(f"gpu_{device.type}" + ("_tiny" if tiny else ""), res)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2))
    return res


def summary(res: dict) -> str:
    """The rows as one table (also what RESULTS.md shows)."""
    return "\n".join(["", "| what | ours | baseline (same run) | ratio |", "|---|---|---|---|", *rows(res), ""])


def rows(res: dict) -> list[str]:
    out = []
    where = f"{res['model']}, {res['dtype']}, {res['device']}"
    gpu = res["device"].startswith("cuda")  # a matmul rate on a shared 2-core box is noise: MFU on GPUs only
    q = res.get("query", {})
    for b in (1, 8, 32):
        r = q.get(f"batch_{b}")
        if r:
            out.append(f"| query encode, batch {b} ({where}) | p50 {r['ours']['p50_ms']} / p99 {r['ours']['p99_ms']} "
                       f"ms compiled | p50 {r['eager']['p50_ms']} / p99 {r['eager']['p99_ms']} ms eager | "
                       f"**{r['p50_speedup']}×** |")
    if not any(f"batch_{b}" in q for b in (1, 8, 32)):
        out.append(f"| query encode | {_why(q)} | | |")
    b = res.get("bulk", {})
    if "speedup" in b:
        mfu = f" = {100 * b['mfu']:.1f}% of the matmul rate" if gpu else ""
        out.append(f"| bulk encode, {b['texts']} texts ({where}) | {b['ours_tokens_per_s']} tokens/s{mfu}, max abs "
                   f"diff {b['max_abs_diff_vs_previous']:.1e} | {b['previous_tokens_per_s']} tokens/s "
                   f"(previous loop) | **{b['speedup']}×** |")
    else:
        out.append(f"| bulk encode | {_why(b)} | | |")
    ld = res.get("load", {})
    if "process_ratio" in ld:
        out.append(f"| cold query process (start, load, 1 query), {ld['weights_mib'] / 1024:.2f} GiB | "
                   f"{ld['ours']['process_s']} s | plain from_pretrained process {ld['plain']['process_s']} s | "
                   f"**{ld['process_ratio']}×** |")
        lo, pl = ld["loader"], ld["plain"]
        out.append(f"| load + first forward, peak RSS | {lo['load_s'] + lo['first_forward_s']:.2f} s, peak "
                   f"{lo['peak_over_weights']}× the weights | from_pretrained: "
                   f"{pl['load_s'] + pl['first_forward_s']:.2f} s, peak {pl['peak_over_weights']}× | "
                   f"**{ld['load_ratio']}×** the time |")
    else:
        out.append(f"| cold load | {_why(ld)} | | |")
    t = res.get("train", {})
    mfu = f"**{100 * t['mfu_6n']:.1f}%**" if gpu and "mfu_6n" in t else "(CPU: no MFU claimed)"
    out.append(f"| LoRA pretext training, batch {t['batch']} × {t['cutoff_len']} | {t['tokens_per_s']} tokens/s | "
               f"6·params·tokens/s vs matmul | {mfu} |" if "tokens_per_s" in t
               else f"| LoRA pretext training | {_why(t)} | | |")
    f = res.get("faiss", {})
    out.append(f"| IVF-PQ + exact re-rank, {f['vectors']}×{f['dim']} ({f['factory']}) | p50 {f['p50_ms']} / p99 "
               f"{f['p99_ms']} ms, recall@10 {f['recall@10']} | | |" if "p50_ms" in f
               else f"| IVF-PQ search | {_why(f)} | | |")
    return out


def _why(r: dict) -> str:
    return r.get("skipped") or r.get("error") or "not measured"


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()


def report_rows(data: dict) -> list[str]:
    """The RESULTS.md section of issue #33: the CPU runs of this script and of benchmarks.load, and the GPU rows
    (not measured until a GPU run records `gpu_cuda`)."""
    out = ["", "## GPU-ready fast paths (static-shape queries, loading, bulk pipeline)", "",
           "CPU rows: 2-core box, torch CPU, ratios against baselines in the same run. GPU rows need one "
           "`python -m benchmarks.gpu` on an H100/H200 (sized for ~8 min), then `python -m benchmarks --report`.", "",
           "| what | ours | baseline (same run) | ratio |", "|---|---|---|---|"]
    cpu = data.get("gpu_cpu") or data.get("gpu_cpu_tiny")
    if cpu:
        out += [r for r in rows(cpu) if "--skip" not in r]
        out.append(f"| (command) | `{cpu['command']}` | | |")
    ld = data.get("load_cpu")
    if ld:
        lo, pl, us = ld["loader"], ld["plain"], ld["ours"]
        out.append(f"| loading a saved bf16 Llama ({ld['weights_mib'] / 1024:.2f} GiB of weights) + first forward, "
                   f"CPU | {lo['load_s'] + lo['first_forward_s']:.2f} s; peak RSS {lo['peak_rss_mib'] / 1024:.2f} GiB "
                   f"= **{lo['peak_over_weights']}×** the weights ({lo['added_over_weights']}× added by the load) | "
                   f"`AutoModel.from_pretrained`: {pl['load_s'] + pl['first_forward_s']:.2f} s; peak "
                   f"{pl['peak_rss_mib'] / 1024:.2f} GiB = {pl['peak_over_weights']}× | **{ld['load_ratio']}×** the "
                   f"time |")
        out.append(f"| cold query process (start-up, encoder load, one query), same model | {us['process_s']} s, peak "
                   f"{us['peak_over_weights']}× the weights | plain from_pretrained process {pl['process_s']} s | "
                   f"**{ld['process_ratio']}×** |")
        out.append(f"| (command) | `{ld['command']}` | | |")
    gpu = data.get("gpu_cuda")
    if gpu:
        out += rows(gpu)
    else:
        for what, goal in (("query encode p50, batch 1 / 32, LLaMA-2-7B shape, bf16", "≤ 6 ms / ≤ 20 ms"),
                           ("bulk encode MFU against the measured matmul rate", "≥ 65%"),
                           ("cold query process vs plain from_pretrained + start-up", "≤ 2×"),
                           ("LoRA pretext training tokens/s", ""), ("IVF-PQ + re-rank over 1M × 4096-d", "")):
            out.append(f"| GPU: {what}{' (goal ' + goal + ')' if goal else ''} | not measured (no GPU lent) | "
                       f"not measured | not measured |")
    return out
