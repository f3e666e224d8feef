"""Will the model fit? An estimate from the model's config alone (no weights needed), checked before loading.

A 7B model in float32 on a 24 GB laptop gets the process killed by the kernel ("Killed", nothing else) after a long
download and a long load. Parameters × bytes per parameter, plus the working memory of the largest batch the
encoder (or a training step) runs, compared with what the device has free now, says so in one line and in a
second, before anything is downloaded, loaded or written.

`check_fits` is the public entry point (the encoder, ingest, re-encode, training and the reranker call it). This
module imports only the standard library; torch is imported only to ask CUDA how much memory is free.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

GiB = 2**30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
_ALIASES = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
# the tokenizer, buffers and allocator slack beside the weights (torch and transformers are already imported when
# the check runs, so free memory excludes them); benchmarks/memory.py measured ~170 MiB after a load
RUNTIME_BYTES = 384 * 2**20
PROMPT_TOKENS = 32  # the LLaRA prefix and suffix around each text (19-20 tokens with the LLaMA-2 tokenizer), rounded up
CPU_BATCH_TOKENS = 8192  # LlaraEncoder's default token budget per batch (model.py)
CUDA_BATCH_TOKENS = 32768
MEMORY_CHECK_ENV = "LLARA_SEARCH_MEMORY_CHECK"  # "0" skips the refusal (the estimate is still made)
MAX_MEMORY_ENV = "LLARA_SEARCH_MAX_MEMORY"  # e.g. "12G": plan with at most this much (headroom for other programs)
_ENCODER_ONLY = {"bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert", "deberta", "deberta-v2",
                 "mpnet", "modernbert", "nomic_bert"}


class InsufficientMemoryError(MemoryError):
    """The model, in the chosen dtype, does not fit in what the device has free; the message says what would."""

    def __init__(self, message: str, estimate: "Estimate"):
        super().__init__(message)
        self.estimate = estimate


# ---------------------------------------------------------------------------------------------------- dtypes
def normalize_dtype(dtype: object) -> str:
    """'auto', 'float32', 'bfloat16' or 'float16' from a name, an alias (bf16, fp32, ...) or a torch dtype."""
    if dtype is None:
        return "auto"
    name = str(dtype).lower().removeprefix("torch.")
    name = _ALIASES.get(name, name)
    if name != "auto" and name not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPE_CHOICES)}")
    return name


def resolve_dtype_name(dtype: object, device_type: str) -> str:
    """What `auto` means: bfloat16 on CUDA (half the memory, full speed), float32 elsewhere (CPUs without bf16
    matrix units run it slower, and float32 is what the released checkpoints were evaluated in)."""
    name = normalize_dtype(dtype)
    if name == "auto":
        return "bfloat16" if device_type == "cuda" else "float32"
    return name


def resolve_device_name(device: object) -> str:
    d = "auto" if device is None else str(device)
    if d == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return d


# ---------------------------------------------------------------------------------------------------- the model
def load_config(source: object) -> dict | None:
    """The model's config.json as a dict: from a dict, a folder, a config file, the HF cache, or (online) the hub
    alone, fetched into a temporary folder so that a refused model leaves nothing in the cache. None when it cannot
    be found: the load that follows reports that better than a guess would."""
    if isinstance(source, Mapping):
        return dict(source)
    p = Path(str(source)).expanduser()
    try:
        if p.is_file():
            return json.loads(p.read_text())
        if p.is_dir():
            return json.loads((p / "config.json").read_text()) if (p / "config.json").is_file() else None
    except (OSError, ValueError):
        return None
    return _hub_config(str(source))


def _hub_config(repo_id: str) -> dict | None:
    from .checkpoint import local_files_only

    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache

        cached = try_to_load_from_cache(repo_id, "config.json")
        if isinstance(cached, str):
            return json.loads(Path(cached).read_text())
        if local_files_only():
            return None
        with tempfile.TemporaryDirectory() as tmp:
            return json.loads(Path(hf_hub_download(repo_id, "config.json", local_dir=tmp, etag_timeout=10))
                              .read_text())
    except Exception:  # noqa: BLE001 - invalid id, offline, no such repo: the real load will say which
        return None


def _text_config(config: dict) -> dict:
    if "hidden_size" not in config and isinstance(config.get("text_config"), dict):
        return config["text_config"]
    return config


def count_parameters(config: Mapping, *, with_lm_head: bool = False) -> int:
    """Parameters of a transformer from its config: decoders (LLaMA, Mistral, Qwen, ... with gated MLPs, grouped
    KV heads, mixtures of experts) and BERT-like encoders. `with_lm_head`: also the output projection (loaded by
    causal-LM classes; `AutoModel`, which the encoder uses, leaves it out)."""
    c = _text_config(dict(config))
    h, layers, vocab = int(c["hidden_size"]), int(c["num_hidden_layers"]), int(c["vocab_size"])
    inter = int(c.get("intermediate_size") or 4 * h)
    heads = int(c.get("num_attention_heads") or max(1, h // 64))
    kv = int(c.get("num_key_value_heads") or heads)
    hd = int(c.get("head_dim") or h // heads)
    encoder_only = str(c.get("model_type", "")).lower() in _ENCODER_ONLY
    attn = h * heads * hd + 2 * h * kv * hd + heads * hd * h
    if c.get("attention_bias") or c.get("qkv_bias") or encoder_only:
        attn += heads * hd + 2 * kv * hd + (h if encoder_only else 0)
    if encoder_only:
        per_layer = attn + 2 * h * inter + inter + h + 4 * h  # two LayerNorms with bias
        total = vocab * h + layers * per_layer
        total += (int(c.get("max_position_embeddings") or 512) + int(c.get("type_vocab_size") or 0)) * h + 2 * h
        total += h * h + h  # pooler
        if with_lm_head:
            total += h * h + 3 * h + vocab  # MLM head (decoder tied to the embeddings)
        return total
    experts = int(c.get("num_local_experts") or c.get("num_experts") or 1)
    mlp = 3 * h * inter * experts + (h * experts if experts > 1 else 0)
    if c.get("mlp_bias"):
        mlp += (2 * inter + h) * experts
    total = vocab * h + layers * (attn + mlp + 2 * h) + h
    if with_lm_head and not c.get("tie_word_embeddings", False):
        total += vocab * h
    return total


def safetensors_parameters(model_dir: str | os.PathLike, *, with_lm_head: bool = False) -> int | None:
    """Exact parameter count from the safetensors headers (8 bytes + a JSON header per file: nothing is loaded);
    None without a complete set of safetensors files."""
    d = Path(model_dir)
    index = d / "model.safetensors.index.json"
    try:
        if index.is_file():
            files = sorted({d / f for f in json.loads(index.read_text())["weight_map"].values()})
        else:
            files = sorted(d.glob("*.safetensors"))
        if not files or not all(f.is_file() for f in files):
            return None
        total = 0
        for f in files:
            with f.open("rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                if n > 2**27:
                    return None
                header = json.loads(fh.read(n))
            for name, meta in header.items():
                if name == "__metadata__" or (not with_lm_head and name.startswith("lm_head.")):
                    continue
                total += math.prod(meta["shape"])
        return total
    except (OSError, ValueError, KeyError, struct.error):
        return None


# ---------------------------------------------------------------------------------------------------- the device
def available_ram() -> int | None:
    """Bytes of RAM this process can still take without swapping or being killed: /proc/meminfo's MemAvailable,
    lowered by a cgroup memory limit (containers, systemd slices, CI runners). None where neither can be read."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
                break
    except (OSError, ValueError):
        pass
    try:
        cg = cgroup_available(Path("/proc/self/cgroup").read_text(), Path("/sys/fs/cgroup"))
    except OSError:
        cg = None
    if cg is not None:
        found.append(cg)
    if not found:
        try:
            import psutil

            return int(psutil.virtual_memory().available)
        except Exception:  # noqa: BLE001 - no psutil (macOS without it): unknown, so nothing is refused
            return None
    return min(found)


def cgroup_available(proc_self_cgroup: str, root: Path) -> int | None:
    """Room left under the tightest memory limit on this process's cgroup path (v2, or v1's memory controller):
    limit − (usage − inactive page cache), the page cache being what the kernel reclaims before it kills."""
    best: int | None = None
    for line in proc_self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # v2 unified hierarchy
            base, files = root, ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            base, files = root / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        rel = path.strip().lstrip("/")
        d = base / rel if rel else base
        while True:
            room = _cgroup_room(d, *files)
            if room is not None:
                best = room if best is None else min(best, room)
            if d == base or base not in d.parents:
                break
            d = d.parent
    return best


def _cgroup_room(d: Path, limit_file: str, usage_file: str, inactive_key: str) -> int | None:
    try:
        raw = (d / limit_file).read_text().strip()
    except OSError:
        return None
    if raw == "max" or not raw.isdigit() or int(raw) >= 2**60:
        return None
    try:
        usage = int((d / usage_file).read_text().strip())
    except (OSError, ValueError):
        return None
    inactive = 0
    try:
        for line in (d / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == inactive_key:
                inactive = int(value)
                break
    except (OSError, ValueError):
        pass
    return max(0, int(raw) - max(0, usage - inactive))


def max_memory() -> int | None:
    """$LLARA_SEARCH_MAX_MEMORY: the most memory llara-search may plan to use (bytes, or with K/M/G/T, binary),
    for machines where other programs need their share. None when unset."""
    raw = os.environ.get(MAX_MEMORY_ENV, "").strip()
    if not raw:
        return None
    return parse_size(raw)


def parse_size(text: str) -> int:
    """'12G', '512MiB', '1.5T', '4096' (bytes) -> bytes (K, M, G, T are powers of 1024)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(t[-1:], 1)
    try:
        return int(float(t[:-1] if scale > 1 else t) * scale)
    except ValueError:
        raise ValueError(f"{MAX_MEMORY_ENV}={text!r} is not a size; use e.g. 12G or 512M") from None


def free_gpu_memory(device: str) -> int | None:
    try:
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    except Exception:  # noqa: BLE001 - no CUDA after all: unknown, so nothing is refused here
        return None


# ---------------------------------------------------------------------------------------------------- estimates
@dataclass
class TrainingShape:
    """What one training step holds besides the weights (per process)."""

    tokens: int  # tokens in one micro-batch
    seq_len: int  # its longest sequence
    lora_r: int = 64
    gradient_checkpointing: bool = False
    vocab_logits: bool = True  # pretext computes next-token logits over the whole vocabulary; contrastive does not
    full: bool = False  # every weight trains (fp32 gradients and AdamW moments for all of them), not LoRA's


@dataclass
class Estimate:
    """What loading `model` for `purpose` takes on `device` in `dtype`, and what the device has free."""

    model: str
    purpose: str
    device: str
    dtype: str
    parameters: int | None
    weights_bytes: int = 0
    working_bytes: int = 0
    training_state_bytes: int = 0
    runtime_bytes: int = 0
    available_bytes: int | None = None
    alternatives: list[str] = field(default_factory=list)

    @property
    def checked(self) -> bool:
        """False when the config or the free memory could not be read: nothing is refused on a guess."""
        return self.parameters is not None and self.available_bytes is not None

    @property
    def needed_bytes(self) -> int:
        return self.weights_bytes + self.working_bytes + self.training_state_bytes + self.runtime_bytes

    @property
    def fits(self) -> bool:
        return not self.checked or self.needed_bytes <= self.available_bytes

    @property
    def memory(self) -> str:
        return "GPU memory" if self.device.startswith("cuda") else "RAM"

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(needed_bytes=self.needed_bytes, fits=self.fits, checked=self.checked, memory=self.memory,
                 needed_gib=round(self.needed_bytes / GiB, 2),
                 available_gib=None if self.available_bytes is None else round(self.available_bytes / GiB, 2))
        return d

    def message(self) -> str:
        parts = [f"weights {_gib(self.weights_bytes)}", f"working memory {_gib(self.working_bytes)}"]
        if self.training_state_bytes:
            parts.append(f"trained weights' gradients and optimizer state {_gib(self.training_state_bytes)}")
        if self.runtime_bytes:
            parts.append(f"runtime {_gib(self.runtime_bytes)}")
        size = f"{self.parameters / 1e9:.1f}B" if self.parameters >= 1e8 else f"{self.parameters / 1e6:.1f}M"
        where = "the CPU" if self.memory == "RAM" else self.device
        avail = "unknown" if self.available_bytes is None else _gib(self.available_bytes)
        text = (f"{self.model} ({size} parameters) needs ~{_gib(self.needed_bytes)} of {self.memory} to "
                f"{self.purpose} in {self.dtype} on {where} ({' + '.join(parts)}), but {avail} is available")
        if self.alternatives:
            text += "; " + _or_list(self.alternatives)
        return text


def _gib(n: int) -> str:
    return f"{n / GiB:.1f} GiB"


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def estimate(model: object, *, dtype: object = "auto", device: object = "auto", purpose: str = "encode",
             max_length: int = 512, batch_tokens: int | None = None, with_lm_head: bool = False,
             training: TrainingShape | None = None, available: int | None = None,
             name: str | None = None, measure: bool = True) -> Estimate:
    """The memory `model` (a folder, a hub id, a config dict or file) needs for `purpose`, and what is free.

    Inference holds the weights and, at the peak of a layer, the activations of one batch of `batch_tokens`
    tokens (the encoder's budget: 8,192 on the CPU; on CUDA the encoder halves its batch on out-of-memory, so only
    one sequence must fit). Training adds the LoRA weights with their gradients and AdamW state (float32) and the
    activations autograd keeps for the backward pass (all layers, or one with gradient checkpointing).
    `available`: the free bytes to compare with (default: measured now, unless `measure=False`).
    """
    dev = resolve_device_name(device)
    kind = dev.split(":")[0]
    dt = resolve_dtype_name(dtype, kind)
    label = name or (str(model) if not isinstance(model, Mapping) else str(model.get("_name_or_path") or "model"))
    config = load_config(model)
    params = None
    if config is not None:
        try:
            params = _parameters(model, config, with_lm_head or training is not None)
        except (KeyError, TypeError, ValueError):
            params = None
    est = Estimate(label, purpose, dev, dt, params)
    if params is None:
        return est
    c = _text_config(config)
    est.weights_bytes = params * DTYPE_BYTES[dt]
    if training is None:
        tokens = batch_tokens or (CUDA_BATCH_TOKENS if kind == "cuda" else CPU_BATCH_TOKENS)
        seq = _round8(max_length + PROMPT_TOKENS)
        if kind == "cuda":
            tokens = min(tokens, seq)
        est.working_bytes = tokens * _inference_bytes_per_token(c, DTYPE_BYTES[dt], seq)
    else:
        est.working_bytes, est.training_state_bytes = _training_bytes(c, DTYPE_BYTES[dt], training)
    est.runtime_bytes = RUNTIME_BYTES if kind == "cpu" else 0
    if available is None and measure:
        available = free_gpu_memory(dev) if kind == "cuda" else (available_ram() if kind == "cpu" else None)
        cap = max_memory()
        if cap is not None:
            available = cap if available is None else min(available, cap)
    est.available_bytes = available
    if not est.fits:
        est.alternatives = _alternatives(est, config, model, kind, max_length, batch_tokens, with_lm_head,
                                         training)
    return est


def check_fits(model: object, dtype: object = "auto", device: object = "auto", purpose: str = "encode",
               **kwargs) -> Estimate:
    """`estimate(...)`, raising `InsufficientMemoryError` (one line: needed, available, what would fit) when it
    does not fit. `LLARA_SEARCH_MEMORY_CHECK=0` turns the refusal off for those who know better (swap, a
    shared-memory GPU): the estimate is still returned."""
    est = estimate(model, dtype=dtype, device=device, purpose=purpose, **kwargs)
    if not est.fits and os.environ.get(MEMORY_CHECK_ENV, "1").lower() not in {"0", "false", "no", "off"}:
        raise InsufficientMemoryError(est.message(), est)
    return est


def _parameters(model: object, config: dict, with_lm_head: bool) -> int:
    if not isinstance(model, Mapping):
        p = Path(str(model)).expanduser()
        if p.is_dir():
            exact = safetensors_parameters(p, with_lm_head=with_lm_head)
            if exact:
                return exact
    return count_parameters(config, with_lm_head=with_lm_head)


def _shape(c: dict) -> tuple[int, int, int, int, int]:
    h = int(c["hidden_size"])
    heads = int(c.get("num_attention_heads") or max(1, h // 64))
    return h, int(c.get("intermediate_size") or 4 * h), heads, int(c["num_hidden_layers"]), int(c["vocab_size"])


def _inference_bytes_per_token(c: dict, act: int, seq: int) -> int:
    """Peak live activations per token inside one layer: the residual, its norm and the norm's float32 temporaries,
    then either attention (q, k, v, the output, and the score and probability rows of the math kernel) or the MLP
    (gate·up and its inputs)."""
    h, inter, heads, _, _ = _shape(c)
    return act * (4 * h + max(4 * h + 2 * heads * seq, 3 * inter))


def _training_bytes(c: dict, act: int, t: TrainingShape) -> tuple[int, int]:
    """(activations kept for the backward pass, LoRA weights + gradients + AdamW moments + foreach temporaries)."""
    h, inter, heads, layers, vocab = _shape(c)
    # base activations autograd saves per token and layer (norm inputs/outputs, q/k/v before and after the rotary
    # embedding, attention output and probabilities, the MLP's three products) plus LoRA's float32 dropout copies of
    # the 7 projection inputs
    per_layer = act * (12 * h + 3 * inter + 2 * heads * t.seq_len) + 5 * (6 * h + inter)
    if t.gradient_checkpointing:
        saved = t.tokens * (layers * act * h + per_layer)
    else:
        saved = t.tokens * layers * per_layer
    if t.vocab_logits:
        # logits and their gradient, the float32 copy, the shifted copy for the next-token loss, log-softmax and the
        # float32 gradients of both (measured: benchmarks/memory.py)
        saved += t.tokens * vocab * (2 * act + 24)
    kv_dim = int(c.get("num_key_value_heads") or heads) * int(c.get("head_dim") or h // heads)
    q_dim = heads * int(c.get("head_dim") or h // heads)
    if t.full:  # fp32 gradient + two AdamW moments + the fused update's temporaries, for every weight
        weights = layers * (2 * h * q_dim + 2 * h * kv_dim + 3 * h * inter) + 2 * vocab * h
        return saved, weights * 16
    lora = t.lora_r * layers * (7 * h + 2 * q_dim + 2 * kv_dim + 3 * inter)
    return saved, lora * 20


def _alternatives(est: Estimate, config: dict, model: object, kind: str, max_length: int, batch_tokens: int | None,
                  with_lm_head: bool, training: TrainingShape | None) -> list[str]:
    """What would fit, cheapest change first: bfloat16 on the same device, a GPU, smaller batches, a smaller
    model."""
    out: list[str] = []

    def other(dt: str, dev: str, avail: int | None, tr: TrainingShape | None = training) -> Estimate:
        return estimate(config if isinstance(model, Mapping) else model, dtype=dt, device=dev,
                        purpose=est.purpose, max_length=max_length, batch_tokens=batch_tokens,
                        with_lm_head=with_lm_head, training=tr, available=avail, name=est.model, measure=False)

    if est.dtype == "float32":
        half = other("bfloat16", est.device, est.available_bytes)
        if half.fits:
            out.append(f"use --dtype bfloat16 (needs ~{_gib(half.needed_bytes)}; it halves the weights)")
    if training is not None and training.tokens > training.seq_len:
        one = TrainingShape(training.seq_len, training.seq_len, training.lora_r, training.gradient_checkpointing,
                            training.vocab_logits, training.full)
        if other(est.dtype, est.device, est.available_bytes, one).fits:
            out.append("a smaller --batch-size (activations take "
                       f"{_gib(est.working_bytes)} at this one)")
    if kind == "cpu":
        gpu = other("bfloat16", "cuda", None, None if training is None else TrainingShape(
            training.tokens, training.seq_len, training.lora_r, True, training.vocab_logits, training.full))
        out.append(f"a GPU with ~{_gib(gpu.needed_bytes)} free (bfloat16)")
    elif kind == "cuda":
        out.append("a GPU with more free memory (another process may hold this one)")
    out.append("a smaller model (--model)" if est.purpose != "train" else "a smaller base model (--base)")
    return out


def _round8(n: int) -> int:
    return (n + 7) // 8 * 8


__all__ = ["DTYPE_BYTES", "DTYPE_CHOICES", "Estimate", "InsufficientMemoryError", "MEMORY_CHECK_ENV",
           "TrainingShape", "available_ram", "cgroup_available", "check_fits", "count_parameters", "estimate",
           "free_gpu_memory", "load_config", "max_memory", "normalize_dtype", "parse_size", "resolve_device_name", "resolve_dtype_name",
           "safetensors_parameters"]
