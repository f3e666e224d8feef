"""How a running `llara-search serve` is found from its index folder, so `llara-search query` can ask it instead of
loading the model again (seconds for a 7B model) in every process.

`serve` writes `<index>/server.json` (its address, no token) while it runs and holds a shared `flock` on that file
for as long as the process lives. A reader that can take an exclusive lock on the file knows nobody holds it: the
server that wrote it is gone (killed, crashed, machine rebooted), and the record is ignored. The kernel releases the
lock of a dead process, so `kill -9` cannot leave a record that looks alive, and a PID reused by another program does
not matter. The record also names the host (a folder on a network filesystem may be read from another machine,
where the address means nothing) and a digest of the database URL (the same folder served with another `--db-url`
is another index).

This module is imported on the instant query path: standard library only, no torch, no numpy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

RECORD_NAME = "server.json"


@dataclass(frozen=True)
class ServerRecord:
    url: str  # where a client on this machine reaches the server, e.g. http://127.0.0.1:8000
    pid: int
    hostname: str
    db: str  # digest of the database URL the server reads (never the URL itself: it may hold a password)
    auth: bool  # whether the server wants a bearer token (the token itself is never written)
    started_at: float
    version: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"


def record_path(index_dir: str | os.PathLike) -> Path:
    return Path(index_dir) / RECORD_NAME


def db_key(db_url: str) -> str:
    return hashlib.sha256(db_url.encode()).hexdigest()[:16]


def local_url(address: tuple) -> str:
    """The URL a client on this machine uses for a socket bound to `address` (a wildcard bind is reached over
    loopback)."""
    host, port = address[0], address[1]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextmanager
def announce(index_dir: str | os.PathLike, db_url: str, address: tuple, auth: bool) -> Iterator[ServerRecord | None]:
    """Write the record while the body runs (the serving loop), holding its lock; remove it afterwards if it is still
    ours. A folder that cannot be written (a read-only index) only costs the discovery: serving goes on."""
    import fcntl

    from . import __version__

    rec = ServerRecord(url=local_url(address), pid=os.getpid(), hostname=socket.gethostname(), db=db_key(db_url),
                       auth=auth, started_at=round(time.time(), 3), version=__version__)
    path = record_path(index_dir)
    tmp = path.with_name(f".{RECORD_NAME}.{os.getpid()}.tmp")
    fd = None
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, rec.to_json().encode())
        fcntl.flock(fd, fcntl.LOCK_SH)  # held until this process ends: the proof that the record is alive
        os.replace(tmp, path)
    except OSError as exc:
        from .terminal import clean

        log.warning("cannot write %s (%s): `llara-search query` will not find this server", clean(path), exc.strerror)
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        yield None
        return
    try:
        yield rec
    finally:
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:  # a second server may have replaced it: leave that one
                os.unlink(path)
        except OSError:
            pass
        os.close(fd)


def find_server(index_dir: str | os.PathLike, db_url: str | None = None) -> ServerRecord | None:
    """The live server of this index on this machine, or None. `db_url`: the URL the caller would open (None: the
    folder's own meta.sqlite), compared with the server's by digest."""
    import fcntl

    path = record_path(index_dir)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: its server is running
        except OSError:
            return None
        else:
            return None  # nobody holds it: a stale record of a server that is gone (the lock is dropped on close)
        raw = os.read(fd, 1 << 16)
    finally:
        os.close(fd)
    try:
        data = json.loads(raw)
        rec = ServerRecord(**{f: data[f] for f in ServerRecord.__dataclass_fields__})  # newer writers may add keys
    except (ValueError, TypeError, KeyError):
        return None
    if rec.hostname != socket.gethostname():
        return None
    from .layout import IndexPaths

    if rec.db != db_key(IndexPaths(Path(index_dir), db_url).db_url):
        return None
    return rec


__all__ = ["RECORD_NAME", "ServerRecord", "announce", "db_key", "find_server", "local_url", "record_path"]
