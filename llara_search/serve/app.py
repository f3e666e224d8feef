"""The FastAPI app over `Engine`.

Concurrent single queries are micro-batched: requests arriving within a couple of milliseconds share one encoder
forward, which is where a 7B model spends its time. A generation committed by a concurrent ingest is picked up on
the next request (the searcher re-pins the newest committed generation each time).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import time
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from .. import __version__
from ..engine import Engine
from ..errors import EmptyIndexError, EngineError, IndexFileError, VectorDBError
from ..retrieval import MAX_K
from .openai_api import content_type_hint, error_body, openai_router
from .page import COOKIE, page_router

if TYPE_CHECKING:
    from ..rerank import RerankPolicy

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 8192
MAX_BATCH = 256
MAX_TEXT_CHARS = 100_000
MAX_BODY_BYTES = 4 * 2**20
BATCH_WINDOW_S = 0.003


RERANK_DOC = ("re-rank the first stage's top candidates with the server's reranker (`serve --rerank MODEL`); "
              "default: the server's setting")
RERANK_DEPTH_DOC = "first-stage candidates the reranker scores (default: the server's, at least k)"


COLLAPSE_DOC = ("false: every copy of a passage that other files repeat (the same manual as html, pdf, man page) "
                "is its own result; true (default): copies are left out and named in the better result's `also_in`")


class SearchRequest(BaseModel):
    query: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(10, ge=1, le=MAX_K)
    mode: Literal["dense", "bm25", "hybrid"] = "dense"
    where: str | None = Field(None, max_length=1024, description="path glob, e.g. 'api/*' or '*.pdf'")
    rerank: bool | None = Field(None, description=RERANK_DOC)
    rerank_depth: int | None = Field(None, ge=1, le=MAX_K, description=RERANK_DEPTH_DOC)
    collapse: bool = Field(True, description=COLLAPSE_DOC)


class BatchSearchRequest(BaseModel):
    queries: list[str] = Field(..., min_length=1, max_length=MAX_BATCH)
    k: int = Field(10, ge=1, le=MAX_K)
    mode: Literal["dense", "bm25", "hybrid"] = "dense"
    where: str | None = Field(None, max_length=1024)
    rerank: bool | None = Field(None, description=RERANK_DOC)
    rerank_depth: int | None = Field(None, ge=1, le=MAX_K, description=RERANK_DEPTH_DOC)
    collapse: bool = Field(True, description=COLLAPSE_DOC)


class EmbedRequest(BaseModel):
    texts: list[str] = Field(..., min_length=1, max_length=MAX_BATCH)
    kind: Literal["query", "passage"] = "passage"


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MicroBatcher:
    """Collects concurrent query encodes for a few milliseconds and runs them as one encoder call."""

    def __init__(self, engine: Engine, window: float = BATCH_WINDOW_S, max_batch: int = 64):
        self.engine = engine
        self.window = window
        self.max_batch = max_batch
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.calls = 0  # encoder calls made (observable for tests)

    async def encode(self, text: str):
        if self.queue is None:
            self.queue = asyncio.Queue()
            self.task = asyncio.create_task(self._run())
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((text, fut))
        return await fut

    async def _run(self) -> None:
        while True:
            items = [await self.queue.get()]
            deadline = asyncio.get_running_loop().time() + self.window
            while len(items) < self.max_batch:
                timeout = deadline - asyncio.get_running_loop().time()
                if timeout <= 0:
                    break
                try:
                    items.append(await asyncio.wait_for(self.queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            texts = [t for t, _ in items]
            try:
                self.calls += 1
                vecs = await asyncio.to_thread(self.engine.encode_queries, texts)
                for (_, fut), v in zip(items, vecs):
                    if not fut.done():
                        fut.set_result(v)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(exc)


class BodyLimit:
    """413 for a body over `limit` bytes: at once when Content-Length says so, else as soon as the streamed
    (chunked) body passes the limit, so that no request can make the server buffer more than `limit`."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            message = f"request body over {self.limit} bytes"
            body = error_body(message, code="request_too_large") if scope["path"].startswith("/v1/") else \
                {"detail": message}
            response = JSONResponse(body, status_code=413)
            return await response(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        await self.app(scope, counted, send)


def create_app(engine: Engine, token: str | None = None, rerank: RerankPolicy | None = None,
               editor_url: str | None = None) -> FastAPI:
    """`rerank`: the server's reranker (loaded once, kept warm), whether it is on by default, its depth, the cap on
    a request's depth and the time budget per request, past which the answer is the first stage's, said so.
    `editor_url`: the search page's link template for opening a result in an editor (serve/page.py)."""
    app = FastAPI(title="llara-search", version=__version__,
                  description="Top-k semantic search over a llara-search index (LLaRA dense retrieval, BM25, hybrid).")
    bearer = HTTPBearer(auto_error=False)
    batcher = MicroBatcher(engine)
    app.state.batcher = batcher
    app.state.engine = engine
    app.state.rerank = rerank  # read per request: an operator (or a test) may swap it on a running app

    def auth(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        """The token as a Bearer header, or the search page's sign-in cookie (HttpOnly, SameSite=Strict)."""
        if token is None:
            return
        given = creds.credentials if creds is not None and creds.scheme.lower() == "bearer" else \
            request.cookies.get(COOKIE, "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        if hint := content_type_hint(_request, exc):  # `curl -d` sends a form content type
            return JSONResponse({"detail": hint}, status_code=422)
        msgs = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            msgs.append(f"{loc}: {e.get('msg')}" if loc else str(e.get("msg")))
        return JSONResponse({"detail": "; ".join(msgs) or "invalid request"}, status_code=422)

    @app.exception_handler(EngineError)
    async def engine_error(_request: Request, exc: EngineError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(EmptyIndexError)
    @app.exception_handler(IndexFileError)
    @app.exception_handler(VectorDBError)
    async def unavailable(_request: Request, exc: Exception):
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(Exception)
    async def internal(_request: Request, exc: Exception):
        log.exception("internal error")
        return JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, status_code=500)

    def rerank_depth(k: int, asked: bool | None, depth: int | None) -> int | None:
        """How deep this request's first stage goes for the reranker, or None when it is not re-ranked."""
        policy = app.state.rerank
        if asked is False or (asked is None and (policy is None or not policy.by_default)):
            return None
        if policy is None:
            raise HTTPException(400, "this server has no reranker; start it with `llara-search serve --rerank MODEL`")
        if depth is None:
            depth = max(policy.depth, k)
        if depth < k:
            raise HTTPException(422, f"rerank_depth ({depth}) is below k ({k}): the reranker picks the top {k} from "
                                     f"the first stage's top {depth}; raise rerank_depth or lower k")
        if depth > policy.max_depth:
            raise HTTPException(422, f"rerank_depth ({depth}) is over this server's limit of {policy.max_depth} "
                                     "candidates per query; lower rerank_depth (or k), or pass rerank=false")
        return depth

    async def second_stage(queries: list[str], first: list, k: int) -> list:
        """Re-rank within the server's time budget; a reranker failure answers in first-stage order, said so."""
        policy = app.state.rerank
        deadline = None if policy.budget_ms is None else time.monotonic() + policy.budget_ms / 1000
        return await asyncio.to_thread(engine.rerank, queries, first, k, policy.reranker, deadline=deadline,
                                       fallback=True)

    async def run_search(query: str, k: int, mode: str, where: str | None, rerank_asked: bool | None = None,
                         depth: int | None = None, collapse: bool = True):
        depth = rerank_depth(k, rerank_asked, depth)
        qv = None
        if mode != "bm25":
            import numpy as np

            qv = np.asarray([await batcher.encode(query)])
        results = await asyncio.to_thread(partial(engine.search_many, collapse=collapse), [query], depth or k, mode,
                                          where, qv)
        if depth is None:
            return {"results": [_public(r) for r in results[0]]}
        [outcome] = await second_stage([query], results, k)
        return {"rerank": outcome.to_dict(), "results": [_public(r) for r in outcome.results]}

    @app.get("/healthz", tags=["ops"])
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], dependencies=[Depends(auth)])
    async def readyz():
        try:
            gen, _ = await asyncio.to_thread(engine.searcher.refresh)
        except (EmptyIndexError, EngineError) as exc:
            return JSONResponse({"status": "not ready", "detail": str(exc)}, status_code=503)
        return {"status": "ready", "generation": gen.id}

    @app.get("/info", tags=["ops"], dependencies=[Depends(auth)])
    async def info():
        status = await asyncio.to_thread(engine.status)
        policy = app.state.rerank
        if policy is not None:  # what a client forwarding `--rerank` needs to know it gets the same reranker
            status["rerank"] = {"model": policy.model, "family": getattr(policy.reranker, "family", None),
                                "by_default": policy.by_default, "depth": policy.depth,
                                "max_depth": policy.max_depth, "budget_ms": policy.budget_ms}
        return status

    @app.get("/search", tags=["search"], dependencies=[Depends(auth)])
    async def search_get(q: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS),
                         k: int = Query(10, ge=1, le=MAX_K),
                         mode: Literal["dense", "bm25", "hybrid"] = "dense",
                         where: str | None = Query(None, max_length=1024),
                         rerank: bool | None = Query(None, description=RERANK_DOC),
                         rerank_depth: int | None = Query(None, ge=1, le=MAX_K, description=RERANK_DEPTH_DOC),
                         collapse: bool = Query(True, description=COLLAPSE_DOC)):
        return {"query": q, "mode": mode, **await run_search(q, k, mode, where, rerank, rerank_depth, collapse)}

    @app.post("/search", tags=["search"], dependencies=[Depends(auth)])
    async def search_post(body: SearchRequest):
        return {"query": body.query, "mode": body.mode,
                **await run_search(body.query, body.k, body.mode, body.where, body.rerank, body.rerank_depth,
                                   body.collapse)}

    @app.post("/batch_search", tags=["search"], dependencies=[Depends(auth)])
    async def batch_search(body: BatchSearchRequest):
        _check_lengths(body.queries, MAX_QUERY_CHARS)
        depth = rerank_depth(body.k, body.rerank, body.rerank_depth)
        results = await asyncio.to_thread(partial(engine.search_many, collapse=body.collapse), body.queries,
                                          depth or body.k, body.mode, body.where)
        if depth is None:
            return {"results": [[_public(r) for r in rs] for rs in results]}
        outcomes = await second_stage(body.queries, results, body.k)
        return {"rerank": [o.to_dict() for o in outcomes], "results": [[_public(r) for r in o.results]
                                                                         for o in outcomes]}

    @app.post("/embed", tags=["embeddings"], dependencies=[Depends(auth)])
    async def embed(body: EmbedRequest):
        _check_lengths(body.texts, MAX_TEXT_CHARS)
        vecs = await asyncio.to_thread(engine.embed, body.texts, body.kind)
        return {"kind": body.kind, "dim": int(vecs.shape[1]), "embeddings": vecs.tolist()}

    app.include_router(openai_router(engine, auth))  # /v1/embeddings, /v1/models: OpenAI's shapes and errors
    app.include_router(page_router(engine, auth, token, editor_url, lambda: app.state.rerank))  # GET /: people
    return app


def _check_lengths(texts: list[str], limit: int) -> None:
    for i, t in enumerate(texts):
        if not t or len(t) > limit:
            raise HTTPException(422, f"text #{i} must have 1 to {limit} characters")


def _public(r) -> dict:
    d = r.to_dict()
    d.pop("doc_key", None)
    return d


def run_server(engine: Engine, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
               rerank: RerankPolicy | None = None, editor_url: str | None = None, open_page: bool = False) -> None:
    """Serve until SIGINT/SIGTERM. While it runs, `<index>/server.json` tells `llara-search query` on this machine
    where to ask instead of loading the model itself (llara_search/server_record.py). `port=0` takes a free port."""
    import sys

    import uvicorn

    from ..identity import TEXT_ONLY
    from ..server_record import announce

    if engine.info.get("model") != TEXT_ONLY:
        from ..encoder.static_query import prepare_for_serving

        prepare_for_serving(engine.encoder)  # load the model and compile the query path before accepting traffic
    if rerank is not None:  # and run the reranker once, so the first request does not pay for its warm-up
        rerank.reranker.score("warm-up", ["warm-up"])
    app = create_app(engine, token, rerank, editor_url)
    sock = _listen(host, port)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=sock.getsockname()[1], log_level="warning"))
    with _stopped_by_signals(), announce(engine.paths.root, engine.paths.db_url, sock.getsockname(),
                                         auth=token is not None) as rec:
        url = rec.url if rec else f"http://{host}:{sock.getsockname()[1]}"
        print(f"serving {engine.paths.root} at {url} (search page at {url}/, OpenAPI docs at {url}/docs)",
              file=sys.stderr, flush=True)
        if open_page:
            import webbrowser

            webbrowser.open(url + "/")
        server.run(sockets=[sock])


class _Stop(Exception):
    pass


@contextmanager
def _stopped_by_signals():
    """A stop by SIGINT or SIGTERM ends the process cleanly (exit 0, server record removed). uvicorn shuts down
    gracefully on either and then raises the signal again for the previous handler: the default SIGTERM handler would
    kill the process before the record is removed, and SIGINT's KeyboardInterrupt would read as a failure."""
    import signal
    import threading

    def stop(_signum, _frame):
        raise _Stop

    main = threading.current_thread() is threading.main_thread()  # handlers can only be set there
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        yield
    except (_Stop, KeyboardInterrupt):
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _listen(host: str, port: int):
    """The listening socket, bound here (not by uvicorn) so that the real port of `--port 0` is known before the
    server record is written, and a busy port is one clear line."""
    import socket

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise EngineError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
                          "(--port 0 takes a free one)") from None
    return sock
