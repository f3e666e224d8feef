"""torch.distributed for `ingest`, `reencode` and training, when launched by `torchrun --nproc-per-node N`.

Encoding is where a 7B model spends an ingest's time, so that is what is spread: rank 0 runs the ingest as a
single process would (walking, parsing, chunking, the database, the vector store, the FAISS generation: one
writer, the same crash-safety), and every batch it would encode is shared out: each process encodes a length-
balanced share on its own device and rank 0 puts the vectors back in order. The chunk ids, rows and generations
are therefore exactly those of a single-process ingest, and each vector equals it within float tolerance.

Messages from rank 0 are (kind, payload) pairs broadcast to all: ("load", encoder spec), ("encode", texts),
("stop", None).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np


def launched() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment, without importing torch."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def init() -> tuple[int, int, int]:
    """(rank, world size, local rank); joins the process group (NCCL on GPUs, gloo on CPUs) when under torchrun."""
    rank, world, local_rank = launched()
    if world > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            if torch.cuda.is_available():
                torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    return rank, world, local_rank


def local_device(local_rank: int) -> str:
    import torch

    return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"


def share(texts: Sequence[str], rank: int, world: int) -> list[int]:
    """Indices of the texts `rank` encodes: dealt round-robin by length, so every share has similar work."""
    order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
    return order[rank::world]


class EncodePool:
    """Rank 0's side: every process (rank 0 included) encodes a share of each batch."""

    def __init__(self, world: int):
        self.world = world
        self.encoder = None
        self.spec: dict | None = None

    def _send(self, kind: str, payload) -> None:
        import torch.distributed as dist

        message = [(kind, payload)]
        dist.broadcast_object_list(message, src=0)

    def load(self, encoder, spec: dict) -> None:
        """Workers load the same model and adapter (`spec`: LlaraEncoder.from_pretrained arguments)."""
        if self.spec != spec:
            self._send("load", spec)
            self.encoder, self.spec = encoder, spec

    def encode_passages(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        import torch.distributed as dist

        texts = list(texts)
        self._send("encode", (texts, batch_size))
        mine = share(texts, 0, self.world)
        vecs = _encode(self.encoder, [texts[i] for i in mine], batch_size)
        parts: list = [None] * self.world
        dist.gather_object((mine, vecs), parts, dst=0)
        out = np.empty((len(texts), vecs.shape[1]), np.float32)
        for idx, v in parts:
            if len(idx):
                out[np.asarray(idx)] = v
        return out

    def stop(self) -> None:
        import torch.distributed as dist

        self._send("stop", None)
        dist.destroy_process_group()


def serve_encodes(rank: int, world: int, local_rank: int) -> None:
    """A worker's whole life: load what rank 0 says, encode its share of each batch, stop when told."""
    import torch.distributed as dist

    from .encoder.model import LlaraEncoder

    encoder = None
    while True:
        message = [None]
        dist.broadcast_object_list(message, src=0)
        kind, payload = message[0]
        if kind == "stop":
            dist.destroy_process_group()
            return
        if kind == "load":
            encoder = LlaraEncoder.from_pretrained(**payload, device=local_device(local_rank), show_progress=False)
            continue
        texts, batch_size = payload
        mine = share(texts, rank, world)
        dist.gather_object((mine, _encode(encoder, [texts[i] for i in mine], batch_size)), None, dst=0)


def _encode(encoder, texts: list[str], batch_size: int | None) -> np.ndarray:
    if not texts:
        return np.zeros((0, encoder.dim), np.float32)
    return encoder.encode_passages(texts, batch_size)
