"""The store, ingest and query paths against every metadata database: SQLite always, and PostgreSQL when
LLARA_SEARCH_TEST_PG names a server (`.ci/run` starts one on 127.0.0.1 and sets it), each test in a database of
its own. Only what is dialect-specific is tested here twice; the rest of the suite runs on SQLite."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

import numpy as np
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from helpers import make_corpus, serve_in_thread
from llara_search.cli import app
from llara_search.engine import Engine, EngineError
from llara_search.store import Chunk, Document, Store
from llara_search.testing import scratch_pg_database

runner = CliRunner()
PG_ENV = "LLARA_SEARCH_TEST_PG"


@contextmanager
def _fresh_pg_database():
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"set {PG_ENV}=postgresql+psycopg://USER@HOST:PORT/DB to run against PostgreSQL")
    with scratch_pg_database(base, "llara_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """None (the index folder's own meta.sqlite) or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    with _fresh_pg_database() as url:
        yield url


def _args(index, db_url) -> list[str]:
    return ["--index", str(index)] + (["--db-url", db_url] if db_url else [])


def _visible(engine: Engine) -> dict:
    """Visible chunk ids and hashes, and the FAISS ids, of the latest generation (through SQL, per backend)."""
    gen = engine.store.current_generation()
    with engine.store.sessions() as s:
        rows = s.execute(text("SELECT id, content_hash FROM chunks WHERE added_gen <= :g AND (removed_gen IS NULL "
                              "OR removed_gen > :g) ORDER BY id"), {"g": gen.id}).all()
    return {"generation": gen.id, "ids": [r[0] for r in rows], "hashes": sorted(r[1] for r in rows)}


def test_migrations_path_filters_and_chunk_texts_follow_generations(db_url, tmp_path):
    from sqlalchemy import delete, inspect

    from llara_search.lexical import text_crc
    from llara_search.store.db import current_revision, head_revision

    store = Store(db_url or f"sqlite:///{tmp_path / 'm.sqlite'}")
    assert current_revision(store.engine) == head_revision() == "0008"
    with store.engine.connect() as conn:  # BM25 lives in the lexical index files now, on both databases
        assert "chunks_fts" not in inspect(conn).get_table_names()
        assert {"fts", "fts_length"}.isdisjoint(c["name"] for c in inspect(conn).get_columns("chunks"))
    with store.session() as s:
        doc = Document(path="/docs/zoo/a.md", format="markdown", size=1, mtime_ns=1, content_hash="h", n_chunks=2,
                       added_gen=1)
        s.add(doc)
        s.flush()
        s.add_all([Chunk(document_id=doc.id, ordinal=i, heading="Zoo", text=t, char_start=0, char_end=1,
                         content_hash=f"c{i}", n_tokens=2, chunker_version="1", added_gen=g)
                   for i, (t, g) in enumerate([("zebras crossing the road", 1), ("running zebra herds", 2)])])
    assert [r[0] for r in store.visible_chunk_texts(1)] == [1]  # the generation-2 row is not visible yet
    assert list(store.visible_chunk_texts(2)) == [(1, "/docs/zoo/a.md", "Zoo", "zebras crossing the road"),
                                                  (2, "/docs/zoo/a.md", "Zoo", "running zebra herds")]
    assert list(store.visible_chunk_ids(2, "/docs/z?o/[ab].md")) == [1, 2]
    assert list(store.visible_chunk_ids(2, "zoo/*.md")) == [1, 2] and not len(store.visible_chunk_ids(2, "*.pdf"))
    assert store.chunk_records([2])[2].text == "running zebra herds"
    with store.session() as s:
        s.execute(delete(Chunk).where(Chunk.id == 1))
    assert [r[0] for r in store.visible_chunk_texts(2)] == [2]
    assert store.chunk_text_crcs(np.array([1, 2])).tolist() == [0, text_crc("Zoo", "running zebra herds")]
    store.close()


def test_bm25_ranks_the_same_on_postgresql_as_on_sqlite(tmp_path):
    """One lexical engine for both databases: the same analysis, statistics and scores, filters included."""
    corpus = make_corpus(tmp_path / "docs")
    with _fresh_pg_database() as url:
        engines = [Engine.open(tmp_path / "pg", db_url=url, create=True), Engine.open(tmp_path / "lite", create=True)]
        for e in engines:
            e.ingest([str(corpus)], model="none")
        for q, where in [("llama shelter hay", None), ("the proxy balances load", None), ("page", "*.pdf"),
                         ("vectors indexes", "sub/*"), ("to be or not", None)]:
            pg, lite = [[(h.path, h.score, h.chunk_id) for h in e.search(q, k=10, mode="bm25", where=where)]
                        for e in engines]
            assert pg == lite and (pg or where), q


def test_ingest_sync_delete_and_doctor(db_url, tmp_path, tiny_model):
    corpus = make_corpus(tmp_path / "docs")
    index = tmp_path / "idx"
    engine = Engine.open(index, db_url=db_url, create=True)
    first = engine.ingest([str(corpus)], model=str(tiny_model))
    assert first.files_new == 10 and first.files_failed == []
    care = engine.search("llama shelter hay", k=5, mode="bm25")[0]
    assert care.path.endswith("handbook.md") and care.heading == "Llama Handbook > Care" and care.start_line == 7
    assert engine.search("troubleshooting", k=5, mode="bm25")[0].page == 2
    (corpus / "notes.txt").write_text("Plain notes.\n\nZebras graze quietly at dawn.\n")
    os.remove(corpus / "config.rst")
    again = engine.ingest([str(corpus)])
    assert again.files_changed == 1 and again.files_removed == 1 and again.chunks_encoded == 1
    assert engine.search("zebras graze", k=1, mode="bm25")[0].path.endswith("notes.txt")
    assert not any(h.path.endswith("config.rst") for h in engine.search("listening port", k=50, mode="bm25"))
    state = _visible(engine)
    from helpers import faiss_ids

    assert np.array_equal(faiss_ids(index, state["generation"]), np.array(state["ids"]))
    fresh = Engine.open(tmp_path / "fresh", create=True)  # SQLite, from scratch: the same chunks
    fresh.ingest([str(corpus)], model=str(tiny_model))
    assert _visible(fresh)["hashes"] == state["hashes"]
    assert engine.delete([str(corpus / "sub")]).files_removed == 1
    assert not engine.search("nested vectors indexes", k=5, mode="bm25", where="sub/*")
    r = runner.invoke(app, ["doctor", *_args(index, db_url), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["ok"], r.stdout
    with pytest.raises(EngineError, match="built with model"):
        Engine.open(index, db_url=db_url, model=str(tmp_path / "another-model"))


def test_query_cli_and_http_server(db_url, tmp_path, tiny_model):
    import httpx

    from llara_search.serve import create_app

    corpus = make_corpus(tmp_path / "docs")
    for i in range(20):
        (corpus / "sub" / f"extra{i}.md").write_text(f"# Extra {i}\n\nLlama fact number {i} about packing.\n")
    index = tmp_path / "idx"
    r = runner.invoke(app, ["ingest", str(corpus), *_args(index, db_url), "--model", str(tiny_model), "--json"])
    assert r.exit_code == 0, r.output
    for mode in ("dense", "bm25", "hybrid"):
        r = runner.invoke(app, ["query", "llama fact packing", *_args(index, db_url), "-k", "7", "--mode", mode,
                                "--where", "sub/*", "--json"])
        assert r.exit_code == 0, r.output
        results = json.loads(r.stdout)["results"]
        assert len(results) == 7 and all("/sub/" in x["path"] for x in results), mode
    engine = Engine.open(index, db_url=db_url)
    many = engine.search_many(["llama packing", "proxy timeouts"], k=4, mode="hybrid")
    assert [len(x) for x in many] == [4, 4]
    base, srv = serve_in_thread(create_app(engine, token="t"))
    body = httpx.post(f"{base}/search", json={"query": "listening port", "k": 3, "mode": "bm25"},
                      headers={"Authorization": "Bearer t"}).json()
    assert body["results"][0]["path"].endswith("config.rst")
    info = httpx.get(f"{base}/info", headers={"Authorization": "Bearer t"}).json()
    assert info["documents"] == 30
    srv.should_exit = True


def test_an_external_database_serves_one_index_folder(tmp_path, tiny_model):
    """Two folders on one PostgreSQL database would key their vectors by the same chunk ids: refused, both ways."""
    corpus = make_corpus(tmp_path / "docs")
    with _fresh_pg_database() as url, _fresh_pg_database() as other_url:
        a, b = tmp_path / "a", tmp_path / "b"
        r = runner.invoke(app, ["ingest", str(corpus), *_args(a, url), "--model", str(tiny_model), "--json"])
        assert r.exit_code == 0, r.output
        before = _visible(Engine.open(a, db_url=url))
        for cmd in (["ingest", str(corpus), "--model", str(tiny_model)], ["query", "page", "--mode", "bm25"]):
            r = runner.invoke(app, [*cmd, *_args(b, url)])
            assert r.exit_code == 1 and "belongs to another index folder" in r.stderr, r.output
            assert len(r.stderr.strip().splitlines()) == 1
        assert not (b / "vectors").exists() and _visible(Engine.open(a, db_url=url)) == before
        r = runner.invoke(app, ["ingest", str(corpus), *_args(a, other_url)])
        assert r.exit_code == 1 and "was built with another database" in r.stderr, r.output
        r = runner.invoke(app, ["query", "page", *_args(a, url), "--json"])
        assert r.exit_code == 0 and json.loads(r.stdout)["results"]
