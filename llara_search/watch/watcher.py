"""The watch loop: catch up, then turn settled batches of changed paths into generations until stopped.

Crash safety is `ingest`'s: each sync is an ingest run of generation G, committed at its end; a watcher killed at
any moment leaves G uncommitted (readers never saw it) and the catch-up of the next start finishes it, finding the
rows already written (no re-encoding) and whatever changed meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..ingest.report import IngestOptions, IngestReport
from .events import Collector, Pending
from .filters import PathFilter
from .observe import make_observer, polling_reason
from .state import WatchLock, now_iso, write_state
from .sync import Stopped, catch_up, sync_changes

if TYPE_CHECKING:
    from ..engine import Engine

log = logging.getLogger(__name__)

AUTO_POLL_S = 2.0  # polling interval where events are not delivered and no --poll was given


@dataclass
class WatchSettings:
    debounce: float = 0.5  # seconds a path must be quiet before it is taken
    poll: float | None = None  # poll every N seconds instead of kernel events (None: events, polling where needed)
    max_wait: float | None = None  # under changes that never stop, take quiet paths after this long [10 x debounce]
    batch_files: int = 5000  # most paths per generation (a larger burst becomes several)
    pending_limit: int = 100_000  # more changed paths than this: one re-scan of the roots instead
    retry_s: float = 2.0  # after a failed sync


class Watcher:
    """Keeps an index in sync with folders. `on_event(dict)` hears every sync, failure, pause and resume (the CLI
    prints them, one JSON line each under --json); `status()` is what the state file says."""

    def __init__(self, engine: Engine, roots: list[Path], options: IngestOptions | None = None,
                 settings: WatchSettings | None = None, *, model: str | None = None, adapter: str | None = None,
                 chunk_tokens: int | None = None, on_event: Callable[[dict], None] | None = None):
        self.engine = engine
        self.roots = [Path(os.path.abspath(r)) for r in roots]
        self.options = options or IngestOptions()
        self.settings = settings or WatchSettings()
        self.model, self.adapter, self.chunk_tokens = model, adapter, chunk_tokens
        self.on_event = on_event or (lambda e: None)
        self.filter = PathFilter(self.roots, self.options.include, self.options.exclude, self.options.hidden,
                                 skip=[engine.paths.root])
        self.pending = Pending(self.settings.debounce, self.settings.max_wait, self.settings.pending_limit)
        self.collector = Collector(self.pending, self.filter)
        self._stop = threading.Event()
        self.busy = False  # inside a sync (an interrupt there abandons it: the next start finishes it)
        self.ready = threading.Event()  # set once the catch-up is committed and events are being taken
        self._observers: dict[float | None, object] = {}
        self._watches: dict[Path, tuple] = {}  # root -> (observer key, watchdog ObservedWatch)
        self.paused: set[Path] = set()
        self._reported: dict[str, tuple] = {}  # path -> (size, mtime) of the version whose failure was reported
        self._lock = WatchLock(engine.paths.root)
        self._written: dict | None = None
        self.state = {"pid": os.getpid(), "index": str(engine.paths.root), "roots": [str(r) for r in self.roots],
                      "since": now_iso(), "state": "starting", "mode": {}, "debounce_s": self.settings.debounce,
                      "poll_s": self.settings.poll, "pending": 0, "paused": [], "syncs": 0, "last_sync": None,
                      "last_error": None}

    # ------------------------------------------------------------------------------------------------ control
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, exit_after: float | None = None) -> None:
        """Watch until `stop()` (or `exit_after` seconds). Raises WatchAlreadyRunning when another watcher has the
        index; sync errors are reported and retried, never raised."""
        deadline = None if exit_after is None else time.monotonic() + exit_after
        self.claim()
        try:
            self._watch_all()
            self._set(state="catching up")
            self._catch_up([r for r in self.roots if r not in self.paused], "catch-up")
            self._set(state="watching")
            self.ready.set()
            self._emit("watching", roots=[str(r) for r in self.roots], mode=self.state["mode"],
                       debounce_s=self.settings.debounce)
            tick = max(0.02, min(0.1, self.settings.debounce / 4))
            while not self._stop.wait(tick):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self._check_roots()
                self._step()
        except Stopped:
            pass
        except Exception as exc:
            self._error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self.state["state"] = "failed"
            raise
        finally:
            for obs in self._observers.values():
                obs.stop()
            for obs in self._observers.values():
                obs.join(timeout=5)
            self._set(state="stopped" if self.state["state"] != "failed" else "failed", pending=len(self.pending))
            self._lock.release()
            self.ready.set()
            self._emit("stopped")

    def claim(self) -> None:
        """Take the index's watch lock now (a second watcher fails here, in the caller's thread, with one line)."""
        if self._lock.fd is None:
            self._lock.acquire()

    def start_thread(self) -> threading.Thread:
        """Run in a daemon thread (the server's): errors at start are in `self.state['last_error']`."""
        def body():
            try:
                self.run()
            except Exception:  # noqa: BLE001 - a server keeps serving; /info says why it is not watching
                self.ready.set()

        t = threading.Thread(target=body, name="llara-watch", daemon=True)
        t.start()
        return t

    # ------------------------------------------------------------------------------------------------ observers
    def _watch_all(self) -> None:
        for root in self.roots:
            if not root.exists():
                self._pause(root)
                continue
            self._schedule(root)

    def _schedule(self, root: Path) -> None:
        poll = self.settings.poll
        why = None
        if poll is None:
            why = polling_reason(root)
            if why:
                poll = AUTO_POLL_S
        target = str(root if root.is_dir() else root.parent)
        try:
            watch = self._observer(poll).schedule(self.collector, target, recursive=root.is_dir())
        except OSError as exc:  # inotify limits (max_user_watches), an odd filesystem: poll it instead
            if poll is not None:
                raise
            why, poll = f"change events unavailable ({exc.strerror or exc})", AUTO_POLL_S
            watch = self._observer(poll).schedule(self.collector, target, recursive=root.is_dir())
        self._watches[root] = (poll, watch)
        self.state["mode"][str(root)] = "events" if poll is None else f"poll {poll:g}s"
        if why:
            self._emit("polling", root=str(root), reason=why, poll_s=poll)

    def _observer(self, poll: float | None):
        obs = self._observers.get(poll)
        if obs is None:
            obs = self._observers[poll] = make_observer(poll)
            obs.start()
        return obs

    def _unschedule(self, root: Path) -> None:
        poll, watch = self._watches.pop(root, (None, None))
        if watch is not None:
            try:
                self._observers[poll].unschedule(watch)
            except (KeyError, OSError):  # its emitter already ended with the folder
                pass

    # ------------------------------------------------------------------------------------------------ roots
    def _check_roots(self) -> None:
        for root in self.roots:
            there = root.exists()
            if not there and root not in self.paused:
                self._pause(root)
            elif there and root in self.paused:
                self._resume(root)

    def _pause(self, root: Path) -> None:
        """A root that vanished (an unmounted drive, a removed folder) is not a deletion of its documents: they stay
        searchable, its pending changes are dropped, and it is caught up when it comes back."""
        self.paused.add(root)
        self.pending.drop_under(root)
        self._unschedule(root)
        self.state["paused"] = sorted(str(r) for r in self.paused)
        self.state["mode"][str(root)] = "paused"
        msg = f"{root} is not there (unmounted or removed); its documents are kept and it is watched again when it " \
              "comes back"
        log.debug("%s", msg)
        self._emit("paused", root=str(root), warning=msg)
        self._write()

    def _resume(self, root: Path) -> None:
        self.paused.discard(root)
        self.state["paused"] = sorted(str(r) for r in self.paused)
        self._schedule(root)
        self._emit("resumed", root=str(root))
        self._catch_up([root], "resume")

    # ------------------------------------------------------------------------------------------------ syncing
    def _step(self) -> None:
        changed, rescan = self.pending.take(self.settings.batch_files)
        if rescan:
            self._catch_up([r for r in self.roots if r not in self.paused], "rescan")
        if changed:
            live = [p for p in changed if not any(p == str(r) or p.startswith(str(r).rstrip("/") + "/")
                                                  for r in self.paused)]
            self._sync(live)
        self._set(pending=len(self.pending))

    def _sync(self, changed: list[str]) -> None:
        t0 = time.monotonic()
        self._set(state="syncing", pending=len(self.pending) + len(changed))
        self.busy = True
        try:
            if self._stop.is_set():
                raise Stopped
            report = sync_changes(self.engine, changed, self.filter, self.options, self._stop,
                                  waiting=self._waiting)
        except Stopped:
            raise
        except Exception as exc:  # noqa: BLE001 - a database or vector store hiccup: report, retry the same paths
            self.pending.put_back(changed)
            self._error(f"sync failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; retrying")
            self._stop.wait(self.settings.retry_s)
            self._set(state="watching")
            return
        finally:
            self.busy = False
        if report is not None:
            self._done("change", report, len(changed), time.monotonic() - t0)
        self._set(state="watching")

    def _catch_up(self, roots: list[Path], kind: str) -> None:
        if not roots:
            return
        first = kind == "catch-up" and self.state["syncs"] == 0 and not self.engine.info.get("model")
        while True:
            t0 = time.monotonic()
            self.busy = True
            try:
                if self._stop.is_set():  # a signal just before busy: it only asked to stop
                    raise Stopped
                report = catch_up(self.engine, roots, self.options, self._stop, model=self.model,
                                  adapter=self.adapter, chunk_tokens=self.chunk_tokens, waiting=self._waiting)
            except Stopped:
                raise
            except Exception as exc:  # noqa: BLE001
                if first:  # nothing to watch into (the model will not load, say): fail like `ingest` would (and its
                    raise  # folder is gone again, as `ingest` leaves it)
                self._error(f"{kind} failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; "
                            "retrying")
                if self._stop.wait(self.settings.retry_s):
                    raise Stopped from None
                continue
            finally:
                self.busy = False
            self._done(kind, report, None, time.monotonic() - t0)
            return

    def _done(self, kind: str, r: IngestReport, paths: int | None, seconds: float) -> None:
        last = {"at": now_iso(), "kind": kind, "generation": r.generation, "files_new": r.files_new,
                "files_changed": r.files_changed, "files_removed": r.files_removed,
                "chunks_encoded": r.chunks_encoded, "chunks_added": r.chunks_added, "chunks_removed": r.chunks_removed,
                "documents": r.documents, "chunks_total": r.chunks_total, "seconds": round(seconds, 3)}
        if paths is not None:
            last["paths"] = paths
        self.state["syncs"] += 1
        self._set(last_sync=last)
        self._emit("sync", **last)
        for f in r.files_failed:
            self._failed(f["path"], f["error"])

    def _failed(self, path: str, error: str) -> None:
        """A file that fails to parse is said once, and again only when it changed (size or mtime)."""
        try:
            st = os.stat(path)
        except OSError:
            return  # gone again (a temporary file): its deletion is the next event
        key = (st.st_size, st.st_mtime_ns, error)
        if self._reported.get(path) == key:
            return
        self._reported[path] = key
        self.state["last_error"] = {"at": now_iso(), "path": path, "message": error}
        self._emit("failed", path=path, error=error)

    def _waiting(self, message: str) -> None:
        self._set(state="waiting for the write lock")
        self._emit("waiting", message=message + "; waiting for it")

    def _error(self, message: str) -> None:
        log.debug("%s", message)
        self.state["last_error"] = {"at": now_iso(), "message": message}
        self._emit("error", message=message)
        self._write()

    # ------------------------------------------------------------------------------------------------ state
    def _emit(self, event: str, **fields) -> None:
        try:
            self.on_event({"event": event, **fields})
        except Exception:  # noqa: BLE001 - a closed stdout must not stop the watcher
            log.debug("event listener failed", exc_info=True)

    def _set(self, **updates) -> None:
        self.state.update(updates)
        self._write()

    def _write(self) -> None:
        if self._lock.fd is None:  # not ours: the state file belongs to the watcher that holds the lock
            return
        snapshot = dict(self.state, mode=dict(self.state["mode"]))
        if snapshot != self._written:
            write_state(self.engine.paths.root, snapshot)
            self._written = snapshot
