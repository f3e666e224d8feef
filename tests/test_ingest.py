"""Ingestion on real files: every format, incremental sync, deletes, crash + resume, locking, bad input."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import db_state, faiss_ids, make_corpus, make_pdf
from llara_search.engine import Engine, EngineError
from llara_search.layout import IndexLockedError, WriteLock


@pytest.fixture
def corpus(tmp_path) -> Path:
    return make_corpus(tmp_path / "docs")


def ingest(index: Path, paths, model=None, **kw):
    engine = Engine.open(index, create=True)
    return engine, engine.ingest([str(p) for p in paths], model=str(model) if model else None, **kw)


def test_every_format_is_parsed_with_provenance(tmp_path, corpus, tiny_model):
    engine, r = ingest(tmp_path / "idx", [corpus], tiny_model)
    assert r.files_failed == []
    assert r.files_new == 10 and r.files_skipped == 2  # logo.png and the hidden folder skipped, and said
    assert sorted(s["kind"] for s in r.skipped) == ["binary", "hidden"]  # logo.png: a binary type by its name
    assert r.chunks_total == r.chunks_encoded == r.chunks_added > 0
    care = engine.search("llama shelter hay", k=50, mode="bm25")[0]
    assert care.path.endswith("handbook.md")
    assert care.heading == "Llama Handbook > Care" and care.start_line == 7
    assert "not a heading inside code" in care.text
    pdf = engine.search("troubleshooting", k=5, mode="bm25")[0]
    assert pdf.path.endswith("manual.pdf") and pdf.page == 2 and pdf.start_line is None
    port = engine.search("listening port", k=5, mode="bm25")[0]
    assert port.path.endswith("config.rst") and port.heading == "Configuration > Ports"
    assert engine.search("hybrid search documents", k=3, mode="bm25")[0].path.endswith("release.docx")
    assert engine.search("gradients", k=3, mode="bm25")[0].heading == "Notebook Title"
    html = engine.search("slow clients", k=3, mode="bm25")[0]
    assert html.heading == "Proxy Guide > Timeouts" and "var x" not in html.text
    assert engine.search("koalas", k=3, mode="bm25")[0].path.endswith("utf16.txt")
    assert engine.search("readme layout", k=3, mode="bm25")[0].path.endswith("README")
    assert not engine.search("secret hidden", k=3, mode="bm25")


def test_incremental_sync_edit_delete_and_bm25_sees_new_text(tmp_path, corpus, tiny_model):
    index = tmp_path / "idx"
    engine, first = ingest(index, [corpus], tiny_model)
    again = engine.ingest([str(corpus)])
    assert again.chunks_encoded == 0 and again.files_unchanged == first.files_new
    assert again.generation == first.generation  # nothing changed: no new generation
    before = db_state(index)

    (corpus / "notes.txt").write_text("Plain notes.\n\nThe backup runs nightly at two.\n\nZebras graze quietly.\n")
    os.remove(corpus / "config.rst")
    r = engine.ingest([str(corpus)])
    assert r.files_changed == 1 and r.files_removed == 1
    notes_chunks = len(engine.search("zebras", k=5, mode="bm25")[0].text.split("\n\n"))
    assert r.chunks_encoded == 1 and notes_chunks >= 1  # only the edited file's new chunk was encoded
    assert r.chunks_removed >= 2  # the old notes chunk and the rst chunks
    assert engine.search("zebras graze", k=3, mode="bm25")[0].path.endswith("notes.txt")
    assert not any(h.path.endswith("config.rst") for h in engine.search("listening port server", k=50, mode="bm25"))
    after = db_state(index)
    assert after["generation"] == before["generation"] + 1
    # one id everywhere: live rows == the generation's lexical index == FAISS ids
    assert np.array_equal(faiss_ids(index, after["generation"]), np.array(after["chunk_ids"]))
    assert after["lexical"] == after["chunk_ids"] and before["lexical"] == before["chunk_ids"]
    unchanged = set(before["chunk_ids"]) & set(after["chunk_ids"])
    assert len(unchanged) == len(after["chunk_ids"]) - 1  # every surviving chunk kept its id and vector
    assert not engine.search("backup runs nightly two", k=50, mode="bm25")[0].text.endswith("two.")  # old chunk gone
    # the incrementally synced index holds exactly the chunks a fresh ingest of the same files has
    _, fresh = ingest(tmp_path / "fresh", [corpus], tiny_model)
    assert db_state(tmp_path / "fresh")["hashes"] == after["hashes"] and fresh.chunks_total == r.chunks_total


def test_touch_without_change_is_not_reencoded(tmp_path, corpus, tiny_model):
    engine, _ = ingest(tmp_path / "idx", [corpus], tiny_model)
    os.utime(corpus / "handbook.md", (time.time() + 100, time.time() + 100))
    r = engine.ingest([str(corpus)])
    assert r.chunks_encoded == 0 and r.files_unchanged == 10


def test_files_read_by_older_parsers_are_parsed_again_and_only_changed_passages_encoded(tmp_path, corpus,
                                                                                           tiny_model):
    from sqlalchemy import select, update

    from llara_search.ingest.parsers import PARSER_VERSION
    from llara_search.store import Chunk, Document

    engine, first = ingest(tmp_path / "idx", [corpus], tiny_model)
    md = str(corpus / "handbook.md")
    with engine.store.session() as s:  # as an older llara-search left it: no parser version, and one chunk
        s.execute(update(Document).values(parser_version=None))  # whose text a worse parser had made
        doc_id = s.scalar(select(Document.id).where(Document.path == md))
        stale = s.scalars(select(Chunk).where(Chunk.document_id == doc_id).order_by(Chunk.ordinal)).first()
        clean_text, stale_id = stale.text, stale.id
        stale.text, stale.content_hash = "<!-- markup an old parser kept --> " + stale.text, "0" * 64
    r = engine.ingest([str(corpus)])
    assert r.files_reparsed == first.files_new == r.files_changed and r.files_unchanged == 0
    assert r.chunks_encoded == 1  # the one passage whose text changed; every other one kept its vector
    texts = [h.text for h in engine.search("markup an old parser kept", k=50, mode="bm25")]
    assert not any("markup an old parser kept" in t for t in texts)
    with engine.store.sessions() as s:
        assert set(s.scalars(select(Document.parser_version))) == {PARSER_VERSION}
        row = s.scalars(select(Chunk).where(Chunk.document_id == doc_id, Chunk.removed_gen.is_(None))
                        .order_by(Chunk.ordinal)).first()
        assert row.text == clean_text and row.id != stale_id
    again = engine.ingest([str(corpus)])
    assert again.files_reparsed == 0 and again.files_unchanged == first.files_new and again.chunks_encoded == 0


def test_no_delete_and_explicit_delete(tmp_path, corpus, tiny_model):
    from llara_search.ingest.pipeline import IngestOptions

    engine, _ = ingest(tmp_path / "idx", [corpus], tiny_model)
    os.remove(corpus / "notes.txt")
    r = engine.ingest([str(corpus)], options=IngestOptions(delete_missing=False))
    assert r.files_removed == 0 and engine.search("backup nightly", k=3, mode="bm25")
    d = engine.delete([str(corpus / "notes.txt")])
    assert d.files_removed == 1 and not engine.search("backup nightly", k=3, mode="bm25")
    d = engine.delete([str(corpus / "sub")])
    assert d.files_removed == 1 and not engine.search("nested vectors", k=3, mode="bm25")


def test_bad_inputs_are_reported_and_the_rest_ingested(tmp_path, corpus, tiny_model):
    bad = corpus / "bad dir ü"
    bad.mkdir()
    (bad / "empty.md").write_bytes(b"")
    (bad / "binary.md").write_bytes(os.urandom(2000) + b"\x00" * 10)
    (bad / "broken.ipynb").write_text("{not json")
    (bad / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj garbage\n%%EOF")
    make_pdf(bad / "locked.pdf", ["secret"], encrypt="pw")
    (bad / "bad-utf16.txt").write_bytes(b"\xff\xfe" + b"\x00\xd8")  # BOM, then a lone surrogate
    (bad / "huge.txt").write_bytes(b"x" * (2 * 2**20))
    with open(bad / "one-line-50mb.json", "wb") as fh:  # a minified dump: one 50 MB line
        fh.write(b'{"k": "' + b"abc " * (50 * 2**18) + b'"}')
    os.symlink(bad, bad / "loop")
    os.mkfifo(bad / "pipe.md")  # reading it would block forever
    (bad / "random-bytes.md").write_bytes(bytes(x for x in os.urandom(4000) if x))  # no NUL, not any encoding
    (bad / "fine ü.md").write_text("# Fine\n\nUnicode path with spaces works.")
    (bad / "latin1.txt").write_bytes("Le café est prêt, dit la naïve serveuse.\n".encode("latin-1"))
    (bad / "long-line.txt").write_text(" ".join(f"word{i} alpaca" for i in range(12_000)))  # one 170 kB line
    deep = bad.joinpath(*[f"level{i}" for i in range(64)])
    deep.mkdir(parents=True)
    (deep / "bottom.md").write_text("# Bottom\n\nThe deepest page mentions a narwhal.")
    doomed = corpus / "zz-deleted-while-ingesting.md"
    doomed.write_text("# Doomed\n\nThis file vanishes after the walk.")
    from llara_search.ingest.pipeline import IngestOptions

    def delete_during_ingest(stage, done, total):
        if stage == "parse" and done == 1 and doomed.exists():
            doomed.unlink()

    engine = Engine.open(tmp_path / "idx", create=True)
    r = engine.ingest([str(corpus)], model=str(tiny_model), options=IngestOptions(max_file_mb=1),
                      progress=delete_during_ingest)
    reasons = {Path(f["path"]).name: f["error"] for f in r.files_failed}
    skipped = {Path(f["path"]).name: (f["reason"], f["kind"]) for f in r.skipped}
    assert skipped["empty.md"] == ("empty file", "empty")
    assert skipped["binary.md"] == ("binary data, not text", "binary")
    assert reasons["broken.ipynb"].startswith("broken notebook JSON")
    assert reasons["corrupt.pdf"].startswith("corrupt PDF")
    assert reasons["locked.pdf"].startswith("encrypted PDF")
    assert reasons["bad-utf16.txt"].startswith("invalid UTF-16")
    assert skipped["huge.txt"][0].startswith("file too large") and skipped["huge.txt"][1] == "too-large"
    assert skipped["one-line-50mb.json"][0].startswith("file too large (50.0 MB")
    assert skipped["loop"][1] == "symlink-loop"
    assert skipped["pipe.md"] == ("not a regular file (named pipe)", "special-file")
    assert reasons["zz-deleted-while-ingesting.md"] == "file disappeared while ingesting"
    assert all("\n" not in e for e in reasons.values())
    assert len(reasons) == 5
    # random bytes without NUL: read as a legacy code page, with a warning that it is a guess
    assert any(w["path"].endswith("random-bytes.md") for w in r.warnings)
    assert r.files_seen == r.files_new + r.files_unchanged + r.files_skipped + len(r.files_failed)
    assert r.files_new == 15  # the 10 good files, "fine ü.md", latin1.txt, long-line.txt, bottom.md, random-bytes
    assert engine.search("unicode path spaces", k=1, mode="bm25")[0].path.endswith("fine ü.md")
    assert "naïve" in engine.search("café naïve", k=1, mode="bm25")[0].text  # Windows-1252, decoded right
    assert engine.search("narwhal", k=1, mode="bm25")[0].path.endswith("level63/bottom.md")
    long_chunks = [h for h in engine.search("alpaca word11999", k=1000, mode="bm25") if h.path.endswith("long-line.txt")]
    assert len(long_chunks) > 20 and "word11999" in long_chunks[0].text
    n_tokens = sqlite3.connect(tmp_path / "idx" / "meta.sqlite").execute("SELECT max(n_tokens) FROM chunks").fetchone()
    assert n_tokens[0] <= 256  # the 170 kB line was cut at token boundaries, within the budget


def test_missing_path_and_wrong_model_are_errors_before_work(tmp_path, corpus, tiny_model, other_tiny_model):
    engine, _ = ingest(tmp_path / "idx", [corpus], tiny_model)
    state = db_state(tmp_path / "idx")
    with pytest.raises(EngineError, match="no such file or folder"):
        engine.ingest([str(tmp_path / "nope")])
    with pytest.raises(EngineError, match=r"built with model .* not .*new --index"):
        Engine.open(tmp_path / "idx", model=str(other_tiny_model))
    assert db_state(tmp_path / "idx") == state


def test_second_writer_gets_locked_by_pid(tmp_path, corpus, tiny_model):
    engine, _ = ingest(tmp_path / "idx", [corpus], tiny_model)
    with WriteLock(tmp_path / "idx" / ".lock"):
        with pytest.raises(IndexLockedError, match=f"locked by PID {os.getpid()}"):
            engine.ingest([str(corpus)])


def test_corpus_copy_of_real_docs_folder(tmp_path, tiny_model):
    src = Path(__file__).resolve().parents[2] / "shared" / "data" / "docs-haproxy" / "doc"
    if not src.is_dir():
        pytest.skip("../shared/data/docs-haproxy is not present")
    docs = tmp_path / "doc"
    shutil.copytree(src, docs, ignore=shutil.ignore_patterns("configuration.txt", "*.pdf"))
    engine, r = ingest(tmp_path / "idx", [docs], tiny_model)
    assert r.files_new > 20 and r.chunks_total > 500
    assert engine.ingest([str(docs)]).chunks_encoded == 0


def test_encoding_ahead_writes_what_a_sequential_ingest_writes(tmp_path, tiny_model):
    """A batch encoded beside the parsing of the next (ingest/ahead.py) leaves the rows, ids and vectors a
    sequential ingest leaves: with small batches, an id repeated while its first version is being encoded, and a
    record with a lone surrogate (replaced, said in a warning, never a failed run)."""
    import numpy as np
    from sqlalchemy import text as sql

    from llara_search.ingest.report import IngestOptions

    recs = [(f"d{i}", f"T{i}", f"passage {i} about herons and egrets. " * 6) for i in range(50)]
    recs.insert(25, ("d3", "T3 again", "the third passage, changed while the first was encoded"))
    recs.insert(35, ("odd", "Odd", "broken \ud800 text about herons"))
    got = {}
    for ahead in (True, False):
        engine = Engine.open(tmp_path / f"idx-{ahead}", create=True)
        report = engine.ingest_records(recs, "beir", model=str(tiny_model),
                                       options=IngestOptions(commit_chunks=8, encode_ahead=ahead))
        with engine.store.sessions() as s:
            rows = s.execute(sql("SELECT c.id, d.doc_key, c.text FROM chunks c JOIN documents d ON d.id = "
                                 "c.document_id WHERE c.removed_gen IS NULL ORDER BY c.id")).all()
        ids = [r[0] for r in rows]
        got[ahead] = (rows, engine.searcher.vectors.get(ids), report)
    (rows_a, vecs_a, rep_a), (rows_s, vecs_s, rep_s) = got[True], got[False]
    assert rows_a == rows_s and np.array_equal(vecs_a, vecs_s)
    assert not rep_a.files_failed and rep_a.chunks_encoded == rep_s.chunks_encoded
    assert any(r[1] == "d3" and "changed" in r[2] for r in rows_a)
    assert any(r[1] == "odd" and "\ufffd" in r[2] for r in rows_a)
    assert {"path": "beir:odd", "warning": "lone surrogates replaced by U+FFFD"} in rep_a.warnings
    assert "encode_wait" in rep_a.stages and "encode_wait" not in rep_s.stages


def test_a_run_that_fails_with_a_batch_encoding_ahead_ends_cleanly(tmp_path, tiny_model):
    """The failing run waits for the encoder thread and drops its batch: a Python error and exit status 1, never the
    C++ abort of a process ending under a running torch op."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        from llara_search.engine import Engine
        from llara_search.ingest.report import IngestOptions

        def records():
            for i in range(400):
                if i == 256:  # just after the fourth batch of 64 went to the encoder
                    raise RuntimeError("the corpus file is truncated")
                yield f"d{{i}}", "T", "a passage about herons and egrets " * 30

        Engine.open({str(tmp_path / 'idx')!r}, create=True).ingest_records(
            records(), "beir", model={str(tiny_model)!r}, options=IngestOptions(commit_chunks=64, encode_ahead=True))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "the corpus file is truncated" in r.stderr, (r.returncode, r.stderr[-2000:])
    assert "terminate called" not in r.stderr
