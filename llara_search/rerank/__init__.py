"""Second stage: re-score the first stage's top candidates with a cross-encoder or RankLLaMA.

`Reranker` and `load_reranker` (and torch with them) are imported on first use: commands that never re-rank do not
pay for them.
"""

from .stage import (
    DEFAULT_BUDGET_MS,
    DEFAULT_DEPTH,
    FAMILIES,
    MAX_DEPTH,
    NotARerankerError,
    RerankError,
    RerankerOutputError,
    RerankOutcome,
    RerankPolicy,
    RerankTimeout,
    check_depth,
    reorder,
)

_LAZY = {"Reranker", "load_reranker", "DEFAULT_MAX_LENGTH"}


def __getattr__(name: str):
    if name in _LAZY:
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_BUDGET_MS", "DEFAULT_DEPTH", "DEFAULT_MAX_LENGTH", "FAMILIES", "MAX_DEPTH", "NotARerankerError",
           "RerankError", "RerankOutcome", "RerankPolicy", "RerankTimeout", "Reranker", "RerankerOutputError",
           "check_depth", "load_reranker", "reorder"]
