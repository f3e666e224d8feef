"""The error classes more than one layer raises or catches, and the one way a message is cut to a line.

Everything here is plain Python (no numpy, torch or SQLAlchemy), so that the CLI can name these classes, and any
module can raise them, without importing the engine or a backend: the modules that used to define them re-export
them (`from llara_search.engine import EngineError` keeps working).
"""

from __future__ import annotations

from pathlib import Path


class EngineError(RuntimeError):
    """Wrong use (bad argument, wrong model, missing index): the message is one line saying what to do."""


class EmptyIndexError(RuntimeError):
    """The index has nothing committed yet to search, move or compact."""


class StoreError(RuntimeError):
    """A database that cannot be used as it is (unreachable, corrupt, or from a newer llara-search)."""


class IndexLockedError(RuntimeError):
    """Another writer holds the index's write lock."""


class VectorDBError(RuntimeError):
    """The vector database cannot be used as it is (unreachable, refused credentials, a collection of another index,
    another dimension, data lost behind our back); the message is one line saying what to do."""


class IndexFileError(RuntimeError):
    """A committed generation's index file is missing or unreadable; the message says how to repair it."""

    def __init__(self, path: Path, generation: int, reason: str):
        self.path, self.generation, self.reason = path, generation, reason
        super().__init__(f"index file {path} of generation {generation} {reason}; run `llara-search doctor --repair "
                         f"--index {path.parent.parent}` to rebuild it from the stored vectors")


def first_line(exc: BaseException | str, *, default: str | None = None, limit: int | None = None) -> str:
    """The first non-blank line of an error's message: libraries (transformers, faiss, SQLAlchemy, gRPC) put a
    paragraph or a C++ backtrace there, and a user is shown one line. An empty message gives `default`, or the
    exception's class name; `limit` bounds what a message from outside may cost a terminal or a log."""
    text = str(exc).strip()
    if text:
        line = text.splitlines()[0]
    else:
        line = type(exc).__name__ if default is None else default
    return line[:limit] if limit is not None else line


__all__ = ["EmptyIndexError", "EngineError", "IndexFileError", "IndexLockedError", "StoreError", "VectorDBError",
           "first_line"]
