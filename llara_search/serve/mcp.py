"""Search as a tool for agents: an MCP server (the official `mcp` SDK) over the same `Engine` as the HTTP API.

`llara-search mcp --index DIR` speaks MCP over stdin/stdout, which is how agent hosts (Claude Desktop, Cursor,
IDE assistants) start local tools; `--transport streamable-http` serves it over HTTP instead. Read-only: an agent
can search and look at the index, never write to it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Literal, get_type_hints

from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from ..engine import MAX_K, Engine, EngineError
from ..index.generations import IndexFileError
from ..search import EmptyIndexError, SearchResult

INSTRUCTIONS = ("Semantic search over the user's own documents (a llara-search index). Call `search` with a "
                "natural-language question; each result has the passage text and where it came from (path, "
                "heading, lines or page). `mode`: dense (meaning), bm25 (exact words), hybrid (both).")


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


def create_mcp_server(engine: Engine):
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(name="llara-search", instructions=INSTRUCTIONS)

    @server.tool(name="search", description="Find the passages of the indexed documents that answer a question. "
                 "Returns up to k results, best first, each with rank, score, path, heading, line span or page "
                 "and text.")
    def search(query: str, k: int = 10, mode: Literal["dense", "bm25", "hybrid"] = "hybrid",
               where: str | None = None) -> list[SearchHit]:
        """`where`: only documents whose path matches this glob, e.g. 'api/*' or '*.pdf'."""
        k = max(1, min(int(k), MAX_K))
        with _told_to_the_agent():
            return [_public(r) for r in engine.search(query, k=k, mode=mode, where=where)]

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
    except (EngineError, EmptyIndexError, IndexFileError) as exc:
        raise ToolError(str(exc)) from None


def _public(r) -> SearchHit:
    return SearchHit(**{key: getattr(r, key) for key in SearchHit.__annotations__})


def run_mcp(engine: Engine, transport: Literal["stdio", "streamable-http"] = "stdio", host: str = "127.0.0.1",
            port: int = 8001) -> None:
    if engine.info.get("model") not in (None, "none"):
        engine.encoder  # load the model before the host's first call  # noqa: B018
    server = create_mcp_server(engine)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)
