"""Search as a tool for agents: an MCP server (the official `mcp` SDK) over the same `Engine` as the HTTP API.

`llara-search mcp --index DIR` speaks MCP over stdin/stdout, which is how agent hosts (Claude Desktop, Cursor,
IDE assistants) start local tools; `--transport streamable-http` serves it over HTTP instead. Read-only: an agent
can search and look at the index, never write to it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal, get_type_hints

from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from ..engine import Engine
from ..errors import EmptyIndexError, EngineError, IndexFileError
from ..modes import default_mode
from ..results import SearchResult
from . import jobs, limits
from .heap import freeze_startup_objects
from .lanes import Busy, DeadlineExceeded, Lanes

if TYPE_CHECKING:
    from ..rerank import RerankPolicy

INSTRUCTIONS = ("Semantic search over the user's own documents (a llara-search index). Call `search` with a "
                "natural-language question; each result has the passage text and where it came from (path, "
                "heading, lines or page). `mode`: dense (meaning), bm25 (exact words), hybrid (both; the default, or "
                "bm25 on an index without a model).")


# the MCP result type is SearchResult's fields (less the BEIR doc key): one list of fields, in search.py
SearchHit = TypedDict("SearchHit", {name: hint for name, hint in get_type_hints(SearchResult).items()
                                    if name != "doc_key"})


class IndexInfo(TypedDict):
    index: str
    model: str | None
    adapter: str | None
    documents: int
    chunks_total: int
    generation: int | None
    index_type: str | None


def create_mcp_server(engine: Engine, rerank: RerankPolicy | None = None, *,
                      request_timeout: float | None = limits.DEFAULT_DEADLINE_S, lanes: Lanes | None = None):
    """`rerank`: a reranker loaded at start and kept; searches use it by default (`rerank=false` skips it) and a
    reranker failure or a spent time budget answers in first-stage order (`first_stage_rank` is then null).
    Calls meet the HTTP server's limits (limits.py) and deadline (`request_timeout` seconds), and run off the
    event loop (lanes.py), so one heavy call never stalls the session."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(name="llara-search", instructions=INSTRUCTIONS)
    policy = rerank
    lanes = lanes or Lanes()

    @server.tool(name="search", description="Find the passages of the indexed documents that answer a question. "
                 "Returns up to k results, best first, each with rank, score, path, heading, line span or page "
                 "and text; when re-ranked (servers started with --rerank), also the first stage's rank and score. "
                 f"k: 1 to {limits.MAX_K}; query: up to {limits.MAX_TEXT_CHARS:,} characters.")
    async def search(query: str, k: int = 10, mode: Literal["dense", "bm25", "hybrid"] | None = None,
                     where: str | None = None, rerank: bool | None = None) -> list[SearchHit]:
        """`where`: only documents whose path matches this glob, e.g. 'api/*' or '*.pdf'. `rerank`: re-score the
        top candidates with the server's reranker (default: on when the server has one)."""
        with _told_to_the_agent():
            limits.check_search([query], k, where=where, single=True)
            if rerank and policy is None:
                raise EngineError("this MCP server has no reranker; start it with `llara-search mcp --rerank MODEL`")
            depth = None
            if policy is not None and (policy.by_default if rerank is None else rerank):
                depth = min(limits.MAX_K, max(policy.depth, k))
            cost = limits.check_search([query], k, rerank_depth=depth, where=where, single=True)
            mode = mode or ("bm25" if default_mode(engine.info) == "bm25" else "hybrid")  # text-only: BM25
            job = jobs.SearchJob([query], k, mode, where, True, depth)
            results, _ = await lanes.run(lambda d: jobs.search(engine, job, policy, d),
                                         lanes.deadline(request_timeout), small=cost.small)
            return [_public(r) for r in results[0]]

    @server.tool(name="index_info", description="What the index holds: model, documents, chunks, generation.")
    def index_info() -> IndexInfo:
        s = engine.status()
        return IndexInfo(**{key: s[key] for key in IndexInfo.__annotations__})

    return server


@contextmanager
def _told_to_the_agent():
    """Wrong use (an empty query, a mode the index cannot do, an index not built yet) reaches the agent as a tool
    error with our message, so it can correct the call; the SDK hides the text of any other exception as a crash."""
    from mcp.server.mcpserver.exceptions import ToolError

    try:
        yield
    except (EngineError, EmptyIndexError, IndexFileError, DeadlineExceeded, Busy) as exc:
        raise ToolError(str(exc)) from None
    except limits.LimitError as exc:
        raise ToolError(exc.message) from None


def _public(r) -> SearchHit:
    return SearchHit(**{key: getattr(r, key) for key in SearchHit.__annotations__})


def run_mcp(engine: Engine, transport: Literal["stdio", "streamable-http"] = "stdio", host: str = "127.0.0.1",
            port: int = 8001, rerank: RerankPolicy | None = None, *,
            request_timeout: float | None = limits.DEFAULT_DEADLINE_S) -> None:
    if engine.info.get("model") not in (None, "none"):
        from ..encoder.static_query import prepare_for_serving

        prepare_for_serving(engine.encoder)  # load the model (and compile queries) before the host's first call
    if rerank is not None:
        rerank.reranker.score("warm-up", ["warm-up"])
    server = create_mcp_server(engine, rerank, request_timeout=request_timeout)
    freeze_startup_objects()  # loaded: no full collection walks the model's objects again (heap.py)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)
