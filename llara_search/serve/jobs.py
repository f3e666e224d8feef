"""The work of one search or embeddings request, as run in a lane (lanes.py): in pieces, with the request's deadline
checked between them, and the answer serialized here (in the worker thread) so that a large answer never holds the
event loop that `/healthz` and everyone else's requests are answered on.

Big encodes run in slices of about SLICE_CHARS characters, each slice a checkpoint: a deadline stops a big encode
between slices, and a big request's next slice waits while small requests run (lanes.SmallFirst). A small request's
texts take the encoder's quick seat (encoder/seats.py), so they never wait for the slice in progress either.
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

SLICE_CHARS = 2048  # characters of one slice of a big encode (at least one text)
SLICE_TEXTS = 16
ANSWER_MARGIN_S = 0.2  # of a re-ranked request's time, kept to answer in first-stage order when the reranker is late


@dataclass
class SearchJob:
    queries: list[str]
    k: int
    mode: str
    where: str | None
    collapse: bool
    depth: int | None  # first-stage candidates for the reranker; None: not re-ranked
    query_vectors: np.ndarray | None = None  # already encoded (the micro-batcher's single queries)


def slices(texts: Sequence[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    chars = 0
    for t in texts:
        if out[-1] and (chars + len(t) > SLICE_CHARS or len(out[-1]) >= SLICE_TEXTS):
            out.append([])
            chars = 0
        out[-1].append(t)
        chars += len(t)
    return out


def encode(engine: Engine, texts: Sequence[str], kind: str, deadline: Deadline) -> np.ndarray:
    """A big request's slices take the encoder's bulk seat, a small request's texts its quick one (encoder/seats.py)."""
    quick = not deadline.big
    parts = []
    for part in slices(texts):
        deadline.check()
        parts.append(engine.embed(part, kind, quick=quick))
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
    if deadline.stop.is_set():
        deadline.check()
    # past the deadline already, the reranker gives up at once: the answer is the first stage's order, said so. It
    # gives up a little before the request's deadline, or the server would answer 503 at the deadline instead
    budget = None if policy.budget_ms is None else time.monotonic() + policy.budget_ms / 1000
    request_end = None if deadline.at is None else deadline.at - min(ANSWER_MARGIN_S, deadline.seconds / 5)
    cut_by_request = request_end is not None and (budget is None or request_end < budget)
    until = request_end if cut_by_request else budget
    outcomes = engine.rerank(job.queries, first, job.k, policy.reranker, deadline=until, fallback=True)
    for o in outcomes:
        if not o.applied and cut_by_request and time.monotonic() >= request_end and "time budget" in (o.reason or ""):
            o.reason = (f"the request's deadline ({deadline.seconds:g} s, --request-timeout) came before the "
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
