"""Metadata store: SQLAlchemy models, sessions, Alembic upgrade on open, path filters.

Names are imported on first use: `store.stopwords` (the BM25 and training stop words) is pure Python, and what
imports only it (training, the GPU benchmark on a bare box) must not pay for, or need, SQLAlchemy.
"""

from importlib import import_module

_WHERE = {"StoreError": "db", "open_database": "db", "Chunk": "models", "Document": "models",
          "FileNote": "models", "Generation": "models", "IndexInfo": "models", "IngestFailure": "models",
          "IngestRun": "models", "path_glob": "fulltext", "ChunkRecord": "store", "Store": "store", "visible": "store",
          "still_live": "store"}


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Chunk", "ChunkRecord", "Document", "FileNote", "Generation", "IndexInfo", "IngestFailure", "IngestRun",
           "Store", "StoreError", "open_database", "path_glob", "still_live", "visible"]
