"""The LLaRA encoder: prompts, tokenization, batching, pooling, devices, adapters, fingerprint."""

from .model import (
    DEFAULT_MODEL,
    EncoderOutputError,
    LlaraEncoder,
    files_fingerprint,
    fingerprint_for,
    load_tokenizer,
    make_fingerprint,
)
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

__all__ = [
    "DEFAULT_MODEL", "EBAE_SUFFIX", "EBAR_SUFFIX", "EncoderOutputError", "LLARA_TOKENS", "LlaraEncoder",
    "MissingLlaraTokensError", "PREFIX", "PromptIds", "add_llara_tokens", "files_fingerprint",
    "missing_llara_tokens", "fingerprint_for", "load_tokenizer", "make_fingerprint",
]
