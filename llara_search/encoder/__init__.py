"""The LLaRA encoder: prompts, tokenization, batching, pooling, devices, adapters, fingerprint.

`LlaraEncoder` (and torch with it) is imported on first use: commands that never encode start in a second.
"""

from .checkpoint import DEFAULT_MODEL, files_fingerprint, fingerprint_for, load_tokenizer, make_fingerprint
from .memory import Estimate, InsufficientMemoryError, check_fits
from .prompts import (
    EBAE_SUFFIX,
    EBAR_SUFFIX,
    LLARA_TOKENS,
    PREFIX,
    MissingLlaraTokensError,
    PromptIds,
    add_llara_tokens,
    missing_llara_tokens,
)

_LAZY = {"LlaraEncoder", "EncoderOutputError"}


def __getattr__(name: str):
    if name in _LAZY:
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_MODEL", "EBAE_SUFFIX", "EBAR_SUFFIX", "EncoderOutputError", "Estimate", "InsufficientMemoryError",
    "LLARA_TOKENS", "LlaraEncoder", "check_fits",
    "MissingLlaraTokensError", "PREFIX", "PromptIds", "add_llara_tokens", "files_fingerprint",
    "missing_llara_tokens", "fingerprint_for", "load_tokenizer", "make_fingerprint",
]
