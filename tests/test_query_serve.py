"""Query through the CLI (typer runner and subprocess) and the HTTP server over real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import make_corpus, serve_in_thread
from llara_search.cli import app
from llara_search.engine import Engine, EngineError
from llara_search.search import rrf

runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("q")
    corpus = make_corpus(root / "docs")
    for i in range(30):
        (corpus / "sub" / f"extra{i}.md").write_text(f"# Extra {i}\n\nLlama fact number {i} about packing.\n")
    index = root / "idx"
    r = runner.invoke(app, ["ingest", str(corpus), "--index", str(index), "--model", str(tiny_model), "--json"])
    assert r.exit_code == 0, r.output
    return corpus, index


def test_cli_query_json_shape_and_k(built):
    _, index = built
    r = runner.invoke(app, ["query", "llama packing", "--index", str(index), "-k", "7", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["query"] == "llama packing" and out["mode"] == "dense" and out["took_ms"] >= 0
    assert len(out["results"]) == 7 and [x["rank"] for x in out["results"]] == list(range(1, 8))
    first = out["results"][0]
    assert set(first) == {"rank", "score", "chunk_id", "path", "heading", "start_line", "end_line", "page", "text",
                        "also_in"}
    scores = [x["score"] for x in out["results"]]
    assert scores == sorted(scores, reverse=True)


def test_cli_rich_output_and_status(built):
    _, index = built
    r = runner.invoke(app, ["query", "listening port", "--index", str(index), "--mode", "bm25", "-k", "2"])
    assert r.exit_code == 0 and "config.rst" in r.stdout and "Configuration > Ports" in r.stdout
    s = json.loads(runner.invoke(app, ["status", "--index", str(index), "--json"]).stdout)
    assert s["documents"] == 40 and s["chunks_total"] > 40 and s["index_type"] == "flat" and s["generation"] == 1
    assert s["fingerprint"].startswith("llara-")


def test_where_filter_is_inside_the_search(built):
    _, index = built
    engine = Engine.open(index)
    for mode in ("dense", "bm25", "hybrid"):
        hits = engine.search("llama fact packing", k=12, mode=mode, where="sub/*")
        assert len(hits) == 12 and all("/sub/" in h.path for h in hits), mode
    pdf = engine.search("anything at all", k=5, where="*.pdf")
    assert pdf and all(h.path.endswith(".pdf") for h in pdf)
    assert engine.search("x", k=5, where="*.nothing") == []


def test_hybrid_fuses_both_rankings(built):
    _, index = built
    engine = Engine.open(index)
    dense = [h.chunk_id for h in engine.search("backup nightly", k=50, mode="dense")]
    bm25 = [h.chunk_id for h in engine.search("backup nightly", k=50, mode="bm25")]
    hybrid = [h.chunk_id for h in engine.search("backup nightly", k=5, mode="hybrid")]
    assert bm25[0] in hybrid[:2]  # the BM25 winner is lifted by fusion even if dense ranks it low
    assert set(hybrid) <= set(dense) | set(bm25)
    assert rrf([[(1, 9.0), (2, 1.0)], [(2, 5.0), (3, 1.0)]], 3)[0][0] == 2


def test_search_many_equals_single_searches(built):
    _, index = built
    engine = Engine.open(index)
    qs = ["llama packing", "proxy timeouts", "release notes upgrade"]
    many = engine.search_many(qs, k=5)
    for q, res in zip(qs, many):
        single = engine.search(q, k=5)
        assert [r.chunk_id for r in res] == [r.chunk_id for r in single]
        assert np.allclose([r.score for r in res], [r.score for r in single], atol=1e-5)


def test_cli_errors_are_one_line_and_nonzero(built, tmp_path):
    _, index = built
    cases = [
        (["query", "x", "--index", str(tmp_path / "none")], "no index at"),
        (["query", "x", "--index", str(index), "-k", "5000"], "k must be between 1 and 1000"),
        (["query", "x", "--index", str(index), "--mode", "fuzzy"], "mode must be one of"),
        (["ingest", str(tmp_path / "missing"), "--index", str(index)], "no such file or folder"),
        (["ingest", str(tmp_path), "--index", str(index), "--index-type", "hnsw"], "--index-type must be one of"),
    ]
    for args, msg in cases:
        r = runner.invoke(app, args)
        assert r.exit_code != 0 and msg in r.stderr and r.stderr.strip().count("\n") == 0, (args, r.stderr)


def test_cli_as_a_subprocess(built):
    _, index = built
    r = subprocess.run([sys.executable, "-m", "llara_search", "query", "llama", "--index", str(index), "-k", "3",
                        "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and len(json.loads(r.stdout)["results"]) == 3
    r = subprocess.run([sys.executable, "-m", "llara_search", "status", "--index", "/nonexistent/idx"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("error: no index at")


def test_empty_index_query_is_clear(tmp_path, tiny_model):
    empty = tmp_path / "empty"
    empty.mkdir()
    engine = Engine.open(tmp_path / "idx", create=True)
    engine.ingest([str(empty)], model=str(tiny_model))
    with pytest.raises(EngineError, match=r"is empty \(0 chunks\); ingest documents first"):
        engine.search("anything", k=3)
    with pytest.raises(EngineError, match="is empty; run `llara-search ingest` first"):
        Engine.open(tmp_path / "idx2", create=True).search("x")


# ------------------------------------------------------------------------------------------------ HTTP server
@pytest.fixture
def server(built):
    from llara_search.serve import create_app

    _, index = built
    engine = Engine.open(index)
    app_ = create_app(engine, token="s3cret")
    base, srv = serve_in_thread(app_)
    yield base, app_, engine
    srv.should_exit = True


AUTH = {"Authorization": "Bearer s3cret"}


def test_auth_on_every_route_but_healthz(server):
    base, app_, _ = server
    assert httpx.get(base + "/healthz").json() == {"status": "ok"}
    routes = [("GET", "/search?q=llama"), ("POST", "/search"), ("POST", "/batch_search"), ("POST", "/embed"),
              ("POST", "/v1/embeddings"), ("GET", "/readyz"), ("GET", "/info")]
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            r = httpx.request(method, base + path, headers=headers, json={})
            assert r.status_code == 401, (method, path, headers, r.text)


def test_search_routes_limits_and_errors(server):
    base, _, _ = server
    r = httpx.get(base + "/search", params={"q": "llama packing", "k": 7}, headers=AUTH)
    assert r.status_code == 200 and len(r.json()["results"]) == 7
    r = httpx.post(base + "/search", json={"query": "llama", "k": 4, "mode": "hybrid", "where": "sub/*"}, headers=AUTH)
    assert r.status_code == 200 and len(r.json()["results"]) == 4
    assert all("/sub/" in x["path"] for x in r.json()["results"])
    r = httpx.post(base + "/batch_search", json={"queries": ["llama", "proxy", "port"], "k": 3}, headers=AUTH)
    assert r.status_code == 200 and [len(x) for x in r.json()["results"]] == [3, 3, 3]
    r = httpx.post(base + "/search", json={"query": "llama", "k": 1001}, headers=AUTH)
    assert r.status_code == 422 and "k" in r.json()["detail"]
    r = httpx.post(base + "/search", content=b"{broken json", headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422 and "Traceback" not in r.text
    r = httpx.post(base + "/search", content=b"x" * (5 * 2**20), headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413

    def chunked(n_kib):  # no Content-Length: the limit must hold while the body streams in
        yield b'{"query": "'
        for _ in range(n_kib):
            yield b"a" * 1024
        yield b'"}'

    r = httpx.post(base + "/search", content=chunked(6 * 1024), headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["detail"] == "request body over 4194304 bytes"
    r = httpx.post(base + "/search", content=chunked(2), headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 200 and r.json()["results"]
    for body in (b"[1, 2]", b'{"query": "\xff\xfe"}', b"query=llama"):
        r = httpx.post(base + "/search", content=body, headers={**AUTH, "content-type": "application/json"})
        assert 400 <= r.status_code < 500 and r.json()["detail"] and "Traceback" not in r.text
    r = httpx.post(base + "/batch_search", json={"queries": ["q"] * 300}, headers=AUTH)
    assert r.status_code == 422
    assert httpx.get(base + "/readyz", headers=AUTH).json()["status"] == "ready"
    info = httpx.get(base + "/info", headers=AUTH).json()
    assert info["fingerprint"].startswith("llara-") and info["documents"] == 40
    assert httpx.get(base + "/openapi.json").status_code == 401  # the schema is behind the token too
    assert httpx.get(base + "/openapi.json", headers=AUTH).json()["paths"]["/batch_search"]


def test_embeddings_match_the_encoder(server):
    base, _, engine = server
    r = httpx.post(base + "/embed", json={"texts": ["What is llama?"], "kind": "query"}, headers=AUTH)
    assert r.status_code == 200
    assert np.allclose(r.json()["embeddings"][0], engine.embed(["What is llama?"], "query")[0], atol=1e-5)
    r = httpx.post(base + "/v1/embeddings", json={"input": ["a", "b"], "model": "x"}, headers=AUTH)
    body = r.json()
    assert r.status_code == 200 and body["object"] == "list" and len(body["data"]) == 2
    assert np.allclose(body["data"][1]["embedding"], engine.embed(["b"], "passage")[0], atol=1e-5)


def test_concurrent_queries_no_errors_and_micro_batched(server):
    base, app_, _ = server
    before = app_.state.batcher.calls

    def one(i):
        with httpx.Client(timeout=60) as c:
            return c.get(base + "/search", params={"q": f"llama fact {i % 20}", "k": 5}, headers=AUTH).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(one, range(400)))
    assert codes.count(200) == 400
    assert app_.state.batcher.calls - before < 400  # concurrent queries shared encoder calls


def test_ingest_while_serving_is_picked_up(server, built, tiny_model):
    base, _, _ = server
    corpus, index = built
    newdoc = corpus / "brand-new.md"
    newdoc.write_text("# Brand New\n\nQuokkas are small marsupials.")
    try:
        r = runner.invoke(app, ["ingest", str(corpus), "--index", str(index), "--json"])
        assert r.exit_code == 0, r.output
        hits = httpx.get(base + "/search", params={"q": "quokkas marsupials", "k": 1, "mode": "bm25"},
                         headers=AUTH).json()["results"]
        assert hits and hits[0]["path"].endswith("brand-new.md")
    finally:
        os.remove(newdoc)
        runner.invoke(app, ["ingest", str(corpus), "--index", str(index), "--json"])


def test_serve_refuses_public_bind_without_token(built):
    _, index = built
    r = runner.invoke(app, ["serve", "--index", str(index), "--host", "0.0.0.0"], env={"LLARA_SEARCH_TOKEN": ""})
    assert r.exit_code == 2 and "refusing to bind 0.0.0.0 without a token" in r.stderr


def test_mcp_server_over_stdio_answers_search(built):
    """A real MCP host's view: spawn `llara-search mcp`, initialize, list the tools, call `search`."""
    pytest.importorskip("mcp")
    import anyio
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    _, index = built
    params = StdioServerParameters(command=sys.executable, args=["-m", "llara_search", "mcp", "--index", str(index)],
                                   env={**os.environ, "HF_HUB_OFFLINE": "1"})

    async def session_run():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name: t for t in (await session.list_tools()).tools}
            hits = await session.call_tool("search", {"query": "listening port", "k": 3, "mode": "bm25"})
            dense = await session.call_tool("search", {"query": "llama packing", "k": 5, "where": "sub/*"})
            info = await session.call_tool("index_info", {})
            # what agent hosts send in practice: numbers as strings, explicit nulls, values the tool cannot take
            loose = await session.call_tool("search", {"query": "llama packing", "k": "2", "where": None})
            bad = [await session.call_tool("search", args) for args in
                   ({"query": "llama", "mode": "fuzzy"}, {"query": "   "}, {"k": 3})]
            return tools, hits, dense, info, loose, bad

    tools, hits, dense, info, loose, bad = anyio.run(session_run)
    assert not loose.is_error and len(loose.structured_content["result"]) == 2
    for result, words in zip(bad, ("mode", "non-empty string", "query")):
        assert result.is_error and words in result.content[0].text, result.content
    assert set(tools) == {"search", "index_info"} and "query" in tools["search"].input_schema["properties"]
    assert not hits.is_error
    results = hits.structured_content["result"]
    assert 1 <= len(results) <= 3 and results[0]["path"].endswith("config.rst")
    assert results[0]["heading"] == "Configuration > Ports" and results[0]["rank"] == 1
    dense_results = dense.structured_content["result"]
    assert len(dense_results) == 5 and all("/sub/" in r["path"] for r in dense_results)
    assert info.structured_content["documents"] == 40
