"""`Store`: the index's metadata database — what the rest of the engine asks of SQL, in one place."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from .db import open_database
from .fulltext import fulltext_for
from .models import Chunk, Document, Generation, IndexInfo

def visible(model, gen: int):
    """SQL condition: the row is part of committed generation `gen`."""
    return and_(model.added_gen <= gen, or_(model.removed_gen.is_(None), model.removed_gen > gen))


@dataclass
class ChunkRecord:
    """What a search result needs to say about one chunk."""

    chunk_id: int
    path: str
    doc_key: str | None
    format: str
    heading: str
    text: str
    start_line: int | None
    end_line: int | None
    page: int | None


class Store:
    def __init__(self, url: str, *, create: bool = True):
        self.url = url
        self.engine = open_database(url, create=create)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.dialect = self.engine.dialect.name
        self.fulltext = fulltext_for(self.dialect)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with self.sessions() as s, s.begin():
            yield s

    # ------------------------------------------------------------------------------------------------ info
    def get_info(self) -> dict[str, object]:
        with self.sessions() as s:
            return {row.key: json.loads(row.value) for row in s.scalars(select(IndexInfo))}

    def set_info(self, s: Session, **values: object) -> None:
        for k, v in values.items():
            s.merge(IndexInfo(key=k, value=json.dumps(v)))

    # ------------------------------------------------------------------------------------------------ generations
    def current_generation(self) -> Generation | None:
        with self.sessions() as s:
            return s.scalars(select(Generation).order_by(Generation.id.desc()).limit(1)).first()

    def next_generation(self) -> int:
        g = self.current_generation()
        return (g.id if g else 0) + 1

    # ------------------------------------------------------------------------------------------------ reads
    def counts(self, gen: int) -> dict[str, int]:
        with self.sessions() as s:
            docs = s.scalar(select(func.count()).select_from(Document).where(visible(Document, gen)))
            chunks = s.scalar(select(func.count()).select_from(Chunk).where(visible(Chunk, gen)))
        return {"documents": int(docs or 0), "chunks_total": int(chunks or 0)}

    def visible_chunk_ids(self, gen: int, where: str | None = None) -> np.ndarray:
        stmt = select(Chunk.id).where(visible(Chunk, gen))
        if where:
            stmt = stmt.join(Document, Document.id == Chunk.document_id).where(
                self.fulltext.path_condition(Document.path, where))
        with self.sessions() as s:
            return np.fromiter(s.scalars(stmt.order_by(Chunk.id)), dtype=np.int64)

    def chunk_records(self, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        out: dict[int, ChunkRecord] = {}
        ids = [int(i) for i in ids]
        with self.sessions() as s:
            for i in range(0, len(ids), 900):
                rows = s.execute(
                    select(Chunk.id, Document.path, Document.doc_key, Document.format, Chunk.heading, Chunk.text,
                           Chunk.start_line, Chunk.end_line, Chunk.page)
                    .join(Document, Document.id == Chunk.document_id).where(Chunk.id.in_(ids[i:i + 900]))
                )
                for r in rows:
                    out[r[0]] = ChunkRecord(*r)
        return out

    def bm25(self, query: str, k: int, gen: int, where: str | None = None) -> list[tuple[int, float]]:
        """Top-k chunk ids by full-text rank (higher is better), restricted to generation `gen` and the path glob."""
        with self.engine.connect() as conn:
            return self.fulltext.search(conn, query, k, gen, where)

    def fts_rowids(self) -> np.ndarray | None:
        """Row ids the full-text index holds (for doctor); None where it is part of the rows themselves."""
        with self.engine.connect() as conn:
            return self.fulltext.indexed_ids(conn)

    # ------------------------------------------------------------------------------------------------ maintenance
    def purge_removed(self, before_gen: int) -> list[int]:
        """Physically delete rows removed at or before `before_gen` (no reader can still see them)."""
        with self.session() as s:
            ids = list(s.scalars(select(Chunk.id).where(Chunk.removed_gen.is_not(None),
                                                        Chunk.removed_gen <= before_gen)))
            for i in range(0, len(ids), 900):
                s.execute(delete(Chunk).where(Chunk.id.in_(ids[i:i + 900])))
            s.execute(delete(Document).where(Document.removed_gen.is_not(None), Document.removed_gen <= before_gen,
                                             ~Document.chunks.any()))
        return ids

    def optimize(self) -> None:
        self.fulltext.optimize(self.engine)

    def chunk_ids(self) -> np.ndarray:
        """Every chunk row still in the table, visible or kept for readers of an older generation."""
        with self.sessions() as s:
            return np.fromiter(s.scalars(select(Chunk.id).order_by(Chunk.id)), np.int64)

    def chunk_attributes(self, ids: np.ndarray) -> tuple[list[str], list[str]]:
        """Path and format of each chunk's document, in the order of `ids` (scalar fields of a vector database,
        so that `--where` filters inside its search)."""
        found: dict[int, tuple[str, str]] = {}
        ids = [int(i) for i in ids]
        with self.sessions() as s:
            for a in range(0, len(ids), 900):
                for i, path, fmt in s.execute(select(Chunk.id, Document.path, Document.format)
                                              .join(Document, Document.id == Chunk.document_id)
                                              .where(Chunk.id.in_(ids[a:a + 900]))):
                    found[i] = (path, fmt or "")
        return [found.get(i, ("", ""))[0] for i in ids], [found.get(i, ("", ""))[1] for i in ids]

    def generation_index_files(self, from_gen: int) -> dict[int, str]:
        """index_file of every committed generation from `from_gen` on."""
        with self.sessions() as s:
            return {g: f for g, f in s.execute(select(Generation.id, Generation.index_file)
                                               .where(Generation.id >= from_gen))}

    def set_vector_rows(self, rows: int) -> None:
        """After a compaction: the stored-vector row count every remaining generation may map."""
        with self.session() as s:
            s.execute(update(Generation).values(vector_rows=rows))
