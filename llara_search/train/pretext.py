"""LLaRA's unsupervised pretext loss (llara-spec §2): EBAE + EBAR bag-of-words plus next-token loss, one pass.

Each sample is laid out as `prefix + text + EBAE suffix + EBAR suffix`, left-padded. A 4-D mask hides the EBAE
suffix from the EBAR suffix and the EBAR suffix re-uses the EBAE suffix's positions, so one forward pass equals
two causal passes (`prefix+text+EBAE` and `prefix+text+EBAR`) at the cost of one. The loss follows the released
code, not the paper's prose: the next-token loss on the text, max-pooled logits and the ÷10 are what keep the
embeddings from collapsing (spec §5, issue #538).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ..encoder.prompts import N_POOL, PromptIds, tokenize_texts
from ..store.stopwords import STOPWORDS

BOW_SCALE = 10.0  # the released code divides each bag-of-words term by 10
BOW_WEIGHT = 1.0 / BOW_SCALE
TARGET_MIN_ID = 2  # unk/pad 0, BOS 1, EOS 2 are never targets
_NON_WORD = re.compile(r"[\W_]+")
_EXTRA_STOP = frozenset({"!", ",", ".", "?"})
LOSSES = ("llara", "causal")  # EBAE + EBAR + next-token (the method) | next-token alone (the baseline)


@dataclass
class PretextBatch:
    input_ids: torch.Tensor  # (B, L), left padded
    attention_mask: torch.Tensor  # (B, 1, L, L) additive float mask
    position_ids: torch.Tensor  # (B, L)
    labels: torch.Tensor  # (B, L): text ids, -100 elsewhere (next-token loss)
    ebae_targets: list[list[int]]
    ebar_targets: list[list[int]]
    n_ebae: int  # EBAE suffix length (19 with the LLaMA-2 tokenizer)
    n_ebar: int  # EBAR suffix length (18)

    @property
    def tokens(self) -> int:
        return int((self.labels != -100).sum()) + self.input_ids.shape[0] * (self.n_ebae + self.n_ebar)


def bow_targets(tokenizer, texts: Sequence[str], cutoff_len: int, remove_stopwords: bool) -> list[list[int]]:
    """Unique target ids (> 2) of each text: punctuation and NLTK stopwords removed first when asked."""
    if remove_stopwords:
        texts = [" ".join(w for w in _NON_WORD.sub(" ", t).split() if w.lower() not in STOPWORDS
                          and w not in _EXTRA_STOP) for t in texts]
    enc = tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=cutoff_len)["input_ids"]
    return [sorted({int(i) for i in ids if i > TARGET_MIN_ID}) for ids in enc]


def build_pretext_batch(tokenizer, prompt: PromptIds, texts: Sequence[str], next_texts: Sequence[str],
                        cutoff_len: int = 128, remove_stopwords: bool = True,
                        dtype: torch.dtype = torch.float32) -> PretextBatch:
    if len(texts) != len(next_texts):
        raise ValueError("texts and next_texts must have the same length")
    n_ebae, n_ebar = len(prompt.ebae_suffix), len(prompt.ebar_suffix)
    budget = cutoff_len - len(prompt.prefix) - n_ebae - n_ebar
    if budget < 1:
        raise ValueError(f"--cutoff-len {cutoff_len} leaves no room for text after the two prompts")
    text_ids = tokenize_texts(tokenizer, texts, budget)
    seqs = [prompt.prefix + ids + prompt.ebae_suffix + prompt.ebar_suffix for ids in text_ids]
    L = max(len(s) for s in seqs)
    B = len(seqs)
    ids = torch.full((B, L), prompt.pad_id, dtype=torch.long)
    labels = torch.full((B, L), -100, dtype=torch.long)
    keep = torch.zeros((B, L), dtype=torch.bool)
    for r, (s, t) in enumerate(zip(seqs, text_ids)):
        pad = L - len(s)
        ids[r, pad:] = torch.tensor(s)
        keep[r, pad:] = True
        start = pad + len(prompt.prefix)
        labels[r, start:start + len(t)] = torch.tensor(t, dtype=torch.long)
    allowed = torch.tril(torch.ones(L, L, dtype=torch.bool))[None] & keep[:, None, :]
    allowed[:, L - n_ebar:, L - n_ebar - n_ebae:L - n_ebar] = False  # EBAR never sees the EBAE suffix
    mask = torch.zeros((B, 1, L, L), dtype=dtype).masked_fill(~allowed[:, None], torch.finfo(dtype).min)
    pos = torch.arange(L).repeat(B, 1)
    ebae_start = L - n_ebar - n_ebae
    pos[:, L - n_ebar:] = pos[:, ebae_start:ebae_start + n_ebar]  # EBAR takes the EBAE suffix's positions
    return PretextBatch(ids, mask, pos, labels, bow_targets(tokenizer, texts, cutoff_len, remove_stopwords),
                        bow_targets(tokenizer, next_texts, cutoff_len, remove_stopwords), n_ebae, n_ebar)


def bow_loss(logits: torch.Tensor, targets: list[list[int]], weight: float = BOW_WEIGHT) -> torch.Tensor:
    """−mean log-softmax(max over the 8 special positions) at each sample's unique targets, batch mean, × weight
    (÷10 as released)."""
    logp = torch.log_softmax(logits.max(dim=1).values, dim=-1)  # (B, V)
    per_sample = [-logp[b, torch.tensor(t, device=logits.device)].mean() for b, t in enumerate(targets) if t]
    if not per_sample:
        return logits.new_zeros(())
    return torch.stack(per_sample).mean() * weight


def pretext_forward(model, batch: PretextBatch, loss: str = "llara", bow_weight: float = BOW_WEIGHT
                    ) -> dict[str, torch.Tensor]:
    """Losses of one batch; `model` is a causal LM (LlamaForCausalLM, possibly wrapped by peft or DDP).

    Logits are computed only where a loss reads them (the positions that predict a text token, and the 16 special
    positions): the LM head over the whole vocabulary at every position was most of a small model's step, and
    the prompt positions' logits were thrown away. `loss="causal"` keeps the next-token term alone (the "plain
    LLM" baseline of the paper): same batches, same forward, no bag-of-words terms.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {loss!r}")
    dev = next(model.parameters()).device
    labels = batch.labels.to(dev)
    L = labels.shape[1]
    predicts_text = (labels[:, 1:] != -100).any(dim=0).nonzero().flatten()  # position j predicts token j + 1
    ebae_pos = torch.arange(L - batch.n_ebar - N_POOL, L - batch.n_ebar, device=dev)  # <s1>…<s8>
    ebar_pos = torch.arange(L - N_POOL, L, device=dev)  # <s9>…<s16>
    keep = torch.cat([predicts_text, ebae_pos, ebar_pos])
    out = model(input_ids=batch.input_ids.to(dev), attention_mask=batch.attention_mask.to(dev),
                position_ids=batch.position_ids.to(dev), use_cache=False, logits_to_keep=keep)
    logits = out.logits.float()
    ar_rows, ebae_rows, ebar_rows = torch.split(logits, [len(predicts_text), N_POOL, N_POOL], dim=1)
    ar = F.cross_entropy(ar_rows.reshape(-1, logits.shape[-1]), labels[:, predicts_text + 1].reshape(-1),
                         ignore_index=-100)
    ebae = bow_loss(ebae_rows, batch.ebae_targets, bow_weight)
    ebar = bow_loss(ebar_rows, batch.ebar_targets, bow_weight)
    if loss == "causal":
        return {"total": ar, "ar": ar, "ebae": ebae.detach(), "ebar": ebar.detach()}
    n_bow = int(any(batch.ebae_targets)) + int(any(batch.ebar_targets))
    total = ar + (ebae + ebar) / max(1, n_bow)
    return {"total": total, "ar": ar, "ebae": ebae, "ebar": ebar}


def pretext_loss(model, tokenizer, texts: Sequence[str], next_texts: Sequence[str], cutoff_len: int = 128,
                 remove_stopwords: bool = True, loss: str = "llara", bow_weight: float = BOW_WEIGHT
                 ) -> dict[str, torch.Tensor]:
    """The loss the trainer optimizes, public so that it can be checked against the spec (keys: total, ar, ebae,
    ebar). `texts[i]` is a chunk (EBAE target: its own words); `next_texts[i]` the chunk after it (EBAR target),
    or "" when there is none."""
    prompt = PromptIds.for_tokenizer(tokenizer)
    dtype = next(model.parameters()).dtype
    batch = build_pretext_batch(tokenizer, prompt, texts, next_texts, cutoff_len, remove_stopwords,
                                dtype if dtype.is_floating_point else torch.float32)
    return pretext_forward(model, batch, loss, bow_weight)


__all__ = ["LOSSES", "PretextBatch", "bow_loss", "bow_targets", "build_pretext_batch", "pretext_forward", "pretext_loss"]
