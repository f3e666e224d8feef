"""Vector store, FAISS wrapper, generations, migrations (also from an installed wheel), schema guard."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import db_state, faiss_ids, make_corpus
from llara_search.engine import Engine, EngineError
from llara_search.index import AnnIndex, VectorStore, plan_index


def _unit(n, d, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_vector_store_last_row_wins_and_torn_tail(tmp_path):
    vs = VectorStore(tmp_path / "v", 8)
    x = _unit(10, 8)
    vs.append(np.arange(10), x)
    vs.append(np.array([3]), x[[7]])  # id 3 written again (an id reused after a rolled-back batch)
    assert np.allclose(vs.get(np.array([3, 0])), x[[7, 0]], atol=1e-3)
    with open(vs.data_path, "ab") as fh:  # a crash mid-append leaves half a row
        fh.write(b"\x01\x02\x03")
    assert vs.rows_on_disk() == 11
    vs.append(np.array([42]), x[[1]])
    assert vs.rows_on_disk() == 12 and np.allclose(vs.get(np.array([42])), x[[1]], atol=1e-3)
    with pytest.raises(KeyError, match="no stored vector"):
        vs.get(np.array([999]))


def test_compaction_keeps_the_latest_row_of_each_needed_id_and_readers_follow_it(tmp_path):
    x = _unit(12, 8)
    writer = VectorStore(tmp_path / "v", 8, writer=True)
    writer.append(np.arange(10), x[:10])
    writer.append(np.array([3]), x[[11]])  # id 3 rewritten: the first row of 3 is dead
    reader = VectorStore(tmp_path / "v", 8)
    idle = VectorStore(tmp_path / "v", 8)  # maps the old epoch now and looks again only at the very end
    before = reader.get(np.array([1, 3, 5]))
    assert idle.positions(np.array([3]))[0] == 10
    keep = np.array([5, 1, 3, 77])  # 77 has no row: nothing to keep for it
    assert writer.dead_rows(keep) == 11 - 3
    assert writer.compact(keep) == 3
    assert writer.epoch() == 1 and writer.rows_on_disk() == 3
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["CURRENT", "vectors-1.f16", "vectors-1.ids"]
    # bytes copied, not re-encoded: bit-equal; the reader follows the switch on its next lookup
    assert np.array_equal(reader.get(np.array([1, 3, 5])), before)
    assert np.array_equal(reader.get(np.array([3])), x[[11]].astype(np.float16).astype(np.float32))
    with pytest.raises(KeyError):
        reader.get(np.array([0]))
    # new rows go to the new epoch, which grows back to the old epoch's 11 rows: a reader that mapped the old
    # epoch must not mistake it for unchanged
    y = _unit(8, 8, seed=1)
    writer.append(np.arange(100, 108), y)
    assert writer.rows_on_disk() == 11
    assert np.allclose(idle.get(np.array([107, 3])), np.stack([y[7], x[11]]), atol=1e-3)


def test_interrupted_compaction_leaves_the_old_epoch_current_and_the_next_writer_clears_it(tmp_path):
    x = _unit(6, 8)
    vs = VectorStore(tmp_path / "v", 8)
    vs.append(np.arange(6), x)
    code = ("import numpy as np; from llara_search.index import VectorStore; "
            f"VectorStore({str(tmp_path / 'v')!r}, 8, writer=True).compact(np.array([0, 2]))")
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "LLARA_SEARCH_CRASH_AT": "compact"})
    assert r.returncode == -9
    reader = VectorStore(tmp_path / "v", 8)
    assert reader.epoch() == 0 and reader.rows_on_disk() == 6 and np.allclose(reader.get(np.arange(6)), x, atol=1e-3)
    assert [p.name for p in reader.orphans()] == ["vectors-1.f16", "vectors-1.ids"]
    writer = VectorStore(tmp_path / "v", 8, writer=True)  # only a writer (under the index lock) deletes files
    assert writer.orphans() == [] and writer.compact(np.array([0, 2])) == 2 and writer.epoch() == 1


def test_plan_sizes_follow_faiss_guidelines():
    assert plan_index(1000, 4096).index_type == "flat"
    p = plan_index(100_000, 4096)
    m = int(p.factory.rsplit("PQ", 1)[1])
    assert p.index_type == "ivfpq" and p.factory.startswith(f"OPQ{m}_{4 * m},IVF") and m >= 32
    fixed = 4 * 4 * m * (4096 + p.nlist + 256)  # rotation, centroids, codebooks
    assert m + 8 + fixed / 100_000 <= 100  # the RAM budget per vector at 4096-d
    assert plan_index(2_000_000, 4096).factory.endswith(",PQ64")  # a big corpus affords the full code
    assert 4 * 100_000 ** 0.5 <= p.nlist <= 16 * 100_000 ** 0.5 and p.train_size >= 39 * p.nlist
    small = plan_index(6000, 64, "ivfpq")
    assert small.nlist * 39 <= 6000 and "PQ16" in small.factory
    with pytest.raises(ValueError, match="index type"):
        plan_index(10, 8, "hnsw")


def test_ivfpq_add_remove_search_save_load(tmp_path):
    d, n = 64, 6000
    x = _unit(n, d)
    ids = np.arange(5000, 5000 + n)
    vs = VectorStore(tmp_path / "v", d)
    vs.append(ids, x)
    ann = AnnIndex.build(d, ids, vs.get, index_type="ivfpq")
    assert ann.plan.index_type == "ivfpq" and ann.ntotal == n and ann.trained_on == n
    _, got = ann.search(x[:20], 10)
    assert (got[:, 0] == ids[:20]).mean() >= 0.9
    allowed = ids[::13]
    _, got = ann.search(x[:5], 10, allowed=allowed)
    assert np.isin(got[got >= 0], allowed).all()
    assert ann.remove(ids[:100]) == 100 and ann.ntotal == n - 100
    ann.save(tmp_path / "g.faiss")
    again = AnnIndex.load(tmp_path / "g.faiss", ann.plan)
    assert np.array_equal(again.search(x[200:210], 5)[1], ann.search(x[200:210], 5)[1])


def test_rebuild_from_stored_vectors_equals_original(tmp_path):
    """An index grown incrementally (adds, then removes) equals one rebuilt from the stored vectors of what is left."""
    d = 32
    x = _unit(500, d, seed=2)
    ids = np.arange(1, 501) * 3
    vs = VectorStore(tmp_path / "v", d)
    vs.append(ids, x)
    grown = AnnIndex.build(d, ids[:200], vs.get, index_type="flat")
    grown.add(ids[200:], vs.get(ids[200:]))
    grown.remove(ids[::7])
    left = np.setdiff1d(ids, ids[::7])
    rebuilt = AnnIndex.build(d, left, vs.get, index_type="flat")
    q = _unit(20, d, seed=5)
    (s1, i1), (s2, i2) = grown.search(q, 10), rebuilt.search(q, 10)
    assert grown.ntotal == rebuilt.ntotal == len(left)
    assert np.array_equal(i1, i2) and np.allclose(s1, s2, atol=1e-6)
    assert not np.isin(i1, ids[::7]).any()


def test_interrupted_save_keeps_previous_generation(tmp_path, tiny_model):
    corpus = make_corpus(tmp_path / "docs")
    engine = Engine.open(tmp_path / "idx", create=True)
    engine.ingest([str(corpus)], model=str(tiny_model))
    before = db_state(tmp_path / "idx")
    # a half-written temp file from a crashed save, and a newer file never named in the database
    gens = tmp_path / "idx" / "generations"
    (gens / "gen-00000002.faiss.tmp999").write_bytes(b"partial")
    (gens / "gen-00000002.faiss").write_bytes(b"garbage never committed")
    fresh = Engine.open(tmp_path / "idx")
    hits = fresh.search("llama", k=3)
    assert len(hits) == 3 and db_state(tmp_path / "idx") == before
    # the next ingest overwrites the uncommitted file and cleans the temp file
    (corpus / "more.md").write_text("# More\n\nnew words")
    fresh.ingest([str(corpus)])
    assert not list(gens.glob("*.tmp*"))
    assert db_state(tmp_path / "idx")["generation"] == 2


def test_flat_grows_into_ivfpq_and_ids_survive_deletes(tmp_path, tiny_model):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(60):
        (docs / f"d{i}.md").write_text("\n\n".join(f"# Doc {i} part {j}\n\nfact {i}-{j} about item {i * 97 + j}"
                                                   for j in range(50)))
    engine = Engine.open(tmp_path / "idx", create=True)
    r = engine.ingest([str(docs)], model=str(tiny_model))
    assert r.index_type == "flat" and r.chunks_total == 3000
    r = engine.reindex(index_type="ivfpq")
    assert r.index_type == "ivfpq"
    b = engine.bench(100)
    assert b["index_type"] == "ivfpq" and b["recall@10"] >= 0.95
    os.remove(docs / "d0.md")
    r = engine.ingest([str(docs)])
    state = db_state(tmp_path / "idx")
    assert r.index_type == "ivfpq" and len(state["chunk_ids"]) == 2950
    assert np.array_equal(faiss_ids(tmp_path / "idx", state["generation"]), np.array(state["chunk_ids"]))
    hit = engine.search("fact 7-3 about item 682", k=1, mode="bm25")[0]
    assert hit.path.endswith("d7.md") and "7-3" in hit.text
    assert engine.status()["index_type"] == "ivfpq"
    # a search that outlived the compaction grace period: its best candidate's vector was compacted away since.
    # It is answered without that chunk instead of failing.
    dense = engine.search("fact 7-3 about item 682", k=5)
    writer = VectorStore(tmp_path / "idx" / "vectors", engine.searcher.vectors.dim, writer=True)
    writer.compact(np.setdiff1d(np.array(state["chunk_ids"]), [dense[0].chunk_id]))
    again = engine.search("fact 7-3 about item 682", k=5)
    assert [r.chunk_id for r in again[:4]] == [r.chunk_id for r in dense[1:]]


def test_migrations_run_from_an_installed_wheel(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp_path / "dist"), str(repo)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    [wheel] = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "llara_search/_migrations/env.py" in names
    assert any(n.startswith("llara_search/_migrations/versions/0001") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import llara_search, sys; assert llara_search.__file__.startswith(sys.argv[1]); "
            "from llara_search.store import Store; s = Store('sqlite:///' + sys.argv[2]); print('ok')")
    env = {**os.environ, "PYTHONPATH": str(site)}
    r = subprocess.run([sys.executable, "-c", code, str(site), str(tmp_path / "m.sqlite")], capture_output=True,
                       text=True, cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
    con = sqlite3.connect(tmp_path / "m.sqlite")
    assert con.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0008"
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_and_unusable_database_are_refused(tmp_path, tiny_model):
    corpus = make_corpus(tmp_path / "docs")
    Engine.open(tmp_path / "idx", create=True).ingest([str(corpus)], model=str(tiny_model))
    con = sqlite3.connect(tmp_path / "idx" / "meta.sqlite")
    con.execute("UPDATE alembic_version SET version_num = '9999'")
    con.commit()
    con.close()
    with pytest.raises(EngineError, match="newer llara-search"):
        Engine.open(tmp_path / "idx")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "meta.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(EngineError, match="cannot open the database"):
        Engine.open(tmp_path / "broken")
    with pytest.raises(EngineError, match="cannot open the database"):
        Engine.open(tmp_path / "idx2", create=True, db_url="postgresql+psycopg://nobody@127.0.0.1:1/none")


def test_rerank_depth_is_tuned_when_probing_every_list_is_not_enough():
    """A short code blurs neighbours: probing all lists cannot reach the recall target, re-ranking deeper does."""
    x = _unit(6000, 64, seed=3)
    ids = np.arange(1, 6001)
    ann = AnnIndex.build(64, ids, lambda i: x[np.asarray(i) - 1], factory="IVF16,PQ32x4")
    assert ann.plan.rerank == 20 and ann.plan.nprobe == 16  # every list, and twice the default depth
    q = _unit(200, 64, seed=9)
    truth = np.argsort(-(q @ x.T), axis=1)[:, :10] + 1

    def recall(depth: int) -> float:
        _, cand = ann.search(q, depth)
        return float(np.mean([len(set(t) & set(c)) / 10 for t, c in zip(truth, cand)]))

    assert recall(20 * 10) >= 0.98 and recall(20 * 10) > recall(10 * 10) + 0.015
