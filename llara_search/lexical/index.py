"""The lexical (BM25) index of an index folder, `<index>/lexical/`: immutable segments shared by generations.

    seg-<G>-<random>.lexs   a segment (postings of a fixed set of chunks), written by generation G
    gen-<G>.lexg            generation G: the segments it searches and, per segment, which chunks are gone

A generation's files are written completely and fsynced before the database commit that names the generation, as
the FAISS files are, so a committed generation always has them; a crash before the commit leaves files no
committed generation names, which the next writer deletes. Each commit costs what changed: the new chunks become
one small segment, removed chunks one bit each in the manifest. Segments are merged as an ingest goes (a log-
structured policy: a few small segments at the tail, each older segment at least RATIO times its newer
neighbour, none more than MAX_DEAD gone), so a search looks at a handful of segments, and each chunk is copied
O(log N) times over its life. No segment grows beyond MAX_SEGMENT_DOCS chunks (segment.py): building or merging one
then costs the memory of one such segment whatever the corpus, and a million chunks are a dozen segments. A merge too large to do inside one small commit runs in a thread beside the next
writer's own work and is taken in by the commit that finds it done (or, once that writer committed, by an
equivalent manifest for the same generation: the same chunks, so the same scores).

Files are derived data: a missing or damaged manifest is rebuilt from the chunk rows by the next ingest or
`doctor --repair`; until then a reader builds the generation in memory from the rows.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .analyzer import ANALYZER
from .container import ContainerError, fsync_dir, read_container, write_container
from .heap import pin_mmap_threshold
from .segment import MAX_SEGMENT_DOCS, Segment, build_segment, build_segments, merge_segments, read_segment, write_segment
from .snapshot import SegmentView, Snapshot

log = logging.getLogger(__name__)

Rows = Iterable[tuple[int, str, "str | None", str]]  # (chunk id, document path, heading, text)
MIN_SEGMENT = 4096  # chunks; smaller segments are the "tail"
MAX_SMALL = 3  # tail segments allowed before they are merged into one
RATIO = 4  # each segment holds at least RATIO times the live chunks of its newer neighbour
MAX_DEAD = 0.25  # a segment with more of its chunks gone is rewritten
SYNC_MERGE_DOCS = 50_000  # merges up to this size (or 4× the commit's own change) run inside the commit
_MANIFEST = re.compile(r"^gen-(\d{8})\.lexg$")
_SEGMENT = re.compile(r"^seg-\d{8}-[0-9a-f]{8}\.lexs$")


class LexicalIndexError(RuntimeError):
    """A generation's lexical files are missing or damaged; the message says which and how to rebuild them."""


@dataclass
class LexicalReport:
    segments: int = 0
    chunks: int = 0
    postings: int = 0
    added: int = 0
    removed: int = 0
    merged_chunks: int = 0
    rebuilt: bool = False
    bytes_written: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class _Merge:
    """A merge running in a thread: of `sources` (segment names), as their chunks stood in `base` generation."""

    sources: tuple[str, ...]
    thread: threading.Thread | None = None
    result: Segment | None = None
    error: BaseException | None = None


class LexicalIndex:
    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self._lock = threading.Lock()
        self._segments: dict[str, Segment] = {}
        self._snapshot: Snapshot | None = None
        self._merge: _Merge | None = None

    def manifest_path(self, gen: int) -> Path:
        return self.dir / f"gen-{gen:08d}.lexg"

    # ------------------------------------------------------------------------------------------------ reading
    def snapshot(self, gen: int, rows: Callable[[], Rows] | None = None) -> Snapshot:
        """Generation `gen` ready to search (cached until another generation is asked for). Without its files,
        `rows()` (the generation's visible chunks) is analyzed in memory instead, or LexicalIndexError is raised."""
        snap = self._snapshot
        if snap is not None and snap.generation == gen:
            return snap
        with self._lock:
            snap = self._snapshot
            if snap is not None and snap.generation == gen:
                return snap
            try:
                entries = self._load(gen, check=True)
            except LexicalIndexError as exc:
                if rows is None:
                    raise
                log.warning("%s; searching a copy built in memory from the chunk rows until `llara-search doctor "
                            "--repair` (or the next ingest) writes it", exc)
                entries = [(build_segment(rows()), None)]
            snap = Snapshot(gen, [SegmentView(s, d) for s, d in entries])
            self._segments = {s.name: s for s, _ in entries if s.name}  # drop the maps no generation here uses
            self._snapshot = snap
            return snap

    def has(self, gen: int) -> bool:
        """Whether generation `gen` has complete, readable lexical files."""
        try:
            self._load(gen)
            return True
        except LexicalIndexError:
            return False

    def _read_manifest(self, gen: int) -> tuple[dict, list[np.ndarray | None]]:
        path = self.manifest_path(gen)
        try:
            c = read_container(path)
            meta = c.meta
            if meta.get("kind") != "generation" or meta.get("generation") != gen:
                raise ContainerError(f"{path.name} does not describe generation {gen}")
            if meta.get("analyzer") != ANALYZER:
                raise ContainerError(f"{path.name} was written with another analyzer ({meta.get('analyzer')})")
            dead = [np.unpackbits(c.array(f"dead{i}"), count=s["n_docs"]).astype(bool) if s["n_dead"] else None
                    for i, s in enumerate(meta["segments"])]
        except FileNotFoundError:
            raise LexicalIndexError(f"the lexical index of generation {gen} is missing ({path.name})") from None
        except (ContainerError, KeyError, TypeError, ValueError) as exc:
            raise LexicalIndexError(f"the lexical index file {path.name} is damaged ({exc})") from None
        return meta, dead

    def _load(self, gen: int, check: bool = False) -> list[tuple[Segment, np.ndarray | None]]:
        """The segments of generation `gen` with their dead masks; `check`: verify the segments' checksums (a
        reader does, once per segment, so a damaged file never reaches a search)."""
        for attempt in range(3):
            meta, dead = self._read_manifest(gen)
            try:
                out = []
                for s, d in zip(meta["segments"], dead):
                    seg = self._segments.get(s["name"]) or read_segment(self.dir / s["name"])
                    if seg.n_docs != s["n_docs"]:
                        raise ContainerError(f"{s['name']} holds {seg.n_docs} chunks, not {s['n_docs']}")
                    if check:
                        seg.check()
                    out.append((seg, d))
                return out
            except FileNotFoundError as exc:
                if attempt == 2:  # not a manifest replaced under us by an equivalent one: a lost file
                    raise LexicalIndexError(f"the lexical index of generation {gen} is missing a segment "
                                            f"({Path(exc.filename or '?').name})") from None
            except ContainerError as exc:
                raise LexicalIndexError(f"the lexical index of generation {gen} is damaged ({exc})") from None
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------------------------------------ writing
    def write_generation(self, gen: int, base: int | None, added: Rows, removed: np.ndarray,
                         live_ids: np.ndarray, all_rows: Callable[[], Rows]) -> LexicalReport:
        """Write generation `gen`: `base`'s segments, less the `removed` chunk ids, plus the `added` rows; rebuilt
        from `all_rows()` when `base` is unusable or the result would not hold exactly `live_ids`. Call only under
        the index's write lock, before the database commit that names `gen`."""
        t0 = time.perf_counter()
        rep = LexicalReport()
        self.dir.mkdir(parents=True, exist_ok=True)
        live_ids = np.asarray(live_ids, np.int64)
        entries: list[tuple[Segment, np.ndarray | None]] | None = None
        if base is not None:
            try:
                entries = [(s, None if d is None else d.copy()) for s, d in self._load(base)]
            except LexicalIndexError as exc:
                rep.notes.append(f"{exc}: rebuilt from the chunk rows")
        if entries is not None:
            entries = _remove(entries, np.unique(np.asarray(removed, np.int64)))
            if entries is None:
                rep.notes.append(f"generation {base}'s lexical index did not hold the removed chunks: rebuilt")
        if entries is not None:
            delta, rep.bytes_written = self._build(gen, added)
            rep.added = sum(s.n_docs for s, _ in delta)
            rep.removed = int(len(removed))
            entries += delta
            if not np.array_equal(_live_ids(entries), live_ids):
                rep.notes.append(f"generation {base}'s lexical index and the chunk rows disagree: rebuilt")
                entries = None
        if entries is None:
            entries, rep.bytes_written = self._build(gen, all_rows())
            rep.rebuilt, rep.added = True, sum(s.n_docs for s, _ in entries)
            if not np.array_equal(_live_ids(entries), live_ids):
                raise LexicalIndexError(f"the chunk rows changed while generation {gen}'s lexical index was built")
        entries = self._adopt(entries)
        try:
            entries, rep.merged_chunks = _compact(entries, max(SYNC_MERGE_DOCS, 4 * rep.added))
        except ContainerError as exc:  # a segment to merge is damaged: never copy its postings
            rep.notes.append(f"{exc}: rebuilt from the chunk rows")
            entries, rep.bytes_written = self._build(gen, all_rows())
            rep.rebuilt = True
        rep.bytes_written += self._write(gen, entries)
        rep.segments = len(entries)
        rep.chunks = int(len(live_ids))
        rep.postings = sum(s.n_postings for s, _ in entries)
        rep.seconds = time.perf_counter() - t0
        for note in rep.notes:
            log.warning(note)
        return rep

    def _build(self, gen: int, rows: Rows) -> tuple[list[tuple[Segment, np.ndarray | None]], int]:
        """Segments of `rows`, each written to its file (and mapped back from it) as soon as it is built, so that
        memory holds one segment's postings at a time, not the corpus's. Returns them and the bytes written."""
        out, written = [], 0
        pin_mmap_threshold()
        for seg in build_segments(rows):
            if seg.n_docs:
                path = self.dir / f"seg-{gen:08d}-{secrets.token_hex(4)}.lexs"
                written += write_segment(path, seg)
                out.append((read_segment(path), None))
        return out, written

    def _write(self, gen: int, entries: list[tuple[Segment, np.ndarray | None]]) -> int:
        written = 0
        for seg, _ in entries:
            if seg.name is None:
                written += write_segment(self.dir / f"seg-{gen:08d}-{secrets.token_hex(4)}.lexs", seg)
        meta = {"kind": "generation", "generation": gen, "analyzer": ANALYZER,
                "segments": [{"name": s.name, "n_docs": s.n_docs, "n_dead": 0 if d is None else int(d.sum())}
                             for s, d in entries]}
        arrays = {f"dead{i}": np.packbits(d) for i, (_, d) in enumerate(entries) if d is not None and d.any()}
        written += write_container(self.manifest_path(gen), meta, arrays)
        fsync_dir(self.dir)
        return written

    def rebuild(self, gen: int, rows: Rows) -> LexicalReport:
        """Write generation `gen`'s lexical index afresh from its rows (doctor --repair; under the write lock)."""
        t0 = time.perf_counter()
        self.dir.mkdir(parents=True, exist_ok=True)
        entries, written = self._build(gen, rows)
        rep = LexicalReport(rebuilt=True, added=sum(s.n_docs for s, _ in entries))
        rep.bytes_written = written + self._write(gen, entries)
        rep.segments, rep.chunks = len(entries), rep.added
        rep.postings = sum(s.n_postings for s, _ in entries)
        rep.seconds = time.perf_counter() - t0
        self._snapshot = None
        return rep

    def optimize(self, gen: int) -> int:
        """Merge generation `gen`'s segments without the chunks it lost, into as few as MAX_SEGMENT_DOCS allows
        (`compact`; under the write lock), by an equivalent manifest. Returns the chunks copied."""
        try:
            entries = self._load(gen)
        except LexicalIndexError:
            return 0
        if all(len(run) == 1 and run[0][1] is None for run in _runs(entries)):
            return 0
        try:
            for seg, _ in entries:
                seg.check()
        except ContainerError:
            return 0  # damaged: doctor reports it, `doctor --repair` rebuilds it from the rows
        out, copied = [], 0
        for run in _runs(entries):  # merged up to MAX_SEGMENT_DOCS live chunks each
            if len(run) == 1 and run[0][1] is None:
                out.append(run[0])
                continue
            merged = merge_segments(run)
            if merged.n_docs:
                write_segment(self.dir / f"seg-{gen:08d}-{secrets.token_hex(4)}.lexs", merged)
                out.append((read_segment(self.dir / merged.name), None))
                copied += merged.n_docs
        self._write(gen, out)
        return copied

    # ------------------------------------------------------------------------------------------------ background
    def start_merge(self, base: int) -> None:
        """Start, in a thread, the merge that generation `base` is due but that is too large for one commit. Call
        at the start of a write (under the lock): it runs beside the writer's parsing and encoding."""
        if self._merge is not None:
            return
        try:
            entries = [e for e in self._load(base) if _live(e) > 0]
        except LexicalIndexError:
            return
        run = _due_merge(entries)
        if run is None:
            return
        a, b = run
        sources = entries[a:b]

        job = _Merge(tuple(s.name for s, _ in sources))

        def work() -> None:
            try:
                for seg, _ in sources:
                    seg.check()
                job.result = merge_segments(sources)
                write_segment(self.dir / f"seg-{base:08d}-{secrets.token_hex(4)}.lexs", job.result)
            except BaseException as exc:  # noqa: BLE001 - reported when the merge is taken in
                job.error = exc

        job.thread = threading.Thread(target=work, name="lexical-merge", daemon=True)
        self._merge = job
        job.thread.start()

    def _adopt(self, entries: list[tuple[Segment, np.ndarray | None]], wait: bool = False
               ) -> list[tuple[Segment, np.ndarray | None]]:
        """Put a finished background merge in place of its sources, with the chunks they lost since it began."""
        job = self._merge
        if job is None or (job.thread.is_alive() and not wait):
            return entries
        job.thread.join()
        self._merge = None
        if job.error is not None or job.result is None:
            log.warning("a background merge of the lexical index failed (%s); its segments stay as they are",
                        job.error)
            return entries
        entries = [e for e in entries if _live(e) > 0]
        names = [s.name for s, _ in entries]
        n = len(job.sources)
        at = next((i for i in range(len(names) - n + 1) if tuple(names[i:i + n]) == job.sources), None)
        if at is None:
            return entries  # the sources were merged or dropped meanwhile
        merged = job.result
        dead = np.zeros(merged.n_docs, bool)
        for seg, d in entries[at:at + n]:
            if d is not None:
                pos = merged.positions(seg.chunk_ids[d])
                dead[pos[pos >= 0]] = True
        return entries[:at] + [(merged, dead if dead.any() else None)] + entries[at + n:]

    def finish(self, gen: int) -> bool:
        """After generation `gen` was committed (still under the lock): wait for a background merge still running
        and take it into `gen` by an equivalent manifest. Returns whether one was taken in."""
        if self._merge is None:
            return False
        entries = self._load(gen)
        names = [s.name for s, _ in entries]
        adopted = self._adopt(entries, wait=True)
        if [s.name for s, _ in adopted] == names:
            return False
        adopted, _ = _compact(adopted, SYNC_MERGE_DOCS)
        self._write(gen, adopted)
        return True

    # ------------------------------------------------------------------------------------------------ upkeep
    def referenced(self, gens: Iterable[int]) -> set[str]:
        """Names of the files generations `gens` need (their manifests and segments)."""
        keep = set()
        for g in gens:
            try:
                meta, _ = self._read_manifest(g)
            except LexicalIndexError:
                continue
            keep.add(self.manifest_path(g).name)
            keep.update(s["name"] for s in meta["segments"])
        return keep

    def orphans(self, gens: Iterable[int]) -> list[Path]:
        """Files in the lexical folder that generations `gens` do not need (older generations, interrupted writes)."""
        if not self.dir.is_dir():
            return []
        keep = self.referenced(gens)
        return sorted(f for f in self.dir.iterdir() if f.name not in keep)

    def cleanup(self, gens: Iterable[int]) -> int:
        """Delete what generations `gens` do not need (under the write lock). Readers that mapped a segment keep
        reading it after the unlink."""
        if self._merge is not None and self._merge.thread.is_alive():
            return 0  # its output is not named yet
        n = 0
        for f in self.orphans(gens):
            if _MANIFEST.match(f.name) or _SEGMENT.match(f.name) or ".tmp" in f.name:
                try:
                    f.unlink()
                    n += 1
                except OSError:
                    pass
        return n

    def describe(self, gen: int) -> dict | None:
        """Segments, chunks (live and gone), postings and bytes on disk of generation `gen` (None: no files)."""
        try:
            entries = self._load(gen)
        except LexicalIndexError:
            return None
        return {"segments": len(entries), "chunks": sum(_live(e) for e in entries),
                "chunks_gone": sum(s.n_docs - _live((s, d)) for s, d in entries),
                "postings": sum(s.n_postings for s, _ in entries),
                "bytes": sum((self.dir / n).stat().st_size for n in self.referenced([gen]))}

    def verify(self, gen: int, live_ids: np.ndarray, row_crc: Callable[[np.ndarray], np.ndarray]) -> list[str]:
        """What is wrong with generation `gen`'s lexical files (for doctor): unreadable or damaged files, chunk ids
        other than `live_ids`, or chunks analyzed from a text other than their row's (`row_crc(ids)`)."""
        try:
            entries = self._load(gen, check=True)
        except LexicalIndexError as exc:
            return [str(exc)]
        problems = []
        have = _live_ids(entries)
        live_ids = np.asarray(live_ids, np.int64)
        if not np.array_equal(have, live_ids):
            missing, extra = np.setdiff1d(live_ids, have), np.setdiff1d(have, live_ids)
            return [f"the lexical index of generation {gen} holds {len(have)} chunks, the database {len(live_ids)} "
                    f"({len(missing)} missing, {len(extra)} extra)"]
        stale = 0
        for seg, d in entries:
            ids = seg.chunk_ids if d is None else seg.chunk_ids[~d]
            crc = seg.doc_crc if d is None else seg.doc_crc[~d]
            for a in range(0, len(ids), 16384):
                stale += int(np.count_nonzero(row_crc(ids[a:a + 16384]) != crc[a:a + 16384]))
        if stale:
            problems.append(f"{stale} chunks of the lexical index of generation {gen} were analyzed from another "
                            "text than their row holds now")
        return problems


# ---------------------------------------------------------------------------------------------------- policy
def _live(entry: tuple[Segment, np.ndarray | None]) -> int:
    seg, dead = entry
    return seg.n_docs - (0 if dead is None else int(dead.sum()))


def _live_ids(entries: list[tuple[Segment, np.ndarray | None]]) -> np.ndarray:
    parts = [s.chunk_ids if d is None else s.chunk_ids[~d] for s, d in entries]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def _remove(entries: list[tuple[Segment, np.ndarray | None]], removed: np.ndarray
            ) -> list[tuple[Segment, np.ndarray | None]] | None:
    """Mark `removed` chunks gone; None if one of them is not a live chunk of these segments."""
    hits = 0
    for i, (seg, dead) in enumerate(entries):
        pos = seg.positions(removed)
        pos = pos[pos >= 0]
        if not len(pos):
            continue
        dead = np.zeros(seg.n_docs, bool) if dead is None else dead
        if dead[pos].any():
            return None
        dead[pos] = True
        entries[i] = (seg, dead)
        hits += len(pos)
    return entries if hits == len(removed) else None


def _next_merge(entries: list[tuple[Segment, np.ndarray | None]], skip: set[tuple[int, int]]
                ) -> tuple[int, int] | None:
    """The next run of segments (oldest first) the policy merges, skipping the runs in `skip`."""
    lives = [_live(e) for e in entries]
    cands = []
    tail = len(entries)
    while tail > 0 and lives[tail - 1] < MIN_SEGMENT:
        tail -= 1
    if len(entries) - tail > MAX_SMALL:
        cands.append((tail, len(entries)))
    for j in range(len(entries) - 1, 0, -1):
        if lives[j] >= MIN_SEGMENT and lives[j - 1] < RATIO * lives[j]:
            cands.append((j - 1, j + 1))
    for j, (seg, _) in enumerate(entries):
        if seg.n_docs and 1 - lives[j] / seg.n_docs > MAX_DEAD:
            with_next = (j, min(j + 2, len(entries)))
            cands.append(with_next if sum(lives[with_next[0]:with_next[1]]) <= MAX_SEGMENT_DOCS else (j, j + 1))
    # no merge beyond MAX_SEGMENT_DOCS live chunks (a rewrite of one segment without its gone chunks still is)
    cands = [(a, b) for a, b in cands if b - a == 1 or sum(lives[a:b]) <= MAX_SEGMENT_DOCS]
    return next((c for c in cands if c not in skip), None)


def _runs(entries: list[tuple[Segment, np.ndarray | None]]) -> list[list[tuple[Segment, np.ndarray | None]]]:
    """Consecutive segments grouped into runs of at most MAX_SEGMENT_DOCS live chunks (`compact`'s merges)."""
    runs: list[list[tuple[Segment, np.ndarray | None]]] = []
    size = 0
    for e in entries:
        n = _live(e)
        if not runs or size + n > MAX_SEGMENT_DOCS:
            runs.append([])
            size = 0
        runs[-1].append(e)
        size += n
    return runs


def _compact(entries: list[tuple[Segment, np.ndarray | None]], limit: int
             ) -> tuple[list[tuple[Segment, np.ndarray | None]], int]:
    """Apply the merge policy with merges of at most `limit` chunks; returns the segments and the chunks copied."""
    entries = [e for e in entries if _live(e) > 0]
    skip: set[tuple[int, int]] = set()
    copied = 0
    while (run := _next_merge(entries, skip)) is not None:
        a, b = run
        if sum(s.n_docs for s, _ in entries[a:b]) > limit:
            skip.add(run)
            continue
        for seg, _ in entries[a:b]:
            seg.check()
        merged = merge_segments(entries[a:b])
        copied += merged.n_docs
        entries[a:b] = [(merged, None)]
        skip = set()
    return entries, copied


def _due_merge(entries: list[tuple[Segment, np.ndarray | None]]) -> tuple[int, int] | None:
    """The first merge the policy wants that is larger than a commit does itself."""
    skip: set[tuple[int, int]] = set()
    while (run := _next_merge(entries, skip)) is not None:
        if sum(s.n_docs for s, _ in entries[run[0]:run[1]]) > SYNC_MERGE_DOCS:
            return run
        skip.add(run)
    return None
