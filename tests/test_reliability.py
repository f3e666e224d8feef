"""Reliability: doctor and repair, kill -9 at every crash point, concurrent readers and writers, wrong use.

Every test works on real files, a real SQLite database, real FAISS files and real processes; damage is done to
the files themselves (bytes overwritten, rows deleted behind our back), the way disks and people do it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import db_state, faiss_ids, make_corpus, serve_in_thread
from llara_search.cli import app
from llara_search.engine import Engine
from llara_search.testing import shared_tokenizer_dir

runner = CliRunner()


def _cli(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "llara_search", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, **kw)


def _doctor(index: Path, *extra: str) -> tuple[int, dict]:
    r = runner.invoke(app, ["doctor", "--index", str(index), "--json", *extra])
    return r.exit_code, json.loads(r.stdout)


def _vectors_by_hash(index: Path) -> dict[str, np.ndarray]:
    engine = Engine.open(index)
    gen = db_state(index)["generation"]
    con = sqlite3.connect(index / "meta.sqlite")
    rows = con.execute("SELECT content_hash, id FROM chunks WHERE added_gen <= ? AND (removed_gen IS NULL OR "
                       "removed_gen > ?)", (gen, gen)).fetchall()
    con.close()
    vs = engine.searcher.vectors
    return {h: vs.get(np.array([i]))[0] for h, i in rows}


def _write_pages(corpus: Path, pages: range, version: str) -> None:
    for i in pages:
        (corpus / f"page{i}.md").write_text(f"# Page {i}\n\n" + "\n\n".join(
            f"Paragraph {j} of page {i} ({version}) talks about topic {i * 31 + j}." for j in range(60)))


# ------------------------------------------------------------------------------------------------ doctor
@pytest.fixture
def small_index(tmp_path, tiny_model):
    corpus = make_corpus(tmp_path / "docs")
    index = tmp_path / "idx"
    r = runner.invoke(app, ["ingest", str(corpus), "--index", str(index), "--model", str(tiny_model), "--json"])
    assert r.exit_code == 0, r.output
    return corpus, index


def test_doctor_is_ok_on_a_healthy_index(small_index):
    _, index = small_index
    code, r = _doctor(index)
    assert code == 0 and r["ok"] and r["problems"] == [] and r["warnings"] == []
    assert r["checked"]["chunks"] == r["checked"]["index_ntotal"] > 0 and r["checked"]["lexical"] == "ok"
    assert r["checked"]["schema"] == "0008" and r["checked"]["database"] == "ok"


def test_doctor_finds_damage_and_repair_rebuilds_and_quarantines(small_index):
    corpus, index = small_index
    before = db_state(index)
    vectors_before = _vectors_by_hash(index)
    gen_file = index / "generations" / f"gen-{before['generation']:08d}.faiss"
    # damage four places at once: lexical postings overwritten, index file overwritten, one vector NaN, a stray
    # temp file
    [segment] = (index / "lexical").glob("seg-*.lexs")
    raw = bytearray(segment.read_bytes())
    raw[-200:-100] = bytes(100)  # inside the postings: header and size still look fine
    segment.write_bytes(bytes(raw))
    con = sqlite3.connect(index / "meta.sqlite")
    broken_id, broken_text = con.execute("SELECT id, text FROM chunks ORDER BY id DESC LIMIT 1").fetchone()
    con.close()
    gen_file.write_bytes(b"garbage" * 10)
    (index / "generations" / "gen-00000099.faiss.tmp4242").write_bytes(b"half a file")
    vs = Engine.open(index).searcher.vectors
    row = int(vs.positions(np.array([broken_id]))[0])
    data = np.memmap(vs.data_path, dtype=np.float16, mode="r+")
    data[row * vs.dim:(row + 1) * vs.dim] = np.nan
    data.flush()
    del data

    code, r = _doctor(index)
    assert code == 1 and not r["ok"]
    checks = {p["check"]: p for p in r["problems"]}
    assert set(checks) == {"lexical", "index", "vectors"}
    assert "damaged" in checks["lexical"]["detail"] and "cannot be read" in checks["index"]["detail"]
    assert "1 a broken one" in checks["vectors"]["detail"]
    assert any("gen-00000099.faiss.tmp4242" in w["detail"] for w in r["warnings"])
    # a dense query says what is wrong in one line; BM25 does not need the damaged index file, and searches a copy
    # of the damaged lexical index rebuilt in memory from the rows
    q = runner.invoke(app, ["query", "llama", "--index", str(index)])
    assert q.exit_code == 1 and "doctor --repair" in q.stderr and q.stderr.strip().count("\n") == 0
    q = runner.invoke(app, ["query", "listening port", "--index", str(index), "--mode", "bm25", "--json"])
    assert q.exit_code == 0 and json.loads(q.stdout)["results"][0]["path"].endswith("config.rst")

    code, r = _doctor(index, "--repair")
    assert code == 0 and r["ok"] and r["warnings"] == [], r
    assert len(r["repaired"]) == 3 and r["generation"] == before["generation"] + 1
    qdir = next((index / "quarantine").iterdir())
    assert sorted(p.name for p in qdir.iterdir()) == ["chunks.jsonl", gen_file.name, "gen-00000099.faiss.tmp4242",
                                                     "manifest.json"]
    assert (qdir / gen_file.name).read_bytes() == b"garbage" * 10  # kept, never deleted
    quarantined = [json.loads(x) for x in (qdir / "chunks.jsonl").read_text().splitlines()]
    assert [(c["chunk_id"], c["text"]) for c in quarantined] == [(broken_id, broken_text)]
    after = db_state(index)
    assert after["chunk_ids"] == [i for i in before["chunk_ids"] if i != broken_id] == after["lexical"]
    assert np.array_equal(faiss_ids(index, after["generation"]), np.array(after["chunk_ids"]))
    assert runner.invoke(app, ["query", "llama", "--index", str(index), "--json"]).exit_code == 0

    # the next ingest re-reads the quarantined chunk's document and encodes exactly what was missing
    r = runner.invoke(app, ["ingest", str(corpus), "--index", str(index), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["chunks_encoded"] == 1
    assert _doctor(index)[1]["ok"]
    assert sorted(db_state(index)["hashes"]) == sorted(before["hashes"])
    healed = _vectors_by_hash(index)
    assert max(float(np.abs(healed[h] - vectors_before[h]).max()) for h in healed) <= 1e-3


def test_doctor_reports_a_changed_model_and_does_not_touch_it(small_index, tmp_path):
    _, index = small_index
    con = sqlite3.connect(index / "meta.sqlite")
    model = json.loads(con.execute("SELECT value FROM index_info WHERE key='model'").fetchone()[0])
    con.close()
    weights = next(Path(model).glob("*.safetensors"))
    saved = weights.read_bytes()
    try:
        weights.write_bytes(saved[:-64] + bytes(64))  # someone changed the weights in place
        code, r = _doctor(index, "--repair")
        assert code == 1 and [p["check"] for p in r["problems"]] == ["fingerprint"]
        assert "reencode" in r["problems"][0]["detail"] and r["repaired"] == []
    finally:
        weights.write_bytes(saved)
    assert _doctor(index)[1]["ok"]


# ------------------------------------------------------------------------------------------------ crash suite
@pytest.fixture(scope="module")
def crash_setup(tmp_path_factory, tiny_model):
    """An index of corpus v1, and the reference: the same index brought to corpus v2 without interruption.

    v2 rewrites 12 pages, deletes one and adds two: about 420 chunks to encode, two committed batches of 256.
    """
    root = tmp_path_factory.mktemp("crash")
    corpus = make_corpus(root / "docs")
    _write_pages(corpus, range(16), "v1")
    base = root / "base"
    r = _cli("ingest", corpus, "--index", base, "--model", tiny_model, "--json", "--chunk-tokens", 32)
    assert r.returncode == 0, r.stderr
    _write_pages(corpus, range(12), "v2")
    os.remove(corpus / "page15.md")
    _write_pages(corpus, range(16, 18), "v2")
    reference = root / "reference"
    shutil.copytree(base, reference)
    ok = _cli("ingest", corpus, "--index", reference, "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["chunks_encoded"] > 256 + 64
    return corpus, base, reference, json.loads(ok.stdout)


# CI kills at the five points where a crash leaves the most half-done work behind; `python -m benchmarks.soak`
# kills at every point in llara_search.faults.POINTS (and at random moments) on a real docs folder.
@pytest.mark.parametrize("crash_at", ["vectors:2", "commit:2", "batch:1", "saved", "cleanup"])
def test_kill_minus_9_during_ingest_then_resume_equals_uninterrupted(tmp_path, crash_setup, crash_at):
    corpus, base, reference, ok = crash_setup
    index = tmp_path / "crashed"
    shutil.copytree(base, index)
    committed = db_state(index)
    r = _cli("ingest", corpus, "--index", index, "--json", env={"LLARA_SEARCH_CRASH_AT": crash_at})
    assert r.returncode == -signal.SIGKILL, (crash_at, r.returncode, r.stderr[-500:])
    # after the crash: readers still see exactly the last committed state, and doctor finds nothing broken
    code, doc = _doctor(index)
    assert code == 0 and doc["ok"], doc
    if crash_at != "cleanup":  # `cleanup` dies after its generation was committed
        assert db_state(index)["chunk_ids"] == committed["chunk_ids"]
        hits = Engine.open(index).search("topic 40", k=10, mode="bm25")
        assert {v for h in hits for v in ("(v1)", "(v2)") if v in h.text} == {"(v1)"}  # v2 is not committed
    resumed = _cli("ingest", corpus, "--index", index, "--json")
    assert resumed.returncode == 0, resumed.stderr
    encoded = json.loads(resumed.stdout)["chunks_encoded"]
    if crash_at in ("batch:1", "commit:2", "encode:2", "vectors:2"):
        assert 0 < encoded < ok["chunks_encoded"]  # the committed batches were kept, not encoded again
    a, b = db_state(reference), db_state(index)
    assert a["hashes"] == b["hashes"] and a["documents"] == b["documents"]
    assert np.array_equal(faiss_ids(index, b["generation"]), np.array(b["chunk_ids"]))
    code, doc = _doctor(index)
    assert code == 0 and doc["ok"] and doc["warnings"] == [], doc
    x, y = _vectors_by_hash(reference), _vectors_by_hash(index)
    assert max(float(np.abs(x[h] - y[h]).max()) for h in x) <= 1e-3


def test_kill_minus_9_during_reindex_keeps_the_previous_generation(tmp_path, crash_setup):
    _, _, reference, _ = crash_setup
    index = tmp_path / "idx"
    shutil.copytree(reference, index)
    before = db_state(index)
    r = _cli("reindex", "--index", index, env={"LLARA_SEARCH_CRASH_AT": "saved"})
    assert r.returncode == -signal.SIGKILL
    code, doc = _doctor(index)
    assert code == 0 and doc["generation"] == before["generation"]
    assert any(w["check"] == "files" for w in doc["warnings"])  # the renamed, never committed file
    r = _cli("reindex", "--index", index, "--json")
    assert r.returncode == 0, r.stderr
    code, doc = _doctor(index)
    assert code == 0 and doc["warnings"] == [] and doc["generation"] == before["generation"] + 1
    assert db_state(index)["chunk_ids"] == before["chunk_ids"]


# ------------------------------------------------------------------------------------------------ compaction
def _answers(index: Path) -> list:
    engine = Engine.open(index)
    try:
        return [[(r.chunk_id, r.score, r.text) for r in engine.search(q, k=5, mode=mode)]
                for q in ("topic 40", "paragraph of page 3", "farmer") for mode in ("dense", "hybrid")]
    finally:
        engine.close()


def _vector_rows(index: Path) -> int:
    return Engine.open(index).searcher.vectors.rows_on_disk()


def test_compact_frees_removed_chunks_and_answers_stay_the_same_even_after_a_kill(tmp_path, crash_setup):
    _, _, reference, _ = crash_setup  # v1 → v2: the rows v2 removed are still kept for readers of v1
    index = tmp_path / "idx"
    shutil.copytree(reference, index)
    answers, live = _answers(index), len(db_state(index)["chunk_ids"])
    assert _vector_rows(index) > live
    r = _cli("compact", "--index", index, "--grace-seconds", 3600, "--json")  # a search may still be on v1
    assert r.returncode == 0, r.stderr
    kept = json.loads(r.stdout)
    assert kept["kept_previous_generation"] and kept["chunk_rows_purged"] == 0 and kept["vector_rows_dropped"] == 0
    r = _cli("compact", "--index", index, "--grace-seconds", 0, "--json",
             env={"LLARA_SEARCH_CRASH_AT": "compact"})
    assert r.returncode == -signal.SIGKILL
    code, doc = _doctor(index)
    assert code == 0 and [w["check"] for w in doc["warnings"]] == ["files"]  # the new epoch, never switched to
    assert _answers(index) == answers
    r = _cli("compact", "--index", index, "--grace-seconds", 0, "--json")
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    assert done["vector_rows_dropped"] > 0  # the rows of removed chunks went before the kill, in their own commit
    assert len(Engine.open(index).store.chunk_ids()) == live
    assert done["bytes_after"]["vectors"] < done["bytes_before"]["vectors"] and done["bytes_freed"] > 0
    assert _vector_rows(index) == live
    assert _answers(index) == answers  # bit-equal scores: stored bytes were copied, not re-encoded
    code, doc = _doctor(index)
    assert code == 0 and doc["ok"] and doc["warnings"] == [] and doc["checked"]["unreferenced_vector_rows"] == 0


def test_vectors_compact_on_their_own_once_most_rows_are_dead(tmp_path, crash_setup):
    corpus, base, _, _ = crash_setup
    index = tmp_path / "idx"
    shutil.copytree(base, index)
    paths = [corpus / f"page{i}.md" for i in range(13)]  # the v1 pages: most of the chunks
    r = _cli("delete", *paths[:12], "--index", index, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["vector_rows_dropped"] == 0  # v1 readers may need them
    r = _cli("delete", paths[12], "--index", index, "--json")  # the next generation: no reader is on v1 now
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["vector_rows_dropped"] > 0
    assert (index / "vectors" / "CURRENT").read_text().strip() == "1"
    code, doc = _doctor(index)
    assert code == 0 and doc["ok"] and doc["warnings"] == [], doc
    assert Engine.open(index).search("topic 40", k=3)  # dense search on the compacted vectors


PROSE = [f"Section {i}. The quick brown fox number {i} jumps over the lazy dog near river {i % 7}, while the "
         f"farmer counts {i * 3} sheep and writes the tally in a ledger kept by the barn door." for i in range(24)]


def test_kill_minus_9_during_train_then_resume_equals_uninterrupted(tmp_path, tiny_model):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "prose.md").write_text("# Prose\n\n" + "\n\n".join(PROSE))
    args = ["train", "--corpus", corpus, "--base", tiny_model, "--max-steps", 4, "--batch-size", 2, "--lora-r", 4,
            "--lr", "1e-3", "--save-every", 2, "--json"]
    straight = _cli(*args, "--output", tmp_path / "a")
    assert straight.returncode == 0, straight.stderr
    r = _cli(*args, "--output", tmp_path / "b", env={"LLARA_SEARCH_CRASH_AT": "train-step:3"})
    assert r.returncode == -signal.SIGKILL
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["step-0000002"]
    resumed = _cli(*args, "--output", tmp_path / "b", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    card_a = json.loads((tmp_path / "a" / "training_card.json").read_text())
    card_b = json.loads((tmp_path / "b" / "training_card.json").read_text())
    assert card_b["resumed_from"].endswith("step-0000002") and card_b["steps"] == 4
    assert [h["total"] for h in card_a["history"]] == pytest.approx([h["total"] for h in card_b["history"]], rel=1e-5)
    from safetensors.numpy import load_file

    wa = load_file(tmp_path / "a" / "adapter_model.safetensors")
    wb = load_file(tmp_path / "b" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys() and all(np.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_unreadable_file_is_reported_and_the_rest_ingested(tmp_path, tiny_model):
    corpus = make_corpus(tmp_path / "docs")
    secret = corpus / "private.md"
    secret.write_text("# Private\n\nNobody may read this.")
    secret.chmod(0)
    prefix: list[str] = []
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that let it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        caps = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]
    r = subprocess.run([*prefix, sys.executable, "-m", "llara_search", "ingest", str(corpus), "--index",
                        str(tmp_path / "idx"), "--model", str(tiny_model), "--json"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 3, r.stderr  # a file failed; the rest is committed
    report = json.loads(r.stdout)
    assert report["files_failed"] == [{"path": str(secret), "error": "permission denied", "kind": "unreadable"}]
    assert report["files_new"] == 10


# ------------------------------------------------------------------------------------------------ concurrency
@pytest.fixture
def versioned(tmp_path, tiny_model):
    """24 pages that all say "old"; then rewritten to say "new" (about 300 chunks to re-encode)."""
    corpus = tmp_path / "docs"
    corpus.mkdir()

    def write(version: str) -> None:
        for i in range(24):
            (corpus / f"p{i}.md").write_text(f"# Page {i}\n\n" + "\n\n".join(
                f"Zebra {version} paragraph {j} of page {i}, item {i * 50 + j}." for j in range(24)))

    write("old")
    index = tmp_path / "idx"
    # the fallback tokenizer (no ../shared) splits these words into ~3x as many tokens: keep n under k's limit
    tokens = 32 if shared_tokenizer_dir() else 112
    r = _cli("ingest", corpus, "--index", index, "--model", tiny_model, "--chunk-tokens", tokens, "--json")
    assert r.returncode == 0, r.stderr
    n = json.loads(r.stdout)["chunks_total"]
    assert 100 < n <= 1000  # every chunk fits in one search's k
    write("new")
    return corpus, index, n


def _version_of(texts: list[str]) -> str:
    kinds = {("old" if "Zebra old" in t else "new" if "Zebra new" in t else "?") for t in texts}
    assert len(kinds) == 1, f"a search mixed generations: {kinds}"
    return kinds.pop()


def test_queries_during_an_ingest_see_the_old_or_the_new_generation_never_a_mix(versioned):
    import httpx

    from llara_search.serve import create_app

    corpus, index, n = versioned
    engine = Engine.open(index)
    server_engine = Engine.open(index)
    server_engine.use_encoder(engine.encoder)
    base, srv = serve_in_thread(create_app(server_engine))
    seen: list[tuple[str, str]] = []
    writer = subprocess.Popen([sys.executable, "-m", "llara_search", "ingest", str(corpus), "--index", str(index),
                               "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cli_query = None
    try:
        while writer.poll() is None:
            for mode in ("dense", "bm25", "hybrid"):
                hits = engine.search("zebra paragraph", k=n, mode=mode)
                assert len(hits) == n  # every chunk of one generation, whichever it is
                seen.append((mode, _version_of([h.text for h in hits])))
            body = httpx.post(base + "/search", json={"query": "zebra", "k": n, "mode": "hybrid"}, timeout=60)
            assert body.status_code == 200, body.text
            seen.append(("http", _version_of([h["text"] for h in body.json()["results"]])))
            if cli_query is None:
                cli_query = subprocess.Popen([sys.executable, "-m", "llara_search", "query", "zebra", "--index",
                                              str(index), "-k", str(n), "--mode", "bm25", "--json"],
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = writer.communicate()
        assert writer.returncode == 0, err
        q_out, q_err = cli_query.communicate(timeout=120)
        assert cli_query.returncode == 0, q_err
        seen.append(("cli", _version_of([h["text"] for h in json.loads(q_out)["results"]])))
    finally:
        if writer.poll() is None:
            writer.kill()
        srv.should_exit = True
    assert len(seen) >= 8 and {v for _, v in seen} <= {"old", "new"}
    assert seen[0][1] == "old"  # the ingest was still running when the first searches ran
    assert _version_of([h.text for h in engine.search("zebra", k=n, mode="dense")]) == "new"


def test_second_ingest_fails_with_the_pid_or_waits_and_readers_do_not_block_it(versioned):
    corpus, index, n = versioned
    reader = sqlite3.connect(index / "meta.sqlite")  # a reader inside an open read transaction
    reader.execute("BEGIN")
    old_count = reader.execute("SELECT count(*) FROM chunks WHERE removed_gen IS NULL").fetchone()[0]
    first = subprocess.Popen([sys.executable, "-m", "llara_search", "ingest", str(corpus), "--index", str(index),
                              "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = index / ".lock"
        for _ in range(600):
            if lock.exists() and lock.read_text().strip() == str(first.pid):
                break
            time.sleep(0.05)
        second = _cli("ingest", corpus, "--index", index, "--json")
        waiting = subprocess.Popen([sys.executable, "-m", "llara_search", "ingest", str(corpus), "--index",
                                    str(index), "--wait", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, err  # the open reader did not block the writer
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 1
    assert second.stderr.strip() == (f"error: index {index} is locked by PID {first.pid} (another ingest is writing); "
                                     "wait for it to finish or pass --wait")
    w_out, w_err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, w_err
    assert json.loads(w_out)["chunks_encoded"] == 0  # it waited, then found everything done
    # the reader's snapshot never moved under it; a new read sees the new generation
    assert reader.execute("SELECT count(*) FROM chunks WHERE removed_gen IS NULL").fetchone()[0] == old_count
    reader.rollback()
    reader.close()
    assert _version_of([h.text for h in Engine.open(index).search("zebra", k=n, mode="bm25")]) == "new"



# ------------------------------------------------------------------------------------------------ wrong use
def _snapshot(index: Path) -> dict[str, bytes | str]:
    """Every file's bytes; for a database, its content (a WAL checkpoint on close moves bytes, not data)."""
    out: dict[str, bytes | str] = {}
    for p in sorted(index.rglob("*")):
        if not p.is_file() or p.name.endswith(("-wal", "-shm")):
            continue
        try:
            if p.name != "meta.sqlite":
                raise sqlite3.DatabaseError
            con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
            out[str(p.relative_to(index))] = "\n".join(con.iterdump())
            con.close()
        except sqlite3.DatabaseError:
            out[str(p.relative_to(index))] = p.read_bytes()
    return out


def test_wrong_use_is_one_line_nonzero_and_changes_nothing(small_index, other_tiny_model, tmp_path):
    corpus, index = small_index
    newer = tmp_path / "newer"
    shutil.copytree(index, newer)
    con = sqlite3.connect(newer / "meta.sqlite")
    con.execute("UPDATE alembic_version SET version_num = '9999'")
    con.commit()
    con.close()
    corrupt = tmp_path / "corrupt"
    shutil.copytree(index, corrupt)
    (corrupt / "meta.sqlite").write_bytes(b"not a database at all " * 200)
    for wal in corrupt.glob("meta.sqlite-*"):
        wal.unlink()
    not_an_index = tmp_path / "plain-folder"
    not_an_index.mkdir()
    (not_an_index / "notes.txt").write_text("hello")
    empty = tmp_path / "empty-index"
    (tmp_path / "nothing").mkdir()
    assert runner.invoke(app, ["ingest", str(tmp_path / "nothing"), "--index", str(empty), "--model",
                               str(other_tiny_model)]).exit_code == 0
    no_weights = tmp_path / "no-weights"  # a model folder whose weights were never copied
    shutil.copytree(other_tiny_model, no_weights)
    for weights in [*no_weights.glob("*.safetensors"), *no_weights.glob("*.bin")]:
        weights.unlink()
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    (no_tokenizer / "config.json").write_text("{}")
    no_index_file = tmp_path / "no-index-file"
    shutil.copytree(index, no_index_file)
    for f in (no_index_file / "generations").iterdir():
        f.unlink()
    cases = [
        (["ingest", str(corpus), "--index", str(index), "--model", str(other_tiny_model)],
         f"index {index} was built with model"),
        (["query", "x", "--index", str(tmp_path / "missing")], "no index at"),
        (["query", "x", "--index", str(not_an_index)], "is not a llara-search index (no meta.sqlite)"),
        (["status", "--index", str(corrupt)], "cannot open the database"),
        (["query", "x", "--index", str(newer)], "written by a newer llara-search"),
        (["ingest", str(corpus), "--index", str(newer)], "written by a newer llara-search"),
        (["doctor", "--index", str(newer)], "written by a newer llara-search"),
        (["query", "x", "--index", str(index), "--db-url", f"sqlite:///{tmp_path}/no/such/dir/m.sqlite"],
         "cannot open the database"),
        (["query", "x", "--index", str(index), "--db-url", "postgresql+psycopg://u:secret@127.0.0.1:9/none"],
         "cannot open the database"),
        (["query", "anything", "--index", str(empty)], "is empty (0 chunks); ingest documents first"),
        (["query", "llama", "--index", str(no_index_file)], "is missing; run `llara-search doctor --repair"),
        (["query", "llama", "--index", str(index), "-k", "0"], "k must be between 1 and 1000"),
        (["reindex", "--index", str(index), "--index-type", "hnsw"], "--index-type must be one of"),
        (["train", "--output", str(tmp_path / "out")], "give either --index DIR"),
        (["ingest", str(corpus), "--index", str(tmp_path / "new-1"), "--model", str(no_weights)],
         f"cannot load model '{no_weights}': Error no file named model.safetensors"),
        (["ingest", str(corpus), "--index", str(tmp_path / "new-2"), "--model", str(no_tokenizer)],
         "it has no tokenizer files"),
        (["ingest", str(corpus), "--index", str(tmp_path / "new-3"), "--model", str(tmp_path / "no-model")],
         "not a local directory and not available from the Hugging Face hub"),
    ]
    folders = [index, newer, corrupt, not_an_index, empty, no_index_file]
    before = {f: _snapshot(f) for f in folders}
    for args, message in cases:
        r = runner.invoke(app, args)
        assert r.exit_code != 0, args
        assert message in r.stderr and r.stderr.startswith("error: "), (args, r.stderr)
        assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, (args, r.stderr)
        assert "secret" not in r.stderr  # passwords in database URLs are never echoed
    for f in folders:
        assert _snapshot(f) == before[f], f"{f} was modified"
    assert not (tmp_path / "missing").exists() and not (tmp_path / "no").exists()
    # a first ingest whose model would not load leaves no index folder behind
    assert not any((tmp_path / f"new-{n}").exists() for n in (1, 2, 3))
