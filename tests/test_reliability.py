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
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import db_state, faiss_ids, make_corpus
from llara_search.cli import app
from llara_search.engine import Engine

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
    assert r["checked"]["chunks"] == r["checked"]["fts_rows"] == r["checked"]["index_ntotal"] > 0
    assert r["checked"]["schema"] == "0001" and r["checked"]["database"] == "ok"


def test_doctor_finds_damage_and_repair_rebuilds_and_quarantines(small_index):
    corpus, index = small_index
    before = db_state(index)
    vectors_before = _vectors_by_hash(index)
    gen_file = index / "generations" / f"gen-{before['generation']:08d}.faiss"
    # damage four places at once: FTS rows deleted, index file overwritten, one vector NaN, a stray temp file
    con = sqlite3.connect(index / "meta.sqlite")
    con.execute("INSERT INTO chunks_fts(chunks_fts, rowid, heading, text) SELECT 'delete', id, heading, text "
                "FROM chunks WHERE id IN (SELECT id FROM chunks ORDER BY id LIMIT 2)")
    broken_id, broken_text = con.execute("SELECT id, text FROM chunks ORDER BY id DESC LIMIT 1").fetchone()
    con.commit()
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
    assert set(checks) == {"fts", "index", "vectors"}
    assert "2 missing" in checks["fts"]["detail"] and "cannot be read" in checks["index"]["detail"]
    assert "1 a broken one" in checks["vectors"]["detail"]
    assert any("gen-00000099.faiss.tmp4242" in w["detail"] for w in r["warnings"])
    # a dense query says what is wrong in one line; BM25 does not need the damaged file
    q = runner.invoke(app, ["query", "llama", "--index", str(index)])
    assert q.exit_code == 1 and "doctor --repair" in q.stderr and q.stderr.strip().count("\n") == 0
    assert runner.invoke(app, ["query", "listening port", "--index", str(index), "--mode", "bm25"]).exit_code == 0

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
    assert after["chunk_ids"] == [i for i in before["chunk_ids"] if i != broken_id]
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
        assert Engine.open(index).search("topic 40", k=3, mode="bm25")[0].text.count("(v1)") > 0
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
