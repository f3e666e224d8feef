"""The one batching loop of everything that runs a model over many inputs (the encoder, the rerankers): longest
first, as many inputs as fit a token budget (padding is paid per batch, so like lengths go together), and on CUDA out
of memory the same batch again at half the size instead of a failed ingest or query."""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)


def round_up(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


def forward_in_batches(lengths: Sequence[int], forward: Callable[[list[int]], np.ndarray], out: np.ndarray, *,
                       max_tokens: int, max_batch: int, pad_to: int = 8,
                       before_batch: Callable[[int], None] | None = None,
                       after_batch: Callable[[int], None] | None = None) -> None:
    """Fill `out[i]` with `forward(indices)`'s rows for every input. `before_batch(done)` may raise to stop (a
    deadline); `after_batch(n)` is told how many inputs a batch finished (a progress bar)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    budget, cap, pos = max_tokens, max_batch, 0
    while pos < len(order):
        if before_batch is not None:
            before_batch(pos)
        longest = round_up(lengths[order[pos]], pad_to)
        n = max(1, min(cap, budget // longest, len(order) - pos))
        idx = order[pos:pos + n]
        try:
            out[idx] = forward(idx)
        except torch.cuda.OutOfMemoryError:
            if n == 1:
                raise
            torch.cuda.empty_cache()
            budget, cap = max(longest, (n // 2) * longest), max(1, n // 2)
            log.warning("CUDA out of memory at %d inputs x %d tokens; retrying with %d", n, longest, cap)
            continue
        pos += n
        if after_batch is not None:
            after_batch(n)
