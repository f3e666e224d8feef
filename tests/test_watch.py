"""Live sync (`llara-search watch`, `serve --watch`): real files, the real watchdog observer, real indexes.

Every scenario ends with the watched index equal to a fresh `ingest` of the folder (same documents, same chunk
texts) and `doctor` clean. Debounce is short here (0.15 s) to keep the tests fast; text-only indexes (--model none)
where vectors are not the point, the tiny random LLaRA where they are.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from llara_search.cli import app
from llara_search.engine import Engine
from llara_search.ingest.pipeline import IngestOptions
from llara_search.layout import WriteLock
from llara_search.watch import WatchSettings, Watcher, read_state

runner = CliRunner()
DEBOUNCE = 0.15


def doc(title: str, body: str) -> str:
    return f"# {title}\n\n{body}\n"


def snapshot(index: Path) -> dict:
    """Documents and chunk texts of the newest committed generation, straight from SQLite."""
    con = sqlite3.connect(index / "meta.sqlite")
    try:
        gen = con.execute("SELECT max(id) FROM generations").fetchone()[0] or 0
        vis = "added_gen <= :g AND (removed_gen IS NULL OR removed_gen > :g)"
        docs = dict(con.execute(f"SELECT path, content_hash FROM documents WHERE {vis}", {"g": gen}).fetchall())
        chunks = sorted(con.execute(
            f"SELECT d.path, c.ordinal, c.heading, c.text FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE c.added_gen <= :g AND (c.removed_gen IS NULL OR c.removed_gen > :g)",
            {"g": gen}).fetchall())
        return {"documents": docs, "chunks": chunks}
    finally:
        con.close()


def fresh(folder: Path, tmp: Path, model: str, encoder=None) -> dict:
    """What a fresh `ingest` of the folder gives."""
    idx = tmp / f"fresh-{time.monotonic_ns()}"
    with Engine.open(idx, create=True) as e:
        if encoder is not None:
            e.use_encoder(encoder)
        e.ingest([folder], model=model)
    return snapshot(idx)


def converges(index: Path, folder: Path, tmp: Path, model: str = "none", encoder=None, timeout: float = 20) -> dict:
    """Wait until the watched index equals a fresh ingest of the folder (asserting it does), and doctor is clean."""
    want = fresh(folder, tmp, model, encoder)
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = snapshot(index)
        if got == want:
            break
        time.sleep(0.05)
    assert got == want
    r = runner.invoke(app, ["doctor", "--index", str(index), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ok"] is True
    return got


@contextmanager
def watching(folder: Path, index: Path, model: str = "none", encoder=None, options: IngestOptions | None = None,
             **settings):
    engine = Engine.open(index, create=True)
    if encoder is not None:
        engine.use_encoder(encoder)
    events: queue.Queue = queue.Queue()
    w = Watcher(engine, [folder], options, WatchSettings(debounce=settings.pop("debounce", DEBOUNCE), **settings),
                model=model, on_event=events.put)
    t = w.start_thread()
    assert w.ready.wait(60) and w.state["state"] == "watching", w.state
    try:
        yield w, events
    finally:
        w.stop()
        t.join(30)
        engine.close()
    assert not t.is_alive()


def drain(events: queue.Queue) -> list[dict]:
    out = []
    while True:
        try:
            out.append(events.get_nowait())
        except queue.Empty:
            return out


def wait_event(events: queue.Queue, kind: str, timeout: float = 20, **match) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {kind} event with {match}"
        try:
            e = events.get(timeout=left)
        except queue.Empty:
            continue
        if e["event"] == kind and all(e.get(k) == v for k, v in match.items()):
            return e


def generations(index: Path) -> int:
    con = sqlite3.connect(index / "meta.sqlite")
    try:
        return con.execute("SELECT count(*) FROM generations").fetchone()[0]
    finally:
        con.close()


def all_paths_ever(index: Path) -> set[str]:
    con = sqlite3.connect(index / "meta.sqlite")
    try:
        return {p for (p,) in con.execute("SELECT path FROM documents")} | \
               {p for (p,) in con.execute("SELECT path FROM ingest_failures")}
    finally:
        con.close()


# ------------------------------------------------------------------------------------------------ scenarios
def test_create_modify_delete(tmp_path):
    docs, index = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (docs / "keep.md").write_text(doc("Keep", "alpacas and llamas share the high plains"))
    (docs / "old.md").write_text(doc("Old", "a page about to be deleted"))
    with watching(docs, index) as (w, events):
        assert snapshot(index)["documents"].keys() == {str(docs / "keep.md"), str(docs / "old.md")}
        (docs / "new.rst").write_text("Ports\n=====\n\nSet the listening port of the gateway.\n")
        (docs / "sub").mkdir()
        (docs / "sub" / "deep.txt").write_text("nested text about quokkas\n")
        (docs / "keep.md").write_text(doc("Keep", "alpacas, llamas and vicunas share the high plains"))
        (docs / "old.md").unlink()
        converges(index, docs, tmp_path)
        e = Engine.open(index)
        hits = e.search("vicunas", k=3, mode="bm25")
        assert hits and hits[0].path == str(docs / "keep.md")
        assert not any(h.path.endswith("old.md") for h in e.search("deleted", k=5, mode="bm25"))
        e.close()
        assert w.state["last_sync"]["generation"] == read_state(index)["last_sync"]["generation"]
    st = read_state(index)
    assert st["running"] is False and st["state"] == "stopped" and st["syncs"] >= 2


def test_rename_and_folder_move_reuse_vectors(tmp_path, tiny_model, encoder):
    docs, index = tmp_path / "docs", tmp_path / "idx"
    (docs / "guide").mkdir(parents=True)
    for i in range(6):
        (docs / "guide" / f"p{i}.md").write_text(doc(f"Page {i}", f"section {i} explains topic number {i} " * 20))
    (docs / "single.md").write_text(doc("Single", "one page that will be renamed " * 10))
    model = str(tiny_model)
    with watching(docs, index, model, encoder) as (w, events):
        drain(events)
        (docs / "single.md").rename(docs / "renamed.md")
        (docs / "guide").rename(docs / "manual")
        got = converges(index, docs, tmp_path, model, encoder)
        syncs = [e for e in drain(events) if e["event"] == "sync"]
        assert syncs and sum(e["files_new"] for e in syncs) == 7
        assert sum(e["chunks_encoded"] for e in syncs) == 0  # every passage kept its stored vector
        assert str(docs / "manual" / "p3.md") in got["documents"]
        hits = w.engine.search("topic number 3", k=1, mode="dense")
        assert hits[0].path.startswith(str(docs / "manual"))
    # the reused vectors are the ones a fresh ingest encodes (equal embeddings are sacred)
    fresh_idx = tmp_path / "fresh-vec"
    with Engine.open(fresh_idx, create=True) as e:
        e.use_encoder(encoder)
        e.ingest([docs], model=model)
    a, b = _vectors_by_text(index), _vectors_by_text(fresh_idx)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=2e-3)


def _vectors_by_text(index: Path) -> dict:
    from llara_search.index import VectorStore

    con = sqlite3.connect(index / "meta.sqlite")
    gen = con.execute("SELECT max(id) FROM generations").fetchone()[0]
    rows = con.execute("SELECT c.id, d.path, c.ordinal FROM chunks c JOIN documents d ON d.id = c.document_id "
                       "WHERE c.added_gen <= ? AND (c.removed_gen IS NULL OR c.removed_gen > ?)", (gen, gen)).fetchall()
    con.close()
    with Engine.open(index) as e:
        dim = int(e.info["dim"])
    vs = VectorStore(index / "vectors", dim)
    vecs = vs.get(np.array([r[0] for r in rows], dtype=np.int64))
    return {(r[1], r[2]): v for r, v in zip(rows, vecs)}


def test_editor_saves_never_reach_the_index(tmp_path):
    docs, index = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (docs / "notes.md").write_text(doc("Notes", "first draft"))
    (docs / "atomic.md").write_text(doc("Atomic", "first version"))
    with watching(docs, index) as (w, events):
        for n in range(3):  # vim: probe file 4913, swap file, backup rename, write, drop the backup
            (docs / "4913").write_text("")
            (docs / "4913").unlink()
            (docs / ".notes.md.swp").write_bytes(b"\0swap" * 100)
            (docs / "notes.md").rename(docs / "notes.md~")
            (docs / "notes.md").write_text(doc("Notes", f"draft number {n} about capybaras"))
            (docs / "notes.md~").unlink()
            # emacs: lock link and autosave; gedit/VS Code-style atomic save through a temporary file
            os.symlink("user@host.123", docs / ".#notes.md")
            (docs / "#notes.md#").write_text("autosave")
            tmp = docs / f"atomic.md.tmp{n}"
            tmp.write_text(doc("Atomic", f"version {n} about wombats"))
            os.replace(tmp, docs / "atomic.md")
            (docs / f"#notes.md#").unlink()
            (docs / ".#notes.md").unlink()
            time.sleep(0.05)
        (docs / ".notes.md.swp").unlink()
        (docs / "left-over.md~").write_text("a backup that stays")
        got = converges(index, docs, tmp_path)
        assert set(got["documents"]) == {str(docs / "notes.md"), str(docs / "atomic.md")}
        assert all_paths_ever(index) == {str(docs / "notes.md"), str(docs / "atomic.md")}
        assert not [e for e in drain(events) if e["event"] in ("failed", "error")]


def test_burst_of_500_files_is_few_generations(tmp_path):
    docs, index = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    with watching(docs, index, debounce=0.3) as (w, events):
        before = generations(index)
        for i in range(500):
            d = docs / f"d{i % 10}"
            d.mkdir(exist_ok=True)
            (d / f"f{i}.md").write_text(doc(f"File {i}", f"burst word{i} text"))
        converges(index, docs, tmp_path, timeout=60)
        assert generations(index) - before <= 3, "a burst must be coalesced"
        assert sum(e["files_new"] for e in drain(events) if e["event"] == "sync") == 500


def test_file_changed_again_while_encoded(tmp_path, tiny_model, encoder):
    docs, index = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    model = str(tiny_model)
    big = "\n\n".join(f"## Part {i}\n\n" + f"paragraph {i} on the subject of river dolphins " * 30 for i in range(40))
    with watching(docs, index, model, encoder) as (w, events):
        (docs / "big.md").write_text("# Big\n\n" + big)
        deadline = time.monotonic() + 20
        while w.state["state"] != "syncing":  # the watcher took the file and is encoding it
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(0.05)  # read and parsed; its 40 parts are being encoded
        (docs / "big.md").write_text("# Big\n\n" + big.replace("river dolphins", "snow leopards"))
        got = converges(index, docs, tmp_path, model, encoder, timeout=60)
        assert any("snow leopards" in c[3] for c in got["chunks"])
        assert not any("river dolphins" in c[3] for c in got["chunks"])


def test_parse_failure_reported_once_then_on_change(tmp_path):
    docs, index = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (docs / "ok.md").write_text(doc("Ok", "fine"))
    with watching(docs, index) as (w, events):
        (docs / "bad.ipynb").write_text("{not json")  # a failure (binary data is a skip, not a failure)
        e = wait_event(events, "failed")
        assert e["path"] == str(docs / "bad.ipynb") and "notebook" in e["error"]
        (docs / "ok.md").write_text(doc("Ok", "fine again"))
        wait_event(events, "sync", files_changed=1)
        time.sleep(4 * DEBOUNCE)
        assert not [x for x in drain(events) if x["event"] == "failed"]  # not said again while unchanged
        (docs / "bad.ipynb").write_text("{still not json")
        e = wait_event(events, "failed")
        assert e["path"] == str(docs / "bad.ipynb")
        assert read_state(index)["last_error"]["path"] == str(docs / "bad.ipynb")
        assert w.state["state"] == "watching"
        converges(index, docs, tmp_path)


def test_vanished_root_pauses_and_resumes(tmp_path):
    docs, away, index = tmp_path / "docs", tmp_path / "away", tmp_path / "idx"
    docs.mkdir()
    (docs / "a.md").write_text(doc("A", "the first page"))
    (docs / "b.md").write_text(doc("B", "the second page"))
    with watching(docs, index) as (w, events):
        before = snapshot(index)
        docs.rename(away)  # unmounted
        e = wait_event(events, "paused", root=str(docs))
        assert "documents are kept" in e["warning"]
        time.sleep(5 * DEBOUNCE)
        assert snapshot(index) == before  # nothing was removed
        assert read_state(index)["paused"] == [str(docs)]
        (away / "b.md").unlink()
        (away / "c.md").write_text(doc("C", "written while away"))
        away.rename(docs)  # mounted again
        wait_event(events, "resumed", root=str(docs))
        converges(index, docs, tmp_path)
        assert read_state(index)["paused"] == []
        (docs / "d.md").write_text(doc("D", "after the return"))  # and it is watched again
        converges(index, docs, tmp_path)


def test_polling_mode(tmp_path):
    docs, index = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (docs / "a.md").write_text(doc("A", "polled page"))
    with watching(docs, index, poll=0.2) as (w, events):
        assert w.state["mode"] == {str(docs): "poll 0.2s"}
        (docs / "b.md").write_text(doc("B", "a new polled page"))
        (docs / "a.md").write_text(doc("A", "polled page, changed"))
        converges(index, docs, tmp_path)
        (docs / "a.md").rename(docs / "c.md")
        (docs / "b.md").unlink()
        converges(index, docs, tmp_path)


def test_write_lock_is_shared_with_ingest(tmp_path):
    docs, index = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (docs / "a.md").write_text(doc("A", "before the lock"))
    with watching(docs, index) as (w, events):
        gens = generations(index)
        with WriteLock(index / ".lock"):  # another writer (ingest, reindex, compact) holds the index
            (docs / "b.md").write_text(doc("B", "while locked"))
            e = wait_event(events, "waiting")
            assert "locked by PID" in e["message"]
            assert w.state["state"] == "waiting for the write lock"
            assert generations(index) == gens
            r = runner.invoke(app, ["ingest", str(docs), "--index", str(index), "--json"])
            assert r.exit_code == 1 and "is locked by PID" in r.output
        converges(index, docs, tmp_path)


def test_index_inside_the_watched_folder_does_not_wake_the_watcher(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text(doc("A", "the index lives beside me"))
    index = docs / "idx"
    with watching(docs, index, model="none") as (w, events):
        (docs / "b.md").write_text(doc("B", "one change"))
        wait_event(events, "sync", files_new=1)
        time.sleep(6 * DEBOUNCE)
        assert not [e for e in drain(events) if e["event"] == "sync"]  # its own writes are not changes


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_watch_json_status_and_second_watcher(tmp_path):
    docs, index = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (docs / "a.md").write_text(doc("A", "scripted watch"))
    r = runner.invoke(app, ["watch", str(docs), "--index", str(index), "--model", "none", "--json",
                            "--debounce", "0.1", "--exit-after", "0.5"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["event"] for x in lines] == ["sync", "watching", "stopped"]
    assert lines[0]["kind"] == "catch-up" and lines[0]["files_new"] == 1 and lines[0]["documents"] == 1
    s = runner.invoke(app, ["status", "--index", str(index), "--json"])
    w = json.loads(s.stdout)["watch"]
    assert w["running"] is False and w["state"] == "stopped" and w["roots"] == [str(docs)]
    human = runner.invoke(app, ["status", "--index", str(index)])
    assert "watcher: stopped" in human.stdout
    r = runner.invoke(app, ["watch", str(tmp_path / "nope"), "--index", str(index)])
    assert r.exit_code == 2 and "no such file or folder" in r.output
    r = runner.invoke(app, ["watch", str(docs), "--index", str(tmp_path / "new"), "--model", str(tmp_path / "no")])
    assert r.exit_code == 1 and "cannot load model" in r.output
    assert not (tmp_path / "new").exists()  # a first sync that failed leaves no folder, as ingest does
    r = runner.invoke(app, ["watch", str(docs), "--index", str(index), "--adapter", str(tmp_path)])
    assert r.exit_code == 1 and "watch does not switch adapters" in r.output
    with watching(docs, index):
        r = runner.invoke(app, ["watch", str(docs), "--index", str(index), "--exit-after", "0.2"])
        assert r.exit_code == 1 and "already watched by PID" in r.output
        r = runner.invoke(app, ["serve", "--index", str(index), "--port", "0", "--watch", str(docs)])
        assert r.exit_code == 1 and "already watched by PID" in r.output
        s = json.loads(runner.invoke(app, ["status", "--index", str(index), "--json"]).stdout)["watch"]
        assert s["running"] is True and s["state"] == "watching" and s["pid"] == os.getpid()


def _watch_proc(docs: Path, index: Path, model: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "llara_search", "watch", str(docs), "--index", str(index),
                             "--model", model, "--json", "--debounce", "0.1"],
                            stdout=subprocess.PIPE, stderr=log.open("w"), text=True)


def _wait_line(proc: subprocess.Popen, event: str, log: Path) -> dict:
    for line in proc.stdout:
        e = json.loads(line)
        if e["event"] == event:
            return e
    raise AssertionError(f"watch ended without {event}: {log.read_text()}")


@pytest.mark.slow
def test_kill_9_mid_burst_then_restart(tmp_path, tiny_model, encoder):
    docs, index, log = tmp_path / "docs", tmp_path / "idx", tmp_path / "watch.err"
    docs.mkdir()
    (docs / "seed.md").write_text(doc("Seed", "the first file"))
    model = str(tiny_model)
    proc = _watch_proc(docs, index, model, log)
    try:
        _wait_line(proc, "watching", log)
        for i in range(60):
            (docs / f"b{i:03d}.md").write_text(doc(f"Burst {i}", f"burst file {i} about gannets"))
        deadline = time.monotonic() + 60
        while (read_state(index) or {}).get("state") != "syncing":  # killed while it encodes the burst
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.01)
        time.sleep(0.2)
        for i in range(0, 60, 7):
            (docs / f"b{i:03d}.md").unlink()  # and more changes while nobody watches
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert read_state(index)["running"] is False
    proc = _watch_proc(docs, index, model, log)
    try:
        e = _wait_line(proc, "sync", log)
        assert e["kind"] == "catch-up"
        _wait_line(proc, "watching", log)
        proc.send_signal(signal.SIGTERM)  # a clean stop
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    got = converges(index, docs, tmp_path, model, encoder)
    assert len(got["documents"]) == 1 + 60 - len(range(0, 60, 7))
    paths = [c[0] for c in got["chunks"]]
    assert len(paths) == len(set(zip(paths, [c[1] for c in got["chunks"]])))  # no duplicate chunk
    assert read_state(index)["state"] == "stopped"


def test_serve_watch_keeps_results_current(tmp_path):
    import httpx

    from llara_search.server_record import find_server

    docs, index, log = tmp_path / "docs", tmp_path / "idx", tmp_path / "serve.err"
    docs.mkdir()
    (docs / "a.md").write_text(doc("A", "the ocelot sleeps by day"))
    env = {**os.environ, "LLARA_SEARCH_TOKEN": "", "LLARA_SEARCH_MODEL": "none"}
    proc = subprocess.Popen([sys.executable, "-m", "llara_search", "serve", "--index", str(index), "--port", "0",
                             "--watch", str(docs), "--debounce", "0.1"], env=env, stdout=subprocess.DEVNULL,
                            stderr=log.open("w"))
    try:
        deadline = time.monotonic() + 120
        while (rec := find_server(index)) is None:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)

        def top(q: str) -> list[str]:
            r = httpx.get(f"{rec.url}/search", params={"q": q, "k": 3, "mode": "bm25"}, timeout=30)
            assert r.status_code == 200, r.text
            return [h["path"] for h in r.json()["results"]]

        def eventually(check, timeout=15):
            end = time.monotonic() + timeout
            while not check():
                assert time.monotonic() < end
                time.sleep(0.05)

        assert top("ocelot") == [str(docs / "a.md")]
        info = httpx.get(f"{rec.url}/info", timeout=30).json()["watch"]
        assert info["running"] is True and info["roots"] == [str(docs)] and info["pid"] == proc.pid
        (docs / "b.md").write_text(doc("B", "the margay climbs trees"))
        eventually(lambda: top("margay") == [str(docs / "b.md")])
        (docs / "b.md").rename(docs / "c.md")
        eventually(lambda: top("margay") == [str(docs / "c.md")])
        (docs / "a.md").unlink()
        eventually(lambda: top("ocelot") == [])
        info = httpx.get(f"{rec.url}/info", timeout=30).json()["watch"]
        assert info["last_sync"]["files_removed"] == 1 and info["pending"] == 0
        proc.terminate()
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert read_state(index)["state"] == "stopped"
    converges(index, docs, tmp_path)


@pytest.mark.slow
def test_sigterm_in_a_sync_stops_at_once_and_the_next_start_finishes(tmp_path):
    docs, index, log = tmp_path / "docs", tmp_path / "idx", tmp_path / "watch.err"
    docs.mkdir()
    (docs / "first.txt").write_text("the first file\n")
    r = runner.invoke(app, ["watch", str(docs), "--index", str(index), "--model", "none", "--exit-after", "0"])
    assert r.exit_code == 0, r.output
    words = [f"heron{j}" for j in range(5000)]
    for i in range(600):  # ~4 s of catch-up here: tiny files were caught up before the signal landed on a fast box
        (docs / f"f{i:04d}.txt").write_text(" ".join(words[(i * 7 + j * 13) % 5000] for j in range(3000)) + "\n")
    proc = _watch_proc(docs, index, "none", log)
    try:
        deadline = time.monotonic() + 120
        while (read_state(index) or {}).get("state") != "catching up":
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()  # a clean stop, not the end of the catch-up
        assert [json.loads(x)["event"] for x in proc.stdout] == ["stopped"]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert read_state(index)["state"] == "stopped"
    r = runner.invoke(app, ["watch", str(docs), "--index", str(index), "--model", "none", "--json",
                            "--exit-after", "0"])
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout.splitlines()[0])
    assert first["kind"] == "catch-up" and first["documents"] == 601
    converges(index, docs, tmp_path)


def test_watch_reads_links_out_of_the_folder_only_with_follow_symlinks(tmp_path):
    docs, outside = tmp_path / "docs", tmp_path / "outside"
    docs.mkdir()
    outside.mkdir()
    (docs / "own.md").write_text("# Own\n\nthe folder's own okapi\n")
    (outside / "far.md").write_text("# Far\n\nthe linked narwhal\n")
    os.symlink(outside / "far.md", docs / "far.md")
    found = {}
    for flag in ([], ["--follow-symlinks"]):
        index = tmp_path / f"idx{len(flag)}"
        r = runner.invoke(app, ["watch", str(docs), "--index", str(index), "--model", "none", "--exit-after", "0",
                                *flag])
        assert r.exit_code == 0, r.output
        q = runner.invoke(app, ["query", "narwhal", "--index", str(index), "--json", "--local"])
        found[bool(flag)] = [h["path"] for h in json.loads(q.stdout)["results"]]
    assert found[False] == [] and found[True] == [str(docs / "far.md")]


def test_vanished_paths_are_looked_up_through_the_path_index(tmp_path):
    """Which vanished paths held live documents: the path itself or anything under it as a folder, never a sibling
    that merely starts alike, LIKE's wildcards taken literally; each found through the path index on SQLite, not by
    walking every live document through `removed_gen` (an editor's temp files vanish all day long)."""
    from helpers import sqlite_plans, statements_sent
    from llara_search.watch.sync import _indexed

    docs = tmp_path / "docs"
    for rel in ("a/x.md", "ab.md", "a-b/y.md", "a_c/z.md", "100%/p.md", "gone.md"):
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text(f"# {rel}\n\nherons and egrets of {rel}\n")
    engine = Engine.open(tmp_path / "idx", create=True)
    engine.ingest([docs], model="none")
    engine.delete([str(docs / "gone.md")])
    root = str(docs.resolve())
    asked = [f"{root}/a", f"{root}/a/", f"{root}/a-", f"{root}/aXc", f"{root}/a_c", f"{root}/100%", f"{root}/1000",
             f"{root}/gone.md", f"{root}/ab.md", f"{root}/nothing"]
    with statements_sent(engine) as sent:
        found = _indexed(engine, asked)
    captured = [(s, p) for s, p, _ in sent if "FROM documents" in s and "LIMIT" in s]
    assert found == [f"{root}/a", f"{root}/a/", f"{root}/a_c", f"{root}/100%", f"{root}/ab.md"]
    assert len(captured) == len(asked)
    for (statement, _), plan in zip(captured, sqlite_plans(engine, captured)):
        assert "removed_gen" not in plan and "sqlite_autoindex_documents" in plan, (statement[:160], plan)
