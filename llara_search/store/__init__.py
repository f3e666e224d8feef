"""Metadata store: SQLAlchemy models, sessions, Alembic upgrade on open, path filters."""

from .db import StoreError, open_database
from .models import Chunk, Document, FileNote, Generation, IndexInfo, IngestFailure, IngestRun
from .fulltext import path_glob
from .store import ChunkRecord, Store, visible

__all__ = ["Chunk", "ChunkRecord", "Document", "FileNote", "Generation", "IndexInfo", "IngestFailure", "IngestRun", "Store",
           "StoreError", "open_database", "path_glob", "visible"]
