"""Where an index keeps its parts, and the writer lock that makes a second ingest wait or fail clearly."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import IndexLockedError

DEFAULT_INDEX = "indexes/default"


def default_index_dir() -> Path:
    return Path(os.environ.get("LLARA_SEARCH_INDEX", DEFAULT_INDEX))


@dataclass(frozen=True)
class IndexPaths:
    root: Path
    db_url_override: str | None = None

    @property
    def db_url(self) -> str:
        return self.db_url_override or f"sqlite:///{(self.root / 'meta.sqlite').resolve()}"

    @property
    def vectors(self) -> Path:
        return self.root / "vectors"

    @property
    def generations(self) -> Path:
        return self.root / "generations"

    @property
    def lexical(self) -> Path:
        return self.root / "lexical"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def head(self) -> Path:
        return self.root / "HEAD"

    def generation_file(self, gen: int) -> Path:
        return self.generations / f"gen-{gen:08d}.faiss"

    def exists(self) -> bool:
        return self.root.is_dir() and (self.db_url_override is not None or (self.root / "meta.sqlite").is_file())


def write_head(paths: IndexPaths, generation: int) -> None:
    """Tell readers that the database may have changed (after a commit that names a generation, or that changes
    one): they stat this file on every search and ask the database only when it changed (search.GenerationPin).
    A hint, not the truth: it is written after the commit, and readers ask the database now and then anyway."""
    tmp = paths.head.with_name(f"HEAD.tmp{os.getpid()}")
    try:
        tmp.write_text(f"{generation} {time.time_ns()}\n")
        os.replace(tmp, paths.head)
    except OSError:  # a read-only copy of the folder: readers fall back to asking the database
        pass


class WriteLock:
    """An exclusive flock on `<index>/.lock` holding the writer's PID; released by the OS if the writer dies."""

    def __init__(self, path: Path, wait: bool = False, timeout: float | None = None):
        self.path = path
        self.wait = wait
        self.timeout = timeout
        self.fd: int | None = None

    def __enter__(self) -> "WriteLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not self.wait or (deadline is not None and time.monotonic() > deadline):
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    raise IndexLockedError(
                        f"index {self.path.parent} is locked by PID {holder} (another ingest is writing); wait for "
                        "it to finish or pass --wait"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
