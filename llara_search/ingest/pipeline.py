"""Incremental, resumable sync of files into the store, the stored vectors and the next index generation.

All rows written by one ingest carry the generation G it is building (`added_gen` / `removed_gen`). Encoded
chunks are committed in batches: vectors appended and fsynced first, then their rows in one transaction. After a
crash, G was never committed, so readers never saw any of it; the next run builds the same G, finds the rows
already there (no re-encoding) and finishes. At the end G's vector index is written (a FAISS file, or rows in Milvus:
index/backend.py) and named in the database in a single commit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from ..faults import crash_point
from ..index import VectorStore
from ..index.backend import VectorBackend
from ..layout import IndexPaths
from ..lexical import LexicalIndex
from ..notices import emit
from ..pathnames import to_stored
from ..store import Chunk, Document, IngestFailure, IngestRun, Store
from ..store.models import utcnow
from ..terminal import clean
from . import writer
from .chunking import ChunkData, Chunker, passage_text
from .commit import GenerationCommit
from .forecast import ChunkForecast, EncodeEstimate, min_seconds, text_bytes
from .notes import one_line, record_file_notes
from .ahead import Ahead
from .report import _BATCH_COUNTERS, IngestOptions, IngestReport
from .parsers import PARSER_VERSION, ParsedDocument, ParseError, SkipFile, parse_file, parse_underlined
from .walk import walk
from .writer import DocState, PathSet

log = logging.getLogger(__name__)


@dataclass
class _Work:
    """One changed document: its rows to write and the chunks to encode."""

    path: str
    stat: os.stat_result
    digest: str
    parsed: ParsedDocument
    chunks: list[ChunkData]
    doc_key: str | None = None
    text_bytes: int | None = None  # the size the forecast learns from (forecast.text_bytes)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _settled(run: Callable) -> Callable:
    """A run that fails or is stopped leaves no encoder thread behind: the batch encoded ahead is waited for and
    dropped (its rows were never written, as after a crash), so the process never ends under a running torch op
    (which aborts it)."""
    @functools.wraps(run)
    def settled(self: "Ingestor", *args, **kwargs):
        try:
            return run(self, *args, **kwargs)
        except BaseException:
            ahead, self._ahead, self._ahead_paths = self._ahead, None, set()
            if ahead is not None:
                ahead[2].wait()
            raise

    return settled


class Ingestor(GenerationCommit):
    def __init__(self, paths: IndexPaths, store: Store, vectors: VectorStore | None, chunker: Chunker | None,
                 encode: Callable[[list[str]], np.ndarray] | None, fingerprint: str, options: IngestOptions,
                 progress: Callable[[str, int, int], None] | None = None, backend: VectorBackend | None = None):
        """`backend`: where the generation's vector index goes (default: FAISS files in the index folder)."""
        if backend is None:
            from ..index.generations import FaissBackend

            backend = FaissBackend(paths)
        self.backend = backend
        self.paths = paths
        self.store = store
        self.vectors = vectors
        self.chunker = chunker
        self.encode = encode
        self.fingerprint = fingerprint
        self.opt = options
        self.progress = progress or (lambda stage, done, total: None)
        self.report = IngestReport()
        self.gen = store.next_generation()
        self.lexical = LexicalIndex(paths.lexical)
        self._pending: list[_Work] = []
        self._pending_paths: set[str] = set()
        self._known: dict[str, DocState | None] = {}  # rows of the batch of paths being read (`_prefetch`)
        self._touched: list[dict] = []  # same bytes, new size or mtime: written with the next batch's lookup
        self._pending_chunks = 0
        self._ahead: tuple[list[_Work], list, Ahead] | None = None  # a batch being encoded, its rows not written
        self._ahead_paths: set[str] = set()
        self.load_encoder: Callable[[], object] | None = None  # loads the model outside the first batch's timer
        self.info_on_commit: dict = {}  # index info committed with the generation (e.g. the passages' dtype)
        self._encoder = None
        self._forecast = ChunkForecast()
        self._remaining: Callable[[], int] | None = None  # chunks still to encode after the batch in hand
        self._expected = 0
        self._roots: list[Path] | None = None  # the folders being ingested: where AsciiDoc includes may come from

    # ------------------------------------------------------------------------------------------------ files
    @_settled
    def run_files(self, roots: list[Path]) -> IngestReport:
        t0 = time.perf_counter()
        run_id = self._start_run()
        found = walk(roots, self.opt.include, self.opt.exclude, self.opt.hidden, self.opt.follow_symlinks)
        self._roots = [Path(os.path.abspath(r)) for r in roots]
        for path, reason in found.failures:
            self._fail(to_stored(path), reason, "unreadable")
        for path, reason, kind in found.skipped:
            self._skip(to_stored(path), reason, kind)
        self.report.files_seen = found.seen  # = indexed + unchanged + skipped + failed once the run is done
        seen: set[str] = set()
        self._files, self._pos = found.files, 0
        self._remaining = self._files_remaining
        for n, f in enumerate(found.files):
            self._pos = n
            if n % writer.LOOKUP_BATCH == 0:  # existence checks: one query per batch of walked paths
                self._prefetch([to_stored(p) for p in found.files[n:n + writer.LOOKUP_BATCH]])
            self.progress("parse", n, len(found.files))
            seen.add(to_stored(f))
            self._sync_file(f)
        self._flush_safely()
        if self.opt.delete_missing:
            self._remove_missing([Path(os.path.abspath(r)) for r in roots], seen)
        self._finish(run_id, t0)
        record_file_notes(self.store, [to_stored(os.path.abspath(r)) for r in roots], self.run_id, self.report)
        return self.report

    @_settled
    def run_changes(self, files: list[Path], gone: list[str]) -> IngestReport:
        """Sync only what a file watcher saw change (llara_search/watch): `files` read again where their size or
        mtime changed, the documents at or under each path in `gone` removed; one generation, like `run_files`."""
        t0 = time.perf_counter()
        run_id = self._start_run()
        self.report.files_seen = len(files)
        self._files, self._pos = files, 0
        self._remaining = self._files_remaining
        for n, f in enumerate(files):
            self._pos = n
            self._sync_file(f)
        self._flush_safely()
        if gone:
            with self.store.sessions() as s:
                live = list(s.scalars(select(Document.path).where(Document.removed_gen.is_(None))))
            gone = [to_stored(g) for g in gone]  # names as stored (pathnames.py)
            prefixes = tuple(g.rstrip("/") + "/" for g in gone)
            wanted, synced = set(gone), {to_stored(f) for f in files}
            self.remove_documents([p for p in live if (p in wanted or p.startswith(prefixes)) and p not in synced])
        self._finish(run_id, t0)
        return self.report

    @_settled
    def run_records(self, records, source: str, expected: int | None = None) -> IngestReport:
        """Ingest in-memory documents `(doc_key, title, text)` (BEIR corpora), keyed as `<source>:<doc_key>`;
        `expected`: how many records there are, when known (for the encode forecast)."""
        t0 = time.perf_counter()
        run_id = self._start_run()
        if expected:
            self._remaining = lambda: self._pending_chunks + round(
                max(0, expected - self.report.files_seen) * self._forecast.chunks / max(1, self.report.files_seen))
        seen = PathSet()
        for batch in writer.batched(records):
            keyed = [(f"{source}:{r[0]}", *r) for r in batch]
            self._prefetch([k[0] for k in keyed])
            for path, doc_key, title, text in keyed:
                self.report.files_seen += 1
                if self.report.files_seen % 256 == 0:
                    self.progress("parse", self.report.files_seen, 0)
                seen.add(path)
                self._sync_record(path, doc_key, title, text)
        self._flush_safely()
        if self.opt.delete_missing:
            self._remove_prefix(f"{source}:", seen.freeze())
        self._finish(run_id, t0)
        return self.report

    def _sync_record(self, path: str, doc_key: str, title: str, text: str) -> None:
        t = time.perf_counter()
        body = passage_text(title, text)
        try:
            data = body.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (JSON may escape one): U+FFFD, as a decoder makes of bad bytes
            title, text = _LONE_SURROGATE.sub("\ufffd", title or ""), _LONE_SURROGATE.sub("\ufffd", text)
            body = passage_text(title, text)
            data = body.encode("utf-8")
            self.report.warnings.append({"path": path, "warning": "lone surrogates replaced by U+FFFD"})
        digest = hashlib.sha256(data).hexdigest()
        doc = self._doc(path)
        if self._same_bytes(doc, digest):
            if doc.parser_version == PARSER_VERSION:
                self.report.files_unchanged += 1
                return
            self.report.files_reparsed += 1
        parsed = parse_underlined(text, "beir")
        if title:
            for s in parsed.sections:
                s.heading = [title] + s.heading
        parsed.title = title
        self.report.stages["parse"] += time.perf_counter() - t
        t = time.perf_counter()
        chunks = self.chunker.chunk(parsed)
        self.report.stages["chunk"] += time.perf_counter() - t
        size = len(body.encode())
        self._queue(_Work(path, os.stat_result((0, 0, 0, 0, 0, 0, size, 0, 0, 0)), digest, parsed, chunks, doc_key))

    def _sync_file(self, f: Path) -> None:
        path = to_stored(f)  # a name that is not UTF-8 is stored escaped, losslessly (pathnames.py)
        t = time.perf_counter()
        try:
            st = f.stat()
            if not stat.S_ISREG(st.st_mode):  # replaced by a pipe or device since the walk: reading could block
                raise SkipFile("not a regular file any more", kind="special-file")
            doc = self._doc(path)
            if (doc is not None and doc.removed_gen is None and doc.size == st.st_size
                    and doc.mtime_ns == st.st_mtime_ns and doc.parser_version == PARSER_VERSION):
                self.report.files_unchanged += 1
                return
            if st.st_size > self.opt.max_file_mb * 2**20:
                raise SkipFile(f"file too large ({st.st_size / 2**20:.1f} MB > --max-file-mb {self.opt.max_file_mb:g})",
                               kind="too-large")
            data = f.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if self._same_bytes(doc, digest):
                if doc.parser_version == PARSER_VERSION:
                    self._touched.append({"_id": doc.id, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
                    self.report.files_unchanged += 1
                    return
                self.report.files_reparsed += 1
            parsed = parse_file(f, data, self._roots)
            for w in parsed.warnings:
                self.report.warnings.append({"path": path, "warning": w})
            self.report.stages["parse"] += time.perf_counter() - t
            t = time.perf_counter()
            chunks = self.chunker.chunk(parsed)
            self.report.stages["chunk"] += time.perf_counter() - t
        except SkipFile as exc:
            self._skip(path, str(exc), getattr(exc, "kind", "other"))
            if exc.warn:  # a document the user would expect indexed (a scanned PDF): say why it is not
                self.report.warnings.append({"path": path, "warning": f"skipped: {exc}"})
            return
        except ParseError as exc:
            self._fail(path, str(exc), "corrupt")
            return
        except FileNotFoundError:
            self._fail(path, "file disappeared while ingesting", "vanished")
            return
        except PermissionError:
            self._fail(path, "permission denied", "unreadable")
            return
        except OSError as exc:
            self._fail(path, f"cannot read: {exc.strerror or exc}", "unreadable")
            return
        except RecursionError:
            self._fail(path, "document nested too deeply to parse", "corrupt")
            return
        except Exception as exc:  # noqa: BLE001 - a parser's bug or a library's surprise is this file's failure
            log.debug("parsing %s failed", clean(path), exc_info=True)
            self._fail(path, f"cannot parse: {one_line(exc)}", "error")
            return
        crash_point("parse")
        self._queue(_Work(path, st, digest, parsed, chunks, text_bytes=text_bytes(data)))

    def _prefetch(self, paths: list[str]) -> None:
        """Look up the stored rows of the next batch of paths in one query (for `_doc`); first record the new
        size and mtime of the files of the last batch that were touched but hold the same bytes (one statement)."""
        if self._touched:
            with self.store.session() as s:
                writer.touch(s, self._touched)
            self._touched = []
        with self.store.sessions() as s:
            found = writer.lookup(s, paths)
        self._known = {p: found.get(p) for p in paths}

    def _doc(self, path: str) -> DocState | None:
        if path in self._ahead_paths:  # the same path again while its first version is being encoded: written first
            self._drain()
            self._known.pop(path, None)
        if path in self._known:
            return self._known[path]
        with self.store.sessions() as s:
            return writer.lookup(s, [path]).get(path)

    @staticmethod
    def _same_bytes(doc: DocState | None, digest: str) -> bool:
        """The live document already holds exactly these bytes (then only a newer parser gives a reason to read it)."""
        return doc is not None and doc.removed_gen is None and doc.content_hash == digest

    # ------------------------------------------------------------------------------------------------ batches
    def _queue(self, work: _Work) -> None:
        if work.path in self._pending_paths:  # the same path twice (a corpus repeating an id): one batch each
            self._flush_safely()
        self._forecast.observe(work.path, work.text_bytes or int(work.stat.st_size), len(work.chunks))
        self._pending.append(work)
        self._pending_paths.add(work.path)
        self._pending_chunks += len(work.chunks)
        # without an encoder a batch is only rows: larger ones save commits (each an fsync), memory stays per batch
        if self._pending_chunks >= (self.opt.commit_chunks if self.encode else max(self.opt.commit_chunks, 2048)):
            self._flush_safely(ahead=self._encode_ahead())

    def _flush_safely(self, ahead: bool = False) -> None:
        """`_flush`, where a row the database refuses fails its own file only: the batch is written again file by
        file, and the one that is refused is reported (the rest of the run goes on)."""
        self._drain()  # the batch encoded ahead is written first, under its own counters
        self._refused_rows_fail_alone(list(self._pending), lambda: self._flush(ahead))

    def _refused_rows_fail_alone(self, works: list[_Work], write: Callable[[], None]) -> None:
        """`write()` of the batch `works`; should the database refuse a row, the batch again one file at a time."""
        counters = {k: getattr(self.report, k) for k in _BATCH_COUNTERS}
        try:
            write()
        except OperationalError:
            raise  # the database itself is away, locked or full: no file is to blame
        except (SQLAlchemyError, UnicodeError) as exc:
            self._one_by_one(works, counters, exc)

    def _one_by_one(self, works: list[_Work], counters: dict[str, int], exc: Exception) -> None:
        """A batch the database refused: its counters as before it, then its files written one at a time, so the
        one that is refused fails alone."""
        for k, v in counters.items():
            setattr(self.report, k, v)
        if len(works) == 1:
            self._fail(works[0].path, f"cannot store: {one_line(exc)}", "store-error")
            return
        held = self._pending, self._pending_chunks, set(self._pending_paths)
        for w in works:
            self._pending, self._pending_chunks = [w], len(w.chunks)
            self._flush_safely()
        self._pending, self._pending_chunks, self._pending_paths = held

    def _flush(self, ahead: bool = False) -> None:
        """Encode what the queued documents need, append vectors, then commit their rows in one transaction.
        `ahead`: the encode runs beside the caller, who goes on parsing; the rows are written by the next flush (or
        `_drain`), which first writes the batch before it."""
        works, self._pending, self._pending_chunks = self._pending, [], 0
        self._pending_paths.clear()
        self._drain()
        if not works:
            return
        t = time.perf_counter()
        with self.store.sessions() as s:
            plans = writer.plan(s, works)
        to_encode = [c for p in plans for c in p.new]
        self.report.stages["store"] += time.perf_counter() - t
        if to_encode and self.encode:
            self._load_encoder()
            if ahead:
                self._ahead = (works, plans, Ahead(self._vectors_for, to_encode))
                self._ahead_paths = {w.path for w in works}
                return
        t = time.perf_counter()
        vecs, n_encoded = self._vectors_for(to_encode) if to_encode and self.encode else (None, 0)
        took = time.perf_counter() - t
        if to_encode and self.encode and self._encode_ahead():  # the run's last batch: nothing left to parse
            self.report.stages["encode_wait"] += took
        self._write(plans, vecs, n_encoded, took)

    def _drain(self) -> None:
        """Write the batch encoded ahead, once its vectors are ready. A row the database refuses fails its own
        file only, as in `_flush_safely`."""
        if self._ahead is None:
            return
        works, plans, job = self._ahead
        self._ahead, self._ahead_paths = None, set()
        t = time.perf_counter()
        vecs, n_encoded = job.take()
        self.report.stages["encode_wait"] += time.perf_counter() - t  # the ingest waiting for the encoder
        self._refused_rows_fail_alone(works, lambda: self._write(plans, vecs, n_encoded, job.seconds))

    def _write(self, plans: list, vecs: np.ndarray | None, n_encoded: int, took: float) -> None:
        self.report.stages["encode"] += took
        self.report.chunks_encoded += n_encoded
        if n_encoded:
            self._forecast_once(n_encoded, took)
        self.progress("encode", self.report.chunks_encoded, self._expected)
        crash_point("encode")
        t = time.perf_counter()
        with self.store.session() as s:
            done = writer.write(s, plans, self.gen, PARSER_VERSION)
            if done.new_ids and self.vectors is not None:
                # fsynced before the commit that makes the rows exist
                self.vectors.append(np.array(done.new_ids, dtype=np.int64), vecs)
            self.report.files_new += done.files_new
            self.report.files_changed += done.files_changed
            self.report.chunks_removed += done.chunks_removed
            self.report.chunks_added += len(done.new_ids)
            crash_point("commit")  # inside the transaction, after the vectors were written
        crash_point("batch")
        self.report.stages["store"] += time.perf_counter() - t

    def _vectors_for(self, chunks: list[ChunkData]) -> tuple[np.ndarray, int]:
        """Vectors for new chunk rows, and how many had to be encoded: a passage the index already holds (a file
        renamed or moved, a copy) takes the stored vector of a row with the same content hash, live or removed in
        this generation (so still the index's encoder and still in the stored vectors); only the rest is encoded."""
        known: dict[str, int] = {}
        if self.vectors is not None:
            hashes = sorted({c.content_hash for c in chunks})
            with self.store.sessions() as s:
                for i in range(0, len(hashes), 900):
                    for h, cid in s.execute(select(Chunk.content_hash, Chunk.id).where(
                            Chunk.content_hash.in_(hashes[i:i + 900]),
                            Chunk.removed_gen.is_(None) | (Chunk.removed_gen == self.gen))):
                        known.setdefault(h, cid)
            if known:
                hs = list(known)
                pos = self.vectors.positions(np.array([known[h] for h in hs], dtype=np.int64))
                known = {h: known[h] for h, p in zip(hs, pos) if p >= 0}
        todo = [i for i, c in enumerate(chunks) if c.content_hash not in known]
        if not known:
            return self.encode([c.passage for c in chunks]), len(chunks)
        out = np.empty((len(chunks), self.vectors.dim), dtype=np.float32)
        copied = [i for i, c in enumerate(chunks) if c.content_hash in known]
        out[copied] = self.vectors.get(np.array([known[chunks[i].content_hash] for i in copied], dtype=np.int64))
        if todo:
            out[todo] = self.encode([chunks[i].passage for i in todo])
        return out, len(todo)

    # ------------------------------------------------------------------------------------------------ re-encoding
    def reencode_all(self) -> None:
        """Copy every live chunk to a new row of generation G with a vector from the new encoder.

        New rows get new ids, so readers still on G-1 keep their old ids and old vectors: the two vector spaces
        never mix in one search. A crash leaves G uncommitted; a re-run continues with the rows not yet copied.
        """
        G = self.gen
        with self.store.sessions() as s:
            todo_total = s.scalar(select(func.count()).select_from(Chunk).where(Chunk.removed_gen.is_(None),
                                                                                Chunk.added_gen < G)) or 0
        self._remaining = lambda: todo_total - self.report.chunks_encoded
        while True:
            with self.store.sessions() as s:
                todo = s.execute(select(Chunk.id, Chunk.heading, Chunk.text).where(
                    Chunk.removed_gen.is_(None), Chunk.added_gen < G).order_by(Chunk.id).limit(self.opt.commit_chunks)
                                 ).all()
            if not todo:
                return
            passages = [passage_text(h, t) for _, h, t in todo]
            self._load_encoder()
            t = time.perf_counter()
            vecs = self.encode(passages)
            took = time.perf_counter() - t
            self.report.stages["encode"] += took
            self.report.chunks_encoded += len(todo)
            self._forecast_once(len(todo), took)
            self.progress("encode", self.report.chunks_encoded, self._expected)
            with self.store.session() as s:
                new_ids = writer.copy_chunks(s, [i for i, _, _ in todo], G)
                self.vectors.append(np.array(new_ids, dtype=np.int64), vecs)
                self.report.chunks_added += len(new_ids)
                self.report.chunks_removed += len(new_ids)
            crash_point("batch")

    # ------------------------------------------------------------------------------------------------ forecast
    def _encode_ahead(self) -> bool:
        """As asked; by default only with the encoder on a GPU. There its kernels leave the cores and the
        interpreter lock to the parsing; on the CPU the encoder's threads and the parsing share both, and the HAProxy
        docs ingested in 0.56x the time ahead as in turn on 2 cores (benchmarks/ahead.py)."""
        if self.opt.encode_ahead is not None:
            return self.opt.encode_ahead
        return getattr(getattr(self._encoder, "device", None), "type", None) == "cuda"

    def _load_encoder(self) -> None:
        if self._encoder is None and self.load_encoder is not None:
            self._encoder = self.load_encoder()

    def _files_remaining(self) -> int:
        """Chunks expected from the files not read yet that are new or changed (by size and mtime)."""
        rest = self._files[self._pos + 1:]
        if not rest:
            return self._pending_chunks
        with self.store.sessions() as s:
            known = {p: (size, mtime) for p, size, mtime in s.execute(
                select(Document.path, Document.size, Document.mtime_ns).where(Document.removed_gen.is_(None)))}
        todo = []
        limit = self.opt.max_file_mb * 2**20
        for f in rest:
            try:
                st = f.stat()
            except OSError:
                continue
            if st.st_size <= limit and known.get(to_stored(f)) != (st.st_size, st.st_mtime_ns):
                todo.append((str(f), st.st_size))
        return self._pending_chunks + self._forecast.remaining(todo)

    def _forecast_once(self, n: int, seconds: float) -> None:
        """After the first encoded batch: how many chunks this run will encode and how long that takes, announced
        (llara_search.notices) when it is long enough to matter."""
        if self.report.estimate is not None or self._remaining is None or seconds <= 0:
            return
        left = max(0, int(self._remaining()))
        rate = n / seconds
        enc = self._encoder
        dtype = str(getattr(enc, "dtype", "unknown")).removeprefix("torch.")
        est = EncodeEstimate(self.report.chunks_encoded + left, self.report.chunks_encoded, round(rate, 2),
                             round(left / rate, 1), str(getattr(enc, "device", "unknown")), dtype)
        self.report.estimate = est.to_dict()
        self._expected = est.chunks
        if left and est.seconds >= min_seconds():
            emit("estimate", est.message(), **est.to_dict())

    # ------------------------------------------------------------------------------------------------ removal
    def _remove_missing(self, roots: list[Path], seen: set[str]) -> None:
        prefixes = [to_stored(r) if not r.is_dir() else to_stored(r).rstrip("/") + "/" for r in roots]
        with self.store.sessions() as s:
            docs = list(s.scalars(select(Document.path).where(Document.removed_gen.is_(None))))
        gone = [p for p in docs if p not in seen and any(p == pre or p.startswith(pre) for pre in prefixes)]
        self.remove_documents(gone)

    def _remove_prefix(self, prefix: str, seen: "PathSet") -> None:
        """Remove the live documents under `prefix` that this run did not see, reading them page by page."""
        self.remove_documents([p for p in writer.live_paths(self.store, prefix) if p not in seen])

    def remove_documents(self, doc_paths: Iterable[str]) -> int:
        with self.store.session() as s:
            n, chunks = writer.remove(s, doc_paths, self.gen)
        self.report.chunks_removed += chunks
        self.report.files_removed += n
        return n

    # ------------------------------------------------------------------------------------------------ commit
    def _start_run(self) -> int:
        with self.store.session() as s:
            # we hold the writer lock: a run still marked running was killed (its committed batches are kept)
            s.execute(update(IngestRun).where(IngestRun.status == "running").values(status="interrupted"))
            run = IngestRun(pid=os.getpid(), generation=self.gen)
            s.add(run)
            s.flush()
            self.run_id = run.id
        if self.gen > 1:  # a lexical merge too large for one commit runs beside this run's parsing and encoding
            self.lexical.start_merge(self.gen - 1)
        return self.run_id

    def _fail(self, path: str, reason: str, kind: str = "error") -> None:
        self.report.files_failed.append({"path": path, "error": reason, "kind": kind})
        with self.store.session() as s:
            s.add(IngestFailure(run_id=self.run_id, path=path, error=reason))

    def _skip(self, path: str, reason: str, kind: str) -> None:
        self.report.files_skipped += 1
        self.report.skipped.append({"path": path, "reason": reason, "kind": kind})

    def _finish(self, run_id: int, t0: float) -> None:
        self._prefetch([])  # the new size and mtime of touched files not written yet
        self.commit_generation()
        g = self.store.current_generation()
        counts = self.store.counts(g.id if g else 0)
        self.report.documents = counts["documents"]
        self.report.chunks_total = counts["chunks_total"]
        self.report.formats = self._formats()
        self.report.seconds = time.perf_counter() - t0
        with self.store.session() as s:
            s.execute(update(IngestRun).where(IngestRun.id == run_id).values(
                status="done", finished_at=utcnow(), seconds=self.report.seconds,
                stats=json.dumps(self.report.to_dict())))

    def _formats(self) -> dict[str, int]:
        """Live documents per format (md, rst, pdf, man, info...), for the parse report."""
        from sqlalchemy import func

        with self.store.sessions() as s:
            rows = s.execute(select(Document.format, func.count()).where(Document.removed_gen.is_(None))
                             .group_by(Document.format))
            return {str(f or "unknown"): int(n) for f, n in sorted(rows, key=lambda r: (-r[1], str(r[0])))}
