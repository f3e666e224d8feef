"""Contrastive fine-tuning loss (llara-spec §3): InfoNCE over normalized LLaRA embeddings, τ = 0.01.

Each query comes with a group of passages: its positive first, then hard negatives; every other query's group in
the batch (and, under torchrun, on every other rank) serves as further negatives. The target of query i is
passage i·G of the gathered list, as in the released code; the loss is not multiplied by the world size.
"""

from __future__ import annotations

import random
from typing import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..encoder.prompts import N_POOL, PromptIds, build_inputs, pad_left, tokenize_texts
from .data import Example

TEMPERATURE = 0.01


def pack(prompt: PromptIds, tokenizer, texts: Sequence[str], kind: str,
         max_text_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ids and mask exactly as the encoder builds them (spec §1: prompt, left padding to a multiple of 8)."""
    return pad_left(build_inputs(prompt, tokenize_texts(tokenizer, list(texts), max_text_tokens), kind),
                    prompt.pad_id)


def pool(hidden: torch.Tensor) -> torch.Tensor:
    """Mean of the last 8 final hidden states, L2-normalized: the embedding, with gradients."""
    return F.normalize(hidden[:, -N_POOL:].float().mean(dim=1), dim=-1)


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' rows; the local copy keeps its gradient (others are constants), as in the released code."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts)


def make_groups(examples: Sequence[Example], group_size: int, rng: random.Random) -> list[str]:
    """One positive (random choice) + group_size−1 negatives per example, sampled without replacement from its
    negatives (repeated when too few, as the released code does; other examples' positives when it has none)."""
    passages = []
    need = group_size - 1
    for i, ex in enumerate(examples):
        passages.append(rng.choice(ex.pos))
        if need <= 0:
            continue
        pool = ex.neg or [p for j, e in enumerate(examples) if j != i for p in e.pos] or ex.pos
        if len(pool) < need:
            pool = pool * (need // len(pool) + 1)
        passages.extend(rng.sample(pool, need))
    return passages


def contrastive_loss(net, prompt: PromptIds, tokenizer, examples: Sequence[Example], group_size: int,
                     rng: random.Random, query_max_len: int = 64, passage_max_len: int = 160,
                     temperature: float = TEMPERATURE) -> dict[str, torch.Tensor]:
    """`net(pair=(q_ids, q_mask, p_ids, p_mask))` returns (query, passage) embeddings in one forward call, so
    that DistributedDataParallel sees one forward per backward."""
    q = pack(prompt, tokenizer, [e.query for e in examples], "query",
             query_max_len - len(prompt.prefix) - len(prompt.ebar_suffix))
    p = pack(prompt, tokenizer, make_groups(examples, group_size, rng), "passage",
             passage_max_len - len(prompt.prefix) - len(prompt.ebae_suffix))
    dev = next(net.parameters()).device
    q_emb, p_emb = net(pair=tuple(t.to(dev) for t in (*q, *p)))
    q_all, p_all = gather_with_grad(q_emb), gather_with_grad(p_emb)
    scores = q_all @ p_all.T / temperature
    target = torch.arange(len(q_all), device=scores.device) * group_size
    loss = F.cross_entropy(scores, target)
    acc = (scores.argmax(dim=1) == target).float().mean()
    return {"total": loss, "accuracy": acc.detach(), "tokens": int(q[1].sum() + p[1].sum())}


__all__ = ["TEMPERATURE", "contrastive_loss", "gather_with_grad", "make_groups", "pack", "pool"]
