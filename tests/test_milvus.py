"""Vectors in Milvus: the same commands on Milvus Lite (in-process, a `.db` folder) and on a Milvus server (Milvus
Lite's own gRPC server in another process) as on FAISS, compared against a FAISS index of the same documents.

No mocks: real Milvus Lite, real pymilvus, real processes killed with SIGKILL. One Lite database per module where
several indexes can share it (each index owns its collections); Milvus Lite lets one process open a database, so a
test that runs a second process gives the database up first (`Engine.close`).
"""

from __future__ import annotations

import json
import os
import shutil
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


def _top(engine: Engine, mode: str = "dense", where: str | None = None, k: int = 10) -> list:
    return [[(r.chunk_id, round(r.score, 4)) for r in engine.search(q, k=k, mode=mode, where=where)] for q in QUERIES]


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
    assert gen.index_file.startswith("milvus:") and gen.index_type == "flat" and f.store.current_generation().index_type == "flat"
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
    want = engines["faiss"].search("llama packing", k=4, mode="dense", where="*.md")
    assert [h["chunk_id"] for h in hits] == [r.chunk_id for r in want]


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
    assert [[s for _, s in q] for q in _top(m)] == [[s for _, s in q] for q in before]
    r = json.loads(runner.invoke(app, ["doctor", "--index", str(milvus_index), "--json"]).stdout)
    assert r["ok"] and r["warnings"] == [], r


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
    le.ingest([corpus], model=str(tiny_model))
    lost_coll = le.backend.collection_of(le.store.current_generation())
    client.delete(lost_coll, filter="id in [1, 2]")
    le.close()
    e.close()

    faiss_index = tmp_path / "faiss"
    assert runner.invoke(app, ["ingest", str(corpus), "--index", str(faiss_index), "--model", str(tiny_model)]
                         ).exit_code == 0
    before = {p: _dump(p) for p in (owner, lost, faiss_index)}
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
          f"{db}#other"], "holds 8-d vectors, index"),
        (["ingest", str(corpus), "--index", str(owner), "--vector-db", str(db)], "keeps its vectors in"),
        (["ingest", str(corpus), "--index", str(faiss_index), "--vector-db", str(db)], "keeps its vectors in FAISS"),
        (["ingest", str(corpus), "--index", str(owner), "--index-factory", "IVF{nlist},Flat"],
         "--index-factory is a FAISS setting"),
        (["reindex", "--index", str(faiss_index), "--index-type", "hnsw"], "--index-type must be one of"),
        (["query", "topic", "--index", str(lost)], "lost data behind llara-search's back"),
        (["ingest", str(corpus), "--index", str(lost)], "holds 10 vectors of generation 1, the database 12"),
        (["delete", str(corpus / "page0.md"), "--index", str(lost)], "run `llara-search doctor --repair"),
    ]
    for args, message in cases:
        r = runner.invoke(app, args)
        assert r.exit_code != 0, args
        assert r.stderr.startswith("error: ") and message in r.stderr, (args, r.stderr)
        assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr and "secret" not in r.stderr
    for p, dump in before.items():
        assert _dump(p) == dump, p
    assert not any((tmp_path / f"new{i}").exists() for i in (1, 2, 3)), "a refused index left a folder behind"

    # a second process cannot open a Lite database this one holds: one line naming the way out
    holder = _engine(owner, encoder)
    holder.search("topic", k=1)
    r = _cli("query", "topic", "--index", owner, "--mode", "dense")
    assert r.returncode == 1 and "is open in another process" in r.stderr and "milvus-lite server" in r.stderr
    assert r.stderr.strip().count("\n") == 0
    holder.close()

    # doctor says what disagrees; --repair rebuilds the collection from the stored vectors
    r = runner.invoke(app, ["doctor", "--index", str(lost), "--json"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and [p["check"] for p in doc["problems"]] == ["index"]
    assert "holds 10 vectors of generation 1, the database 12" in doc["problems"][0]["detail"]
    r = runner.invoke(app, ["doctor", "--index", str(lost), "--repair", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["ok"], r.output
    ok = runner.invoke(app, ["query", "topic", "--index", str(lost), "--json"])
    assert ok.exit_code == 0 and len(json.loads(ok.stdout)["results"]) == 10
    # a collection dropped behind our back: the same, from doctor
    le = _engine(lost, encoder)
    le.backend.client.drop_collection(le.backend.collection_of(le.store.current_generation()))
    le.close()
    r = runner.invoke(app, ["query", "topic", "--index", str(lost)])
    assert r.exit_code == 1 and "is missing; run `llara-search doctor --repair" in r.stderr
    assert runner.invoke(app, ["doctor", "--index", str(lost), "--repair", "--json"]).exit_code == 0
