"""llara-search: semantic search over your documents with LLaRA dense retrieval."""

__version__ = "0.1.0"


def __getattr__(name):  # lazy: `import llara_search` must not pull torch/faiss for `--help`
    if name == "Engine":
        from .engine import Engine

        return Engine
    if name == "LlaraEncoder":
        from .encoder import LlaraEncoder

        return LlaraEncoder
    raise AttributeError(name)
