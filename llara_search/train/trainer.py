"""The training loop, in one file: LoRA on all seven projections (or every weight with `full`), AdamW with warmup
and linear decay, gradient accumulation, checkpoints with exact resume, Ctrl-C saves, and torchrun (DDP) when
launched under it.

Both tasks share it: `pretext` (LLaRA's unsupervised EBAE + EBAR adaptation, spec §2; or the next-token loss
alone, the paper's "plain LLM" baseline) and `contrastive` (InfoNCE fine-tuning, spec §3). The output is a peft
adapter folder that `ingest --adapter` and `reencode --adapter` load, or with `full` a whole model folder for
`--model`.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..encoder.prompts import PromptIds, add_llara_tokens, missing_llara_tokens
from ..distributed import init as init_distributed
from ..distributed import launched, local_device
from ..faults import crash_point
from .contrastive import contrastive_loss, pool
from .data import following_text
from .pretext import BOW_WEIGHT as BOW_WEIGHT_RELEASED, build_pretext_batch, pretext_forward

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
STATE_FILE = "trainer_state.pt"


class TrainingInterrupted(RuntimeError):
    """Ctrl-C during training: a checkpoint was saved; `--resume` continues from it."""


@dataclass
class TrainConfig:
    output: Path
    base: str
    task: str = "pretext"  # "pretext" | "contrastive"
    adapter: str | None = None  # continue training this adapter (e.g. fine-tune on top of the pretext one)
    full: bool = False  # train every weight and write a whole model (no LoRA)
    loss: str = "llara"  # pretext: "llara" (EBAE + EBAR + next-token) | "causal" (next-token alone, a baseline)
    ebar_target: str = "next"  # pretext: "next" (the next chunk, released) | "following" (rest of chunk, then next)
    bow_weight: float = BOW_WEIGHT_RELEASED  # pretext: each bag-of-words term × this (released: ÷10)
    lora_r: int = 64
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lr: float = 1e-4
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    cutoff_len: int = 128  # pretext
    remove_stopwords: bool = True  # pretext
    group_size: int = 16  # contrastive: 1 positive + 15 negatives
    temperature: float = 0.01
    query_max_len: int = 64
    passage_max_len: int = 160
    save_every: int = 100
    keep_checkpoints: int = 2
    resume: bool = False
    merge: bool = False
    seed: int = 42
    device: str | None = None
    dtype: str | None = None  # None/"auto": bfloat16 on CUDA, float32 on the CPU
    gradient_checkpointing: bool | None = None  # default: on GPU only
    data_source: str = ""
    extra: dict = field(default_factory=dict)


class _Net(nn.Module):
    """One forward for either task, so that DistributedDataParallel sees exactly one forward per backward."""

    def __init__(self, model):
        super().__init__()
        self.lm = model

    def forward(self, pair=None, **kw):
        if pair is None:
            return self.lm(**kw)
        decoder = _decoder(self.lm)  # LoRA layers, when there are any, live inside it
        q_ids, q_mask, p_ids, p_mask = pair
        q = decoder(input_ids=q_ids, attention_mask=q_mask, use_cache=False).last_hidden_state
        p = decoder(input_ids=p_ids, attention_mask=p_mask, use_cache=False).last_hidden_state
        return pool(q), pool(p)


# ---------------------------------------------------------------------------------------------------- set-up
def _device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device:
        return torch.device(cfg.device)
    return torch.device(local_device(local_rank))


def check_training_memory(cfg: TrainConfig, device: torch.device | None = None):
    """What one training step of `cfg` holds (base weights + LoRA weights, gradients and AdamW state + the
    activations kept for the backward pass) against what the device has free; raises `InsufficientMemoryError`
    before the base model is loaded (or downloaded) when it cannot fit."""
    from ..encoder.memory import PROMPT_TOKENS, TrainingShape, check_fits
    from ..encoder.model import dtype_name, resolve_dtype

    dev = device or _device(cfg, launched()[2])
    checkpointing = cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else dev.type == "cuda"
    if cfg.task == "pretext":
        shape = TrainingShape(cfg.batch_size * cfg.cutoff_len, cfg.cutoff_len, cfg.lora_r, checkpointing, True,
                              cfg.full)
    else:
        q, p = cfg.query_max_len + PROMPT_TOKENS, cfg.passage_max_len + PROMPT_TOKENS
        shape = TrainingShape(cfg.batch_size * (q + cfg.group_size * p), p, cfg.lora_r, checkpointing, False, cfg.full)
    dtype = "float32" if cfg.full else dtype_name(resolve_dtype(cfg.dtype, dev))  # full: fp32 master weights
    return check_fits(cfg.base, dtype, str(dev), "train", training=shape)


LORA_LR = 1e-4  # the released fine-tuning recipe's order of magnitude (spec §3: 1e-4 .. 3e-4)
FULL_LR_7B = 1e-5  # LLaRA's full-parameter pretraining of LLaMA-2-7B (spec §2.4)
FULL_LR_MAX = 2e-3
BOW_WEIGHT_SMALL = 3.0  # a small model trained from scratch (benchmarks/adapt_notes.md: 3 beat 1 on 64 × 2)
SMALL_MODEL = 1e9  # parameters under which `--full` training counts as training a small or new model


def default_lr(base: str, full: bool) -> float:
    """Peak learning rate when none is given: LoRA 1e-4; full training 1e-5 at 7B parameters, growing as the model
    shrinks (∝ params^-0.75, capped at 2e-3), because a small model trained from scratch needs far larger steps
    than a 7B model being adapted. benchmarks/adapt.py measured the small end: 2e-3 trained a 4M-parameter model
    well, 1e-3 a 9M one, and 5e-3 collapsed the 9M one."""
    if not full:
        return LORA_LR
    n = model_parameters(base)
    if not n:
        return FULL_LR_7B
    return float(min(FULL_LR_MAX, FULL_LR_7B * (6.7e9 / n) ** 0.75))


def default_bow_weight(base: str, full: bool) -> float:
    """Weight of each bag-of-words loss when none is given: the released 0.1, which adapts a pretrained LLM whose
    next-token loss is already low; for full training of a small model (under 1B parameters, most likely new) the
    next-token loss would drown the retrieval signal: benchmarks/adapt.py measured 3.0 well above 1.0 on a 4M-parameter
    model, and the released 0.1 left a 9M one on the unigram plateau of the bag-of-words losses."""
    n = model_parameters(base) if full else None
    return BOW_WEIGHT_SMALL if n and n < SMALL_MODEL else BOW_WEIGHT_RELEASED


def model_parameters(base: str) -> int | None:
    """Parameter count of a model from its config alone (no weights loaded; the memory check's count, LM head
    included); None when unknown."""
    from ..encoder.memory import count_parameters, load_config

    config = load_config(base)
    try:
        return count_parameters(config, with_lm_head=True) if config else None
    except (KeyError, TypeError, ValueError):
        return None


def checkpoints(output: Path) -> list[Path]:
    return sorted(p for p in (output / "checkpoints").glob("step-*") if (p / STATE_FILE).is_file())


def load_model(cfg: TrainConfig, device: torch.device, resume_from: Path | None):
    """Base causal LM + tokenizer (LLaRA tokens added when missing) + what is trained: a LoRA adapter, or with
    `cfg.full` every weight (as LLaRA's own pretraining does; a small or new model learns little through LoRA,
    whose frozen random embeddings and LM head it cannot change)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from ..encoder.checkpoint import resolve_model_dir, tokenizer_from
    from ..encoder.model import resolve_dtype

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    model_dir = resolve_model_dir(cfg.base)
    if cfg.full and resume_from is not None:
        model_dir = resume_from  # a full checkpoint is a whole model
    start = resume_from or (Path(cfg.adapter) if cfg.adapter else None)
    tokenizer = tokenizer_from(model_dir, start)
    dtype = resolve_dtype(cfg.dtype, device)
    if dtype == torch.float16:
        raise ValueError("float16 cannot train: its gradients underflow without loss scaling; use bfloat16 or float32")
    if cfg.full:  # every weight trains: fp32 master weights (bf16 updates of 1e-5 round away); bf16 matmuls
        dtype = torch.float32  # under autocast on CUDA (see `_autocast`)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, local_files_only=True)
    model.config.use_cache = False
    new_ids: list[int] = []
    if cfg.full and cfg.adapter and resume_from is None:  # continue fully from a LoRA-adapted model
        from peft import PeftModel

        if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tokenizer))
        model = PeftModel.from_pretrained(model, cfg.adapter).merge_and_unload()
    if missing_llara_tokens(tokenizer):
        add_llara_tokens(tokenizer)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        first_new = model.get_input_embeddings().weight.shape[0]
        model.resize_token_embeddings(len(tokenizer))
        new_ids = list(range(first_new, len(tokenizer)))
    if cfg.full:
        trained = model
    elif start is not None:
        from peft import PeftModel

        trained = PeftModel.from_pretrained(model, str(start), is_trainable=True)
    else:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=LORA_TARGETS, task_type="CAUSAL_LM",
                          trainable_token_indices={"embed_tokens": new_ids} if new_ids else None)
        trained = get_peft_model(model, lora)
    if cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else device.type == "cuda":
        trained.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        trained.enable_input_require_grads()
    trained.to(device)
    return trained, tokenizer, new_ids


def _decoder(model):
    """The transformer stack under the LM head (inside the peft wrapper when there is one)."""
    return (model.get_base_model() if hasattr(model, "get_base_model") else model).get_decoder()


def _optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, fused where torch has it: on a CPU the unfused update of a small model's 32k-row embeddings and LM
    head took as long as its forward pass."""
    try:
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _autocast(cfg: TrainConfig, device: torch.device):
    """bf16 matmuls over fp32 weights for full training on CUDA; LoRA's base is already bf16 there."""
    from contextlib import nullcontext

    if cfg.full and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


# ---------------------------------------------------------------------------------------------------- the loop
def train(cfg: TrainConfig, examples: Sequence, *, show_progress: bool = True,
          on_step: Callable[[int, dict], None] | None = None,
          on_checkpoint: Callable[..., None] | None = None) -> dict:
    """Train on `examples` ((text, next_text) pairs for pretext, `Example`s for contrastive); returns the card.

    `on_checkpoint(step, model, tokenizer, final=False)`: called on the first process after each checkpoint and
    once more with the final weights (the held-out check scores them there; train/checked.py)."""
    if not examples:
        raise ValueError("no training examples")
    rank, world, local_rank = init_distributed()
    device = _device(cfg, local_rank)
    output = Path(cfg.output)
    resume_from = None
    if cfg.resume:
        found = checkpoints(output)
        if not found:
            raise FileNotFoundError(f"--resume: no checkpoint under {output / 'checkpoints'}; start without --resume")
        resume_from = found[-1]
    torch.manual_seed(cfg.seed)
    memory = check_training_memory(cfg, device)
    model, tokenizer, new_ids = load_model(cfg, device, resume_from)
    prompt = PromptIds.for_tokenizer(tokenizer)
    if cfg.task == "pretext" and cfg.ebar_target == "following":
        visible = cfg.cutoff_len - len(prompt.prefix) - len(prompt.ebae_suffix) - len(prompt.ebar_suffix)
        examples = following_text(examples, tokenizer, visible)
    net: nn.Module = _Net(model)
    if world > 1:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    per_step = cfg.batch_size * world * cfg.grad_accum
    steps_per_epoch = max(1, math.ceil(len(examples) / per_step))
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _optimizer(params, cfg)
    warmup = int(cfg.warmup_ratio * total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
    step, history, seconds_before = 0, [], 0.0
    if resume_from is not None:
        state = torch.load(resume_from / STATE_FILE, weights_only=False)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, history, seconds_before = state["step"], state["history"], state.get("seconds", 0.0)
        random.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])

    def batch_at(micro: int) -> list:
        """Micro-batch `micro` of this rank: epochs are seeded permutations, so a resume sees the same data."""
        per_global = cfg.batch_size * world
        per_epoch = max(1, math.ceil(len(examples) / per_global))
        epoch, j = divmod(micro, per_epoch)
        order = np.random.default_rng(cfg.seed + epoch).permutation(len(examples))
        idx = [order[(j * per_global + rank * cfg.batch_size + i) % len(examples)] for i in range(cfg.batch_size)]
        return [examples[i] for i in idx]

    rng = random.Random(cfg.seed + 1000 * rank + step)
    bar = None
    if show_progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=step, desc=f"train ({cfg.task})", unit="step", dynamic_ncols=True)
    net.train()
    t0, tokens = time.perf_counter(), 0
    try:
        while step < total:
            logs: dict[str, float] = {}
            for micro in range(cfg.grad_accum):
                chunk = batch_at(step * cfg.grad_accum + micro)
                if cfg.task == "pretext":
                    batch = build_pretext_batch(tokenizer, prompt, [a for a, _ in chunk], [b for _, b in chunk],
                                                cfg.cutoff_len, cfg.remove_stopwords,
                                                next(model.parameters()).dtype)
                    with _autocast(cfg, device):
                        out = pretext_forward(net, batch, cfg.loss, cfg.bow_weight)
                    tokens += batch.tokens
                else:
                    with _autocast(cfg, device):
                        out = contrastive_loss(net, prompt, tokenizer, chunk, cfg.group_size, rng,
                                               cfg.query_max_len, cfg.passage_max_len, cfg.temperature)
                    tokens += out.pop("tokens")
                (out["total"] / cfg.grad_accum).backward()
                for k, v in out.items():
                    logs[k] = logs.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v) / cfg.grad_accum
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            logs.update(step=step, lr=sched.get_last_lr()[0], grad_norm=float(grad_norm))
            history.append({k: round(v, 6) if isinstance(v, float) else v for k, v in logs.items()})
            elapsed = time.perf_counter() - t0
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{logs['total']:.4f}", tok_s=f"{tokens * world / max(elapsed, 1e-9):.0f}")
            if on_step is not None:
                on_step(step, logs)
            if cfg.save_every and step % cfg.save_every == 0 and step < total:
                _save_checkpoint(cfg, model, tokenizer, opt, sched, step, history,
                                 seconds_before + elapsed, rank, world)
                if on_checkpoint is not None and rank == 0:
                    on_checkpoint(step, model, tokenizer)
            crash_point("train-step")
    except KeyboardInterrupt:
        path = _save_checkpoint(cfg, model, tokenizer, opt, sched, step, history,
                                seconds_before + time.perf_counter() - t0, rank, world)
        raise TrainingInterrupted(f"interrupted at step {step}/{total}; checkpoint saved to {path}; continue with "
                                  "the same command and --resume") from None
    finally:
        if bar is not None:
            bar.close()
    seconds = seconds_before + time.perf_counter() - t0
    if on_checkpoint is not None and rank == 0:
        on_checkpoint(step, model, tokenizer, final=True)
    card = {
        "task": cfg.task, "base": cfg.base, "started_from_adapter": cfg.adapter, "resumed_from": str(resume_from)
        if resume_from else None, "data": {"source": cfg.data_source, "examples": len(examples)},
        "steps": step, "epochs": round(step * per_step / len(examples), 3), "world_size": world,
        "batch_size": cfg.batch_size, "grad_accum": cfg.grad_accum, "lr": cfg.lr, "warmup_steps": warmup,
        "dtype": str(next(p.dtype for p in model.parameters())).removeprefix("torch."),
        "device": str(device), "memory": memory.to_dict(),
        "full": cfg.full, "loss": cfg.loss if cfg.task == "pretext" else "infonce",
        "lora": None if cfg.full else {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout,
                                       "targets": LORA_TARGETS},
        "new_token_ids": new_ids, "loss_first": history[0]["total"] if history else None,
        "loss_last": history[-1]["total"] if history else None, "seconds": round(seconds, 2),
        "tokens_per_second": round(tokens * world / max(time.perf_counter() - t0, 1e-9), 1),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "history": history,
    }
    if rank == 0:
        _save_final(cfg, model, tokenizer, card)
    if world > 1:
        dist.barrier()
    return card


# ---------------------------------------------------------------------------------------------------- files
def _save_checkpoint(cfg, model, tokenizer, opt, sched, step, history, seconds, rank, world) -> Path:
    """Written to a temporary folder then renamed: a crash mid-save leaves the previous checkpoint intact."""
    path = Path(cfg.output) / "checkpoints" / f"step-{step:07d}"
    if rank == 0:
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        torch.save({"step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "history": history, "seconds": seconds, "python_rng": random.getstate(),
                    "torch_rng": torch.get_rng_state()}, tmp / STATE_FILE)
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
        for old in checkpoints(Path(cfg.output))[:-cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
    if world > 1:
        dist.barrier()
    return path


def _save_final(cfg: TrainConfig, model, tokenizer, card: dict) -> None:
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "training_card.json").write_text(json.dumps(card, indent=2) + "\n")
    lines = [f"# Training card ({card['task']})", "", f"- base model: `{card['base']}`",
             f"- data: {card['data']['source']} ({card['data']['examples']} examples)",
             f"- steps: {card['steps']} ({card['epochs']} epochs), batch {card['batch_size']} × accumulation "
             f"{card['grad_accum']} × {card['world_size']} process(es), lr {card['lr']}",
             "- every weight trained (full)" if cfg.full else
             f"- LoRA r={cfg.lora_r} α={cfg.lora_alpha} dropout={cfg.lora_dropout} on {', '.join(LORA_TARGETS)}",
             f"- weights in {card['dtype']} on {card['device']}" + ("" if cfg.full else " (LoRA weights in float32)"),
             f"- loss ({card['loss']}): {card['loss_first']} → {card['loss_last']}",
             f"- time: {card['seconds']} s, {card['tokens_per_second']} tokens/s", ""]
    if cfg.full:
        lines.append(f"Use it: this folder is a whole model: `llara-search ingest DOCS --model {out} --index NEW` or "
                     f"`llara-search reencode --model {out}` (existing index of the same tokenizer and width).")
    else:
        lines.append(f"Use it: `llara-search ingest DOCS --model {card['base']} --adapter {out}` (new index) or "
                     f"`llara-search reencode --adapter {out}` (existing index).")
    (out / "TRAINING.md").write_text("\n".join(lines) + "\n")
    if cfg.merge and not cfg.full:
        merged = model.merge_and_unload()
        merged.save_pretrained(out / "merged")
        tokenizer.save_pretrained(out / "merged")


__all__ = ["LORA_TARGETS", "TrainConfig", "TrainingInterrupted", "check_training_memory", "checkpoints",
           "default_bow_weight", "default_lr",
           "load_model", "model_parameters", "train"]
