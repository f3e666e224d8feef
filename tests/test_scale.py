"""Corpus scale (issue #29): the bulk write path costs a few statements per batch, not per row, on SQLite and on
PostgreSQL (COPY), with the same generation semantics; the lexical index is built and merged in segments of a
bounded size, which rank exactly as one segment would."""

from __future__ import annotations

import os
import random
from contextlib import contextmanager

import pytest
from sqlalchemy import text

from helpers import sqlite_plans, statements_sent
from llara_search.engine import Engine
from llara_search.lexical import index as lexical_index
from llara_search.lexical import segment as lexical_segment
from llara_search.lexical.snapshot import SegmentView, Snapshot
from llara_search.testing import scratch_pg_database

PG_ENV = "LLARA_SEARCH_TEST_PG"
WORDS = ("protein cell cancer gene expression patients study risk mice tumor dose trial cohort receptor kinase "
         "binding pathway mutation signal therapy").split()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request):
    if request.param == "sqlite":
        yield None
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"set {PG_ENV}=postgresql+psycopg://USER@HOST:PORT/DB to run against PostgreSQL")
    with scratch_pg_database(base, "llara_scale") as url:
        yield url


def records(n: int, seed: int = 0, start: int = 0) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    return [(f"d{i}", f"Title {i}", " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))) + f" uniq{i}")
            for i in range(start, start + n)]


def _ids_by_doc(engine: Engine) -> dict[str, list[int]]:
    with engine.store.sessions() as s:
        rows = s.execute(text("SELECT d.doc_key, c.id FROM chunks c JOIN documents d ON d.id = c.document_id "
                              "WHERE c.removed_gen IS NULL ORDER BY c.id")).all()
    out: dict[str, list[int]] = {}
    for key, i in rows:
        out.setdefault(key, []).append(i)
    return out


def test_bulk_ingest_costs_statements_per_batch_not_per_row_and_keeps_generations(tmp_path, db_url):
    corpus = records(2000)
    eng = Engine.open(tmp_path / "ix", db_url=db_url, create=True)
    with statements_sent(eng) as stmts:
        rep = eng.ingest_records(iter(corpus), "beir:t", model="none")
    assert rep.files_new == 2000 and rep.chunks_total == rep.chunks_added >= 2000
    # the per-row path sent three queries and a flush per document (over 6,000 here)
    assert len(stmts) < 200, len(stmts)
    first = _ids_by_doc(eng)
    assert eng.search("uniq1234", k=1, mode="bm25")[0].doc_key == "d1234"

    with statements_sent(eng) as stmts:
        again = eng.ingest_records(iter(corpus), "beir:t", model="none")
    assert again.files_unchanged == 2000 and again.chunks_added == 0 and again.generation == rep.generation
    assert len(stmts) < 60, len(stmts)

    # 10 changed, 5 gone, 3 new: the unchanged keep their rows, the generation moves by one
    changed = {f"d{i}" for i in range(10)}
    gone = {f"d{i}" for i in range(10, 15)}
    nxt = [(k, t, body + " revised" if k in changed else body) for k, t, body in corpus if k not in gone]
    nxt += records(3, seed=1, start=5000)
    rep2 = eng.ingest_records(iter(nxt), "beir:t", model="none")
    assert rep2.generation == rep.generation + 1
    assert (rep2.files_new, rep2.files_changed, rep2.files_removed, rep2.files_unchanged) == (3, 10, 5, 1985)
    after = _ids_by_doc(eng)
    assert set(after) == {k for k, _, _ in nxt}
    assert all(after[k] == first[k] for k in after if k not in changed and k in first)
    assert eng.search("uniq5001", k=1, mode="bm25")[0].doc_key == "d5001"
    assert eng.search("uniq12", k=1, mode="bm25") == []  # removed
    st = eng.status()
    assert (st["documents"], st["chunks_total"]) == (len(nxt), sum(map(len, after.values())))
    assert eng.doctor()["ok"]
    eng.close()


def test_a_record_id_repeated_in_one_stream_leaves_one_document_with_the_last_text(tmp_path):
    corpus = [("a", "", "first version alpha"), ("b", "", "other words"), ("a", "", "second version omega")]
    eng = Engine.open(tmp_path / "ix", create=True)
    rep = eng.ingest_records(iter(corpus), "beir:t", model="none")
    assert rep.documents == 2
    assert [h.doc_key for h in eng.search("omega", k=5, mode="bm25")] == ["a"]
    assert eng.search("alpha", k=5, mode="bm25") == []
    assert eng.doctor()["ok"]
    eng.close()


def test_lexical_segments_stay_within_their_cap_and_rank_exactly_as_one(tmp_path, monkeypatch):
    monkeypatch.setattr(lexical_segment, "MAX_SEGMENT_DOCS", 16)
    monkeypatch.setattr(lexical_index, "MAX_SEGMENT_DOCS", 16)
    monkeypatch.setattr(lexical_segment, "BUILD_BATCH", 5)
    corpus = records(120, seed=3)
    eng = Engine.open(tmp_path / "ix", create=True)
    eng.ingest_records(iter(corpus), "beir:t", model="none")
    keep = [r for r in corpus if int(r[0][1:]) % 4]  # a quarter gone: segments lose chunks, then compact
    eng.ingest_records(iter(keep), "beir:t", model="none")
    for step in ("ingested", "compacted"):
        gen = eng.store.current_generation().id
        entries = lexical_index.LexicalIndex(eng.paths.lexical)._load(gen)
        assert len(entries) >= 120 * 3 // 4 // 16
        assert all(seg.n_docs - (0 if d is None else int(d.sum())) <= 16 for seg, d in entries)
        one = Snapshot(gen, [SegmentView(lexical_segment.build_segment(eng.store.visible_chunk_texts(gen)), None)])
        for q in ("protein kinase", "tumor dose therapy", "cohort", "uniq7 mice"):
            got = eng.search(q, k=10, mode="bm25", collapse=False)
            want = one.search(q, 10)
            assert [h.chunk_id for h in got] == [i for i, _ in want], (step, q)
            assert [h.score for h in got] == pytest.approx([s for _, s in want], rel=1e-5), (step, q)
        if step == "ingested":
            eng.compact(grace_s=0)
            eng.close()
            eng = Engine.open(tmp_path / "ix")
    assert eng.doctor()["ok"]
    eng.close()


def test_touched_files_have_their_new_mtime_recorded_in_one_statement_per_batch(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(30):
        (docs / f"f{i}.md").write_text(f"# Page {i}\n\nwords about topic{i}\n")
    eng = Engine.open(tmp_path / "ix", create=True)
    eng.ingest([str(docs)], model="none")
    for i in range(30):
        os.utime(docs / f"f{i}.md", ns=(10**18 + i, 10**18 + i))
    with statements_sent(eng) as stmts:
        rep = eng.ingest([str(docs)])
    assert rep.files_unchanged == 30 and rep.chunks_added == 0
    assert sum(s.lstrip().startswith("UPDATE documents") for s, _, _ in stmts) == 1
    with eng.store.sessions() as s:
        got = dict(s.execute(text("SELECT path, mtime_ns FROM documents")).all())
    assert got == {str(docs / f"f{i}.md"): 10**18 + i for i in range(30)}
    eng.close()


def test_status_counts_read_the_generation_index_not_the_rows(tmp_path):
    from sqlalchemy import func, select

    from llara_search.store import Chunk, Document
    from llara_search.store.store import visible

    eng = Engine.open(tmp_path / "ix", create=True)
    eng.ingest_records(iter(records(50)), "beir:t", model="none")
    with eng.store.engine.connect() as conn:
        for model in (Chunk, Document):
            stmt = select(func.count()).select_from(model).where(visible(model, 1))
            sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
            plan = " ".join(str(r) for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
            assert "COVERING INDEX" in plan, plan  # a million rows' texts are never read to count them
    assert eng.status()["chunks_total"] == eng.store.counts(1)["chunks_total"] > 0
    eng.close()


def test_delete_and_change_lookups_use_the_document_index_on_sqlite(tmp_path):
    """The statements `delete` and a changed document send find chunks through `ix_chunks_document`, never by
    scanning every live row through the `removed_gen` index (SQLite's choice for `removed_gen IS NULL` beside an
    IN list, which made a 100,000-document delete take 117 s at a million chunks)."""
    engine = Engine.open(tmp_path / "idx", create=True)
    engine.ingest_records(records(300), "beir", model="none")
    with statements_sent(engine) as sent:
        engine.ingest_records(records(300, seed=1), "beir", model="none")  # every text changed: plan() looks up
        engine.delete(["beir:d1", "beir:d2", "beir:d3"])
    captured = [(s, p) for s, p, many in sent if not many and "chunks.document_id IN" in s]
    assert captured
    for (statement, _), plan in zip(captured, sqlite_plans(engine, captured)):
        assert "removed_gen" not in plan and "ix_chunks_document" in plan, (statement[:120], plan)


def test_a_refused_row_fails_its_record_alone_with_and_without_encoding_ahead(db_url, tmp_path, tiny_model):
    """PostgreSQL refuses a NUL byte in text (SQLite stores it). The record holding one fails alone, even in the
    run's last batch and through the COPY path, and the counts of the batches written before it are kept, whether
    they were encoded ahead or in turn."""
    from llara_search.ingest.report import IngestOptions

    recs = [(f"d{i}", f"T{i}", f"passage {i} about herons and egrets. " * 6) for i in range(40)]
    recs.insert(12, ("nul-early", "N", "a nul \x00 byte about herons"))
    recs.append(("nul-last", "N", "another nul \x00 byte about egrets"))
    got = []
    for ahead in (True, False):
        with (scratch_pg_database(db_url, "llara_nul") if db_url else _nothing()) as url:  # a database each
            engine = Engine.open(tmp_path / f"idx-{ahead}", db_url=url, create=True)
            r = engine.ingest_records(recs, "beir", model=str(tiny_model),
                                      options=IngestOptions(commit_chunks=8, encode_ahead=ahead))
            got.append((r.files_new, r.chunks_added, r.documents, sorted(f["path"] for f in r.files_failed)))
            engine.close()
    refused = ["beir:nul-early", "beir:nul-last"] if db_url else []
    assert got[0] == got[1] == (42 - len(refused), 42 - len(refused), 42 - len(refused), refused)


@contextmanager
def _nothing():
    yield None
