"""Metadata store: SQLAlchemy models, sessions, Alembic upgrade on open, FTS5 BM25."""

from .db import StoreError, open_database
from .models import Chunk, Document, Generation, IndexInfo, IngestFailure, IngestRun
from .store import ChunkRecord, Store, fts_query, path_glob, visible

__all__ = ["Chunk", "ChunkRecord", "Document", "Generation", "IndexInfo", "IngestFailure", "IngestRun", "Store",
           "StoreError", "fts_query", "open_database", "path_glob", "visible"]
