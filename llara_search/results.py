"""One search result, the same type on both sides of the wire: the engine returns it and `llara_search.client`
parses a server's answer into it (`client.Hit` is this class). Plain dataclasses only: the client's instant query
path must not import numpy or torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class SearchResult:
    rank: int
    score: float
    chunk_id: int
    path: str
    heading: str | None
    start_line: int | None
    end_line: int | None
    page: int | None
    text: str
    doc_key: str | None = None
    first_stage_rank: int | None = None  # set by a re-ranking (then `score` is the reranker's)
    first_stage_score: float | None = None
    also_in: list[str] = field(default_factory=list)  # paths of near-copies collapsed into this result
    # a result read from a server: exactly what it sent (fields a newer server adds are kept here)
    data: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict) -> "SearchResult":
        """A result as a server sent it (`to_dict()`'s shape)."""
        return cls(rank=int(d["rank"]), score=float(d["score"]), chunk_id=int(d["chunk_id"]), path=d["path"],
                   heading=d.get("heading"), start_line=d.get("start_line"), end_line=d.get("end_line"),
                   page=d.get("page"), text=d.get("text", ""), doc_key=d.get("doc_key"),
                   first_stage_rank=d.get("first_stage_rank"), first_stage_score=d.get("first_stage_score"),
                   also_in=list(d.get("also_in") or []), data=dict(d))

    def to_dict(self) -> dict:
        if self.data:  # read from a server: what it sent, unchanged
            return dict(self.data)
        d = asdict(self)
        del d["data"]
        d["heading"] = d["heading"] or None
        if d["first_stage_rank"] is None:  # not re-ranked: the first stage's shape, unchanged
            del d["first_stage_rank"], d["first_stage_score"]
        return d


__all__ = ["SearchResult"]
