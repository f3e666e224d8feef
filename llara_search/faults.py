"""Fault injection for the crash suite: the process kills itself (SIGKILL) at a named point.

`LLARA_SEARCH_CRASH_AT=<point>` dies the first time execution passes `<point>`, `<point>:N` the N-th time. The
points sit where a real crash would hurt most (between writing vectors and committing rows, between renaming an
index file and naming it in the database, ...); the tests and `benchmarks/soak.py` kill there and check that a
re-run, or `llara-search doctor`, brings back exactly the state an uninterrupted run would have produced.
Unset (always, outside tests), a crash point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "LLARA_SEARCH_CRASH_AT"
POINTS = {
    "parse": "after a file was parsed and chunked, before it is queued",
    "encode": "after a batch was encoded, before its vectors are written",
    "vectors": "after the vector rows were written, before their ids are",
    "commit": "inside the transaction that creates the rows of a batch, after its vectors were fsynced",
    "batch": "after a batch was committed",
    "lexical": "after the lexical index files of a new generation were written, before the vector index file",
    "save": "before the index file of a new generation is written (Milvus: before its rows are flushed)",
    "saved": "after the index file was renamed into place (Milvus: rows written and flushed), before the database "
             "names it",
    "milvus-write": "after one call wrote vectors into Milvus (rows of a generation the database does not name yet)",
    "switch": "after the database committed a Milvus generation, before the alias is switched to its collection",
    "cleanup": "after a generation was committed, before old rows and files are purged",
    "milvus-purge": "after the database purged removed rows, before Milvus deletes them and drops old collections",
    "compact": "after a compaction wrote the new epoch of stored vectors and recorded it, before switching to it",
    "train-step": "after a training step (and its checkpoint, when one is due)",
}
MILVUS_POINTS = frozenset({"milvus-write", "switch", "milvus-purge"})  # passed only with --vector-db on Milvus
_passed: Counter[str] = Counter()


def crash_point(name: str) -> None:
    at = os.environ.get(ENV)
    if not at:
        return
    point, _, nth = at.partition(":")
    if point != name:
        return
    _passed[name] += 1
    if _passed[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
