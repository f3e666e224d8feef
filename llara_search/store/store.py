"""`Store`: the index's metadata database — what the rest of the engine asks of SQL, in one place."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from .db import open_database
from .fulltext import fulltext_for
from .models import Chunk, Document, FileNote, Generation, IndexInfo

_RECORDS_SQL = ("SELECT c.id, d.path, d.doc_key, d.format, c.heading, c.text, c.start_line, c.end_line, c.page, "
                "c.probe FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id ")
_TEXTS = select(Chunk.id, Document.path, Chunk.heading, Chunk.text).join(Document, Document.id == Chunk.document_id)


def visible(model, gen: int):
    """SQL condition: the row is part of committed generation `gen`."""
    return and_(model.added_gen <= gen, or_(model.removed_gen.is_(None), model.removed_gen > gen))


def still_live(column):
    """`column IS NULL` (the row is live) in a form no index can serve. Next to an `IN` list of ids or paths, SQLite
    chose the `removed_gen` index for `IS NULL`, which every live row shares: at a million chunks each batch of a
    `delete` scanned the whole table (0.39 s instead of 0.001 s; a folder of 100,000 documents took 117 s)."""
    return func.coalesce(column, 0) == 0  # generations count from 1


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
    probe: bytes | None = None  # collapse.probe of the text (None in rows stored before migration 0008)


class Store:
    def __init__(self, url: str, *, create: bool = True):
        self.url = url
        self.engine = open_database(url, create=create)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.dialect = self.engine.dialect.name
        self.fulltext = fulltext_for(self.dialect)
        # reads that need no transaction: on PostgreSQL autocommit saves the BEGIN and ROLLBACK round trips
        self._reads = self.engine.execution_options(isolation_level="AUTOCOMMIT") \
            if self.dialect == "postgresql" else self.engine

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

    def ids(self, stmt) -> np.ndarray:
        """The integers one column of `stmt` selects, read row by row into an array. Not through an ORM session:
        its results are buffered whole (a million ids held 150 MB of rows at once, 8 MB as an array)."""
        with self.engine.connect() as conn:
            return np.fromiter((r[0] for r in conn.execute(stmt)), dtype=np.int64)

    def visible_chunk_ids(self, gen: int, where: str | None = None) -> np.ndarray:
        stmt = select(Chunk.id).where(visible(Chunk, gen))
        if where:
            stmt = stmt.join(Document, Document.id == Chunk.document_id).where(
                self.fulltext.path_condition(Document.path, where))
        return self.ids(stmt.order_by(Chunk.id))

    def chunk_records(self, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        """The rows a result list shows. This runs once per search, so it is one plain statement on a pooled
        driver connection (no ORM objects, no statement compiling, no transaction): a tenth of a millisecond on
        SQLite, one round trip (after the pool's liveness ping) on PostgreSQL."""
        out: dict[int, ChunkRecord] = {}
        ids = [int(i) for i in ids]
        if not ids:
            return out
        with self._reads.connect() as conn:
            cur = conn.connection.cursor()
            for i in range(0, len(ids), 900):
                part = ids[i:i + 900]
                if self.dialect == "postgresql":
                    cur.execute(_RECORDS_SQL + "= ANY(%s::bigint[])", (part,))  # typed: index lookups
                else:
                    cur.execute(_RECORDS_SQL + f"IN ({','.join('?' * len(part))})", part)
                for r in cur.fetchall():
                    out[r[0]] = ChunkRecord(*r)
            cur.close()
        return out

    def chunk_texts(self, ids: Sequence[int] | np.ndarray) -> Iterator[tuple[int, str, str, str]]:
        """`(id, document path, heading, text)` of the given chunks, for the lexical index (ids converted a page at a
        time: a million of them stay one numpy array)."""
        ids = np.asarray(ids, np.int64)
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 900):
                yield from conn.execute(_TEXTS.where(Chunk.id.in_(bindparam("ids", expanding=True))),
                                        {"ids": ids[i:i + 900].tolist()})

    def visible_chunk_texts(self, gen: int | None = None) -> Iterator[tuple[int, str, str, str]]:
        """`(id, document path, heading, text)` of every chunk of generation `gen` (None: every live row), by id,
        streamed in pages, for (re)building the lexical index."""
        cond = Chunk.removed_gen.is_(None) if gen is None else visible(Chunk, gen)
        last = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(_TEXTS.where(cond, Chunk.id > last).order_by(Chunk.id).limit(5000)).all()
            yield from rows
            if len(rows) < 5000:
                return
            last = rows[-1][0]

    def chunk_text_crcs(self, ids: np.ndarray) -> np.ndarray:
        """CRC32 of each chunk's searchable text (heading and text), as the lexical index recorded it; 0 where the
        row is gone (doctor)."""
        from ..lexical import text_crc

        got = {i: text_crc(h, t) for i, _, h, t in self.chunk_texts(ids)}
        return np.array([got.get(int(i), 0) for i in ids], np.uint32)

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
        return self.ids(select(Chunk.id).order_by(Chunk.id))

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

    # ------------------------------------------------------------------------------------------------ file notes
    def file_notes(self) -> list[dict]:
        """Files the last ingest of their folder skipped or failed: {"path", "state", "reason", "kind"}, by path."""
        with self.sessions() as s:
            rows = s.execute(select(FileNote.path, FileNote.state, FileNote.reason, FileNote.kind)
                             .order_by(FileNote.path, FileNote.id))
            return [{"path": p, "state": st, "reason": r, "kind": k} for p, st, r, k in rows]

    def replace_file_notes(self, roots: Sequence[str], run_id: int | None, notes: Sequence[dict]) -> None:
        """The notes under `roots` (stored paths of the folders or files an ingest walked) become `notes`."""
        def under(path: str) -> bool:
            return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

        with self.session() as s:
            old = [i for i, p in s.execute(select(FileNote.id, FileNote.path)) if under(p)]
            for a in range(0, len(old), 900):
                s.execute(delete(FileNote).where(FileNote.id.in_(old[a:a + 900])))
            s.add_all(FileNote(path=n["path"], state=n["state"], reason=n["reason"], kind=n["kind"], run_id=run_id)
                      for n in notes)
