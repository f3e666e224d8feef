"""The watcher's state in the index folder (`watch.json`), for `status`, the server's `/info` and people.

The watcher holds an exclusive flock on `<index>/.watch.lock` while it runs, so a reader can tell a live watcher
from the state file of one that stopped or was killed (the OS drops the lock with the process), and a second
watcher on the same index is refused instead of racing the first.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from ..errors import IndexLockedError

STATE_FILE = "watch.json"
LOCK_FILE = ".watch.lock"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class WatchAlreadyRunning(IndexLockedError):
    """Another watcher holds the index (a lock error like a second writer's: one line, exit 1)."""


class WatchLock:
    """Held for the watcher's whole life (not the index's write lock, which it takes per sync)."""

    def __init__(self, index_root: Path):
        self.path = Path(index_root) / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise WatchAlreadyRunning(f"index {self.path.parent} is already watched by PID {holder}; stop that "
                                      "watcher first (one watcher per index; it takes several folders)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        import fcntl

        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _held(path: Path) -> bool:
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def write_state(index_root: Path, state: dict) -> None:
    """Atomically (temp file, rename): a reader sees the old state or the new one."""
    path = Path(index_root) / STATE_FILE
    tmp = path.with_name(f"{STATE_FILE}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(state, default=str))
        os.replace(tmp, path)
    except OSError:  # the index folder went read-only or full: status goes stale, watching goes on
        pass


def read_state(index_root: Path) -> dict | None:
    """The last state a watcher wrote, with `running` telling whether it is alive; None if none ever ran."""
    path = Path(index_root) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict):
        return None
    running = _held(Path(index_root) / LOCK_FILE)
    state["running"] = running
    if not running and state.get("state") not in ("stopped", "failed"):
        state["state"] = "not running (killed?)"
    state["age_s"] = round(time.time() - path.stat().st_mtime, 1) if path.exists() else None
    return state


def describe_state(w: dict) -> str:
    """The watcher in one line for `status` (paths are data: printed as plain text)."""
    if not w.get("running"):
        last = w.get("last_sync") or {}
        return f"watcher: {w.get('state')} (was watching {', '.join(w.get('roots', []))}; last sync " \
               f"{last.get('at', 'never')})"
    last = w.get("last_sync") or {}
    line = f"watcher: PID {w.get('pid')} {w.get('state')} {', '.join(w.get('roots', []))} since {w.get('since')}; " \
           f"{w.get('pending', 0)} pending; last sync {last.get('at', 'never')}"
    if last.get("generation") is not None:
        line += f" (generation {last['generation']})"
    if w.get("paused"):
        line += f"; paused: {', '.join(w['paused'])}"
    if w.get("last_error"):
        line += f"; last error: {w['last_error'].get('message')}"
    return line
