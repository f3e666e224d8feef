"""What an index records about the model that encodes it: how a model and an adapter are named (so the same one
is recognised again), the text-only marker, the dtypes its vectors were encoded in, and the memory check of loading
it. Shared by opening, writing, maintenance, `doctor` and the CLI; nothing here loads a model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .encoder import DEFAULT_MODEL

if TYPE_CHECKING:
    from .encoder.memory import Estimate

TEXT_ONLY = "none"  # `--model none`: a text-only index searched by BM25 alone (no encoder, no vectors)


def model_identity(name_or_path: str) -> str:
    """Local folders are recorded by absolute path, hub ids as given."""
    if name_or_path == TEXT_ONLY:
        return TEXT_ONLY
    p = Path(name_or_path).expanduser()
    return str(p.resolve()) if p.exists() else name_or_path


def adapter_identity(adapter: str | os.PathLike) -> str:
    """An adapter is recorded by its absolute folder."""
    return str(Path(adapter).expanduser().resolve())


def reencode_args(pending: dict) -> str:
    """The options that finish an interrupted re-encode (`pending_reencode` as recorded)."""
    return (f" --model {pending['model']}" if pending.get("model") else "") + \
        (f" --adapter {pending['adapter']}" if pending.get("adapter") else "")


def merge_dtypes(recorded: object, dtype: str) -> list[str]:
    """The dtypes that encoded an index's stored vectors, with `dtype` added (kept sorted: it is compared)."""
    return sorted(set(recorded if isinstance(recorded, list) else []) | {dtype})


def dtype_name(encoder) -> str:
    return str(encoder.dtype).removeprefix("torch.")


def check_encoder_memory(model: str | None, *, adapter: str | None = None, dtype: str | None = None,
                         device: str | None = None, max_length: int = 512) -> Estimate | None:
    """The memory check of the encoder an ingest would load (`model`, or $LLARA_SEARCH_MODEL, or the default),
    from its config alone: raises `InsufficientMemoryError` before any download, load or write when it cannot fit.
    None for a text-only index (no model; torch is not imported)."""
    name = model_identity(model or os.environ.get("LLARA_SEARCH_MODEL") or DEFAULT_MODEL)
    if name == TEXT_ONLY:
        return None
    from .encoder.memory import check_fits

    return check_fits(name, dtype, device or "auto", "encode", max_length=max_length, with_lm_head=adapter is not None)


__all__ = ["TEXT_ONLY", "adapter_identity", "check_encoder_memory", "dtype_name", "merge_dtypes", "model_identity",
           "reencode_args"]
