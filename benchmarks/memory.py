"""Does the memory check estimate what loading really takes? Estimate vs measured peak memory, on the CPU.

Random Llama models with the LLaMA-2-7B layout (head size 128, MLP 2.6875 × hidden), saved in bfloat16 like the
released checkpoints: one scaled down (hidden 1024, 8 layers) and one with 7B's own layer width (hidden 4096, 2
layers). Each case runs in a fresh process: after the imports the memory is noted; then the model is loaded and
one full batch is encoded (8,192 tokens: the encoder's CPU budget), or two LoRA training steps run. Measured: the
peak of anonymous memory (RssAnon, sampled every 2 ms: what the kernel's out-of-memory killer counts) above the
level after the imports. Also reported: the peak RSS (VmHWM), which also counts the checkpoint's pages while the
load reads them through mmap (page cache, reclaimable, not what gets a process killed). The estimate is
`llara_search.encoder.memory.estimate` (weights + working memory + runtime), made from config.json alone. A ratio
measured/estimated below 1 means the check is on the safe side.

    python -m benchmarks.memory
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from .common import WORK, machine, record

_CHILD = r"""
import json, sys, os, threading, time
def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
peak = [0]
def sample():
    while True:
        peak[0] = max(peak[0], rss("RssAnon:"))
        time.sleep(0.002)
import torch, transformers, peft, numpy
from transformers import AutoModel, AutoModelForCausalLM
from llara_search.encoder.model import LlaraEncoder
from llara_search.train.trainer import TrainConfig, train, check_training_memory
from llara_search.encoder.memory import estimate
torch.set_num_threads(2)
model_dir, dtype, what, out = sys.argv[1:5]
base, base_anon = rss("VmRSS:"), rss("RssAnon:")
threading.Thread(target=sample, daemon=True).start()
if what == "encode":
    est = estimate(model_dir, dtype=dtype, device="cpu", available=1 << 50)
    enc = LlaraEncoder.from_pretrained(model_dir, dtype=dtype, device="cpu", show_progress=False, check_memory=False)
    text = " ".join(["word"] * 2000)
    enc.encode_passages([text + f" {i}" for i in range(16)])  # 16 x 512 tokens + prompt: the 8,192-token budget
else:
    cfg = TrainConfig(output=out, base=model_dir, dtype=dtype, max_steps=2, batch_size=8, save_every=0,
                      device="cpu")
    est = check_training_memory(cfg)
    text = " ".join(["word"] * 400)
    train(cfg, [(text + f" {i}", text + f" {i + 1}") for i in range(32)], show_progress=False)
time.sleep(0.01)
print(json.dumps({"baseline_rss": base, "peak_rss": rss("VmHWM:"), "baseline_anon": base_anon, "peak_anon": peak[0],
                  "estimate": est.to_dict()}))
"""


def run_case(model_dir, dtype: str, what: str, label: str) -> dict:
    out = WORK / f"memory-train-{dtype}"
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(model_dir), dtype, what, str(out)], capture_output=True,
                          text=True, check=True)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    e = r["estimate"]
    measured = r["peak_anon"] - r["baseline_anon"]
    return {"model": label, "what": what, "dtype": dtype, "parameters": e["parameters"],
            "estimated_mib": round(e["needed_bytes"] / 2**20, 1),
            "estimated_parts_mib": {k: round(e[k] / 2**20, 1) for k in ("weights_bytes", "working_bytes",
                                                                         "training_state_bytes", "runtime_bytes")},
            "measured_mib": round(measured / 2**20, 1), "measured_over_estimated": round(measured / e["needed_bytes"], 3),
            "peak_rss_incl_mapped_checkpoint_mib": round((r["peak_rss"] - r["baseline_rss"]) / 2**20, 1)}


def _model(hidden: int, layers: int):
    import torch
    from transformers import AutoModelForCausalLM

    from llara_search.testing import make_tiny_llara

    model_dir = make_tiny_llara(WORK / f"memory-llama-{hidden}x{layers}", hidden_size=hidden, num_layers=layers,
                                num_heads=max(1, hidden // 128), intermediate_size=round(hidden * 11008 / 4096))
    m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    m.save_pretrained(model_dir)  # bfloat16 on disk, as the released checkpoints ship
    del m
    return model_dir, f"hidden {hidden}, {layers} layers"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-wide", action="store_true", help="skip the model with 7B's layer width (hidden 4096)")
    ap.add_argument("--no-train", action="store_true")
    args = ap.parse_args(argv)
    small, small_label = _model(1024, 8)
    cases = [run_case(small, dt, "encode", small_label) for dt in ("float32", "bfloat16")]
    if not args.no_train:
        cases += [run_case(small, dt, "train", small_label) for dt in ("float32", "bfloat16")]
    if not args.no_wide:
        wide, wide_label = _model(4096, 2)
        cases += [run_case(wide, dt, "encode", wide_label) for dt in ("float32", "bfloat16")]
    res = {"machine": machine(), "model": "random Llamas of the LLaMA-2-7B layout (heads of 128), saved in bfloat16",
           "cases": cases,
           "worst_measured_over_estimated": max(c["measured_over_estimated"] for c in cases),
           "command": "python -m benchmarks.memory"}
    record("memory_check", res)
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
