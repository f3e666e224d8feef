"""A segment: the postings of a fixed set of chunks, immutable once written.

Per chunk (sorted by chunk id): its id, its length in terms, a CRC32 of the text it was analyzed from (doctor
compares it with the row) and its document path (for `--where`). Per term (sorted by its 64-bit hash): a range of
postings, each a chunk's position in the segment and the term's frequency in it. Nothing here depends on corpus
statistics, so a segment stays valid in every generation that holds it; deletions live in the generation.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from .analyzer import ANALYZER, document_analysis, term_hashes
from .container import read_container, write_container

BUILD_BATCH = 8192  # chunks analyzed into one in-memory part before parts are merged (bounds memory: ~5 KB a chunk)
MAX_SEGMENT_DOCS = 131_072  # no segment is built or merged beyond this: memory follows it, not the corpus
MAX_TF = np.iinfo(np.uint16).max


def chunk_text(heading: str | None, text: str) -> str:
    """What a chunk is searched by: its heading path and its text."""
    return f"{heading}\n{text}" if heading else text


def text_crc(heading: str | None, text: str) -> int:
    return zlib.crc32(chunk_text(heading, text).encode("utf-8")) & 0xFFFFFFFF


@dataclass
class Segment:
    """Arrays of one segment, in memory or mapped from its file; `name` is None until written."""

    chunk_ids: np.ndarray  # int64[n], ascending
    doc_len: np.ndarray  # uint32[n]
    doc_crc: np.ndarray  # uint32[n]
    doc_path: np.ndarray  # int32[n], index into paths
    paths: Sequence[str]  # a list while built; MappedPaths once read from its file
    term_hash: np.ndarray  # uint64[V], ascending
    indptr: np.ndarray  # int64[V + 1]
    post_doc: np.ndarray  # int32[P], position of the chunk in this segment
    post_tf: np.ndarray  # uint16[P]
    name: str | None = None
    _path_index: dict[str, int] | None = field(default=None, repr=False)

    @property
    def n_docs(self) -> int:
        return int(len(self.chunk_ids))

    @property
    def n_postings(self) -> int:
        return int(len(self.post_doc))

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Position of each chunk id in this segment, -1 where it is not here."""
        ids = np.asarray(ids, np.int64)
        if self.n_docs == 0 or len(ids) == 0:
            return np.full(len(ids), -1, np.int64)
        at = np.searchsorted(self.chunk_ids, ids).clip(0, self.n_docs - 1)
        return np.where(self.chunk_ids[at] == ids, at, -1)

    def term_ranges(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and end of the postings of each term hash (equal where the term does not occur here)."""
        if len(self.term_hash) == 0:
            z = np.zeros(len(hashes), np.int64)
            return z, z
        at = np.searchsorted(self.term_hash, hashes).clip(0, len(self.term_hash) - 1)
        found = self.term_hash[at] == hashes
        starts = np.where(found, self.indptr[at], 0)
        ends = np.where(found, self.indptr[at + 1], 0)
        return starts, ends

    def path_mask(self, pattern: re.Pattern) -> np.ndarray:
        """Which chunks' document paths match `pattern` (a compiled, anchored glob)."""
        hit = np.fromiter((pattern.fullmatch(p) is not None for p in self.paths), bool, len(self.paths))
        return hit[self.doc_path] if len(hit) else np.zeros(self.n_docs, bool)

    def check(self) -> None:
        """Raise ContainerError if the file this segment was read from no longer matches its checksums."""
        c = getattr(self, "_container", None)
        if c is not None and not getattr(self, "_checked", False):
            bad = c.verify()
            if bad:
                from .container import ContainerError

                raise ContainerError(f"{self.name} is damaged (checksum of {', '.join(bad)})")
            self._checked = True

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.chunk_ids, self.doc_len, self.doc_crc, self.doc_path, self.term_hash,
                                      self.indptr, self.post_doc, self.post_tf)) + sum(map(len, self.paths))


# ---------------------------------------------------------------------------------------------------- files
class MappedPaths(Sequence):
    """A written segment's document paths, decoded from its mapped file only while they are read (`--where`, a
    merge): held as Python strings, each segment's cost ~10 MB at 131,072 chunks, and the nine segments of a million
    passages kept 90 MB that no search needs."""

    def __init__(self, blob: np.ndarray, n: int):
        self._blob, self._n = blob, n

    def __len__(self) -> int:
        return self._n

    def _all(self) -> list[str]:
        return self._blob.tobytes().decode("utf-8").split("\0") if self._n else []

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __getitem__(self, i):
        return self._all()[i]


def write_segment(path: Path, seg: Segment) -> int:
    blob = np.frombuffer("\0".join(seg.paths).encode("utf-8"), np.uint8)
    meta = {"kind": "segment", "analyzer": ANALYZER, "n_docs": seg.n_docs, "n_terms": int(len(seg.term_hash)),
            "n_postings": seg.n_postings, "n_paths": len(seg.paths)}
    size = write_container(path, meta, {
        "chunk_ids": seg.chunk_ids, "doc_len": seg.doc_len, "doc_crc": seg.doc_crc, "doc_path": seg.doc_path,
        "paths": blob, "term_hash": seg.term_hash, "indptr": seg.indptr, "post_doc": seg.post_doc,
        "post_tf": seg.post_tf})
    seg.name = path.name
    return size


def read_segment(path: Path) -> Segment:
    c = read_container(path)
    if c.meta.get("kind") != "segment" or c.meta.get("analyzer") != ANALYZER:
        from .container import ContainerError

        raise ContainerError(f"{path.name} was written by another analyzer ({c.meta.get('analyzer')})")
    paths = MappedPaths(c.array("paths"), int(c.meta["n_paths"]))
    seg = Segment(c.array("chunk_ids"), c.array("doc_len"), c.array("doc_crc"), c.array("doc_path"), paths,
                  c.array("term_hash"), c.array("indptr"), c.array("post_doc"), c.array("post_tf"), path.name)
    seg._container = c  # keeps the map (and `verify`) alive with the arrays
    return seg


# ---------------------------------------------------------------------------------------------------- building
def empty_segment() -> Segment:
    z = np.zeros(0)
    return Segment(z.astype(np.int64), z.astype(np.uint32), z.astype(np.uint32), z.astype(np.int32), [],
                   z.astype(np.uint64), np.zeros(1, np.int64), z.astype(np.int32), z.astype(np.uint16))


def build_segment(rows: Iterable[tuple[int, str, str | None, str]]) -> Segment:
    """A segment of `(chunk id, document path, heading, text)` rows: analyzed in parts of BUILD_BATCH chunks, then
    merged, so memory follows the part, not the corpus."""
    parts, batch = [], []
    for row in rows:
        batch.append(row)
        if len(batch) >= BUILD_BATCH:
            parts.append(_build_part(batch))
            batch = []
    if batch or not parts:
        parts.append(_build_part(batch))
    return parts[0] if len(parts) == 1 else merge_segments([(p, None) for p in parts])


def build_segments(rows: Iterable[tuple[int, str, str | None, str]]) -> Iterator[Segment]:
    """Segments of at most MAX_SEGMENT_DOCS chunks each, yielded as they are complete: a corpus of any size is
    built in the memory of one such segment (the caller writes each to disk before asking for the next)."""
    it = iter(rows)
    parts, n = [], 0
    while True:
        batch = list(islice(it, min(BUILD_BATCH, MAX_SEGMENT_DOCS - n)))
        if batch:
            parts.append(_build_part(batch))
            n += len(batch)
        if parts and (not batch or n >= MAX_SEGMENT_DOCS):
            yield parts[0] if len(parts) == 1 else merge_segments([(p, None) for p in parts])
            parts, n = [], 0
        if not batch:
            return


def _build_part(rows: Sequence[tuple[int, str, str | None, str]]) -> Segment:
    if not rows:
        return empty_segment()
    order = sorted(range(len(rows)), key=lambda i: rows[i][0])
    rows = [rows[i] for i in order]
    n = len(rows)
    vocab: dict[str, int] = {}
    term_ids: list[int] = []
    doc_len = np.empty(n, np.uint32)
    n_terms = np.empty(n, np.int64)
    path_ids: dict[str, int] = {}
    doc_path = np.empty(n, np.int32)
    doc_crc = np.empty(n, np.uint32)
    for d, (_, path, heading, text) in enumerate(rows):
        body = chunk_text(heading, text)
        terms, doc_len[d] = document_analysis(body)
        n_terms[d] = len(terms)
        for t in set(terms).difference(vocab):
            vocab[t] = len(vocab)
        term_ids.extend(map(vocab.__getitem__, terms))
        doc_path[d] = path_ids.setdefault(path, len(path_ids))
        doc_crc[d] = zlib.crc32(body.encode("utf-8")) & 0xFFFFFFFF
    hashes = term_hashes(vocab)  # in vocabulary order
    rank = np.empty(len(hashes), np.int64)
    by_hash = np.argsort(hashes, kind="stable")
    rank[by_hash] = np.arange(len(hashes))
    docs = np.repeat(np.arange(n, dtype=np.int64), n_terms)
    keys, tf = np.unique(rank[np.asarray(term_ids, np.int64)] * n + docs, return_counts=True)
    term_of = keys // n
    indptr = np.zeros(len(hashes) + 1, np.int64)
    np.cumsum(np.bincount(term_of, minlength=len(hashes)), out=indptr[1:])
    return Segment(np.array([r[0] for r in rows], np.int64), doc_len, doc_crc, doc_path, list(path_ids),
                   hashes[by_hash], indptr, (keys % n).astype(np.int32), np.minimum(tf, MAX_TF).astype(np.uint16))


def merge_segments(sources: Sequence[tuple[Segment, np.ndarray | None]]) -> Segment:
    """One segment holding the live chunks of `sources` (each with its dead mask or None), postings copied as they
    are (no text is analyzed again): integer array work, linear in the postings."""
    sources = [(s, d) for s, d in sources if s.n_docs and (d is None or not d.all())]
    if not sources:
        return empty_segment()
    # chunks: the live ones of every source, in chunk id order
    keep = [np.ones(s.n_docs, bool) if d is None else ~d for s, d in sources]
    ids = np.concatenate([s.chunk_ids[k] for (s, _), k in zip(sources, keep)])
    order = np.argsort(ids, kind="stable")
    new_pos = np.empty(len(ids), np.int64)
    new_pos[order] = np.arange(len(ids))
    path_ids: dict[str, int] = {}
    doc_path_parts, remaps, at = [], [], 0
    for (s, _), k in zip(sources, keep):
        to_new = np.array([path_ids.setdefault(p, len(path_ids)) for p in s.paths], np.int32)
        doc_path_parts.append(to_new[s.doc_path[k]] if len(to_new) else np.zeros(int(k.sum()), np.int32))
        remap = np.full(s.n_docs, -1, np.int32)
        live = int(k.sum())
        remap[k] = new_pos[at:at + live]
        at += live
        remaps.append(remap)
    paths = list(path_ids)
    chunk_ids = ids[order]
    doc_len = np.concatenate([s.doc_len[k] for (s, _), k in zip(sources, keep)])[order]
    doc_crc = np.concatenate([s.doc_crc[k] for (s, _), k in zip(sources, keep)])[order]
    doc_path = np.concatenate(doc_path_parts)[order]
    # terms: the union of the sources' sorted hashes; each source's postings are already grouped by term in hash
    # order, so their place in the output follows from counts alone (no sort of the postings). Two passes over the
    # sources (count, then place), each source's postings handled alone: memory is the output plus one source.
    all_hash = np.unique(np.concatenate([s.term_hash for s, _ in sources]))
    counts = np.zeros(len(all_hash), np.int64)
    plans = []
    for (s, dead), remap in zip(sources, remaps):
        g_local = np.searchsorted(all_hash, s.term_hash)
        per_term = np.diff(s.indptr)
        if dead is not None:  # live postings per term
            live = remap[s.post_doc] >= 0
            per_term = np.bincount(np.repeat(np.arange(len(per_term), dtype=np.int32), per_term)[live],
                                   minlength=len(per_term))
        counts[g_local] += per_term
        plans.append((g_local, per_term))
    used = counts > 0  # terms whose every posting was dropped go away
    indptr = np.zeros(int(used.sum()) + 1, np.int64)
    np.cumsum(counts[used], out=indptr[1:])
    start = np.zeros(len(all_hash), np.int64)
    start[used] = indptr[:-1]
    post_doc = np.empty(int(indptr[-1]), np.int32)
    post_tf = np.empty(int(indptr[-1]), np.uint16)
    filled = np.zeros(len(all_hash), np.int64)
    for (s, dead), remap, (g_local, per_term) in zip(sources, remaps, plans):
        doc, tf = remap[s.post_doc], s.post_tf
        if dead is not None:
            live = doc >= 0
            doc, tf = doc[live], tf[live]
        if len(doc) == 0:
            continue
        run_start = np.cumsum(per_term) - per_term  # where each term's run begins in this source's live postings
        pos = np.repeat(start[g_local] + filled[g_local] - run_start, per_term)
        pos += np.arange(len(doc))
        post_doc[pos] = doc
        post_tf[pos] = tf
        filled[g_local] += per_term
        del doc, tf, pos
    return Segment(chunk_ids, doc_len, doc_crc, doc_path, paths, all_hash[used], indptr, post_doc, post_tf)
