"""The vector side of an index behind one small interface, so that ingestion, search, doctor and the CLI never
know whether vectors live in FAISS files in the index folder or in Milvus. This module is the factory
(`open_backend`); the interface is in base.py, which the backends import.

What the rest of the engine asks of the vector side:

- `check_writable(gen)`: before a writer changes anything, is the committed generation's vector index intact and
  reachable? (A Milvus that lost data behind our back is refused here, before a single database row moves.)
- `build(...)`: the next generation from the previous one plus the change (or from the stored vectors alone on a
  rebuild), not yet visible to anyone; `save()` on the result makes it durable before the database commit that
  names it, and `published()` runs after that commit.
- `open(gen)`: a committed generation, searchable with an id allow-list or a path glob pushed into the search.
- `cleanup(G, horizon)`: drop what only generations before `horizon` used (no reader can be on them any more).
- `orphans(gen)` / `quarantine(...)`: what the vector side holds that no generation names (for `doctor`).

The stored float16 vectors in `<index>/vectors/` stay the truth on every backend: exact re-rank, rebuilds, bench,
doctor's repairs and moving an index from one backend to another all read them.
"""

from __future__ import annotations

from .base import (ALL_INDEX_TYPES, FAISS, FAISS_INDEX_TYPES, BuiltGeneration, SearchIndex, VectorBackend,
                   VectorDBError, dir_bytes, is_faiss)


def normalize_vector_db(uri: str) -> str:
    """The form an index records: `faiss`, the absolute path of a Milvus Lite file, or a server URI without
    credentials (those come from the environment and are never written into the index)."""
    uri = uri.strip()
    if is_faiss(uri.lower()):
        return FAISS
    from .milvus_common import normalize_uri

    return normalize_uri(uri)


def open_backend(paths, info: dict, uri: str | None = None) -> VectorBackend:
    """The backend an index records (or `uri`, for an index being created or moved)."""
    uri = uri or info.get("vector_db") or FAISS
    if is_faiss(uri):
        from .generations import FaissBackend

        return FaissBackend(paths)
    from .milvus import MilvusBackend

    return MilvusBackend(paths, uri, str(info.get("index_id") or ""), int(info.get("dim") or 0))


__all__ = ["ALL_INDEX_TYPES", "BuiltGeneration", "FAISS", "FAISS_INDEX_TYPES", "SearchIndex", "VectorBackend",
           "VectorDBError", "dir_bytes", "is_faiss", "normalize_vector_db", "open_backend"]
