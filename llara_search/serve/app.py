"""The FastAPI app over `Engine`.

Concurrent single queries are micro-batched: requests arriving within a couple of milliseconds share one encoder
forward, which is where a 7B model spends its time. A generation committed by a concurrent ingest is picked up on
the next request (the searcher re-pins the newest committed generation each time).

Every request is checked against limits.py before any work, then runs in a lane (lanes.py: small requests never
wait behind big ones, the event loop never computes) under one deadline; a SIGTERM gives in-flight requests a short
grace, then stops their work at its next checkpoint (`run_server`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sys
from contextlib import asynccontextmanager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from .. import __version__
from ..engine import Engine
from ..errors import EmptyIndexError, EngineError, IndexFileError, VectorDBError
from . import jobs, limits
from ..modes import default_mode
from .auth import require_token
from .docs_page import add_docs_routes
from .heap import freeze_startup_objects
from .lanes import BIG_MAX_WAIT_S, Busy, DeadlineExceeded, Lanes, SmallFirst
from .limits import MAX_BODY_BYTES, MAX_K, MAX_QUERIES, MAX_TEXT_CHARS, MAX_TEXTS, MAX_WHERE_CHARS, LimitError
from .openai_api import content_type_hint, error_body, openai_router
from .page import page_router

if TYPE_CHECKING:
    from ..rerank import RerankPolicy

log = logging.getLogger(__name__)

BATCH_WINDOW_S = 0.003
SHUTDOWN_GRACE_S = 3.0
# how often Python hands the GIL between threads (default 5 ms): a small search's Python steps wait less for a
# big request's, at a small cost in the big one's throughput
SWITCH_INTERVAL_S = 0.001
ANSWER_PIECE = 250  # results of a batch answer serialized between two pauses for small requests


RERANK_DOC = ("re-rank the first stage's top candidates with the server's reranker (`serve --rerank MODEL`); "
              "default: the server's setting")
RERANK_DEPTH_DOC = "first-stage candidates the reranker scores (default: the server's, at least k)"


COLLAPSE_DOC = ("false: every copy of a passage that other files repeat (the same manual as html, pdf, man page) "
                "is its own result; true (default): copies are left out and named in the better result's `also_in`")
# the limits are checked by limits.py (one message per limit on every route); these only document them
K_SCHEMA = {"minimum": 1, "maximum": MAX_K}
TEXT_SCHEMA = {"minLength": 1, "maxLength": MAX_TEXT_CHARS}
WHERE_DOC = "path glob, e.g. 'api/*' or '*.pdf'"
TRUNCATE_DOC = ("embed only the first tokens of a text longer than the model reads, instead of refusing it (the "
                "default, as /v1/embeddings does)")


MODE_DOC = "dense, bm25 or hybrid; by default dense, or bm25 on a text-only index (built with --model none)"


class SearchRequest(BaseModel):
    query: str = Field(..., json_schema_extra=TEXT_SCHEMA)
    k: int = Field(10, json_schema_extra=K_SCHEMA)
    mode: Literal["dense", "bm25", "hybrid"] | None = Field(None, description=MODE_DOC)
    where: str | None = Field(None, description=WHERE_DOC, json_schema_extra={"maxLength": MAX_WHERE_CHARS})
    rerank: bool | None = Field(None, description=RERANK_DOC)
    rerank_depth: int | None = Field(None, description=RERANK_DEPTH_DOC, json_schema_extra=K_SCHEMA)
    collapse: bool = Field(True, description=COLLAPSE_DOC)


class BatchSearchRequest(BaseModel):
    queries: list[str] = Field(..., json_schema_extra={"minItems": 1, "maxItems": MAX_QUERIES},
                               description=f"1 to {MAX_QUERIES} queries; queries x k at most {limits.MAX_RESULTS:,}, "
                                           f"{limits.MAX_QUERY_CHARS_TOTAL:,} characters in all")
    k: int = Field(10, json_schema_extra=K_SCHEMA)
    mode: Literal["dense", "bm25", "hybrid"] | None = Field(None, description=MODE_DOC)
    where: str | None = Field(None, description=WHERE_DOC, json_schema_extra={"maxLength": MAX_WHERE_CHARS})
    rerank: bool | None = Field(None, description=RERANK_DOC)
    rerank_depth: int | None = Field(None, description=RERANK_DEPTH_DOC, json_schema_extra=K_SCHEMA)
    collapse: bool = Field(True, description=COLLAPSE_DOC)


class EmbedRequest(BaseModel):
    texts: list[str] = Field(..., json_schema_extra={"minItems": 1, "maxItems": MAX_TEXTS},
                             description=f"1 to {MAX_TEXTS} texts of up to {MAX_TEXT_CHARS:,} characters, "
                                         f"{limits.MAX_EMBED_CHARS_TOTAL:,} in all")
    kind: Literal["query", "passage"] = "passage"
    truncate: bool = Field(False, description=TRUNCATE_DOC)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MicroBatcher:
    """Collects concurrent query encodes for a few milliseconds and runs them as one encoder call."""

    def __init__(self, engine: Engine, window: float = BATCH_WINDOW_S, max_batch: int = 64,
                 gate: SmallFirst | None = None):
        self.engine = engine
        self.gate = gate or SmallFirst()  # these encodes go before a big request's next slice
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
                vecs = await asyncio.to_thread(self._encode, texts)
                for (_, fut), v in zip(items, vecs):
                    if not fut.done():
                        fut.set_result(v)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(exc)


    def _encode(self, texts: list[str]):
        with self.gate.small():
            return self.engine.encode_queries(texts, quick=True)


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


def create_app(engine: Engine, token: str | None = None, rerank: RerankPolicy | None = None, *,
               request_timeout: float | None = limits.DEFAULT_DEADLINE_S, lanes: Lanes | None = None,
               editor_url: str | None = None, freeze_heap: bool = False) -> FastAPI:
    """`rerank`: the server's reranker (loaded once, kept warm), whether it is on by default, its depth, the cap on
    a request's depth and the time budget per request, past which the answer is the first stage's, said so.
    `request_timeout`: seconds one request may take (None: no limit), past which it is answered 503 (or in
    first-stage order when the reranker is what ran out). `editor_url`: the search page's link template for
    opening a result in an editor (serve/page.py). `freeze_heap`: at start-up, exempt what is loaded from garbage
    collection (heap.py); for a process that only serves (`run_server`), not for one that goes on to other work."""
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if freeze_heap:
            freeze_startup_objects()
        yield

    app = FastAPI(title="llara-search", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan,
                  description="Top-k semantic search over a llara-search index (LLaRA dense retrieval, BM25, "
                              "hybrid).\n\n" + limits.LIMITS_DOC)
    auth = require_token(token)
    lanes = lanes or Lanes()
    batcher = MicroBatcher(engine, gate=lanes.gate)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    app.state.batcher = batcher
    app.state.engine = engine
    app.state.lanes = lanes
    app.state.request_timeout = request_timeout  # read per request, like `rerank`
    app.state.rerank = rerank  # read per request: an operator (or a test) may swap it on a running app

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

    @app.exception_handler(LimitError)
    async def over_limit(_request: Request, exc: LimitError):
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(DeadlineExceeded)
    async def too_slow(_request: Request, exc: DeadlineExceeded):
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(Busy)
    async def busy(_request: Request, exc: Busy):
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "2"})

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

    def checked(queries: list[str], k: int, where: str | None, rerank_asked: bool | None, asked_depth: int | None,
                single: bool) -> tuple[int | None, limits.Cost]:
        """The request checked against the limits as sent, then with the depth it will be re-ranked from (the
        server's default depth may make a small request big): that depth, and what the request will cost."""
        limits.check_search(queries, k, rerank_depth=asked_depth, where=where, single=single)
        depth = rerank_depth(k, rerank_asked, asked_depth)
        return depth, limits.check_search(queries, k, rerank_depth=depth, where=where, single=single)

    async def run_search(queries: list[str], k: int, mode: str, where: str | None, depth: int | None,
                         cost: limits.Cost, collapse: bool, *, single: bool) -> tuple[list, list | None]:
        """Run in its lane (by `cost`) under the request's deadline."""
        deadline = lanes.deadline(app.state.request_timeout)
        job = jobs.SearchJob(list(queries), k, mode, where, collapse, depth)
        if single and mode != "bm25":  # concurrent single queries share encoder forwards
            import numpy as np

            try:
                vec = await asyncio.wait_for(batcher.encode(queries[0]), deadline.remaining())
            except asyncio.TimeoutError:
                raise DeadlineExceeded(deadline.message()) from None
            job.query_vectors = np.asarray([vec])
        policy = app.state.rerank
        return await lanes.run(lambda d: jobs.search(engine, job, policy, d), deadline,
                               small=cost.small)

    def answer(head: dict, results: list, outcomes: list | None, single: bool, big: bool = False) -> bytes:
        """The JSON answer; a batch's ANSWER_PIECE results at a time, a big one's waiting (up to BIG_MAX_WAIT_S each)
        while small requests run: 8 MB of results serialized in one go held the interpreter lock from everyone else's
        searches."""
        payload = dict(head)
        if outcomes is not None:
            payload["rerank"] = outcomes[0].to_dict() if single else [o.to_dict() for o in outcomes]
        if single:
            payload["results"] = [jobs.public(r) for r in results[0]]
            return jobs.dumps(payload)
        parts = []
        for rs in results:
            pieces = []
            for start in range(0, len(rs), ANSWER_PIECE):
                if big:
                    lanes.gate.wait_turn(max_wait=BIG_MAX_WAIT_S)
                pieces.append(jobs.dumps([jobs.public(r) for r in rs[start:start + ANSWER_PIECE]])[1:-1])
            parts.append(b"[" + b",".join(pieces) + b"]")
        opening = jobs.dumps(payload)[:-1] + (b"," if payload else b"")
        return opening + b'"results":[' + b",".join(parts) + b"]}"

    async def answered(head: dict, queries: list[str], k: int, mode: str | None, where: str | None,
                       rerank_asked: bool | None, depth: int | None, collapse: bool, *, single: bool) -> Response:
        """`mode` None: the index's default (dense, or BM25 on a text-only index), named in a single answer."""
        mode = mode or default_mode(engine.info)
        if single:
            head = {**head, "mode": mode}
        depth, cost = checked(queries, k, where, rerank_asked, depth, single)
        with lanes.gate.small() if cost.small else nullcontext():  # big work pauses from its arrival to its answer
            results, outcomes = await run_search(queries, k, mode, where, depth, cost, collapse, single=single)
            if sum(map(len, results)) > 100:  # a big answer is serialized off the event loop too
                body = await asyncio.to_thread(answer, head, results, outcomes, single, not cost.small)
            else:
                body = answer(head, results, outcomes, single, not cost.small)
        return Response(body, media_type="application/json")

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
        status["limits"] = {**limits.summary(), "request_timeout_s": app.state.request_timeout}
        return status

    @app.get("/search", tags=["search"], dependencies=[Depends(auth)])
    async def search_get(q: str = Query(..., json_schema_extra=TEXT_SCHEMA),
                         k: int = Query(10, json_schema_extra=K_SCHEMA),
                         mode: Literal["dense", "bm25", "hybrid"] | None = Query(None, description=MODE_DOC),
                         where: str | None = Query(None, description=WHERE_DOC,
                                                   json_schema_extra={"maxLength": MAX_WHERE_CHARS}),
                         rerank: bool | None = Query(None, description=RERANK_DOC),
                         rerank_depth: int | None = Query(None, description=RERANK_DEPTH_DOC,
                                                          json_schema_extra=K_SCHEMA),
                         collapse: bool = Query(True, description=COLLAPSE_DOC)):
        return await answered({"query": q}, [q], k, mode, where, rerank, rerank_depth, collapse, single=True)

    @app.post("/search", tags=["search"], dependencies=[Depends(auth)])
    async def search_post(body: SearchRequest):
        return await answered({"query": body.query}, [body.query], body.k, body.mode, body.where, body.rerank,
                              body.rerank_depth, body.collapse, single=True)

    @app.post("/batch_search", tags=["search"], dependencies=[Depends(auth)])
    async def batch_search(body: BatchSearchRequest):
        return await answered({}, body.queries, body.k, body.mode, body.where, body.rerank, body.rerank_depth,
                              body.collapse, single=False)

    @app.post("/embed", tags=["embeddings"], dependencies=[Depends(auth)])
    async def embed(body: EmbedRequest):
        cost = limits.check_embed(body.texts)
        deadline = lanes.deadline(app.state.request_timeout)

        def work(d):
            encoder = engine.encoder
            limits.check_tokens(encoder.count_tokens(body.texts), encoder.max_length, engine.info.get("model"),
                                truncate=body.truncate)
            vecs = jobs.encode(engine, body.texts, body.kind, d)
            return jobs.dumps({"kind": body.kind, "dim": int(vecs.shape[1]), "embeddings": vecs.tolist()})

        small = cost.chars <= limits.SMALL_CHARS
        return Response(await lanes.run(work, deadline, small=small), media_type="application/json")

    app.include_router(openai_router(engine, auth, lanes, lambda: app.state.request_timeout))
    add_docs_routes(app, auth)
    app.include_router(page_router(engine, auth, token, editor_url, lambda: app.state.rerank))  # GET /: people
    return app


def run_server(engine: Engine, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
               rerank: RerankPolicy | None = None, *, request_timeout: float | None = limits.DEFAULT_DEADLINE_S,
               shutdown_grace: float = SHUTDOWN_GRACE_S, editor_url: str | None = None,
               open_page: bool = False) -> None:
    """Serve until SIGINT/SIGTERM. While it runs, `<index>/server.json` tells `llara-search query` on this machine
    where to ask instead of loading the model itself (llara_search/server_record.py). `port=0` takes a free port.

    On SIGTERM the server stops taking connections and gives requests in flight `shutdown_grace` seconds; then
    their work stops at its next checkpoint (they are answered 503) and, should one be stuck inside a single long
    computation, the process exits anyway a second later. Serving never writes to the index, so there is nothing
    to leave half-written; the server record is removed first. A caller ending the process afterwards (the CLI)
    calls `exit_now()` once whatever else it runs (a watcher) has stopped."""
    import sys

    import uvicorn

    from ..identity import TEXT_ONLY
    from ..server_record import announce

    if engine.info.get("model") != TEXT_ONLY:
        from ..encoder.static_query import prepare_for_serving

        prepare_for_serving(engine.encoder)  # load the model and compile the query path before accepting traffic
    if rerank is not None:  # and run the reranker once, so the first request does not pay for its warm-up
        rerank.reranker.score("warm-up", ["warm-up"])
    lanes = Lanes()
    app = create_app(engine, token, rerank, request_timeout=request_timeout, lanes=lanes, editor_url=editor_url,
                     freeze_heap=True)
    sock = _listen(host, port)

    class GracefulServer(uvicorn.Server):
        async def shutdown(self, sockets=None):
            asyncio.get_running_loop().call_later(shutdown_grace, lanes.stop_all)
            await super().shutdown(sockets)

    server = GracefulServer(uvicorn.Config(app, host=host, port=sock.getsockname()[1], log_level="warning",
                                           timeout_graceful_shutdown=shutdown_grace + 0.5))
    with _stopped_by_signals(), announce(engine.paths.root, engine.paths.db_url, sock.getsockname(),
                                         auth=token is not None) as rec:
        url = rec.url if rec else f"http://{host}:{sock.getsockname()[1]}"
        print(f"serving {engine.paths.root} at {url} (search page at {url}/, OpenAPI docs at {url}/docs)",
              file=sys.stderr, flush=True)
        if open_page:
            import webbrowser

            webbrowser.open(url + "/")
        server.run(sockets=[sock])
    if not lanes.close(wait_s=1.0):  # a worker inside one long computation: Python cannot stop it
        print("stopped; a search still computing was cancelled", file=sys.stderr, flush=True)


def exit_now(code: int = 0) -> None:
    """End a stopped server's process at once: without the interpreter's teardown, which on a busy machine spends
    seconds collecting the model's objects, and waits for a worker thread still inside one long computation (its
    answer is no longer wanted; serving writes nothing to the index)."""
    import os
    import sys

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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

    # proto IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it a keep-alive client (httpx, requests.Session) waited ~40 ms for each answer (Nagle's algorithm
    # against the client's delayed ACK), where uvicorn's own sockets answered in ~1 ms
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise EngineError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
                          "(--port 0 takes a free one)") from None
    return sock
