"""Loading a saved bf16 Llama: our loader (encoder/fast_load.py) vs a plain `AutoModel.from_pretrained`, each in a
fresh subprocess of its own (peak RSS is per process), in the same run, from the same warm page cache.

The model is written here with random weights, shard by shard (never whole in memory), sized by flags; the default
(hidden 2048, 24 layers, intermediate 5504, LLaMA-2 vocabulary) is 2.6 GB of bf16 weights. It is deleted after.

    nice -n 10 python -m benchmarks.load [--hidden 2048 --layers 24] [--device cpu] [--keep]

Imports only torch, transformers and numpy (benchmarks.gpu uses it on a bare GPU box).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def llama_config(vocab: int, hidden: int, layers: int, intermediate: int, heads: int):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=4096,
                       bos_token_id=1, eos_token_id=2, pad_token_id=0)


def tokenizer_for_benchmarks(path: str | None = None):
    """The shared LLaMA-2 LLaRA tokenizer, `path`, or a small one trained here (a bare clone)."""
    import tempfile

    from transformers import AutoTokenizer

    from llara_search.testing import shared_tokenizer_dir, train_fallback_tokenizer

    src = path or shared_tokenizer_dir()
    if src is not None:
        tok = AutoTokenizer.from_pretrained(src)
    else:
        tok = train_fallback_tokenizer(tempfile.mkdtemp(prefix="llara-tok-"))
    tok.padding_side = "left"
    return tok


def write_random_llama(out: Path, config, tokenizer, *, shard_bytes: int = 1 << 30, seed: int = 0) -> int:
    """A LlamaModel checkpoint of random bf16 weights in safetensors shards (one shard in memory at a time), with
    its config and tokenizer; returns the weights' bytes."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaModel

    out.mkdir(parents=True, exist_ok=True)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in LlamaModel(config).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    shards: list[dict] = [{}]
    size = 0
    for name, shape in shapes.items():
        n = 1
        for d in shape:
            n *= d
        if shards[-1] and size + 2 * n > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = shape
        size += 2 * n
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        tensors = {}
        for name, shape in shard.items():
            t = torch.randn(shape, generator=gen, dtype=torch.float32)
            tensors[name] = (t * 0.02 if len(shape) > 1 else torch.ones(shape)).to(torch.bfloat16)
            weight_map[name] = fname
            total += tensors[name].numel() * 2
        save_file(tensors, str(out / fname), metadata={"format": "pt"})
        del tensors
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total},
                                                                  "weight_map": weight_map}))
    config.architectures = ["LlamaModel"]
    config.dtype = "bfloat16"
    config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return total


def weights_bytes(model_dir: Path) -> int:
    return sum(f.stat().st_size for f in Path(model_dir).glob("*.safetensors"))


def warm_page_cache(model_dir: Path) -> None:
    """Read the files once so that both loaders start from the same (warm) page cache."""
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with f.open("rb", buffering=0) as fh:
            while fh.read(64 << 20):
                pass


# ------------------------------------------------------------------------------------------------ child processes
def _vm(field: str) -> float:
    """MiB of a /proc/self/status field: VmHWM (peak RSS of this process image) or VmRSS. Not ru_maxrss, which
    Linux carries over from the parent through fork and exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(kind: str, model_dir: str, device: str, dtype: str) -> None:
    """One cold process: imports, load (`plain`: transformers' from_pretrained then `.to(device)`; `loader`:
    fast_load alone; `ours`: the encoder with its tokenizer and fingerprint), then one short forward (`ours`: one
    query encoded): transformers maps CPU weights lazily, so a load is only comparable once a forward touched them.
    Prints a JSON line with what it measured."""
    t0 = time.perf_counter()
    import torch
    import transformers.models.llama.modeling_llama  # noqa: F401  (imported before the clock, for every kind)

    dt = getattr(torch, dtype)
    ids = torch.full((1, 32), 338, device=device)  # the padded length of `ours`'s one query: the same forward
    ids[0, 0] = 1
    if kind == "ours":
        from llara_search.encoder.model import LlaraEncoder
    elif kind == "loader":
        from llara_search.encoder import fast_load
    else:
        from transformers import AutoModel
    imported = time.perf_counter()
    rss_before = _vm("VmHWM")
    t = time.perf_counter()
    if kind == "ours":
        enc = LlaraEncoder.from_pretrained(model_dir, device=device, dtype=dtype, show_progress=False)
    elif kind == "loader":
        model = fast_load.load_model(Path(model_dir), dtype=dt, device=torch.device(device), progress=False)
    else:
        model = AutoModel.from_pretrained(model_dir, dtype=dt).to(device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    with torch.inference_mode():
        if kind == "ours":
            enc.encode_queries(["what is a llama?"])
        else:
            model(input_ids=ids).last_hidden_state.float().sum().item()
    forward_s = time.perf_counter() - t
    print(json.dumps({"kind": kind, "import_s": round(imported - t0, 3), "load_s": round(load_s, 3),
                      "first_forward_s": round(forward_s, 3), "rss_before_mib": round(rss_before, 1),
                      "peak_rss_mib": round(_vm("VmHWM"), 1)}))


def _pythonpath() -> str:
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def run_child(kind: str, model_dir: Path, device: str, dtype: str, env: dict | None = None) -> dict:
    """A fresh interpreter running `child`; adds the process's wall time (start-up included)."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "benchmarks.load", "--child", kind, "--dir", str(model_dir),
                          "--device", device, "--dtype", dtype], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, **(env or {}), "PYTHONPATH": _pythonpath()}, timeout=1800)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"{kind} load failed: {out.stderr.strip()[-2000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_s"] = round(wall, 3)
    return res


def compare(model_dir: Path, device: str, dtype: str, env: dict | None = None) -> dict:
    """Plain from_pretrained, our loader alone, and a whole query process (load + one query), in that order, from
    a warm page cache."""
    warm_page_cache(model_dir)
    plain = run_child("plain", model_dir, device, dtype, env)
    loader = run_child("loader", model_dir, device, dtype, env)
    ours = run_child("ours", model_dir, device, dtype, env)
    w = weights_bytes(model_dir) / 2**20
    res = {"weights_mib": round(w, 1), "device": device, "dtype": dtype, "plain": plain, "loader": loader,
           "ours": ours, "process_ratio": round(ours["process_s"] / plain["process_s"], 2),
           "load_ratio": round((loader["load_s"] + loader["first_forward_s"])
                               / (plain["load_s"] + plain["first_forward_s"]), 2)}
    for k in ("plain", "loader", "ours"):
        r = res[k]
        r["peak_over_weights"] = round(r["peak_rss_mib"] / w, 2)
        r["added_over_weights"] = round((r["peak_rss_mib"] - r["rss_before_mib"]) / w, 2)
    return res


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", choices=("ours", "loader", "plain"))
    ap.add_argument("--dir")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--intermediate", type=int, default=5504)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the written model (benchmarks/.work/load-model) and reuse it next time")
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.dir, args.device, args.dtype)
        return None
    from .common import WORK, machine, record

    tok = tokenizer_for_benchmarks(args.tokenizer)
    model_dir = WORK / "load-model"
    config = llama_config(len(tok), args.hidden, args.layers, args.intermediate, args.heads)
    stamp = model_dir / "written-by-benchmark.json"
    wanted = json.dumps([args.hidden, args.layers, args.intermediate, args.heads, len(tok)])
    try:
        t = time.perf_counter()
        if not (args.keep and stamp.is_file() and stamp.read_text() == wanted):  # --keep: reuse the same shape
            shutil.rmtree(model_dir, ignore_errors=True)
            write_random_llama(model_dir, config, tok)
            stamp.write_text(wanted)
        written_s = time.perf_counter() - t
        res = compare(model_dir, args.device, args.dtype)
    finally:
        if not args.keep:
            shutil.rmtree(model_dir, ignore_errors=True)
    res.update({"model": f"random LlamaModel hidden {args.hidden}, {args.layers} layers, bf16 safetensors shards",
                "written_s": round(written_s, 1), "machine": machine(),
                "command": f"nice -n 10 python -m benchmarks.load --hidden {args.hidden} --layers {args.layers}"
                           + (f" --device {args.device}" if args.device != "cpu" else "")})
    record(f"load_{args.device.split(':')[0]}", res)
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
