"""The tools people already have, against a real `llara-search serve` on 127.0.0.1 with a token: the official OpenAI
SDK (default settings), LangChain's OpenAIEmbeddings, our LangChain retriever and HTTP client, and `llara-search
query` finding the server through the index folder (without importing torch)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from typer.testing import CliRunner

from helpers import make_corpus
from llara_search.cli import app
from llara_search.engine import Engine
from llara_search.server_record import RECORD_NAME, find_server

runner = CliRunner()
TOKEN = "tok-3f9a1c"
WRONG = "wrong-77b2e0"


@pytest.fixture(scope="module")
def index(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("clients")
    corpus = make_corpus(root / "docs")
    for i in range(12):
        (corpus / "sub" / f"extra{i}.md").write_text(f"# Extra {i}\n\nLlama fact number {i} about packing.\n")
    (corpus / "manual").mkdir()
    for name in ("zebra.md", "zebra.txt"):  # one passage shipped twice, as a manual in two formats is
        (corpus / "manual" / name).write_text(ZEBRA + "\n")
    idx = root / "idx"
    r = runner.invoke(app, ["ingest", str(corpus), "--index", str(idx), "--model", str(tiny_model), "--json"])
    assert r.exit_code == 0, r.output
    return idx


@pytest.fixture(scope="module")
def engine(index, encoder) -> Engine:
    e = Engine.open(index)
    e.use_encoder(encoder)
    return e


def _start_serve(index: Path, log: Path, token: str | None) -> tuple[subprocess.Popen, str]:
    """`llara-search serve --port 0` as a user starts it; its address is read the way `query` reads it."""
    env = {**os.environ, "LLARA_SEARCH_TOKEN": token or ""}
    proc = subprocess.Popen([sys.executable, "-m", "llara_search", "serve", "--index", str(index), "--port", "0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    deadline = time.monotonic() + 180
    while (rec := find_server(index)) is None:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "serve did not start"
        time.sleep(0.05)
    assert rec.auth == bool(token) and rec.pid == proc.pid
    return proc, rec.url


def _stop(proc: subprocess.Popen, index: Path) -> None:
    proc.terminate()
    assert proc.wait(60) == 0
    assert not (index / RECORD_NAME).exists()  # a clean shutdown removes its record


@pytest.fixture(scope="module")
def served(index, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-log") / "serve.err"
    proc, url = _start_serve(index, log, TOKEN)
    yield url, log
    _stop(proc, index)
    assert TOKEN not in log.read_text() and WRONG not in log.read_text()


ZEBRA = ("Zebra crossings give pedestrians the right of way: drivers must stop when someone waits at the kerb, "
         "and the stripes are painted wide enough to be seen at night from a long way off.")
TEXTS = ["Llamas need shelter, fresh water and hay.", "The proxy balances load across backends."]


# ------------------------------------------------------------------------------------------------ OpenAI SDK
def test_openai_sdk_default_settings_get_llara_vectors(served, engine):
    url, _ = served
    client = openai.OpenAI(base_url=url + "/v1", api_key=TOKEN)
    expected = engine.embed(TEXTS, "passage")
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=TEXTS)
    wire = json.loads(raw.http_response.text)  # the SDK asked for base64 by default: little-endian float32 on the wire
    assert json.loads(raw.http_response.request.content)["encoding_format"] == "base64"
    assert all(isinstance(d["embedding"], str) for d in wire["data"])
    assert np.array_equal(np.frombuffer(base64.b64decode(wire["data"][1]["embedding"]), "<f4"), expected[1])
    r = raw.parse()
    assert r.model == "text-embedding-3-small" and [d.index for d in r.data] == [0, 1]
    assert np.array_equal(np.asarray([d.embedding for d in r.data], np.float32), expected)
    assert r.usage.prompt_tokens == r.usage.total_tokens == sum(engine.encoder.count_tokens(TEXTS))
    f = client.embeddings.create(model="llara", input=TEXTS, encoding_format="float", user="u-1",
                                 dimensions=expected.shape[1])
    assert [d.embedding for d in f.data] == [d.embedding for d in r.data]  # float and base64: the same numbers
    one = client.embeddings.create(model="llara", input=TEXTS[0])
    assert np.array_equal(np.asarray(one.data[0].embedding, np.float32), expected[0])
    q = client.embeddings.create(model="llara", input=["how do llamas live?"], extra_body={"input_type": "query"})
    assert np.array_equal(np.asarray(q.data[0].embedding, np.float32), engine.embed(["how do llamas live?"],
                                                                                    "query")[0])
    alias = client.embeddings.create(model="llara", input=["how do llamas live?"],
                                     extra_body={"input_type": "search_query"})  # Cohere's and Voyage's spelling
    assert alias.data[0].embedding == q.data[0].embedding
    models = client.models.list()
    assert [m.id for m in models.data] == [engine.info["model"]] and models.data[0].owned_by == "llara-search"
    assert client.models.retrieve(engine.info["model"]).id == engine.info["model"]


@pytest.mark.parametrize("kwargs, status, param, words", [
    ({"dimensions": 8}, 400, "dimensions", "not truncatable"),
    ({"encoding_format": "int8"}, 400, "encoding_format", "must be 'float' or 'base64'"),
    ({"input": [[101, 2023], [102]]}, 400, "input", "token ids"),
    ({"input": [101, 2023]}, 400, "input", "check_embedding_ctx_length=False"),
    ({"input": 42}, 400, "input", "send a string or a list of strings"),
    ({"input": ["ok", {"text": "x"}]}, 400, "input", "input[1] is an object"),
    ({"input": ""}, 400, "input", "is empty"),
    ({"input": []}, 400, "input", "empty list"),
    ({"input": ["x"] * 2049}, 400, "input", "more than 2048 per request"),
    ({"input": ["short", "word " * 3000]}, 400, "input", "more than the 512 that"),
    ({"extra_body": {"input_type": "question"}}, 400, "input_type", "'passage' (the default"),
])
def test_openai_sdk_shows_what_to_change(served, kwargs, status, param, words):
    url, _ = served
    client = openai.OpenAI(base_url=url + "/v1", api_key=TOKEN, max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(**{"model": "llara", "input": ["text"], **kwargs})
    e = caught.value
    assert e.status_code == status and e.param == param and e.type == "invalid_request_error", e.body
    assert words in e.body["message"] and words in str(e)
    if "512" in words:
        assert e.body["message"].startswith("input[1] has ") and "truncate" in e.body["message"]


def test_openai_sdk_auth_and_truncate(served):
    url, _ = served
    for key in (WRONG, "none"):
        with pytest.raises(openai.AuthenticationError) as caught:
            openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0).embeddings.create(model="m", input="x")
        assert "api key" in caught.value.body["message"].lower() and caught.value.code == "invalid_api_key"
        assert key not in caught.value.response.text
    client = openai.OpenAI(base_url=url + "/v1", api_key=TOKEN)
    r = client.embeddings.create(model="llara", input="word " * 3000, extra_body={"truncate": True})
    assert len(r.data) == 1 and r.usage.prompt_tokens == 512


def test_langchain_openai_embeddings(served, engine):
    from langchain_openai import OpenAIEmbeddings

    url, _ = served
    # check_embedding_ctx_length=False: LangChain's own advice for OpenAI-compatible servers (otherwise it sends
    # tiktoken ids, which we refuse with a message saying so)
    docs = OpenAIEmbeddings(model="llara", base_url=url + "/v1", api_key=TOKEN, check_embedding_ctx_length=False)
    assert np.allclose(docs.embed_documents(TEXTS), engine.embed(TEXTS, "passage"), atol=1e-6)
    assert np.allclose(asyncio.run(docs.aembed_documents(TEXTS)), engine.embed(TEXTS, "passage"), atol=1e-6)
    queries = OpenAIEmbeddings(model="llara", base_url=url + "/v1", api_key=TOKEN, check_embedding_ctx_length=False,
                               model_kwargs={"extra_body": {"input_type": "query"}})
    assert np.allclose(queries.embed_query("where is the port set?"),
                       engine.embed(["where is the port set?"], "query")[0], atol=1e-6)


# ------------------------------------------------------------------------------------------------ retriever, client
def test_langchain_retriever_over_the_server_and_the_engine(served, engine):
    from llara_search.langchain import LlaraSearchRetriever

    url, _ = served
    remote = LlaraSearchRetriever(url=url, token=TOKEN, k=4, mode="hybrid")
    local = LlaraSearchRetriever(engine=engine, k=4, mode="hybrid")
    assert TOKEN not in repr(remote)
    expected = engine.search("llama packing", k=4, mode="hybrid")
    for docs in (remote.invoke("llama packing"), local.invoke("llama packing"),
                 asyncio.run(remote.ainvoke("llama packing")), asyncio.run(local.ainvoke("llama packing"))):
        assert [d.page_content for d in docs] == [r.text for r in expected]
        assert [d.id for d in docs] == [str(r.chunk_id) for r in expected]
        m = docs[0].metadata
        assert m["path"] == m["source"] == expected[0].path and m["chunk_id"] == expected[0].chunk_id
        assert m["score"] == expected[0].score and m["rank"] == 1
        assert {"heading", "start_line", "end_line", "page"} <= set(m)
    ports = remote.invoke("listening port", k=1, mode="bm25")  # per-call overrides
    assert len(ports) == 1 and ports[0].metadata["heading"] == "Configuration > Ports"
    assert ports[0].metadata["start_line"] is not None
    sub = LlaraSearchRetriever(url=url, token=TOKEN, k=6, search_kwargs={"where": "sub/*"}).invoke("llama fact")
    assert len(sub) == 6 and all("/sub/" in d.metadata["path"] for d in sub)
    pdf = local.invoke("installation manual", where="*.pdf", mode="bm25")
    assert pdf and pdf[0].metadata["page"] == 1 and pdf[0].metadata["start_line"] is None
    from llara_search.client import AuthenticationError

    with pytest.raises(AuthenticationError, match="refused the token"):
        LlaraSearchRetriever(url=url, token=WRONG).invoke("x")
    with pytest.raises(ValueError, match="either url= .* or engine="):
        LlaraSearchRetriever()


def test_http_client(served, engine):
    from llara_search import client as lc
    from llara_search import engine as eng
    from llara_search import search

    assert lc.MODES == search.MODES and lc.MAX_K == eng.MAX_K  # the client checks with the engine's limits
    url, _ = served
    with lc.Client(url, TOKEN) as c:
        assert c.health() and c.info()["documents"] == engine.status()["documents"]
        hits = c.search("llama packing", k=3, mode="dense")
        assert [h.chunk_id for h in hits] == [r.chunk_id for r in engine.search("llama packing", k=3)]
        assert hits[0].to_dict() == {k: v for k, v in engine.search("llama packing", k=1)[0].to_dict().items()
                                     if k != "doc_key"}
        many = c.search_many(["llama", "proxy"], k=2, mode="bm25")
        assert [len(x) for x in many] == [2, 2]
        assert np.allclose(c.embed(["x"], "query"), engine.embed(["x"], "query"), atol=1e-6)
        with pytest.raises(lc.RequestError, match="k must be between 1 and 1000, not 0"):
            c.search("x", k=0)
        with pytest.raises(lc.RequestError, match="mode must be one of dense, bm25, hybrid, not 'fuzzy'"):
            c.search("x", mode="fuzzy")
    assert TOKEN not in repr(lc.Client(url, TOKEN))
    found = lc.Client.for_index(engine.paths.root, TOKEN)  # the server of this index folder, found by its record
    assert found is not None and found.url == url and found.search("llama", k=1)[0].rank == 1
    assert lc.Client.for_index(engine.paths.root / "nowhere") is None

    async def run():
        async with lc.AsyncClient(url, TOKEN) as c:
            return await c.search("llama packing", k=3), await c.health()

    hits_async, ok = asyncio.run(run())
    assert ok and [h.chunk_id for h in hits_async] == [h.chunk_id for h in hits]
    with pytest.raises(lc.ServerUnavailable, match="no llara-search server answers"):
        lc.Client("http://127.0.0.1:9", TOKEN).search("x")  # port 9 (discard): nothing listens


# ------------------------------------------------------------------------------------------------ instant CLI query
def test_cli_query_asks_the_running_server_with_identical_output(served, index):
    for args in (["llama packing", "-k", "5"], ["listening port", "--mode", "bm25", "-k", "3"],
                 ["llama fact", "--mode", "hybrid", "--where", "sub/*", "-k", "4"],
                 ["zebra crossings pedestrians", "--mode", "bm25", "-k", "3"],
                 ["zebra crossings pedestrians", "--mode", "bm25", "-k", "3", "--all-copies"]):
        base = ["query", *args, "--index", str(index)]
        remote = runner.invoke(app, base + ["--json", "--token", TOKEN])
        local = runner.invoke(app, base + ["--json", "--local"])
        assert remote.exit_code == local.exit_code == 0, (remote.output, local.output)
        a, b = json.loads(remote.stdout), json.loads(local.stdout)
        assert b.pop("dtype", "float32") == "float32"  # a search in this process says the dtype it encoded in
        assert a.pop("took_ms") >= 0 and b.pop("took_ms") >= 0 and a == b and a["results"]
        text_remote = runner.invoke(app, base + ["--token", TOKEN]).stdout.splitlines()
        text_local = runner.invoke(app, base + ["--local"]).stdout.splitlines()
        assert text_remote[:-1] == text_local[:-1] and " results in " in text_remote[-1]  # all but the timing
        if args[0].startswith("zebra"):  # the passage two files repeat: named under the best one, or both shown
            zebra = [(Path(r["path"]).name, [Path(p).name for p in r["also_in"]]) for r in a["results"]
                     if r["path"].endswith(("zebra.md", "zebra.txt"))]
            assert zebra == ([("zebra.md", []), ("zebra.txt", [])] if "--all-copies" in args
                             else [("zebra.md", ["zebra.txt"])]), zebra

    # the server path as a user runs it: a fresh process that never imports torch (nor faiss, numpy, SQLAlchemy)
    code = ("import sys, json\nfrom llara_search.cli import app\ntry:\n    app(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    assert e.code in (0, None), e.code\nheavy = [m for m in ('torch', 'transformers', 'faiss', 'numpy', "
            "'sqlalchemy') if m in sys.modules]\nprint(json.dumps(heavy))")
    r = subprocess.run([sys.executable, "-c", code, "query", "llama packing", "-k", "5", "--index", str(index),
                        "--json"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "LLARA_SEARCH_TOKEN": TOKEN})
    assert r.returncode == 0, r.stderr
    out, heavy = r.stdout.splitlines()
    assert json.loads(heavy) == []
    local = json.loads(runner.invoke(app, ["query", "llama packing", "-k", "5", "--index", str(index), "--json",
                                           "--local"]).stdout)
    assert json.loads(out)["results"] == local["results"]


def test_cli_query_token_handling(served, index):
    _, log = served
    r = runner.invoke(app, ["query", "llama", "--index", str(index), "--token", WRONG])
    assert r.exit_code == 1 and r.stderr.startswith("error: the server at http://127.0.0.1:")
    assert "refused the token" in r.stderr and "--local" in r.stderr and WRONG not in r.stderr
    assert r.stderr.strip().count("\n") == 0
    r = runner.invoke(app, ["query", "llama", "--index", str(index), "--json", "-k", "2"],
                      env={"LLARA_SEARCH_TOKEN": ""})  # no token: the engine answers here, and says why
    assert r.exit_code == 0 and len(json.loads(r.stdout)["results"]) == 2 and "wants a token" in r.stderr
    r = runner.invoke(app, ["query", "llama", "--index", str(index), "-k", "0", "--token", TOKEN])
    assert r.exit_code == 1 and r.stderr.strip() == "error: k must be between 1 and 1000, not 0"
    record = (index / RECORD_NAME).read_text()
    assert TOKEN not in record and json.loads(record)["auth"] is True
    assert TOKEN not in log.read_text()


def test_stale_record_is_ignored(served, index, tmp_path):
    """A record whose server was killed (kill -9: nothing removed it) is not taken for a live one, even when its
    address answers: the kernel dropped the server's lock on it."""
    url, _ = served
    copy = tmp_path / "idx"
    shutil.copytree(index, copy, ignore=shutil.ignore_patterns(RECORD_NAME))
    port = int(url.rsplit(":", 1)[1])
    code = ("import sys\nfrom pathlib import Path\nfrom llara_search.layout import IndexPaths\n"
            "from llara_search.server_record import announce\n"
            "cm = announce(sys.argv[1], IndexPaths(Path(sys.argv[1])).db_url, ('127.0.0.1', int(sys.argv[2])), True)\n"
            "cm.__enter__()\nprint('ready', flush=True)\nsys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(copy), str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        live = find_server(copy)
        assert live is not None and live.url == url and live.pid == proc.pid
        assert find_server(copy, db_url="sqlite:////elsewhere/meta.sqlite") is None  # another database: not it
    finally:
        proc.kill()
        proc.wait(30)
    assert (copy / RECORD_NAME).is_file() and find_server(copy) is None
    r = runner.invoke(app, ["query", "llama packing", "--index", str(copy), "--json", "-k", "3", "--token", TOKEN])
    assert r.exit_code == 0 and len(json.loads(r.stdout)["results"]) == 3
    (copy / RECORD_NAME).write_text("{not json")
    assert find_server(copy) is None


def test_serve_busy_port_is_one_line(served, index):
    url, _ = served
    port = url.rsplit(":", 1)[1]
    r = runner.invoke(app, ["serve", "--index", str(index), "--port", port, "--token", TOKEN])
    assert r.exit_code == 1 and r.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert "--port 0" in r.stderr and r.stderr.strip().count("\n") == 0


# ------------------------------------------------------------------------------------------------ what clients send
def test_v1_errors_keep_openai_shape_other_routes_keep_detail(served):
    url, log = served
    auth = {"Authorization": f"Bearer {TOKEN}"}
    cases = [
        (b"{broken", {"content-type": "application/json"}, 400, "not valid JSON"),
        (b'{"model": "m"}', {"content-type": "application/json"}, 400, "`input` is missing"),
        (b'["a"]', {"content-type": "application/json"}, 400, "must be a JSON object"),
        (b'{"input": "x"}', {"content-type": "application/x-www-form-urlencoded"}, 400, "Content-Type: application/json"),
        (b"x" * (5 * 2**20), {"content-type": "application/json"}, 413, "request body over"),
    ]
    for body, headers, status, words in cases:
        r = httpx.post(url + "/v1/embeddings", content=body, headers={**auth, **headers})
        err = r.json()["error"]
        assert r.status_code == status and words in err["message"], (r.status_code, r.text)
        assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
    r = httpx.post(url + "/v1/chat/completions", json={"messages": []}, headers=auth)
    assert r.status_code == 404 and "POST /v1/embeddings and GET /v1/models" in r.json()["error"]["message"]
    r = httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {WRONG}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key" and WRONG not in r.text
    # the other routes keep {"detail"}; a curl -d body (form content type) is told what to change
    r = httpx.post(url + "/search", content=b'{"query": "llama"}', headers={**auth, "content-type":
                                                                             "application/x-www-form-urlencoded"})
    assert r.status_code == 422 and "-H 'Content-Type: application/json'" in r.json()["detail"]
    r = httpx.post(url + "/search", content=b"x" * (5 * 2**20), headers={**auth, "content-type": "application/json"})
    assert r.status_code == 413 and set(r.json()) == {"detail"}
    r = httpx.post(url + "/search", json={"query": "llama", "k": "3", "mode": "bm25"}, headers=auth)
    assert r.status_code == 200 and len(r.json()["results"]) == 3  # numbers sent as strings (LLM-made bodies)
    assert httpx.get(url + "/openapi.json").status_code == 401  # the schema is behind the token too
    docs = httpx.get(url + "/openapi.json", headers=auth).json()
    props = docs["components"]["schemas"]["EmbeddingRequest"]["properties"]
    assert "Default `passage`" in props["input_type"]["description"] and "float" in props["encoding_format"]["enum"]
    assert WRONG not in log.read_text()


def test_text_only_index_serves_bm25_and_refuses_embeddings(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Ports\n\nThe listening port is set in server.conf.\n")
    (docs / "b.md").write_text("# Backups\n\nThe backup runs nightly.\n")
    idx = tmp_path / "idx"
    assert runner.invoke(app, ["ingest", str(docs), "--index", str(idx), "--model", "none", "--json"]).exit_code == 0
    proc, url = _start_serve(idx, tmp_path / "serve.err", None)  # no token: loopback only
    try:
        remote = runner.invoke(app, ["query", "listening port", "--index", str(idx), "--mode", "bm25", "--json"])
        local = runner.invoke(app, ["query", "listening port", "--index", str(idx), "--mode", "bm25", "--json",
                                    "--local"])
        a, b = json.loads(remote.stdout), json.loads(local.stdout)
        assert a["results"] == b["results"] and a["results"][0]["path"].endswith("a.md")
        plain = [runner.invoke(app, ["query", "listening port", "--index", str(idx), "--json", *extra])
                 for extra in ([], ["--local"])]  # no --mode: BM25, the one mode a text-only index has
        assert [json.loads(r.stdout)["mode"] for r in plain] == ["bm25", "bm25"]
        assert json.loads(plain[0].stdout)["results"] == a["results"]
        dense = [runner.invoke(app, ["query", "port", "--index", str(idx), "--mode", "dense", *extra])
                 for extra in ([], ["--local"])]
        assert dense[0].exit_code == dense[1].exit_code == 1 and dense[0].stderr == dense[1].stderr  # the same refusal
        assert "text-only" in dense[0].stderr
        r = httpx.post(url + "/v1/embeddings", json={"input": "x", "model": "m"})
        assert r.status_code == 400 and "no embedding model" in r.json()["error"]["message"]
        assert httpx.get(url + "/v1/models").json() == {"object": "list", "data": []}
        # no mode over HTTP either: BM25, and the answer says so
        got = [httpx.post(url + "/search", json={"query": "listening port", "k": 2}),
               httpx.get(url + "/search", params={"q": "listening port", "k": 2})]
        assert [g.status_code for g in got] == [200, 200], [g.text for g in got]
        assert [g.json()["mode"] for g in got] == ["bm25", "bm25"]
        assert got[0].json()["results"][0]["path"].endswith("a.md")
        batch = httpx.post(url + "/batch_search", json={"queries": ["listening port", "nightly backup"], "k": 1})
        assert batch.status_code == 200 and [rs[0]["path"][-4:] for rs in batch.json()["results"]] == ["a.md", "b.md"]
    finally:
        _stop(proc, idx)
    _mcp_default_mode_is_bm25(idx)


def _mcp_default_mode_is_bm25(idx):
    """An agent that names no mode gets BM25 from a text-only index (not a refusal of the hybrid default)."""
    import anyio
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "llara_search", "mcp", "--index", str(idx)],
                                   env={**os.environ, "HF_HUB_OFFLINE": "1"})

    async def session_run():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await session.call_tool("search", {"query": "nightly backup", "k": 2})

    hits = anyio.run(session_run)
    assert not hits.is_error, hits.content
    assert hits.structured_content["result"][0]["path"].endswith("b.md")

