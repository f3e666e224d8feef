"""The work of one search or embeddings request, as run in a lane (lanes.py): in pieces, with the request's deadline
checked between them, and the answer serialized here (in the worker thread) so that a large answer never holds the
event loop that `/healthz` and everyone else's requests are answered on.

Encodes run in slices of ENCODE_SLICE texts: each slice takes the encoder lock on its own, so a small search's
encode waits for one slice of a big batch, not for all of it, and a deadline stops a big encode between slices.
Vectors do not depend on how texts are grouped into batches (the micro-batcher relies on that too).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .lanes import Deadline

if TYPE_CHECKING:
    from ..engine import Engine
    from ..rerank import RerankPolicy

ENCODE_SLICE = 8


@dataclass
class SearchJob:
    queries: list[str]
    k: int
    mode: str
    where: str | None
    collapse: bool
    depth: int | None  # first-stage candidates for the reranker; None: not re-ranked
    query_vectors: np.ndarray | None = None  # already encoded (the micro-batcher's single queries)


def encode(engine: Engine, texts: Sequence[str], kind: str, deadline: Deadline) -> np.ndarray:
    parts = []
    for i in range(0, len(texts), ENCODE_SLICE):
        if i:
            time.sleep(0.001)  # let a waiting small search take the encoder lock before the next slice does
        deadline.check()
        parts.append(engine.embed(texts[i:i + ENCODE_SLICE], kind))
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def search(engine: Engine, job: SearchJob, policy: RerankPolicy | None, deadline: Deadline) -> tuple[list, list | None]:
    """Each query's results, and each query's re-ranking outcome when it was re-ranked."""
    qv = job.query_vectors
    if qv is None and job.mode != "bm25":
        qv = encode(engine, job.queries, "query", deadline)
    first = engine.search_many(job.queries, job.depth or job.k, job.mode, job.where, qv, collapse=job.collapse,
                               check=deadline.check)
    if job.depth is None:
        return first, None
    deadline.check()
    budget = None if policy.budget_ms is None else time.monotonic() + policy.budget_ms / 1000
    cut_by_request = deadline.at is not None and (budget is None or deadline.at < budget)
    until = deadline.at if cut_by_request else budget
    outcomes = engine.rerank(job.queries, first, job.k, policy.reranker, deadline=until, fallback=True)
    for o in outcomes:
        if not o.applied and cut_by_request and time.monotonic() >= deadline.at:
            o.reason = (f"the request's deadline ({deadline.seconds:g} s, `serve --request-timeout`) came before the "
                        "reranker finished; answered in first-stage order")
    return [o.results for o in outcomes], outcomes


def public(r) -> dict:
    d = r.to_dict()
    d.pop("doc_key", None)
    return d


def dumps(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=_plain).encode()


def _plain(o):
    """numpy scalars (scores) as Python numbers."""
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")
