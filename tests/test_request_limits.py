"""Hostile requests (issue #28): every request's cost is bounded, the same way over HTTP and MCP, before any work;
a slow request never holds `/healthz` or others' small searches; its deadline ends it; SIGTERM ends the server
within its grace whatever it is doing; the token covers the API docs, which work offline.

Real servers on 127.0.0.1 (in a thread, and `llara-search serve` as a process), the MCP SDK's client, a tiny random
Llama index. Slow requests are built honestly: the largest legal batch of long queries against that index."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import serve_in_thread
from llara_search.cli import app as cli_app
from llara_search.engine import Engine
from llara_search.serve import create_app, limits

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WORDS = "llama alpaca proxy port server cache index vector query token model backend timeout health".split()


@pytest.fixture(scope="module")
def index(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("limits")
    docs = root / "docs"
    docs.mkdir()
    rng = random.Random(0)
    for i in range(40):
        paras = [" ".join(rng.choice(WORDS) for _ in range(50)) + "." for _ in range(3)]
        (docs / f"d{i}.md").write_text(f"# Doc {i}\n\n" + "\n\n".join(paras) + "\n")
    idx = root / "idx"
    r = CliRunner().invoke(cli_app, ["ingest", str(docs), "--index", str(idx), "--model", str(tiny_model), "--json"])
    assert r.exit_code == 0, r.output
    return idx


@pytest.fixture(scope="module")
def engine(index):
    return Engine.open(index)


@pytest.fixture
def server(engine):
    app_ = create_app(engine, token=TOKEN)
    base, srv = serve_in_thread(app_)
    yield base, app_
    srv.should_exit = True


def long_queries(n: int, chars: int = 1000, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(chars // 4))[:chars] for _ in range(n)]


HUGE = "llama " * 200_000  # 1.2 MB, under the 4 MiB body limit: refused by the text limit, not the body limit

# (method, path, body or params, status, words in the answer)
TABLE = [
    ("POST", "/search", {"query": "llama", "k": 0}, 422, "k must be from 1 to 1000, not 0"),
    ("POST", "/search", {"query": "llama", "k": -1}, 422, "k must be from 1 to 1000, not -1"),
    ("POST", "/search", {"query": "llama", "k": 10**9}, 422, "k must be from 1 to 1000, not 1000000000"),
    ("GET", "/search", {"q": "llama", "k": 0}, 422, "k must be from 1 to 1000"),
    ("GET", "/search", {"q": "llama", "k": 10**9}, 422, "k must be from 1 to 1000"),
    ("POST", "/search", {"query": HUGE}, 422, "query has 1,200,000 characters, more than the 16,384"),
    ("POST", "/search", {"query": "   "}, 422, "query is empty"),
    ("POST", "/batch_search", {"queries": ["q"] * 300}, 422, "1 to 256 queries, not 300"),
    ("POST", "/batch_search", {"queries": ["llama"] * 9, "k": 1000}, 413, "9 queries x 1000 results"),
    ("POST", "/batch_search", {"queries": ["llama"] * 256, "k": 33}, 413, "send at most 248 queries"),
    ("POST", "/batch_search", {"queries": long_queries(20, 16_000)}, 413, "characters in all, more than the 262,144"),
    ("POST", "/batch_search", {"queries": ["ok", "x" * 16_385]}, 422, "queries[1] has 16,385 characters"),
    ("POST", "/embed", {"texts": ["x" * 16_385]}, 422, "texts[0] has 16,385 characters"),
    ("POST", "/embed", {"texts": ["ok"] * 2049}, 422, "1 to 2048 texts, not 2049"),
    ("POST", "/embed", {"texts": long_queries(80, 16_000)}, 413, "more than the 1,048,576 one request may embed"),
    ("POST", "/embed", {"texts": ["short", "word " * 3000]}, 422, "texts[1] has"),  # tokens: as /v1 says
    ("POST", "/v1/embeddings", {"input": "x" * 16_385, "model": "m"}, 400, "input has 16,385 characters"),
    ("POST", "/v1/embeddings", {"input": ["short", "word " * 3000], "model": "m"}, 400, "input[1] has"),
]


def _send(base: str, method: str, path: str, data: dict) -> httpx.Response:
    if method == "GET":
        return httpx.get(base + path, params=data, headers=AUTH, timeout=60)
    return httpx.post(base + path, json=data, headers=AUTH, timeout=60)


def _message(r: httpx.Response) -> str:
    body = r.json()
    return body["error"]["message"] if "error" in body else body["detail"]


def test_every_route_refuses_what_is_over_its_limits_before_any_work(server):
    base, app_ = server
    started, encodes = app_.state.lanes.started, app_.state.batcher.calls
    for method, path, data, status, words in TABLE:
        t = time.perf_counter()
        r = _send(base, method, path, data)
        assert r.status_code == status and words in _message(r), (path, r.status_code, r.text[:300])
        assert time.perf_counter() - t < 5
    # the token counts are the only work: no search, no encode started for any of them
    assert app_.state.batcher.calls == encodes
    assert app_.state.lanes.started - started == 2  # the two over-long /embed texts, refused by their token count
    # neighbours inside the limits pass, at the edges
    assert len(_send(base, "POST", "/search", {"query": "llama", "k": 1000}).json()["results"]) > 0
    r = _send(base, "POST", "/batch_search", {"queries": ["llama"] * 8, "k": 1000, "mode": "bm25"})
    assert r.status_code == 200 and len(r.json()["results"]) == 8
    r = _send(base, "POST", "/batch_search", {"queries": ["llama port"] * 256, "k": 32, "mode": "bm25"})
    assert r.status_code == 200 and len(r.json()["results"]) == 256
    r = _send(base, "POST", "/embed", {"texts": ["word " * 3000], "truncate": True})
    assert r.status_code == 200 and len(r.json()["embeddings"]) == 1  # /embed truncates only when asked, like /v1
    from llara_search.retrieval import MAX_K

    assert limits.MAX_K == MAX_K  # the engine's own bound and the server's are one number
    info = httpx.get(base + "/info", headers=AUTH).json()["limits"]
    assert info["max_k"] == limits.MAX_K and info["max_results"] == limits.MAX_RESULTS
    assert info["request_timeout_s"] == limits.DEFAULT_DEADLINE_S


def test_mcp_search_meets_the_same_limits_with_the_same_words(engine, server):
    pytest.importorskip("mcp")
    import anyio
    from mcp import Client

    from llara_search.serve.mcp import create_mcp_server

    base, _ = server
    calls = [({"query": "llama", "k": 0}, {"query": "llama", "k": 0}),
             ({"query": "llama", "k": -1}, {"query": "llama", "k": -1}),
             ({"query": "llama", "k": 10**9}, {"query": "llama", "k": 10**9}),
             ({"query": HUGE}, {"query": HUGE}),
             ({"query": "llama", "where": "*" * 2000}, {"query": "llama", "where": "*" * 2000})]

    async def run():
        async with Client(create_mcp_server(engine)) as client:
            out = [await client.call_tool("search", args) for args, _ in calls]
            out.append(await client.call_tool("search", {"query": "llama alpaca", "k": 1000, "mode": "bm25"}))
            return out

    results = anyio.run(run)
    for (args, http_body), result in zip(calls, results):
        assert result.is_error, args
        said = result.content[0].text
        http = _send(base, "POST", "/search", http_body)
        assert http.status_code == 422 and _message(http) in said, (said, _message(http))
    ok = results[-1]
    assert not ok.is_error and 0 < len(ok.structured_content["result"]) <= 1000


def test_the_token_covers_the_docs_which_load_nothing_from_elsewhere(server):
    from llara_search.serve.auth import COOKIE

    base, _ = server
    assert httpx.get(base + "/healthz").status_code == 200
    for path in ("/docs", "/redoc", "/openapi.json"):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": f"{COOKIE}=wrong"}):
            r = httpx.get(base + path, headers=headers)
            assert r.status_code == 401, (path, headers)
    page = httpx.get(base + "/docs", headers=AUTH)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    by_cookie = httpx.get(base + "/docs", headers={"Cookie": f"{COOKIE}={TOKEN}"})  # the browser page's way in
    assert by_cookie.status_code == 200 and by_cookie.text == page.text
    html = page.text.lower()
    assert "<script" not in html and "<link" not in html and "src=" not in html and "@import" not in html
    assert all(href.startswith("/") for href in re.findall(r'href="([^"]*)"', html))  # nothing from elsewhere
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for words in ("/batch_search", "/v1/embeddings", "rerank_depth", "16,384", f"{limits.MAX_RESULTS:,}"):
        assert words.lower() in html, words
    assert httpx.get(base + "/redoc", headers=AUTH, follow_redirects=True).text == page.text  # to /docs
    schema = httpx.get(base + "/openapi.json", headers=AUTH).json()
    assert schema["paths"]["/search"]["post"] and "HTTPBearer" in schema["components"]["securitySchemes"]


def test_docs_page_escapes_what_the_schema_holds():
    from llara_search.serve.docs_page import render

    spec = {"info": {"title": "<script>alert(1)</script>", "description": "a & b"},
            "paths": {"/x": {"get": {"summary": "<img src=x onerror=alert(1)>", "parameters": [
                {"name": "q\"><script>", "in": "query", "schema": {"type": "string", "maxLength": 5}}]}}}}
    html = render(spec)
    assert "<script>" not in html and "<img" not in html and "&lt;script&gt;" in html and "a &amp; b" in html


def test_a_request_past_its_deadline_is_503_and_its_work_stops(engine):
    app_ = create_app(engine, token=TOKEN, request_timeout=0.5)
    base, srv = serve_in_thread(app_)
    try:
        t = time.perf_counter()
        r = httpx.post(base + "/batch_search", json={"queries": long_queries(256), "k": 32, "mode": "dense"},
                       headers=AUTH, timeout=120)
        took = time.perf_counter() - t
        assert r.status_code == 503 and "--request-timeout" in r.json()["detail"], r.text[:300]
        assert took < 15  # answered at the deadline, not when the work would have ended
        end = time.monotonic() + 15
        while app_.state.lanes.running and time.monotonic() < end:  # the work stops at its next checkpoint
            time.sleep(0.05)
        assert app_.state.lanes.running == 0
        r = httpx.post(base + "/v1/embeddings", json={"input": long_queries(256), "model": "m", "truncate": True},
                       headers=AUTH, timeout=120)
        assert r.status_code == 503 and r.json()["error"]["code"] == "timeout"
        assert httpx.post(base + "/search", json={"query": "llama", "k": 3}, headers=AUTH).status_code == 200
    finally:
        srv.should_exit = True


def test_healthz_and_small_searches_do_not_wait_for_a_big_request(engine):
    app_ = create_app(engine, token=TOKEN, request_timeout=60)
    base, srv = serve_in_thread(app_)
    big: dict = {}

    def send_big():
        t = time.perf_counter()
        big["r"] = httpx.post(base + "/batch_search", json={"queries": long_queries(256), "k": 32,
                                                             "mode": "hybrid"}, headers=AUTH, timeout=120)
        big["s"] = time.perf_counter() - t

    try:
        httpx.post(base + "/search", json={"query": "warm up", "k": 3}, headers=AUTH)
        th = threading.Thread(target=send_big)
        th.start()
        end = time.monotonic() + 30
        while not app_.state.lanes.running and time.monotonic() < end:
            time.sleep(0.01)
        assert app_.state.lanes.running, "the big request did not start"
        times = []
        for i in range(3):
            t = time.perf_counter()
            assert httpx.get(base + "/healthz", timeout=30).status_code == 200
            times.append(("healthz", time.perf_counter() - t))
            t = time.perf_counter()
            r = httpx.post(base + "/search", json={"query": f"llama port {i}", "k": 5, "mode": "hybrid"},
                           headers=AUTH, timeout=60)
            assert r.status_code == 200 and len(r.json()["results"]) == 5
            times.append(("search", time.perf_counter() - t))
        assert th.is_alive(), f"the big request ended before the small ones were answered: {big}"
        assert max(s for what, s in times if what == "healthz") < 1.0, times
        app_.state.lanes.stop_all()  # end the big one (as a SIGTERM's grace would) rather than wait for it
        th.join(60)
        assert big["r"].status_code == 503 and "stopping" in big["r"].json()["detail"]
    finally:
        srv.should_exit = True


@pytest.mark.slow
def test_sigterm_stops_serve_within_its_grace_during_a_long_request(index):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "llara_search", "serve", "--index", str(index), "--port", "0",
                             "--token", TOKEN, "--shutdown-grace", "1", "--request-timeout", "120"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        assert "serving" in line, line
        base = line.split(" at ")[1].split()[0]
        outcome: dict = {}

        def send_big():
            try:
                outcome["r"] = httpx.post(base + "/batch_search", json={"queries": long_queries(256), "k": 32,
                                                                         "mode": "dense"}, headers=AUTH, timeout=120)
                outcome["at"] = time.monotonic()
            except httpx.HTTPError as exc:
                outcome["error"] = exc

        th = threading.Thread(target=send_big)
        th.start()
        time.sleep(1.0)  # the batch is being encoded (tens of seconds of work)
        assert th.is_alive() and httpx.get(base + "/healthz").status_code == 200
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        stopped = time.monotonic() - t
        assert stopped < 1 + 3, f"stopped {stopped:.1f} s after SIGTERM with a 1 s grace"
        assert proc.returncode == 0
        th.join(30)
        r = outcome.get("r")
        # cancelled (503 or no answer), or finished within the grace period (an idle machine encodes the batch in
        # about a second): never a 200 after the grace
        assert r is None or r.status_code == 503 or (r.status_code == 200 and outcome["at"] - t < 1 + 0.5), \
            (r.status_code, outcome.get("at", 0) - t)
        assert not (index / "server.json").exists()  # the server record removed: nothing left behind
        assert json.loads(CliRunner().invoke(cli_app, ["status", "--index", str(index), "--json"]).output)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_socket_answers_without_waiting_for_nagle():
    """The listening socket `serve` binds itself must make asyncio set TCP_NODELAY on each connection: without it a
    keep-alive client waited ~40 ms per answer (Nagle against delayed ACKs)."""
    import asyncio
    import socket

    from llara_search.serve.app import _listen

    sock = _listen("127.0.0.1", 0)
    seen: dict = {}

    async def main():
        async def handle(reader, writer):
            seen["nodelay"] = writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        port = sock.getsockname()[1]
        _, w = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if "nodelay" in seen:
                break
            await asyncio.sleep(0.01)
        w.close()
        server.close()

    asyncio.run(main())
    assert seen["nodelay"] != 0


def test_a_big_requests_checkpoint_waits_while_a_small_one_runs():
    from llara_search.serve.lanes import Deadline, DeadlineExceeded, SmallFirst

    gate = SmallFirst()
    big = Deadline(30)
    big.yields_to = gate
    order: list[str] = []
    with gate.small():
        th = threading.Thread(target=lambda: (big.check(), order.append("big went on")))
        th.start()
        th.join(0.3)
        assert th.is_alive() and order == []  # held at its checkpoint while the small one runs
        order.append("small done")
    th.join(5)
    assert order == ["small done", "big went on"]
    late = Deadline(0.2)
    late.yields_to = gate
    with gate.small(), pytest.raises(DeadlineExceeded):
        late.check()  # never past its own deadline, however many small ones there are
    assert gate.wait_turn(max_wait=0.01) is None
    patient = Deadline(30)
    patient.yields_to = gate
    with gate.small():  # a small request that never ends (a steady stream of them) slows a big one, never stops it
        th = threading.Thread(target=patient.check)
        th.start()
        th.join(10)
        assert not th.is_alive()


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["stdio", "streamable-http"])
def test_sigterm_stops_mcp_at_once_with_a_session_open(index, transport):
    """An agent host ending `llara-search mcp` (stdio) or an operator stopping its HTTP transport: the process is
    gone within seconds, with a client session still open; MCP never writes, so nothing is left half-written."""
    import socket

    import anyio
    from mcp.client.session import ClientSession

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [sys.executable, "-m", "llara_search", "mcp", "--index", str(index)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if transport == "stdio":
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env=env)
    else:
        proc = subprocess.Popen(args + ["--transport", transport, "--port", str(port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env)
    opened = threading.Event()

    def session():
        async def run():
            if transport == "stdio":  # the host's side of the pipes, by hand: one initialize request
                proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"}}}).encode() + b"\n")
                proc.stdin.flush()
                assert b'"result"' in proc.stdout.readline()
                opened.set()
                return
            from mcp.client.streamable_http import streamable_http_client

            url = f"http://127.0.0.1:{port}/mcp"
            for _ in range(600):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    await anyio.sleep(0.1)
            async with streamable_http_client(url) as streams, ClientSession(streams[0], streams[1]) as s:
                await s.initialize()
                assert not (await s.call_tool("search", {"query": "llama port", "k": 2})).is_error
                opened.set()
                await anyio.sleep(60)

        try:
            anyio.run(run)
        except BaseException:  # noqa: BLE001 - the server going away ends the session
            pass

    th = threading.Thread(target=session, daemon=True)
    th.start()
    try:
        assert opened.wait(120), "no session"
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert time.monotonic() - t < 10
        assert proc.returncode in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_small_requests_encode_never_waits_for_a_batchs_forward(engine):
    """The quick seat (encoder/seats.py): with the bulk seat held, as during a big request's slice or a watcher's
    batch, a small search's encode still runs, and gives the vector the bulk seat gives."""
    ref = engine.embed(["llama port"], "query")
    got: dict = {}
    with engine.seats.bulk:
        th = threading.Thread(target=lambda: got.setdefault("v", engine.embed(["llama port"], "query", quick=True)))
        th.start()
        th.join(30)
        assert "v" in got, "the quick encode waited for the bulk seat"
    assert np.abs(got["v"] - ref).max() <= 1e-6


def test_both_seats_encode_at_once_with_the_vectors_of_one_at_a_time(engine):
    """Two threads, one per seat, encoding together with one model and one tokenizer (and counting tokens, as
    `/embed` does outside any seat): no shared-tokenizer error ("Already borrowed") and every vector what it is
    alone."""
    texts = long_queries(12, 600, seed=3) + [f"llama {w}" for w in WORDS]
    alone = {t: engine.embed([t], "query")[0] for t in texts}
    errors: list[BaseException] = []
    seen: list[tuple[str, np.ndarray]] = []

    def work(quick: bool):
        try:
            for _ in range(3):
                for t in texts:
                    seen.append((t, engine.embed([t], "query", quick=quick)[0]))
                    if not quick:
                        assert engine.encoder.count_tokens([t])[0] > 0
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(q,)) for q in (True, False)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
    assert not errors, errors
    assert len(seen) == 2 * 3 * len(texts)
    assert max(float(np.abs(v - alone[t]).max()) for t, v in seen) <= 1e-5


def test_serve_exempts_what_it_loaded_from_garbage_collection(engine):
    """`run_server` builds its app with freeze_heap: at start-up the loaded objects leave the collector's sight (a full
    collection over them paused every thread for ~240 ms; serve/heap.py). An app built for other uses does not."""
    import gc

    engine.embed(["llama"], "query")  # the model is loaded
    plain = create_app(engine, token=TOKEN)
    base, srv = serve_in_thread(plain)
    try:
        assert gc.get_freeze_count() == 0
    finally:
        srv.should_exit = True
    model = engine.encoder.model
    app_ = create_app(engine, token=TOKEN, freeze_heap=True)
    base, srv = serve_in_thread(app_)
    try:
        assert gc.get_freeze_count() > 1000
        assert not any(o is model for o in gc.get_objects(generation=2))  # frozen: never walked again
        assert httpx.post(base + "/search", json={"query": "llama", "k": 3}, headers=AUTH).status_code == 200
    finally:
        srv.should_exit = True
        gc.unfreeze()


def test_a_small_batch_never_waits_for_itself(server):
    """A small request counts as running from its arrival to its answer, and a big answer's serialization waits
    while any does: a small batch's own answer must not wait for it (four queries would have waited 4 x 0.5 s)."""
    from llara_search.serve.lanes import BIG_MAX_WAIT_S

    base, _ = server
    body = {"queries": ["llama port", "alpaca cache", "proxy index", "vector query"], "k": 3, "mode": "bm25"}
    httpx.post(base + "/batch_search", json=body, headers=AUTH, timeout=60)  # warm
    t = time.perf_counter()
    r = httpx.post(base + "/batch_search", json=body, headers=AUTH, timeout=60)
    took = time.perf_counter() - t
    assert r.status_code == 200 and [len(x) for x in r.json()["results"]] == [3, 3, 3, 3]
    assert took < 3 * BIG_MAX_WAIT_S, took


@pytest.mark.parametrize("collapse", [True, False])
def test_a_large_answer_read_and_written_in_pieces_is_the_engines_answer(tmp_path, collapse):
    """Past PIECE results a server reads (and past ANSWER_PIECE writes) an answer in pieces, pausing between them
    for small requests: the answer is still the engine's, ranks 1..n, one JSON document."""
    rng = random.Random(4)
    records = [(f"d{i}", f"T{i}", " ".join(rng.choice(WORDS) for _ in range(30)) + f" tag{i % 7}") for i in range(700)]
    engine = Engine.open(tmp_path / "big", create=True)
    engine.ingest_records(records, "beir", model="none")
    base, srv = serve_in_thread(create_app(engine, token=TOKEN))
    try:
        queries = ["llama proxy tag3", "cache index tag5"]
        r = httpx.post(base + "/batch_search", json={"queries": queries, "k": 600, "mode": "bm25",
                                                     "collapse": collapse}, headers=AUTH, timeout=60)
        assert r.status_code == 200, r.text[:300]
        got = r.json()["results"]
        want = engine.search_many(queries, k=600, mode="bm25", collapse=collapse)
        assert [len(x) for x in got] == [len(x) for x in want] and min(len(x) for x in got) > 300
        for g, w in zip(got, want):
            assert [x["chunk_id"] for x in g] == [h.chunk_id for h in w]
            assert [x["rank"] for x in g] == list(range(1, len(g) + 1))
    finally:
        srv.should_exit = True
