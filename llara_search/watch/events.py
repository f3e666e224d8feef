"""Filesystem events in, settled batches of changed paths out (debounce and coalescing).

Only paths are kept, never contents: memory grows with the number of paths changed since the last sync, and past
`limit` the set is dropped for one re-scan of the roots (what a burst of that size would cost anyway).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler

from .filters import PathFilter

IGNORED_EVENTS = {"opened", "closed_no_write"}  # reads: nothing changed


class Pending:
    """Changed paths and the time of each one's last event.

    A batch is taken once the folder has been quiet for `debounce` seconds, so a burst (a checkout, an unzip) is one
    batch and one generation; under changes that never stop, paths quiet for `debounce` are taken anyway once the
    oldest has waited `max_wait` seconds, so a busy log file cannot hold back everything else."""

    def __init__(self, debounce: float, max_wait: float | None = None, limit: int = 100_000):
        self.debounce = max(0.0, float(debounce))
        self.max_wait = max(self.debounce, max_wait if max_wait is not None else max(5.0, 10 * self.debounce))
        self.limit = limit
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._first: float | None = None
        self._latest = 0.0
        self.overflow = False  # too many paths: the next sync re-scans the roots instead

    def add(self, path: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._latest = now
            if self.overflow:
                return
            if self._first is None:
                self._first = now
            self._last[path] = now
            if len(self._last) > self.limit:
                self._last.clear()
                self.overflow = True

    def __len__(self) -> int:
        return len(self._last)

    def drop_under(self, root: Path) -> None:
        """Forget what happened under a root that vanished (an unmounted drive is not a deletion)."""
        prefix = str(root).rstrip("/") + "/"
        with self._lock:
            for p in [p for p in self._last if p == str(root) or p.startswith(prefix)]:
                del self._last[p]

    def take(self, limit: int | None = None, now: float | None = None) -> tuple[list[str], bool]:
        """(settled paths, oldest first and at most `limit`; whether the roots must be re-scanned instead)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self.overflow:
                if now - self._latest < self.debounce:
                    return [], False
                self.overflow, self._first = False, None
                self._last.clear()
                return [], True
            if not self._last:
                return [], False
            quiet = now - self._latest >= self.debounce
            overdue = self._first is not None and now - self._first >= self.max_wait
            if not (quiet or overdue):
                return [], False
            ready = sorted((t, p) for p, t in self._last.items() if now - t >= self.debounce)
            if limit is not None:
                ready = ready[:limit]
            for _, p in ready:
                del self._last[p]
            self._first = min(self._last.values()) if self._last else None
            return [p for _, p in ready], False

    def put_back(self, paths: list[str]) -> None:
        """A sync that failed: its paths wait for the next try."""
        now = time.monotonic()
        with self._lock:
            for p in paths:
                self._last.setdefault(p, now)
            if self._last and self._first is None:
                self._first = now


class Collector(FileSystemEventHandler):
    """watchdog's events reduced to the paths they touch, filtered by `ingest`'s rules, into `Pending`.

    A move is its source gone and its destination changed; a folder created, moved or deleted is one path (the sync
    walks or removes everything under it); a folder's own "modified" says only that an entry changed, which the
    entry's event says too."""

    def __init__(self, pending: Pending, filt: PathFilter):
        self.pending, self.filter = pending, filt

    def dispatch(self, event: FileSystemEvent) -> None:  # no per-type dispatch: every event is handled alike
        if event.event_type in IGNORED_EVENTS:
            return
        if event.is_directory and event.event_type == "modified":
            return
        for raw in (event.src_path, getattr(event, "dest_path", "") or ""):
            if not raw:
                continue
            path = Path(os.fsdecode(raw))
            if self.filter.relevant(path):
                self.pending.add(str(path))
