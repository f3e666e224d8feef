"""The ingest's bulk write path: what a batch of documents needs from the database, in a few statements per batch.

An ingest of a million passages must not pay a round trip per document or per chunk: existence checks are one
query per batch of paths, new rows get their ids in one query per batch (`new_ids`) and go in with one Core
executemany `INSERT` per table per batch (`COPY` for chunks on PostgreSQL), and changes to existing rows are
executemany `UPDATE`s. Nothing here commits: the caller's transaction (pipeline.Ingestor) decides when rows become
durable, after their vectors were fsynced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from typing import Iterable, Iterator, NamedTuple, Sequence

from sqlalchemy import bindparam, delete, insert, select, text, update
from sqlalchemy.orm import Session

from ..collapse import probe
from ..store import Chunk, Document, still_live
from ..store.models import utcnow
from .chunking import CHUNKER_VERSION, ChunkData

LOOKUP_BATCH = 900  # paths or ids per IN list (SQLite's historic limit of bound variables is 999)
_DOC = Document.__table__
_CHUNK = Chunk.__table__
_CHUNK_COLUMNS = ("id", "document_id", "ordinal", "heading", "text", "start_line", "end_line", "page", "char_start",
                  "char_end", "content_hash", "n_tokens", "chunker_version", "added_gen", "removed_gen", "probe")


class DocState(NamedTuple):
    """What the ingest compares a file or record with: one row of `documents`, without the ORM."""

    id: int
    path: str
    removed_gen: int | None
    size: int
    mtime_ns: int
    content_hash: str
    parser_version: str | None
    added_gen: int


_STATE = (_DOC.c.id, _DOC.c.path, _DOC.c.removed_gen, _DOC.c.size, _DOC.c.mtime_ns, _DOC.c.content_hash,
          _DOC.c.parser_version, _DOC.c.added_gen)


def _parts(items: Sequence, n: int = LOOKUP_BATCH) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def lookup(s: Session, paths: Sequence[str]) -> dict[str, DocState]:
    """The documents rows of `paths` (live or removed), one query per LOOKUP_BATCH paths."""
    out: dict[str, DocState] = {}
    conn = s.connection()
    for part in _parts(list(paths)):
        for r in conn.execute(select(*_STATE).where(_DOC.c.path.in_(part))):
            out[r.path] = DocState(*r)
    return out


@dataclass
class Plan:
    """One changed document: its row as it is, the chunks kept (ordinal -> row id), the new ones and the rows that
    leave (ids)."""

    work: object  # pipeline._Work
    doc: DocState | None
    reuse: dict[int, int] = field(default_factory=dict)
    new: list[ChunkData] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)


def touch(s: Session, rows: list[dict]) -> None:
    """Record new size and mtime (`{"_id", "size", "mtime_ns"}`) of documents whose bytes did not change."""
    s.connection().execute(update(_DOC).where(_DOC.c.id == bindparam("_id")).values(
        size=bindparam("size"), mtime_ns=bindparam("mtime_ns")), rows)


def plan(s: Session, works: Sequence) -> list[Plan]:
    """Which chunks of each queued document are already stored (same content hash: kept with their vectors) and
    which are new or gone: two queries per LOOKUP_BATCH documents, whatever the number of chunks."""
    docs = lookup(s, [w.path for w in works])
    live: dict[int, dict[str, list[int]]] = {d.id: {} for d in docs.values()}
    conn = s.connection()
    for part in _parts(list(live)):
        rows = conn.execute(select(_CHUNK.c.document_id, _CHUNK.c.content_hash, _CHUNK.c.id)
                            .where(_CHUNK.c.document_id.in_(part), still_live(_CHUNK.c.removed_gen))
                            .order_by(_CHUNK.c.id))
        for doc_id, h, cid in rows:
            live[doc_id].setdefault(h, []).append(cid)
    plans = []
    for w in works:
        doc = docs.get(w.path)
        by_hash = live.get(doc.id, {}) if doc is not None else {}
        p = Plan(w, doc)
        for c in w.chunks:
            if by_hash.get(c.content_hash):
                p.reuse[c.ordinal] = by_hash[c.content_hash].pop(0)
            else:
                p.new.append(c)
        p.stale = [i for ids in by_hash.values() for i in ids]
        plans.append(p)
    return plans


class Written(NamedTuple):
    new_ids: list[int]  # ids of the new chunk rows, in the order of the plans' `new` chunks (their vectors' order)
    files_new: int
    files_changed: int
    chunks_removed: int


def write(s: Session, plans: Sequence[Plan], G: int, parser_version: str) -> Written:
    """Write the planned documents and chunks as part of generation G inside the caller's transaction."""
    conn = s.connection()
    now = utcnow()

    def doc_values(w) -> dict:
        return {"doc_key": w.doc_key, "format": w.parsed.format, "title": w.parsed.title, "size": int(w.stat.st_size),
                "mtime_ns": int(w.stat.st_mtime_ns or 0), "content_hash": w.digest, "parser_version": parser_version,
                "n_chunks": len(w.chunks), "updated_at": now}

    fresh = [p for p in plans if p.doc is None]
    doc_ids: dict[str, int] = {p.doc.path: p.doc.id for p in plans if p.doc is not None}
    if fresh:
        ids = new_ids(conn, "documents", len(fresh))
        conn.execute(insert(_DOC), [{"id": i, "path": p.work.path, "added_gen": G, "removed_gen": None,
                                     **doc_values(p.work)} for i, p in zip(ids, fresh)])
        doc_ids.update({p.work.path: i for i, p in zip(ids, fresh)})
    known = [p for p in plans if p.doc is not None]
    if known:
        conn.execute(update(_DOC).where(_DOC.c.id == bindparam("_id")).values(
            added_gen=bindparam("_added"), removed_gen=None, **{k: bindparam(k) for k in doc_values(known[0].work)}),
            [{"_id": p.doc.id, "_added": G if p.doc.removed_gen is not None else p.doc.added_gen, **doc_values(p.work)}
             for p in known])
    files_new = len(fresh) + sum(p.doc.removed_gen is not None for p in known)
    stale = [i for p in plans for i in p.stale]
    for part in _parts(stale):
        # rows written by this unfinished generation were never seen by anyone; older ones end at G
        conn.execute(delete(_CHUNK).where(_CHUNK.c.id.in_(part), _CHUNK.c.added_gen >= G))
        conn.execute(update(_CHUNK).where(_CHUNK.c.id.in_(part), _CHUNK.c.added_gen < G).values(removed_gen=G))
    moved = [{"_id": row_id, "ordinal": c.ordinal, "start_line": c.start_line, "end_line": c.end_line,
              "page": c.page, "char_start": c.char_start, "char_end": c.char_end}
             for p in plans for c in p.work.chunks if (row_id := p.reuse.get(c.ordinal)) is not None]
    if moved:
        conn.execute(update(_CHUNK).where(_CHUNK.c.id == bindparam("_id")).values(
            **{k: bindparam(k) for k in moved[0] if k != "_id"}), moved)
    new_rows = [(doc_ids[p.work.path], c) for p in plans for c in p.new]
    return Written(insert_chunks(s, new_rows, G), files_new, len(plans) - files_new, len(stale))


def insert_chunks(s: Session, rows: Sequence[tuple[int, ChunkData]], G: int) -> list[int]:
    """Insert `(document id, chunk)` rows as generation G; returns their ids in order."""
    if not rows:
        return []
    conn = s.connection()
    values = [{"document_id": d, "ordinal": c.ordinal, "heading": c.heading, "text": c.text,
               "start_line": c.start_line, "end_line": c.end_line, "page": c.page, "char_start": c.char_start,
               "char_end": c.char_end, "content_hash": c.content_hash, "n_tokens": c.n_tokens,
               "chunker_version": CHUNKER_VERSION, "added_gen": G, "removed_gen": None, "probe": probe(c.text)}
              for d, c in rows]
    return _insert_chunk_rows(conn, values)


def new_ids(conn, table: str, n: int) -> list[int]:
    """`n` fresh ids of `table` in one query, never reused ones: PostgreSQL draws them from the table's sequence;
    on SQLite (an AUTOINCREMENT table, one writer under the index's write lock) they follow the highest id ever
    handed out, which the explicit inserts then advance as SQLite's own would."""
    if n <= 0:
        return []
    if conn.dialect.name == "postgresql":
        return [i for (i,) in conn.execute(text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) "
                                                "FROM generate_series(1, :n)"), {"n": n})]
    top = conn.execute(text(f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0), "
                            f"coalesce((SELECT max(id) FROM {table}), 0))")).scalar() or 0
    return list(range(int(top) + 1, int(top) + 1 + n))


def _insert_chunk_rows(conn, values: list[dict]) -> list[int]:
    """Insert chunk rows with fresh ids: one executemany on SQLite, COPY on PostgreSQL."""
    ids = new_ids(conn, "chunks", len(values))
    if conn.dialect.name == "postgresql":
        import psycopg
        from sqlalchemy.exc import DBAPIError

        statement = f"COPY chunks ({', '.join(_CHUNK_COLUMNS)}) FROM STDIN"
        cur = conn.connection.driver_connection.cursor()
        try:
            with cur.copy(statement) as copy:
                for i, v in zip(ids, values):
                    copy.write_row((i, *(v[c] for c in _CHUNK_COLUMNS[1:])))
        except psycopg.Error as exc:  # as SQLAlchemy raises it for its own statements (a refused row: DataError)
            raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc
    else:
        for i, v in zip(ids, values):
            v["id"] = i
        conn.execute(insert(_CHUNK), values)
    return ids


def copy_chunks(s: Session, old_ids: Sequence[int], G: int) -> list[int]:
    """Re-encode: copy live chunk rows `old_ids` to new rows of generation G (new ids, so readers still on G-1 keep
    theirs) and end the old ones at G. Returns the new ids in the order of `old_ids` sorted."""
    conn = s.connection()
    cols = [_CHUNK.c[c] for c in _CHUNK_COLUMNS if c not in ("id", "added_gen", "removed_gen")]
    rows = []
    for part in _parts(sorted(int(i) for i in old_ids)):
        rows += conn.execute(select(_CHUNK.c.id, *cols).where(_CHUNK.c.id.in_(part)).order_by(_CHUNK.c.id)).all()
    values = [{**{c.name: r[k + 1] for k, c in enumerate(cols)}, "added_gen": G, "removed_gen": None} for r in rows]
    made = _insert_chunk_rows(conn, values) if values else []
    for part in _parts([r[0] for r in rows]):
        conn.execute(update(_CHUNK).where(_CHUNK.c.id.in_(part)).values(removed_gen=G))
    return made


def remove(s: Session, paths: Iterable[str], G: int) -> tuple[int, int]:
    """Remove the live documents at `paths` and their chunks as of generation G (rows this unfinished generation
    wrote are deleted outright). Returns (documents, chunks) removed; a few statements per LOOKUP_BATCH paths."""
    conn = s.connection()
    docs = chunks = 0
    for part in batched(paths):
        ids = [i for (i,) in conn.execute(select(_DOC.c.id).where(_DOC.c.path.in_(part),
                                                                  still_live(_DOC.c.removed_gen)))]
        if not ids:
            continue
        live = (_CHUNK.c.document_id.in_(ids), still_live(_CHUNK.c.removed_gen))
        chunks += conn.execute(delete(_CHUNK).where(*live, _CHUNK.c.added_gen >= G)).rowcount
        chunks += conn.execute(update(_CHUNK).where(*live).values(removed_gen=G)).rowcount
        conn.execute(update(_DOC).where(_DOC.c.id.in_(ids)).values(removed_gen=G))
        docs += len(ids)
    return docs, chunks


def batched(items: Iterable, n: int = LOOKUP_BATCH) -> Iterator[list]:
    """`items` in lists of n (the last one shorter), read lazily: a streamed corpus stays streamed."""
    batch: list = []
    for x in items:
        batch.append(x)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def live_paths(store, prefix: str, page: int = 5000) -> Iterator[str]:
    """Paths of the live documents under `prefix`, read page by page (never the whole table in one list)."""
    last = 0
    while True:
        with store.engine.connect() as conn:
            rows = conn.execute(select(_DOC.c.id, _DOC.c.path).where(
                _DOC.c.removed_gen.is_(None), _DOC.c.path.startswith(prefix, autoescape=True), _DOC.c.id > last)
                .order_by(_DOC.c.id).limit(page)).all()
        yield from (p for _, p in rows)
        if len(rows) < page:
            return
        last = rows[-1][0]


class PathSet:
    """The paths an ingest saw, as 64-bit hashes: 8 bytes a document instead of a Python string and a set slot
    (a million paths: 8 MB, not ~100 MB). Two paths sharing a hash (odds ~n²/2⁶⁵) would keep a vanished
    document one more ingest; never the reverse."""

    def __init__(self):
        import array

        self._hashes = array.array("Q")
        self._sorted: np.ndarray | None = None

    @staticmethod
    def _hash(path: str) -> int:
        import xxhash

        return xxhash.xxh3_64_intdigest(path.encode("utf-8", "surrogateescape"))

    def add(self, path: str) -> None:
        self._hashes.append(self._hash(path))

    def freeze(self) -> "PathSet":
        self._sorted = np.unique(np.frombuffer(self._hashes, np.uint64))
        self._hashes = None
        return self

    def __contains__(self, path: str) -> bool:
        h = np.uint64(self._hash(path))
        i = int(np.searchsorted(self._sorted, h))
        return i < len(self._sorted) and self._sorted[i] == h


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def paths_under(store, targets: Iterable) -> Iterator[str]:
    """Live document paths that `delete` means by `targets`: each target's absolute path, the documents under it
    as a folder, or a stored path spelled as given (`beir:...`); read page by page, found by the path index."""
    import os

    seen: set[str] = set()
    for t in targets:
        a = os.path.abspath(t)
        if not _storable(a):  # a name that is not UTF-8 is stored escaped (pathnames.to_stored): that spelling is
            continue          # among the targets; this one cannot be asked for
        for exact in {a, str(t)} - seen:
            seen.add(exact)
            with store.sessions() as s:
                doc = lookup(s, [exact]).get(exact)
            if doc is not None and doc.removed_gen is None:
                yield exact
        folder = a.rstrip("/") + "/"
        if folder not in seen:
            seen.add(folder)
            yield from live_paths(store, folder)
