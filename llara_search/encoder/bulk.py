"""Bulk encoding as a pipeline: the next window of texts is tokenized while the model works on this one, batches
are built and launched without waiting for the device, and the vectors come back to the host once per window.

Why: on a GPU the forward is asynchronous, so every per-batch `.cpu()` (and the NaN check on it) stalls the host
until the device is idle, and the device then idles while the host pads and copies the next batch. Keeping the
batch outputs on the device until the window is done lets the host prepare batch i+1 while batch i runs.

Why the vectors do not change: each batch is the same left-padded, multiple-of-8, length-sorted batch the eager loop
built (batching.forward_in_batches), through the same pooled forward (forward.py); windows only bound how far the
length sort looks, which changes batch partners, and an embedding does not depend on them (tests/test_encoder.py).
Attention: SDPA with the padding mask (fast_load builds models with `attn_implementation="sdpa"`); packing unpadded
sequences (varlen) needs flash-attention kernels, which this environment does not have, and would move the
pooled positions: not used.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np
import torch

from .batching import forward_in_batches
from .forward import pooled_embeddings
from .prompts import build_inputs, pad_left, tokenize_texts

WINDOW = 2048  # texts per window: the length sort looks this far, the next window is tokenized meanwhile


class _DeviceRows:
    """`rows[idx] = batch_vectors`, kept on the device: no host sync per batch."""

    def __init__(self, n: int, dim: int, device: torch.device):
        self.device = device
        self.t = torch.empty((n, dim), dtype=torch.float32, device=device)

    def __setitem__(self, idx: list[int], rows: torch.Tensor) -> None:
        self.t[torch.as_tensor(idx, device=self.device)] = rows


def sequences(encoder, texts: Sequence[str], kind: str) -> list[list[int]]:
    return build_inputs(encoder.prompt, tokenize_texts(encoder.tokenizer, texts, encoder.max_length), kind)


def encode(encoder, texts: Sequence[str], kind: str, *, batch_size: int | None = None,
           seqs: list[list[int]] | None = None, window: int | None = None,
           after_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Vectors of `texts` (in order), `encoder.max_batch_tokens` per batch. `seqs`: their token ids when the caller
    already has them."""
    n = len(texts)
    out = np.zeros((n, encoder.dim), dtype=np.float32)
    if n == 0:
        return out
    window = window or WINDOW
    starts = list(range(0, n, window))
    pin = encoder.device.type == "cuda"

    @torch.inference_mode()
    def forward(batch: list[list[int]]) -> torch.Tensor:
        ids, mask = pad_left(batch, encoder.prompt.pad_id)
        if pin:
            ids, mask = ids.pin_memory(), mask.pin_memory()
        return pooled_embeddings(encoder.model, ids.to(encoder.device, non_blocking=pin),
                                 mask.to(encoder.device, non_blocking=pin))

    with ThreadPoolExecutor(1, thread_name_prefix="llara-tokenize") as pool:
        def tokenized(start: int) -> Future:
            if seqs is not None:
                done: Future = Future()
                done.set_result(seqs[start:start + window])
                return done
            return pool.submit(sequences, encoder, texts[start:start + window], kind)

        pending = tokenized(starts[0])
        for i, start in enumerate(starts):
            part = pending.result()
            if i + 1 < len(starts):
                pending = tokenized(starts[i + 1])  # the next window tokenizes while the model works on this one
            rows = _DeviceRows(len(part), encoder.dim, encoder.device)
            forward_in_batches([len(x) for x in part], lambda idx: forward([part[j] for j in idx]), rows,
                               max_tokens=encoder.max_batch_tokens, max_batch=batch_size or 256,
                               after_batch=after_batch)
            out[start:start + len(part)] = encoder._checked(rows.t.cpu().numpy())
    return out
