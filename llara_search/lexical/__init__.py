"""The lexical (BM25) index: our own engine, as files in the index folder, the same for SQLite and PostgreSQL.

`LexicalIndex` writes one manifest per generation over immutable segments (before the database commit that names
the generation) and opens a generation as a `Snapshot` to search; `analyzer` turns text into terms.
"""

from .analyzer import ANALYZER, document_analysis, document_terms, query_analysis, query_terms
from .index import LexicalIndex, LexicalIndexError, LexicalReport
from .segment import text_crc
from .snapshot import Snapshot

__all__ = ["ANALYZER", "LexicalIndex", "LexicalIndexError", "LexicalReport", "Snapshot", "document_analysis",
           "document_terms", "query_analysis", "query_terms", "text_crc"]
