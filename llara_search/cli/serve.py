"""`serve` (HTTP) and `mcp` (Model Context Protocol): long-running processes answering searches."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import (DbUrlOpt, DtypeOpt, IndexOpt, RerankBaseOpt, RerankDepthOpt, RerankNormalizeOpt, RerankOpt,
                     check_rerank_options, fail, guard, open_engine, parse_dtype)

RequestTimeoutOpt = typer.Option(None, "--request-timeout", min=0,
                                 help="Seconds one request may take, past which it is answered 503 (or in "
                                      "first-stage order when the reranker ran out) [$LLARA_SEARCH_REQUEST_TIMEOUT "
                                      "or 10; 0: no limit]")


def _request_timeout(value: Optional[float]) -> Optional[float]:
    from rich.markup import escape

    from ..serve.limits import deadline_seconds

    try:
        return deadline_seconds(value)
    except ValueError as exc:
        fail(escape(str(exc)), 2)


@guard
def serve(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
          host: str = typer.Option("127.0.0.1", "--host"),
          port: int = typer.Option(8000, "--port", min=0, max=65535, help="0: any free port (printed on start)"),
          token: Optional[str] = typer.Option(None, "--token", envvar="LLARA_SEARCH_TOKEN",
                                              help="Bearer token required on every route but /healthz"),
          rerank: Optional[str] = RerankOpt,
          rerank_depth: Optional[int] = RerankDepthOpt,
          rerank_base: Optional[str] = RerankBaseOpt,
          rerank_normalize: bool = RerankNormalizeOpt,
          rerank_by_default: bool = typer.Option(True, "--rerank-by-default/--rerank-on-request",
                                                 help="With --rerank: re-rank every search unless it says "
                                                      "rerank=false, or only those that say rerank=true"),
          rerank_max_depth: Optional[int] = typer.Option(None, "--rerank-max-depth", min=1,
                                                         help="Most candidates one query may ask the reranker to "
                                                              "score [4 x --rerank-depth]"),
          rerank_budget_ms: Optional[float] = typer.Option(None, "--rerank-budget-ms", min=0,
                                                           help="Time the reranker may take per request; past it "
                                                                "the answer is the first stage's order, said so in "
                                                                "the response [2000; 0: no limit]"),
          editor_url: Optional[str] = typer.Option(None, "--editor-url", envvar="LLARA_SEARCH_EDITOR_URL",
                                                   help="The search page's 'open in editor' link, e.g. "
                                                        "'vscode://file/{path}:{line}' ({path}, {line}, {page})"),
          open_page: bool = typer.Option(False, "--open", help="Open the search page in the browser"),
          request_timeout: Optional[float] = RequestTimeoutOpt,
          shutdown_grace: float = typer.Option(3.0, "--shutdown-grace", min=0,
                                               help="Seconds requests in flight get after SIGTERM/SIGINT"),
          watch_paths: List[Path] = typer.Option([], "--watch", help="Keep the index in sync with this folder while "
                                                 "serving (repeatable; as `llara-search watch`)"),
          debounce: float = typer.Option(0.5, "--debounce", min=0, help="With --watch: as for watch"),
          poll: Optional[float] = typer.Option(None, "--poll", min=0.1, help="With --watch: as for watch"),
          dtype: str = DtypeOpt) -> None:
    """Serve top-k search over HTTP (FastAPI; API docs at /docs) and the search page for people at /."""
    from ..serve import is_loopback, run_server
    from ..serve.page import check_editor_url

    timeout = _request_timeout(request_timeout)
    dtype = parse_dtype(dtype)
    check_rerank_options(rerank, rerank_depth=rerank_depth, rerank_base=rerank_base,
                         rerank_normalize=rerank_normalize, rerank_max_depth=rerank_max_depth,
                         rerank_budget_ms=rerank_budget_ms)
    if not token and not is_loopback(host):
        fail(f"refusing to bind {host} without a token: pass --token or set LLARA_SEARCH_TOKEN", 2)
    editor_url = check_editor_url(editor_url)
    missing = [str(p) for p in watch_paths if not p.exists()]
    if missing:
        fail(f"--watch: no such file or folder: {missing[0]}", 2)
    from ..serve.app import exit_now
    from ..watch import WatchSettings
    from ..watch.command import serve_watching

    engine = open_engine(index, db_url, dtype=dtype, create=bool(watch_paths))
    with serve_watching(engine, watch_paths, WatchSettings(debounce=debounce, poll=poll)):
        policy = _rerank_policy(engine, rerank, rerank_depth, rerank_base, rerank_normalize, rerank_by_default,
                                rerank_max_depth, rerank_budget_ms)
        run_server(engine, host=host, port=port, token=token, rerank=policy, request_timeout=timeout,
                   shutdown_grace=shutdown_grace, editor_url=editor_url,
                   open_page=open_page)
    exit_now()  # the watcher has stopped cleanly: skip the interpreter's teardown (seconds on a busy machine)


def _rerank_policy(engine, model, depth, base, normalize, by_default=True, max_depth=None, budget_ms=None):
    """A long-running server's reranker: loaded now (a bad model fails at start, not at the first request)."""
    if not model:
        return None
    from ..errors import EngineError
    from ..rerank import DEFAULT_BUDGET_MS, DEFAULT_DEPTH, RerankError, RerankPolicy

    depth = DEFAULT_DEPTH if depth is None else depth
    reranker = engine.reranker(model, base=base, normalize=normalize)
    try:
        return RerankPolicy(reranker, by_default=by_default, depth=depth,
                            max_depth=max(4 * depth, 1) if max_depth is None else max_depth,
                            budget_ms=DEFAULT_BUDGET_MS if budget_ms is None else (budget_ms or None), model=model)
    except RerankError as exc:
        raise EngineError(str(exc)) from None


@guard
def mcp(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
        transport: str = typer.Option("stdio", "--transport", help="stdio (for agent hosts) | streamable-http"),
        host: str = typer.Option("127.0.0.1", "--host", help="With --transport streamable-http"),
        port: int = typer.Option(8001, "--port", help="With --transport streamable-http"),
        rerank: Optional[str] = RerankOpt,
        rerank_depth: Optional[int] = RerankDepthOpt,
        rerank_base: Optional[str] = RerankBaseOpt,
        rerank_budget_ms: Optional[float] = typer.Option(None, "--rerank-budget-ms", min=0,
                                                         help="Time the reranker may take per call; past it the "
                                                              "first stage's order is returned [2000; 0: no limit]"),
        request_timeout: Optional[float] = RequestTimeoutOpt,
        dtype: str = DtypeOpt) -> None:
    """Serve search as an MCP tool for agents (read-only): `search` and `index_info`."""
    from ..serve import is_loopback
    from ..serve.mcp import run_mcp

    import importlib.util

    timeout = _request_timeout(request_timeout)
    dtype = parse_dtype(dtype)
    if importlib.util.find_spec("mcp") is None:
        fail("the MCP server needs the `mcp` package: pip install 'llara-search[mcp]'", 2)
    if transport not in ("stdio", "streamable-http"):
        fail(f"--transport must be stdio or streamable-http, not {transport!r}", 2)
    if transport != "stdio" and not is_loopback(host):
        fail(f"refusing to bind {host}: the MCP server has no authentication; keep it on loopback", 2)
    check_rerank_options(rerank, rerank_depth=rerank_depth, rerank_base=rerank_base,
                         rerank_budget_ms=rerank_budget_ms)
    engine = open_engine(index, db_url, dtype=dtype)
    policy = _rerank_policy(engine, rerank, rerank_depth, rerank_base, False, budget_ms=rerank_budget_ms)
    run_mcp(engine, transport, host, port, rerank=policy, request_timeout=timeout)
