"""One sync of the watcher: the write lock, then `ingest`'s own Ingestor over the roots (catch-up) or over the
paths that changed, committed as one generation. Nothing here parses, encodes or writes rows itself."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from .. import writing
from ..ingest.report import IngestOptions, IngestReport
from ..ingest.walk import leaves, walk
from ..layout import IndexLockedError, WriteLock
from .filters import PathFilter

if TYPE_CHECKING:
    from ..engine import Engine


class Stopped(BaseException):
    """The watcher was asked to stop (while it waited for the write lock, or by a signal in a sync). A
    BaseException, like KeyboardInterrupt: no `except Exception` on the way (a parser's) may take it for a failure."""


@contextmanager
def write_lock(engine: Engine, stop: threading.Event, waiting: Callable[[str], None] | None = None) -> Iterator[None]:
    """The index's write lock, shared with `ingest`, `reindex` and `compact`: waited for (and said so once) while
    another writer holds it, given up when the watcher is stopped."""
    told = False
    while True:
        try:
            lock = WriteLock(engine.paths.lock, wait=True, timeout=0.5)
            lock.__enter__()
            break
        except IndexLockedError as exc:
            if stop.is_set():
                raise Stopped from None
            if not told and waiting is not None:
                waiting(str(exc).split(";")[0])
                told = True
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def _ingestor(engine: Engine, options: IngestOptions, model: str | None, adapter: str | None, chunk_tokens: int | None):
    writing.check_vectors(engine)
    _, chunker, fp = writing.prepare_write(engine, model, adapter, chunk_tokens, options.index_type,
                                           options.index_factory)
    ing = writing.ingestor(engine, chunker, fp, options, None)
    if ing.encode is not None:  # a server shares the model with its queries: the watcher's forwards take the bulk seat
        encode, lock = ing.encode, engine.seats.bulk

        def locked(texts):
            with lock:
                return encode(texts)

        ing.encode = locked
    return ing


def catch_up(engine: Engine, roots: list[Path], options: IngestOptions, stop: threading.Event, *,
             model: str | None = None, adapter: str | None = None, chunk_tokens: int | None = None,
             waiting: Callable[[str], None] | None = None) -> IngestReport:
    """What changed while nobody watched: `ingest` of the roots (unchanged files cost a stat, removed ones go). A
    first one that fails before it commits a chunk removes the folder it created, as `ingest` does."""
    with writing.first_write(engine), write_lock(engine, stop, waiting):
        report = _ingestor(engine, options, model, adapter, chunk_tokens).run_files(roots)
        writing.calibrate_fusion(engine)
        return report


def expand(changed: list[str], filt: PathFilter, options: IngestOptions) -> tuple[list[Path], list[str]]:
    """Settled paths → (files to sync, paths whose other documents go). A folder is walked (it was created or moved
    in) and also named as gone (documents under it that are no longer there go); a path that is not there any more
    is gone; a file `ingest` would not read is left alone."""
    files: dict[str, Path] = {}
    gone: list[str] = []
    for raw in changed:
        p = Path(raw)
        if p.is_dir():
            for f in walk([p], hidden=options.hidden, follow_symlinks=options.follow_symlinks, within=filt.roots).files:
                if filt.accepts_file(f):
                    files[str(f)] = f
            gone.append(raw)
        elif p.is_file():
            if filt.accepts_file(p) and (options.follow_symlinks or not leaves(p, filt.roots)):  # the boundary
                files[raw] = p
        elif not p.exists():
            gone.append(raw)
    if not options.delete_missing:
        gone = []
    return sorted(files.values()), gone


def _indexed(engine: Engine, gone: list[str]) -> list[str]:
    """The gone paths that hold live documents (a vanished editor temp file or empty folder needs no generation).

    Each is looked up through the path index: the path itself, and on SQLite the paths under it as a range
    (`folder/` <= path < `folder0`, '0' being the character after '/'), with liveness in a form no index serves.
    Written as `removed_gen IS NULL AND (path = g OR path LIKE 'g/%')`, SQLite walked the `removed_gen` index, every
    live document, for each vanished path (an editor's temp files, an `rm -rf` of thousands of files)."""
    from sqlalchemy import or_, select

    from ..store import Document, still_live

    out = []
    with engine.store.sessions() as s:
        sqlite = s.get_bind().dialect.name == "sqlite"
        for g in gone:
            folder = g.rstrip("/")
            under = ((Document.path >= folder + "/") & (Document.path < folder + "0")) if sqlite else \
                Document.path.startswith(folder + "/", autoescape=True)  # (a collation may not sort by code point)
            hit = s.scalar(select(Document.id).where(or_(Document.path == g, under),
                                                     still_live(Document.removed_gen)).limit(1))
            if hit is not None:
                out.append(g)
    return out


def sync_changes(engine: Engine, changed: list[str], filt: PathFilter, options: IngestOptions, stop: threading.Event, *,
                 waiting: Callable[[str], None] | None = None) -> IngestReport | None:
    """The settled paths as one generation; None when none of them concerns the index."""
    files, gone = expand(changed, filt, options)
    gone = _indexed(engine, gone)
    if not files and not gone:
        return None
    with write_lock(engine, stop, waiting):
        t = time.perf_counter()
        report = _ingestor(engine, options, None, None, None).run_changes(files, gone)
        report.seconds = time.perf_counter() - t
        writing.calibrate_fusion(engine)
        return report
