"""Reads for a person browsing an index (the search page): facets, a chunk in its document, and file coverage.

Everything here is read by id or over the whole committed generation; nothing takes a filesystem path from a caller
and nothing touches the documents on disk, so the search page can only show what the index holds.
"""

from __future__ import annotations

import os
import posixpath
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, select

from .store import Chunk, Document, IngestRun, Store, visible

MAX_CONTEXT = 20  # chunks either side of a previewed one
MAX_FILES = 5000  # rows of the coverage list per request


class NotInIndex(LookupError):
    """The chunk asked for is not part of the committed generation (never indexed, or removed since)."""


def glob_escape(text: str) -> str:
    """`text` as a glob that matches only itself (`*`, `?` and `[` inside a folder name are literal)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def ext_glob(ext: str) -> str:
    """`*.pdf` that also matches `*.PDF`: the type chips count extensions case-insensitively."""
    return "*." + "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() and c.lower() != c.upper() else glob_escape(c)
                          for c in ext)


def _iso(t: datetime | None) -> str | None:
    """SQLite gives back naive times; they were written as UTC (models.utcnow), so say so to the browser."""
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).isoformat()


def _ext(path: str) -> str:
    base = posixpath.basename(path)
    stem, dot, ext = base.rpartition(".")
    return ext.lower() if dot and stem and "/" not in ext else ""


@dataclass
class _FacetCache:
    generation: int
    paths: list[str]
    root: str


class Browser:
    """Facets, previews and coverage over one index's `Store`; facets are computed once per generation."""

    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._cache: _FacetCache | None = None

    def _generation(self) -> int:
        gen = self.store.current_generation()
        return gen.id if gen else 0

    def _paths(self) -> _FacetCache:
        g = self._generation()
        with self._lock:
            if self._cache is None or self._cache.generation != g:
                with self.store.sessions() as s:
                    paths = sorted(s.scalars(select(Document.path).where(visible(Document, g))))
                files = [p for p in paths if p.startswith("/")]  # BEIR-style ids have no folder
                root = posixpath.dirname(os.path.commonprefix([posixpath.dirname(p) + "/" for p in files])) \
                    if files else ""
                self._cache = _FacetCache(g, paths, root.rstrip("/") or ("/" if files else ""))
            return self._cache

    # ------------------------------------------------------------------------------------------------ facets
    def facets(self, folder: str | None = None) -> dict:
        """Documents per folder (one level below the indexed root, or below `folder`, a folder relative to it)
        and per file extension, each with the glob that selects it for `where`. `folder` is only compared with
        the indexed paths' strings, never opened."""
        cache = self._paths()
        root = cache.root
        folder = (folder or "").strip("/")
        base = posixpath.join(root, folder) if folder else root
        prefix = base.rstrip("/") + "/"
        under = [p for p in cache.paths if p.startswith(prefix)] if root else []
        folders: Counter = Counter()
        types: Counter = Counter()
        loose = 0
        for p in under:
            rest = p[len(prefix):]
            head, sep, _ = rest.partition("/")
            if sep:
                folders[head] += 1
            else:
                loose += 1
            if e := _ext(p):
                types[e] += 1
        rel = (lambda name: f"{folder}/{name}" if folder else name)
        return {
            "generation": cache.generation, "root": root, "folder": folder or None,
            "folder_glob": glob_escape(prefix) if folder else None, "documents": len(under),
            "documents_here": loose,
            "folders": [{"name": n, "folder": rel(n), "count": c, "glob": glob_escape(prefix + n + "/")}
                        for n, c in sorted(folders.items(), key=lambda kv: (-kv[1], kv[0]))],
            "types": [{"ext": e, "count": c, "glob": ext_glob(e)}
                      for e, c in sorted(types.items(), key=lambda kv: (-kv[1], kv[0]))],
        }

    # ------------------------------------------------------------------------------------------------ preview
    def context(self, chunk_id: int, before: int = 3, after: int = 3) -> dict:
        """The chunk and up to `before`/`after` of its document's neighbouring chunks, in document order, from the
        committed generation."""
        before = max(0, min(MAX_CONTEXT, int(before)))
        after = max(0, min(MAX_CONTEXT, int(after)))
        g = self._generation()
        with self.store.sessions() as s:
            row = s.execute(select(Chunk.document_id, Chunk.ordinal)
                            .where(Chunk.id == int(chunk_id), visible(Chunk, g))).first()
            if row is None:
                raise NotInIndex(f"chunk {chunk_id} is not in the index (removed by a later ingest, or never there)")
            doc_id, ordinal = row
            doc = s.get(Document, doc_id)
            live = select(Chunk).where(Chunk.document_id == doc_id, visible(Chunk, g))
            above = list(s.scalars(live.where(Chunk.ordinal < ordinal).order_by(Chunk.ordinal.desc())
                                   .limit(before + 1)))
            below = list(s.scalars(live.where(Chunk.ordinal >= ordinal).order_by(Chunk.ordinal).limit(after + 2)))
            n_live = s.scalar(select(func.count()).select_from(Chunk).where(Chunk.document_id == doc_id,
                                                                          visible(Chunk, g)))
        shown = above[:before][::-1] + below[:after + 1]
        return {
            "generation": g, "chunk_id": int(chunk_id),
            "document": {"id": doc.id, "path": doc.path, "title": doc.title, "format": doc.format,
                         "chunks": int(n_live or 0)},
            "more_before": len(above) > before, "more_after": len(below) > after + 1,
            "chunks": [{"chunk_id": c.id, "ordinal": c.ordinal, "heading": c.heading or None, "text": c.text,
                        "start_line": c.start_line, "end_line": c.end_line, "page": c.page} for c in shown],
        }

    # ------------------------------------------------------------------------------------------------ coverage
    def coverage(self, state: str | None = None, offset: int = 0, limit: int = 1000) -> dict:
        """Every file the last ingest saw: indexed (with its chunk count), skipped (why) or failed (the reason),
        problems first; and when the index was last synced."""
        g = self._generation()
        limit = max(1, min(MAX_FILES, int(limit)))
        offset = max(0, int(offset))
        with self.store.sessions() as s:
            run = s.scalars(select(IngestRun).where(IngestRun.finished_at.is_not(None))
                            .order_by(IngestRun.id.desc()).limit(1)).first()
            docs = s.execute(select(Document.path, Document.format, Document.n_chunks, Document.updated_at)
                             .where(visible(Document, g)).order_by(Document.path)).all()
        notes = self.store.file_notes()  # what the last ingest of each folder skipped or failed, and why
        noted = {n["path"] for n in notes}
        live = {p: int(c or 0) for p, _, c, _ in docs}  # a file that failed now may still be indexed as it was
        rows = [{"path": n["path"], "state": n["state"], "reason": n.get("reason"), "kind": n.get("kind"),
                 "chunks": live.get(n["path"], 0)}
                for n in sorted(notes, key=lambda n: (n["state"] != "failed", n["path"]))]
        rows += [{"path": p, "state": "indexed", "format": f, "chunks": int(c or 0),
                  "updated_at": _iso(u)} for p, f, c, u in docs if p not in noted]
        counts = Counter(r["state"] for r in rows)
        if state:
            rows = [r for r in rows if r["state"] == state]
        return {
            "generation": g,
            "last_sync": None if run is None else {
                "finished_at": _iso(run.finished_at), "started_at": _iso(run.started_at),
                "status": run.status, "seconds": run.seconds},
            "counts": {k: counts.get(k, 0) for k in ("indexed", "skipped", "failed")},
            "total": len(rows), "offset": offset, "files": rows[offset:offset + limit],
        }
