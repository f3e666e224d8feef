"""LangChain retriever over a llara-search index: a running `llara-search serve` (URL + token) or an in-process
`Engine`. `pip install 'llara-search[langchain]'`.

    from llara_search.langchain import LlaraSearchRetriever
    retriever = LlaraSearchRetriever(url="http://127.0.0.1:8000", token="T", k=5, mode="hybrid")
    docs = retriever.invoke("how do I configure the port?")          # or: await retriever.ainvoke(...)
    retriever.invoke("...", k=3, where="api/*")                      # per-call overrides

Each result is a `Document` whose `page_content` is the passage and whose metadata says where it came from:
`source` and `path`, `heading`, `start_line`/`end_line` or `page`, `score`, `rank`, `chunk_id` (also the
document's `id`). Search parameters beyond k/mode/where go in `search_kwargs` (or as keyword arguments of one call)
and are handed to the server or `Engine.search` as given.

The server path needs only httpx and langchain-core (no torch in the calling process); the engine path searches in
this process with the index's own model.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, model_validator

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the LangChain retriever needs langchain-core: pip install 'llara-search[langchain]'") from exc

from .client import MAX_K, AsyncClient, Client

_LANGCHAIN_KWARGS = {"verbose"}  # what BaseRetriever.invoke may leave in the keyword arguments for its own use


def to_document(hit: Any) -> Document:
    """A search result (`llara_search.results.SearchResult`, from the engine or the HTTP client) as a LangChain
    Document."""
    metadata = {"source": hit.path, "path": hit.path, "heading": hit.heading, "start_line": hit.start_line,
                "end_line": hit.end_line, "page": hit.page, "score": hit.score, "rank": hit.rank,
                "chunk_id": hit.chunk_id, "also_in": list(getattr(hit, "also_in", None) or [])}
    if getattr(hit, "first_stage_rank", None) is not None:  # re-ranked (search_kwargs rerank): where it came from
        metadata.update(first_stage_rank=hit.first_stage_rank, first_stage_score=hit.first_stage_score)
    return Document(page_content=hit.text, metadata=metadata, id=str(hit.chunk_id))


class LlaraSearchRetriever(BaseRetriever):
    """Top-k passages from a llara-search index. Give either `url` (a running `llara-search serve`; `token`
    defaults to $LLARA_SEARCH_TOKEN) or `engine` (an open `llara_search.Engine`)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    url: str | None = None
    token: SecretStr | None = None
    engine: Any = Field(None, exclude=True)
    k: int = Field(10, ge=1, le=MAX_K)
    mode: Literal["dense", "bm25", "hybrid"] = "dense"
    where: str | None = Field(None, description="path glob, e.g. 'api/*' or '*.pdf'")
    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    timeout: float = 120.0

    _client: Client | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _one_source(self) -> "LlaraSearchRetriever":
        if (self.url is None) == (self.engine is None):
            raise ValueError("give either url= (a running `llara-search serve`) or engine= (an open Engine), not "
                             f"{'both' if self.url else 'neither'}")
        return self

    def _params(self, overrides: dict[str, Any]) -> dict[str, Any]:
        params = {"k": self.k, "mode": self.mode, "where": self.where, **self.search_kwargs}
        params.update({key: v for key, v in overrides.items() if key not in _LANGCHAIN_KWARGS})
        return params

    def _token(self) -> str | None:
        return self.token.get_secret_value() if self.token is not None else None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        params = self._params(kwargs)
        if self.engine is not None:
            return [to_document(r) for r in self.engine.search(query, **params)]
        if self._client is None:
            self._client = Client(self.url, self._token(), timeout=self.timeout)
        return [to_document(h) for h in self._client.search(query, **params)]

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       **kwargs: Any) -> list[Document]:
        params = self._params(kwargs)
        if self.engine is not None:  # the engine is blocking (encoder, FAISS, SQL): keep the event loop free
            results = await asyncio.to_thread(self.engine.search, query, **params)
            return [to_document(r) for r in results]
        # a client per call: an httpx.AsyncClient belongs to the event loop it was first used on
        async with AsyncClient(self.url, self._token(), timeout=self.timeout) as client:
            return [to_document(h) for h in await client.search(query, **params)]


__all__ = ["LlaraSearchRetriever", "to_document"]
