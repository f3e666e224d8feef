"""Vectors in Milvus: the same commands on Milvus Lite (in-process, a `.db` folder) and on a Milvus server (Milvus
Lite's own gRPC server in another process) as on FAISS, compared against a FAISS index of the same documents.

No mocks: real Milvus Lite, real pymilvus, real processes killed with SIGKILL. One Lite database per module where
several indexes can share it (each index owns its collections); Milvus Lite lets one process open a database, so a
test that runs a second process gives the database up first (`Engine.close`).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import db_state, make_corpus, serve_in_thread
from llara_search.cli import app
from llara_search.engine import Engine

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

runner = CliRunner()
QUERIES = ["llama packing", "listening port of the server", "topic 40 of page 3", "nightly backup", "vectors"]


def _write_pages(corpus: Path, pages, version: str) -> None:
    for i in pages:
        (corpus / f"page{i}.md").write_text(f"# Page {i}\n\n" + "\n\n".join(
            f"Paragraph {j} of page {i} ({version}) talks about topic {i * 31 + j}." for j in range(12)))


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "llara_search", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def _engine(index: Path, encoder, **kw) -> Engine:
    e = Engine.open(index, **kw)
    e.use_encoder(encoder)
    return e


_QUERY_VECTORS: dict[str, np.ndarray] = {}


def _search(engine: Engine, k: int, mode: str = "dense", where: str | None = None, queries=QUERIES) -> list:
    """`search_many` over the test queries, encoded once per model (the encoder is what costs here, not Milvus)."""
    fp = engine.info["fingerprint"]
    if fp not in _QUERY_VECTORS:
        _QUERY_VECTORS[fp] = engine.encode_queries(QUERIES)
    qv = _QUERY_VECTORS[fp][[QUERIES.index(q) for q in queries]]
    return engine.search_many(list(queries), k=k, mode=mode, where=where, query_vectors=qv)


def _top(engine: Engine, mode: str = "dense", where: str | None = None, k: int = 10) -> list:
    """(score, chunk id) of the top-k per query; chunks whose scores agree to 4 decimals are put in id order, since
    two engines' float arithmetic may return such ties in either order."""
    return [sorted(((round(r.score, 4), r.chunk_id) for r in hits), key=lambda h: (-h[0], h[1]))
            for hits in _search(engine, k, mode, where)]


def _milvus_ids(engine: Engine) -> np.ndarray:
    gen, ann = engine.searcher.refresh()
    return ann.ids()


def _dump(index: Path) -> str:
    con = sqlite3.connect(f"file:{index / 'meta.sqlite'}?mode=ro", uri=True)
    try:
        return "\n".join(con.iterdump())
    finally:
        con.close()


# ------------------------------------------------------------------------------------------------ same as FAISS
@pytest.fixture(scope="module")
def pair(tmp_path_factory, tiny_model, encoder):
    """The same documents in a FAISS index and in a Milvus Lite index (chunk ids are equal: same ingest order)."""
    root = tmp_path_factory.mktemp("milvus")
    corpus = make_corpus(root / "docs")
    _write_pages(corpus, range(8), "v1")
    db = root / "vectors.milvus.db"
    faiss_index, milvus_index = root / "faiss", root / "milvus"
    engines = {}
    for name, index, vdb in (("faiss", faiss_index, None), ("milvus", milvus_index, str(db))):
        e = Engine.open(index, create=True, vector_db=vdb)
        e.use_encoder(encoder)
        e.ingest([corpus], model=str(tiny_model), chunk_tokens=32)
        engines[name] = e
    yield corpus, faiss_index, milvus_index, db, engines
    for e in engines.values():
        e.close()


def test_milvus_lite_returns_the_top10_of_an_exact_faiss_index_with_filters_and_hybrid(pair):
    corpus, faiss_index, milvus_index, db, engines = pair
    f, m = engines["faiss"], engines["milvus"]
    assert m.info["vector_db"] == str(db) and f.info["vector_db"] == "faiss"
    gen = m.store.current_generation()
    assert gen.index_file.startswith("milvus:") and gen.index_type == "flat"
    assert f.store.current_generation().index_type == "flat"
    assert db_state(faiss_index)["chunk_ids"] == db_state(milvus_index)["chunk_ids"]
    assert np.array_equal(_milvus_ids(m), np.array(db_state(milvus_index)["chunk_ids"]))
    for mode in ("dense", "hybrid"):
        assert _top(m, mode) == _top(f, mode)
    for where in ("*.md", "sub/*", "*.pdf", "page1?.md", "page[13].md", "handbook_md"):
        got = _top(m, "dense", where)
        assert got == _top(f, "dense", where), where
    assert _top(m, "dense", "*.nothing") == [[] for _ in QUERIES]
    # status and bench through the CLI
    s = json.loads(runner.invoke(app, ["status", "--index", str(milvus_index), "--json"]).stdout)
    assert s["vector_db"] == str(db) and s["vector_db_kind"] == "milvus-lite" and s["factory"] == "Milvus FLAT float32"
    assert s["bytes_on_disk"]["index"] > 0
    b = runner.invoke(app, ["bench", "--index", str(milvus_index), "--queries", "20", "--json"])
    assert b.exit_code == 0, b.output
    assert json.loads(b.stdout)["recall@10"] == 1.0


def test_mcp_search_on_milvus(pair):
    pytest.importorskip("mcp")
    import anyio
    from mcp import Client

    from llara_search.serve.mcp import create_mcp_server

    _, _, _, _, engines = pair

    async def call():
        async with Client(create_mcp_server(engines["milvus"])) as client:
            return await client.call_tool("search", {"query": "llama packing", "k": 4, "mode": "dense",
                                                     "where": "*.md"})

    hits = anyio.run(call).structured_content["result"]
    want = engines["milvus"].search("llama packing", k=4, mode="dense", where="*.md")
    assert [h["chunk_id"] for h in hits] == [r.chunk_id for r in want] and len(hits) == 4
    assert all(h["path"].endswith(".md") for h in hits)


def test_incremental_ingest_deletes_compact_reindex_reencode_stay_equal_to_faiss(pair, tmp_path):
    corpus, faiss_index, milvus_index, db, engines = pair
    f, m = engines["faiss"], engines["milvus"]
    _write_pages(corpus, range(3), "v2")  # rewritten: old chunks removed, new ones encoded
    os.remove(corpus / "page7.md")
    _write_pages(corpus, range(8, 10), "v2")
    (corpus / "notes.txt").write_text("Plain notes.\n\nThe backup now runs hourly.\n")
    for e in (f, m):
        r = e.ingest([corpus])
        assert r.chunks_added > 0 and r.chunks_removed > 0 and r.files_removed == 1
    gen = m.store.current_generation()
    name = gen.index_file
    assert gen.id == 2 and name == m.store.generation_index_files(1)[1]  # the same collection, one more generation
    assert _top(m) == _top(f) and _top(m, "hybrid", "page*") == _top(f, "hybrid", "page*")
    assert np.array_equal(_milvus_ids(m), np.array(db_state(milvus_index)["chunk_ids"]))
    r = json.loads(runner.invoke(app, ["doctor", "--index", str(milvus_index), "--json"]).stdout)
    assert r["ok"] and r["warnings"] == [] and r["checked"]["index_ntotal"] == len(db_state(milvus_index)["chunk_ids"])

    # delete, compact: removed rows leave Milvus once no reader can be on the generation that had them
    for e in (f, m):
        assert e.delete([str(corpus / "page8.md")]).files_removed == 1
        e.compact(grace_s=0)
    backend = m.backend
    gen = m.store.current_generation()
    from llara_search.index.milvus import visible_at

    coll = backend.collection_of(gen)
    assert backend._count(coll, "added_gen >= 0") == len(db_state(milvus_index)["chunk_ids"])  # nothing dead kept
    assert _top(m) == _top(f)

    # reindex: a new collection; the old one is dropped once no reader can be on it
    r = m.reindex()
    gen = m.store.current_generation()
    assert gen.index_file == f"milvus:{backend.name_of(gen.id)}" and gen.index_file != f"milvus:{coll}"
    m.compact(grace_s=0)
    assert backend._ours() == [backend.name_of(gen.id)] and backend.alias_target() == backend.name_of(gen.id)
    assert backend._count(backend.name_of(gen.id), visible_at(gen.id)) == gen.ntotal
    assert _top(m) == _top(f)

    # re-encode (the base model again): new chunk ids in a new collection, same answers
    before = _top(m)
    r = m.reencode(None)
    assert r.chunks_encoded == gen.ntotal and m.store.current_generation().index_file.endswith(f"_g{r.generation:08d}")
    assert [[s for s, _ in q] for q in _top(m)] == [[s for s, _ in q] for q in before]
    r = json.loads(runner.invoke(app, ["doctor", "--index", str(milvus_index), "--json"]).stdout)
    assert r["ok"] and r["warnings"] == [], r

    # from a laptop's FAISS files to Milvus and back: `reindex --vector-db` moves the vectors, answers stay
    answers = _top(f)
    moved = tmp_path / "moved.milvus.db"
    r = runner.invoke(app, ["reindex", "--index", str(faiss_index), "--vector-db", str(moved), "--json"])
    assert r.exit_code == 0, r.output
    f2 = _engine(faiss_index, f.encoder)
    assert f2.info["vector_db"] == str(moved) and f2.store.current_generation().index_file.startswith("milvus:")
    assert _top(f2) == answers
    r = runner.invoke(app, ["reindex", "--index", str(faiss_index), "--vector-db", "faiss", "--json"])
    assert r.exit_code == 0, r.output
    f2.close()
    f3 = _engine(faiss_index, f.encoder)
    assert f3.info["vector_db"] == "faiss" and _top(f3) == answers
    f3.compact(grace_s=0)  # no reader can be on the Milvus generation now: its collections go
    from pymilvus import MilvusClient

    assert MilvusClient(str(moved)).list_collections() == [] and f3.info.get("retired_vector_db") is None
    f3.close()


# ------------------------------------------------------------------------------------------------ wrong use
def test_wrong_use_on_milvus_is_one_line_nonzero_and_changes_nothing(tmp_path, tiny_model, encoder):
    from pymilvus import DataType, MilvusClient

    corpus = tmp_path / "docs"
    corpus.mkdir()
    _write_pages(corpus, range(2), "v1")
    db = tmp_path / "shared.milvus.db"
    owner = tmp_path / "owner"
    e = _engine(owner, encoder, create=True, vector_db=f"{db}#docs")
    e.ingest([corpus], model=str(tiny_model))
    coll = e.backend.collection_of(e.store.current_generation())
    client = e.backend.client
    # a collection some other tool made under another index's name, with another dimension
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=8)
    params = client.prepare_index_params()
    params.add_index("vector", index_type="FLAT", metric_type="IP")
    client.create_collection("other_g00000001", schema=schema, index_params=params)

    lost = tmp_path / "lost"  # an index whose collection lost rows behind our back
    le = _engine(lost, encoder, create=True, vector_db=str(db))
    n = le.ingest([corpus], model=str(tiny_model)).chunks_total
    client.delete(le.backend.collection_of(le.store.current_generation()), filter="id in [1, 2]")
    le.close()
    dims = tmp_path / "dims"  # an index whose collection was replaced by one of another dimension
    de = _engine(dims, encoder, create=True, vector_db=f"{db}#dims")
    de.ingest([corpus], model=str(tiny_model))
    client = de.backend.client
    client.drop_collection("dims_g00000001")
    client.create_collection("dims_g00000001", schema=schema, index_params=params)
    de.close()
    e.close()

    faiss_index = tmp_path / "faiss"
    fe = _engine(faiss_index, encoder, create=True)
    fe.ingest([corpus], model=str(tiny_model))
    fe.close()
    before = {p: _dump(p) for p in (owner, lost, dims, faiss_index)}
    cases = [
        (["ingest", str(corpus), "--index", str(tmp_path / "new1"), "--model", str(tiny_model), "--vector-db",
          "http://127.0.0.1:9"], "cannot reach Milvus at http://127.0.0.1:9"),
        (["ingest", str(corpus), "--index", str(tmp_path / "new2"), "--model", str(tiny_model), "--vector-db",
          str(tmp_path / "vectors.txt")], "a Milvus Lite database is a path ending in .db"),
        (["ingest", str(corpus), "--index", str(tmp_path / "new3"), "--model", str(tiny_model), "--vector-db",
          "http://user:secret@127.0.0.1:19530"], "must not contain credentials"),
        (["ingest", str(corpus), "--index", str(tmp_path / "new4"), "--model", str(tiny_model), "--vector-db",
          f"{db}#docs"], "belongs to index"),
        (["ingest", str(corpus), "--index", str(tmp_path / "new5"), "--model", str(tiny_model), "--vector-db",
          f"{db}#other"], "(8-d vectors) belongs to something other than llara-search"),
        (["ingest", str(corpus), "--index", str(owner), "--vector-db", str(db)], "keeps its vectors in"),
        (["ingest", str(corpus), "--index", str(faiss_index), "--vector-db", str(db)], "keeps its vectors in FAISS"),
        (["ingest", str(corpus), "--index", str(owner), "--index-factory", "IVF{nlist},Flat"],
         "--index-factory is a FAISS setting"),
        (["reindex", "--index", str(faiss_index), "--index-type", "hnsw"], "--index-type must be one of"),
        (["query", "topic", "--index", str(lost)], "lost data behind llara-search's back"),
        (["ingest", str(corpus), "--index", str(lost)], f"holds {n - 2} vectors of generation 1, the database {n}"),
        (["query", "topic", "--index", str(dims)], "holds 8-d vectors, index"),
        (["delete", str(corpus / "page0.md"), "--index", str(lost)], "run `llara-search doctor --repair"),
    ]
    for args, message in cases:
        r = runner.invoke(app, args)
        assert r.exit_code != 0, args
        assert r.stderr.startswith("error: ") and message in r.stderr, r.stderr
        assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr and "secret" not in r.stderr
    for p, dump in before.items():
        assert _dump(p) == dump, p
    assert not any((tmp_path / f"new{i}").exists() for i in (1, 2, 3)), "a refused index left a folder behind"

    # a second process cannot open a Lite database this one holds: one line naming the way out
    holder = _engine(owner, encoder)
    holder.search("topic", k=1)
    r = _cli("delete", corpus / "page0.md", "--index", owner)  # as `query` would while a `serve` holds it
    assert r.returncode == 1 and "is open in another process" in r.stderr and "milvus-lite server" in r.stderr
    assert r.stderr.strip().count("\n") == 0
    holder.close()

    # doctor says what disagrees; --repair rebuilds the collection from the stored vectors
    r = runner.invoke(app, ["doctor", "--index", str(lost), "--json"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and [p["check"] for p in doc["problems"]] == ["index"]
    assert f"holds {n - 2} vectors of generation 1, the database {n}" in doc["problems"][0]["detail"]
    r = runner.invoke(app, ["doctor", "--index", str(lost), "--repair", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["ok"], r.output
    ok = runner.invoke(app, ["query", "topic", "--index", str(lost), "--json"])
    assert ok.exit_code == 0 and len(json.loads(ok.stdout)["results"]) == n
    # a collection dropped behind our back: the same, from doctor
    le = _engine(lost, encoder)
    le.backend.client.drop_collection(le.backend.collection_of(le.store.current_generation()))
    le.close()
    r = runner.invoke(app, ["query", "topic", "--index", str(lost)])
    assert r.exit_code == 1 and "is missing; run `llara-search doctor --repair" in r.stderr
    assert runner.invoke(app, ["doctor", "--index", str(lost), "--repair", "--json"]).exit_code == 0


# ------------------------------------------------------------------------------------------------ crash safety
def _vectors_by_hash(engine: Engine) -> dict:
    gen = engine.store.current_generation().id
    with engine.store.sessions() as s:
        from sqlalchemy import select

        from llara_search.store import Chunk, visible

        rows = s.execute(select(Chunk.content_hash, Chunk.id).where(visible(Chunk, gen))).all()
    vs = engine.searcher.vectors
    return {h: vs.get(np.array([i]))[0] for h, i in rows}


def _answers(engine: Engine) -> list:
    """Dense answers (BM25's statistics move with rows an unfinished generation wrote; that is not Milvus's part)."""
    return [sorted(((round(r.score, 4), r.text) for r in hits), key=lambda h: (-h[0], h[1]))  # ties in text order
            for where in (None, "page[0-2].md") for hits in _search(engine, 5, "dense", where, QUERIES[:3])]


def test_kill_minus_9_at_each_milvus_crash_point_then_resume_equals_uninterrupted(tmp_path, tiny_model, encoder):
    """One Milvus Lite index is killed at every Milvus crash point in turn (during the inserts of an ingest, after
    the flush, after the commit before the alias switch, after the database purge) and resumed; it ends equal to a
    FAISS index that went through the same changes without interruption."""
    corpus = tmp_path / "docs"
    corpus.mkdir()
    _write_pages(corpus, range(6), "v1")
    index, reference = tmp_path / "milvus", tmp_path / "reference"
    a = _engine(index, encoder, create=True, vector_db=str(tmp_path / "v.milvus.db"))
    ref = _engine(reference, encoder, create=True)
    for e in (a, ref):
        e.ingest([corpus], model=str(tiny_model), chunk_tokens=32)
    committed = _answers(a)
    a.close()
    _write_pages(corpus, range(3), "v2")
    os.remove(corpus / "page5.md")
    _write_pages(corpus, range(6, 8), "v2")
    ref.ingest([corpus])

    def killed(*args, at):
        r = _cli(*args, "--index", index, "--json", env={"LLARA_SEARCH_CRASH_AT": at})
        assert r.returncode == -signal.SIGKILL, (at, r.returncode, r.stderr[-600:])

    killed("ingest", corpus, at="milvus-write:1")  # some of generation 2's rows are in Milvus, uncommitted
    a = _engine(index, encoder)
    assert _answers(a) == committed  # readers still see generation 1 exactly
    assert json.loads(runner.invoke(app, ["doctor", "--index", str(index), "--json"]).stdout)["ok"]
    a.close()
    os.remove(corpus / "page1.md")
    ref.delete([str(corpus / "page1.md")])
    killed("delete", corpus / "page1.md", at="saved")  # rows written and flushed, the database names nothing
    killed("delete", corpus / "page1.md", at="switch")  # committed, alias not switched
    os.remove(corpus / "page2.md")
    ref.delete([str(corpus / "page2.md")])
    killed("delete", corpus / "page2.md", at="milvus-purge")  # the database purged rows Milvus still holds
    a = _engine(index, encoder)
    assert a.ingest([corpus]).chunks_encoded == 0  # the resumed run: every encoded batch was kept
    a.compact(grace_s=0)
    ref.compact(grace_s=0)
    x, y = db_state(reference), db_state(index)
    assert x["hashes"] == y["hashes"] and x["documents"] == y["documents"] and y["generation"] == 3
    # the same visible vectors: the same dense scores (chunk ids differ, so ties may order differently)
    assert [[s for s, _ in q] for q in _answers(a)] == [[s for s, _ in q] for q in _answers(ref)]
    x_vec, y_vec = _vectors_by_hash(ref), _vectors_by_hash(a)
    assert x_vec.keys() == y_vec.keys() and all(np.array_equal(x_vec[h], y_vec[h]) for h in x_vec)
    gen = a.store.current_generation()
    coll = a.backend.collection_of(gen)
    assert a.backend._count(coll, "added_gen >= 0") == len(y["chunk_ids"])  # no leftover rows of any attempt
    assert np.array_equal(_milvus_ids(a), np.array(y["chunk_ids"]))
    doc = json.loads(runner.invoke(app, ["doctor", "--index", str(index), "--json"]).stdout)
    assert doc["ok"] and doc["warnings"] == [], doc

    # a rebuild killed after writing its new collection: doctor names it, --repair renames it aside, never drops it
    final = _answers(a)
    a.close()
    killed("reindex", at="saved")
    r = runner.invoke(app, ["doctor", "--index", str(index), "--json"])
    doc = json.loads(r.stdout)
    # the collection, and the lexical files the rebuild wrote before it for the generation it never committed
    assert r.exit_code == 0 and [w["check"] for w in doc["warnings"]] == ["collections", "files"], doc
    orphan = f"{a.backend.prefix}_g00000004"
    assert orphan in doc["warnings"][0]["detail"]
    r = runner.invoke(app, ["doctor", "--index", str(index), "--repair", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["warnings"] == [], r.output
    a = _engine(index, encoder)
    names = a.backend.client.list_collections()
    assert orphan not in names and any(n.startswith(f"{a.backend.prefix}_quarantine_") for n in names)
    assert a.store.current_generation().id == 3 and _answers(a) == final  # still answering from generation 3
    a.close()


def test_a_first_ingest_killed_before_the_alias_switch_is_published_by_the_next_run(tmp_path, tiny_model):
    """Killed after committing its generation, before the alias other Milvus tools read exists: the next run has
    nothing to change and still publishes it."""
    corpus = tmp_path / "docs"
    corpus.mkdir()
    _write_pages(corpus, range(2), "v1")
    index = tmp_path / "idx"
    r = _cli("ingest", corpus, "--index", index, "--vector-db", tmp_path / "v.milvus.db", "--model", tiny_model,
             "--json", env={"LLARA_SEARCH_CRASH_AT": "switch"})
    assert r.returncode == -signal.SIGKILL, r.stderr[-600:]
    r = _cli("ingest", corpus, "--index", index, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["chunks_encoded"] == 0, r.stderr
    doc = _cli("doctor", "--index", index, "--json")  # in a process of its own: Lite lets one process open it
    assert json.loads(doc.stdout)["warnings"] == [], doc.stdout


# ------------------------------------------------------------------------------------------------ a Milvus server
@pytest.fixture
def milvus_server(tmp_path):
    """Milvus Lite's gRPC server in its own process, requiring a token as a server with authorization does."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("milvus_server.py")),
                             str(tmp_path / "server.milvus.db"), "--token", "root:Milvus"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _zebra(corpus: Path, version: str) -> None:
    for i in range(10):
        (corpus / f"p{i}.md").write_text(f"# Page {i}\n\n" + "\n\n".join(
            f"Zebra {version} note {i}.{j}." for j in range(12)))


def _version_of(texts: list[str]) -> str:
    kinds = {("old" if "Zebra old" in t else "new" if "Zebra new" in t else "?") for t in texts}
    assert len(kinds) == 1, f"a search mixed generations: {kinds}"
    return kinds.pop()


def test_milvus_server_credentials_and_readers_during_an_ingest_see_old_or_new(milvus_server, tmp_path, tiny_model,
                                                                              encoder, monkeypatch):
    import httpx

    from llara_search.serve import create_app

    corpus = tmp_path / "docs"
    corpus.mkdir()
    _zebra(corpus, "old")
    index = tmp_path / "idx"
    for token, hint in (("root:wrong", "refused the credentials"), (None, "refused the credentials")):
        env = {"MILVUS_TOKEN": token} if token else {}
        monkeypatch.delenv("MILVUS_TOKEN", raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        r = runner.invoke(app, ["ingest", str(corpus), "--index", str(index), "--model", str(tiny_model),
                                "--vector-db", milvus_server])
        assert r.exit_code == 1 and r.stderr.startswith("error: Milvus at ") and hint in r.stderr, r.stderr
        assert r.stderr.strip().count("\n") == 0 and not index.exists()
    monkeypatch.setenv("MILVUS_TOKEN", "root:Milvus")
    writer = _engine(index, encoder, create=True, vector_db=milvus_server)
    n = writer.ingest([corpus], model=str(tiny_model)).chunks_total
    writer.close()
    assert not any(b"root:Milvus" in f.read_bytes() for f in index.rglob("*") if f.is_file())  # token not recorded
    _zebra(corpus, "new")

    engine = _engine(index, encoder)
    server_engine = _engine(index, encoder)
    base, srv = serve_in_thread(create_app(server_engine))
    zv = engine.encode_queries(["zebra paragraph"])
    seen = []
    proc = subprocess.Popen([sys.executable, "-m", "llara_search", "ingest", str(corpus), "--index", str(index),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None:
            for mode in ("dense", "hybrid"):
                hits = engine.search_many(["zebra paragraph"], k=n, mode=mode, query_vectors=zv)[0]
                assert len(hits) == n  # every chunk of one generation, whichever it is
                seen.append(_version_of([h.text for h in hits]))
            body = httpx.post(base + "/search", json={"query": "zebra", "k": n, "mode": "dense", "where": "*.md"},
                              timeout=60)
            assert body.status_code == 200, body.text
            seen.append(_version_of([h["text"] for h in body.json()["results"]]))
        out, err = proc.communicate()
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.should_exit = True
    assert seen and seen[0] == "old" and set(seen) <= {"old", "new"}
    assert _version_of([h.text for h in engine.search("zebra", k=n)]) == "new"
    assert engine.status()["vector_db_kind"] == "milvus"
    engine.close()
    server_engine.close()


# ------------------------------------------------------------------------------------------------ index choice
def test_index_choice_by_size_and_memory_budget():
    from llara_search.index.backend import VectorDBError
    from llara_search.index.milvus import plan_milvus

    gib = 2**30
    assert plan_milvus(10_000, 4096, lite=True).index_type == "flat"
    lite = plan_milvus(200_000, 4096, lite=True)
    assert lite.index_type == "ivf_flat" and not lite.float16 and lite.build["nlist"] == 1789
    assert plan_milvus(10_000, 4096, lite=False).float16  # a server stores the float16 we store
    assert plan_milvus(1_000_000, 4096, lite=False, budget=64 * gib).index_type == "hnsw"  # 8.5 GB fit
    assert plan_milvus(20_000_000, 4096, lite=False, budget=64 * gib).index_type == "diskann"  # 170 GB do not
    pq = plan_milvus(400_000_000, 4096, lite=False, budget=64 * gib)
    assert pq.index_type == "ivfpq" and pq.build["m"] == 128 and 4096 % pq.build["m"] == 0
    assert plan_milvus(1_000_000, 4096, lite=False, index_type="flat").index_type == "flat"
    with pytest.raises(VectorDBError, match="--index-type must be one of auto, flat, ivf_flat, hnsw for Milvus Lite"):
        plan_milvus(1000, 64, lite=True, index_type="diskann")


@pytest.mark.parametrize("index_type", ["ivf_flat", "hnsw"])
def test_approximate_lite_indexes_are_tuned_to_the_recall_target(tmp_path, index_type):
    """Built and tuned as an ingest does (leave-one-out queries from the stored vectors), then searched the way
    `Searcher.dense` does: the recall@10 of fresh queries stays near the 0.96 target."""
    from llara_search.index import VectorStore
    from llara_search.index.milvus import MilvusBackend, normalize_uri
    from llara_search.layout import IndexPaths

    rng = np.random.default_rng(3)
    centres = rng.standard_normal((20, 16)).astype(np.float32)
    x = centres[rng.integers(0, 20, 2100)] + 0.3 * rng.standard_normal((2100, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.arange(1, 2001, dtype=np.int64)
    vs = VectorStore(tmp_path / "vectors", 16)
    vs.append(ids, x[:2000])
    backend = MilvusBackend(IndexPaths(tmp_path), normalize_uri(str(tmp_path / "t.milvus.db")), "tuning", 16)
    built = backend.build(1, None, vs, ids, ids, np.zeros(0, np.int64), index_type=index_type, factory=None,
                          rebuild=True, attributes=lambda part: (["/d.md"] * len(part), ["md"] * len(part)))
    built.save()
    index = built.index
    assert index.plan.index_type == index_type and index.plan.nprobe > 0 and not index.exact
    q = x[2000:]
    exact = q @ vs.get(ids).T
    _, cand = index.search(q, 10 * index.plan.rerank)
    recall = np.mean([len(set(c[c >= 0][:10].tolist()) & set(ids[np.argsort(-e)[:10]].tolist())) / 10
                      for c, e in zip(cand, exact)])
    assert recall >= 0.9, recall
    backend.close()


def test_cluster_layout_vectors_in_milvus_metadata_in_postgresql(tmp_path, tiny_model, encoder):
    """The cluster layout: metadata in PostgreSQL, vectors in Milvus (Lite here), the stored vectors in the folder."""
    from test_backends import _fresh_pg_database

    corpus = make_corpus(tmp_path / "docs")
    with _fresh_pg_database() as url:
        index = tmp_path / "idx"
        e = _engine(index, encoder, create=True, db_url=url, vector_db=str(tmp_path / "v.milvus.db"))
        e.ingest([corpus], model=str(tiny_model))
        assert e.info["index_id"] == (index / "index-id").read_text().strip()  # bound as any PostgreSQL index
        assert e.backend.prefix == f"llara_{e.info['index_id'][:16]}"
        exact = _top(e)  # a FLAT collection: exact scores, best first
        assert all(len(q) == 10 and q == sorted(q, key=lambda h: (-h[0], h[1])) for q in exact)
        sub = _search(e, 10, "dense", "sub/*")
        assert all(h.path.split("/")[-2] in ("sub", "deeper") for hits in sub for h in hits)
        gone = {h.chunk_id for hits in _search(e, 50) for h in hits if h.path.endswith("handbook.md")}
        e.delete([str(corpus / "handbook.md")])
        assert gone and not gone & {h.chunk_id for hits in _search(e, 50) for h in hits}
        assert e.search("listening port", k=1, mode="hybrid")[0].path.endswith("config.rst")
        assert e.doctor()["ok"]
        e.close()
