"""`LlaraEncoder`: exact LLaRA embeddings (llara-spec §1), batched for speed without changing a single value.

Speed comes from tokenizing once and grouping texts of similar length (less padding), never from changing the
computation: left padding, positions 0..L-1 and the last-8 mean pooling are the same as the reference README code,
so an embedding does not depend on its batch partners (beyond float noise).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import bulk
from .checkpoint import (DEFAULT_MODEL, files_fingerprint, load_tokenizer, make_fingerprint, model_load_error,
                         resolve_model_dir)
from .memory import CPU_BATCH_TOKENS, CUDA_BATCH_TOKENS, Estimate, check_fits, resolve_dtype_name
from .prompts import PromptIds

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class EncoderOutputError(FloatingPointError):
    """The model produced NaN or inf embeddings (broken weights, or fp16 overflow)."""


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """`auto`: bfloat16 on CUDA, float32 elsewhere (memory.resolve_dtype_name says why)."""
    return _DTYPES[resolve_dtype_name(dtype, device.type)]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class LlaraEncoder:
    """Encodes passages (EBAE prompt) and queries (EBAR prompt) into L2-normalized float32 vectors."""

    def __init__(self, model, tokenizer, *, name: str, device: torch.device, dtype: torch.dtype,
                 max_length: int = 512, model_hash: str = "", adapter_hash: str | None = None,
                 max_batch_tokens: int | None = None, show_progress: bool = True):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.device = device
        self.dtype = dtype
        self.max_length = int(max_length)
        if self.max_length < 1:
            raise ValueError("max_length must be at least 1 token")
        self.model_hash = model_hash
        self.adapter_hash = adapter_hash
        self.prompt = PromptIds.for_tokenizer(tokenizer, name)
        self.max_batch_tokens = max_batch_tokens or (CUDA_BATCH_TOKENS if device.type == "cuda" else CPU_BATCH_TOKENS)
        self.show_progress = show_progress
        self.memory: Estimate | None = None  # what the memory check estimated before loading (from_pretrained)
        self.static = None  # a StaticQueryPath once compile_queries() ran (static_query.py)

    # ----------------------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, name_or_path: str = DEFAULT_MODEL, *, adapter: str | os.PathLike | None = None,
                        device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
                        max_length: int = 512, max_batch_tokens: int | None = None,
                        show_progress: bool = True, check_memory: bool = True) -> "LlaraEncoder":
        """Load a LLaRA checkpoint (hub id or local folder), optionally merging a peft LoRA adapter at load.

        `check_memory`: first compare what the model needs in this dtype with what the device has free (from the
        config alone, before any download) and raise `InsufficientMemoryError` instead of being killed by the
        kernel halfway through the load.
        """
        from transformers.utils import logging as hf_logging

        from . import fast_load

        hf_logging.set_verbosity_error()  # the load report lists lm_head as "unexpected": expected for an encoder
        hf_logging.disable_progress_bar()
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        adapter_dir = None
        if adapter is not None:
            adapter_dir = Path(adapter).expanduser().resolve()
            if not (adapter_dir / "adapter_config.json").is_file():
                raise FileNotFoundError(f"{adapter_dir} is not a peft adapter folder (no adapter_config.json)")
        memory = None
        if check_memory:
            memory = check_fits(str(name_or_path), dtype_name(dt), str(dev), "encode", max_length=max_length,
                                batch_tokens=max_batch_tokens, with_lm_head=adapter_dir is not None)
        model_dir = resolve_model_dir(str(name_or_path))
        tokenizer = load_tokenizer(str(model_dir), adapter_dir)
        try:  # straight to the device and dtype, at disk speed (fast_load.py)
            weights = fast_load.load(model_dir, dtype=dt, device=dev, causal=adapter_dir is not None,
                                     label=str(name_or_path), progress=show_progress)
        except (OSError, ValueError, KeyError) as exc:
            raise model_load_error(str(name_or_path), model_dir, exc) from None
        if adapter_dir is None:
            model = weights
        else:
            from peft import PeftModel

            causal = weights
            if len(tokenizer) > causal.get_input_embeddings().weight.shape[0]:
                causal.resize_token_embeddings(len(tokenizer))
            causal = PeftModel.from_pretrained(causal, str(adapter_dir)).merge_and_unload()
            model = causal.get_decoder()
        model.to(dev)
        encoder = cls(model, tokenizer, name=str(name_or_path), device=dev, dtype=dt, max_length=max_length,
                      model_hash=files_fingerprint(model_dir),
                      adapter_hash=files_fingerprint(adapter_dir) if adapter_dir else None,
                      max_batch_tokens=max_batch_tokens, show_progress=show_progress)
        encoder.memory = memory
        return encoder

    def compile_queries(self, *, lengths: Sequence[int] | None = None, batches: Sequence[int] | None = None,
                        mode: str | None = None, warm: bool = True):
        """Route query encodes through compiled fixed-shape buckets (static_query.py); `warm`: compile them now."""
        from . import static_query

        if self.static is not None:
            self.static.close()
        self.static = static_query.StaticQueryPath(
            self.model, device=self.device, pad_id=self.prompt.pad_id, mode=mode,
            lengths=lengths or static_query.DEFAULT_LENGTHS, batches=batches or static_query.DEFAULT_BATCHES)
        if warm:
            self.static.warm()
        return self.static

    # ----------------------------------------------------------------------------------------------- identity
    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def fingerprint(self) -> str:
        """Stable id of everything that determines a vector: weights, adapter, prompts, max_length.

        Indexes store it and refuse queries encoded by anything else (mixing spaces gives silent garbage).
        """
        return make_fingerprint(self.model_hash, self.adapter_hash, self.max_length)

    # ----------------------------------------------------------------------------------------------- encoding
    def encode_passages(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        return self._encode(texts, "passage", batch_size)

    def encode_queries(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        return self._encode(texts, "query", batch_size)

    def encode(self, texts: Sequence[str], kind: str = "passage", batch_size: int | None = None) -> np.ndarray:
        return self._encode(texts, kind, batch_size)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Text tokens as the encoder sees them (before truncation), for chunking to a token budget."""
        if not texts:
            return []
        enc = self.tokenizer(list(texts), add_special_tokens=False, split_special_tokens=True)["input_ids"]
        return [len(x) for x in enc]

    def _encode(self, texts: Sequence[str], kind: str, batch_size: int | None) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not a single string")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text #{i} is {type(t).__name__}, not str")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        seqs = None
        if kind == "query" and self.static is not None:  # compiled fixed-shape buckets (static_query.py)
            seqs = bulk.sequences(self, texts, kind)
            vecs = self.static.encode(seqs)
            if vecs is not None:
                return self._checked(vecs)
        bar = None
        if self.show_progress and len(texts) >= 256:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc=f"encode {kind}s", unit="text", leave=False)
        try:  # tokenization overlapped with the model, one host sync per window (bulk.py)
            return bulk.encode(self, texts, kind, batch_size=batch_size, seqs=seqs,
                               after_batch=None if bar is None else bar.update)
        finally:
            if bar is not None:
                bar.close()

    def _checked(self, arr: np.ndarray) -> np.ndarray:
        if not np.isfinite(arr).all():
            raise EncoderOutputError(
                f"{self.name} produced NaN/inf embeddings (dtype {self.dtype}); the weights may be broken, or try "
                "--dtype float32"
            )
        return arr

