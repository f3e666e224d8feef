"""The static-shape query path: queries padded into a few (batch, length) buckets and run through `torch.compile`.

Why: a query is a few dozen tokens, so an eager forward of a 7B model is dominated by per-kernel launch cost, not
by arithmetic. With fixed shapes the whole forward can be compiled once per bucket (and on CUDA captured as a CUDA
graph by `mode="reduce-overhead"`), which removes that cost. Why it does not change a vector: extra left padding only
shifts positions, RoPE is relative and the mask hides the pads (llara-spec §1), and the padding rows added to fill a
batch bucket are copies of a real query whose outputs are dropped.

Shapes outside the buckets, and any failure to compile, fall back to the eager forward; each is said once in the log.
Compiled calls run on one worker thread: CUDA graphs belong to the thread that captured them, and the server calls
the encoder from a pool of threads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
import torch

from .forward import pooled_embeddings

log = logging.getLogger(__name__)

# Query lengths in tokens with the prompt (2 prefix + 18 suffix): 32 holds 12 text tokens, 64 holds 44 (the spec's
# fine-tuning budget), 128 holds 108; longer queries are rare and run eager.
DEFAULT_LENGTHS = (32, 64, 128)
DEFAULT_BATCHES = (1, 8, 32)
ENV = "LLARA_SEARCH_COMPILE_QUERIES"  # auto (CUDA only) | on | off
BUCKETS_ENV = "LLARA_SEARCH_QUERY_BUCKETS"  # LENGTHSxBATCHES, e.g. 32,64,128x1,8,32 (the default)


def wanted(device: torch.device) -> bool:
    """Whether `serve` compiles the query path: by default on CUDA only, where it pays (launch-bound); on the CPU
    compiling every bucket of a 7B model costs minutes at start-up for a gain measured in benchmarks/RESULTS.md."""
    value = os.environ.get(ENV, "auto").strip().lower()
    if value in {"1", "on", "true", "yes"}:
        return True
    if value in {"0", "off", "false", "no"}:
        return False
    if value != "auto":
        log.warning("%s=%r is not one of auto, on, off; using auto", ENV, value)
    return device.type == "cuda"


def buckets_from_env() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(lengths, batches) from LLARA_SEARCH_QUERY_BUCKETS, the defaults when unset or malformed (said in the log)."""
    value = os.environ.get(BUCKETS_ENV, "").strip()
    if not value:
        return DEFAULT_LENGTHS, DEFAULT_BATCHES
    try:
        lengths, batches = value.lower().split("x")
        out = tuple(int(x) for x in lengths.split(",")), tuple(int(x) for x in batches.split(","))
        if min(out[0] + out[1]) < 1 or max(out[0]) > 4096 or max(out[1]) > 1024:
            raise ValueError
        return out
    except ValueError:
        log.warning("%s=%r is not LENGTHSxBATCHES (e.g. 32,64,128x1,8,32); using the defaults", BUCKETS_ENV, value)
        return DEFAULT_LENGTHS, DEFAULT_BATCHES


def prepare_for_serving(encoder) -> None:
    """What `serve` does once the model is loaded: compile and warm every query bucket when wanted (so that no
    request pays for compiling), and say on stderr what it took."""
    import sys

    if not wanted(encoder.device):
        return
    lengths, batches = buckets_from_env()
    path = encoder.compile_queries(lengths=lengths, batches=batches, warm=False)
    took = path.warm()
    if path.failed is None:
        print(f"compiled {len(path._warm)} query shapes in {took:.1f} s ({path.mode}): up to {max(batches)} queries "
              f"of up to {max(lengths)} tokens at a time", file=sys.stderr, flush=True)
    else:
        print(f"queries run eager: compiling failed ({path.failed})", file=sys.stderr, flush=True)


class StaticQueryPath:
    """Encodes query token sequences through compiled fixed-shape forwards; `encode` returns None when the eager
    path must do it (too long, compile failed)."""

    def __init__(self, model, *, device: torch.device, pad_id: int, lengths: Sequence[int] = DEFAULT_LENGTHS,
                 batches: Sequence[int] = DEFAULT_BATCHES, mode: str | None = None):
        self.model = model
        self.device = device
        self.pad_id = int(pad_id)
        self.lengths = tuple(sorted({int(x) for x in lengths}))
        self.batches = tuple(sorted({int(x) for x in batches}))
        if not self.lengths or not self.batches or min(self.lengths + self.batches) < 1:
            raise ValueError("buckets need at least one positive length and one positive batch size")
        self.mode = mode or ("reduce-overhead" if device.type == "cuda" else "default")
        self.failed: str | None = None  # why compiled calls are off for good (said once in the log)
        self._told_outside = False
        self._warm: set[tuple[int, int]] = set()
        self.calls = 0  # compiled forwards run (observable for tests and benchmarks)
        # One guard set per bucket shape (dynamic=False), so the recompile limit must allow one per bucket
        need = len(self.lengths) * len(self.batches) + 8
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, need)
        torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit,
                                                                 4 * need)
        self._compiled = torch.compile(self._pooled, mode=self.mode, dynamic=False)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="llara-query")
        self._lock = threading.Lock()

    def _pooled(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return pooled_embeddings(self.model, ids, mask)

    # ------------------------------------------------------------------------------------------------ shapes
    def bucket(self, n: int, longest: int) -> tuple[int, int] | None:
        """(batch, length) of the smallest bucket holding `n` sequences of at most `longest` tokens (n may exceed
        the largest batch: `encode` splits), or None when `longest` is beyond every length bucket."""
        length = next((x for x in self.lengths if x >= longest), None)
        if length is None:
            return None
        return next((b for b in self.batches if b >= n), self.batches[-1]), length

    def pack(self, seqs: Sequence[Sequence[int]], batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-pad to `length` and fill the batch up to `batch` rows with copies of the last sequence."""
        ids = torch.full((batch, length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((batch, length), dtype=torch.long)
        for row in range(batch):
            s = seqs[min(row, len(seqs) - 1)]
            ids[row, length - len(s):] = torch.tensor(list(s), dtype=torch.long)
            mask[row, length - len(s):] = 1
        return ids, mask

    # ------------------------------------------------------------------------------------------------ running
    def encode(self, seqs: Sequence[Sequence[int]]) -> np.ndarray | None:
        if self.failed is not None or not seqs:
            return None
        longest = max(len(s) for s in seqs)
        if self.bucket(len(seqs), longest) is None:
            if not self._told_outside:
                self._told_outside = True
                log.info("a query of %d tokens is longer than the compiled buckets (%s): such queries run eager",
                         longest, ", ".join(map(str, self.lengths)))
            return None
        out = []
        step = self.batches[-1]
        for start in range(0, len(seqs), step):
            part = seqs[start:start + step]
            batch, length = self.bucket(len(part), max(len(s) for s in part))
            vecs = self._run(*self.pack(part, batch, length))
            if vecs is None:
                return None
            out.append(vecs[:len(part)])
        return np.concatenate(out)

    def _run(self, ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray | None:
        try:
            return self._worker.submit(self._call, ids, mask).result()
        except Exception as exc:  # noqa: BLE001 - any compiler or backend error: the eager path still works
            self.failed = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
            log.warning("the compiled query path failed (%s); queries run eager from now on", self.failed)
            return None

    @torch.inference_mode()
    def _call(self, ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        if self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # the previous call's outputs were already copied out
        emb = self._compiled(ids.to(self.device), mask.to(self.device))
        self.calls += 1
        self._warm.add(tuple(ids.shape))
        return emb.cpu().numpy()

    def warm(self) -> float:
        """Compile every bucket now (seconds taken), so that no request pays for it; stops at the first failure."""
        t = time.perf_counter()
        for batch in self.batches:
            for length in self.lengths:
                if self.failed is not None:
                    break
                if (batch, length) in self._warm:
                    continue
                seq = [self.pad_id + 1] * (length - 1)  # one pad on the left, like a real query's mask
                self._run(*self.pack([seq], batch, length))
        took = time.perf_counter() - t
        if self.failed is None:
            log.info("compiled %d query shapes in %.1f s (%s mode)", len(self._warm), took, self.mode)
        return took

    def close(self) -> None:
        self._worker.shutdown(wait=False)
