"""The lexical (BM25) index: exact BM25 per generation against a plain reference, segments and merges, crash
safety of its files, the analyzer, and the per-search overhead around it (no database round trip to pin)."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from llara_search.cli import app
from llara_search.engine import Engine
from llara_search.lexical import LexicalIndex, document_analysis, document_terms, query_analysis, query_terms
from llara_search.lexical import index as lexical_index
from llara_search.lexical.segment import chunk_text

runner = CliRunner()
WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
         "upsilon phi chi psi omega").split()
IDENTS = ["", "", " alpha_beta", " gammaDelta()", " zeta_eta"]


def reference_bm25(rows: dict, live: set[int], query: str, k: int, prefix: str | None = None):
    """BM25 as the textbook writes it (Lucene's idf, k1=1.2, b=0.75), over exactly the `live` chunks; an
    identifier in the query by its own term where a chunk has it, else by its parts."""
    analyzed = {i: document_analysis(chunk_text(rows[i][2], rows[i][3])) for i in live}
    docs = {i: Counter(terms) for i, (terms, _) in analyzed.items()}
    lens = {i: n for i, (_, n) in analyzed.items()}
    n = len(docs)
    if n == 0:
        return []
    avg = sum(lens.values()) / n
    plain, idents = query_analysis(query)
    for w, parts in idents:
        plain += [w] if any(w in c for c in docs.values()) else parts
    q = Counter(plain)
    df = {t: sum(1 for c in docs.values() if t in c) for t in q}
    out = []
    for i, c in docs.items():
        if prefix and not rows[i][1].startswith(prefix):
            continue
        dl = lens[i]
        s = sum(qtf * math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) * c[t] * 2.2
                / (c[t] + 1.2 * (0.25 + 0.75 * dl / avg)) for t, qtf in q.items() if t in c)
        if s > 0:
            out.append((i, s))
    return sorted(out, key=lambda x: (-x[1], x[0]))[:k]


def test_every_generation_scores_exactly_its_own_chunks_through_deltas_deletions_and_merges(tmp_path, monkeypatch):
    monkeypatch.setattr(lexical_index, "MIN_SEGMENT", 8)  # many segments and merges at a small size
    monkeypatch.setattr(lexical_index, "SYNC_MERGE_DOCS", 40)
    rng = random.Random(7)
    rows: dict[int, tuple] = {}
    live: set[int] = set()
    snapshots = {}
    next_id, base = 1, None
    for gen in range(1, 31):
        added = [(i, f"/docs/{'api' if i % 3 else 'guide'}/p{i % 5}.md", "Head" if i % 2 else "",
                  " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 40))) + rng.choice(IDENTS))
                 for i in range(next_id, next_id + rng.randint(0, 14))]
        next_id += len(added)
        rows.update({r[0]: r for r in added})
        removed = rng.sample(sorted(live), min(len(live), rng.randint(0, 6)))
        live = (live | {r[0] for r in added}) - set(removed)
        writer = LexicalIndex(tmp_path / "lexical")  # a new writer per commit, as an ingest is
        if gen % 5 == 0 and base is not None:
            writer.start_merge(base)  # the large merges run beside the "ingest", then are taken in
        rep = writer.write_generation(gen, base, added, np.array(removed, np.int64), np.array(sorted(live)),
                                      lambda: [rows[i] for i in sorted(live)])
        writer.finish(gen)
        assert rep.rebuilt == (base is None) and rep.notes == []
        base = gen
        snap = LexicalIndex(tmp_path / "lexical").snapshot(gen)
        assert snap.live_ids().tolist() == sorted(live)
        for q in ("alpha beta", "gamma gamma delta", "sigma", "the tau", "omega psi chi phi upsilon", "alpha_beta",
                  "gammaDelta", "zeta_zzz"):
            got, want = snap.search(q, 5), reference_bm25(rows, live, q, 5)
            assert [i for i, _ in got] == [i for i, _ in want], (gen, q)
            assert np.allclose([s for _, s in got], [s for _, s in want], rtol=1e-5)
        got = snap.search("alpha beta", 50, where="guide/*")
        assert [i for i, _ in got] == [i for i, _ in reference_bm25(rows, live, "alpha beta", 50, "/docs/guide/")]
        snapshots[gen] = (snap, set(live))
    assert len(list((tmp_path / "lexical").glob("seg-*"))) > 3  # it did build many segments on the way
    # a reader pinned to an older generation keeps that generation's chunks and statistics
    old, old_live = snapshots[12]
    want = reference_bm25(rows, old_live, "alpha beta", 5)
    assert [i for i, _ in old.search("alpha beta", 5)] == [i for i, _ in want]
    # cleanup keeps only what the generations still searchable need; merging everything changes no score
    writer = LexicalIndex(tmp_path / "lexical")
    writer.cleanup([29, 30])
    before = LexicalIndex(tmp_path / "lexical").snapshot(30).search("alpha gamma kappa", 20)
    assert writer.optimize(30) > 0 and writer.describe(30)["segments"] == 1
    writer.cleanup([30])
    assert len(list((tmp_path / "lexical").iterdir())) == 2  # one manifest, one segment
    after = LexicalIndex(tmp_path / "lexical").snapshot(30).search("alpha gamma kappa", 20)
    assert [i for i, _ in after] == [i for i, _ in before] and np.allclose([s for _, s in after],
                                                                           [s for _, s in before])


def test_analyzer_identifiers_accents_stopwords_and_repeats(tmp_path):
    assert {"foo_bar", "foo", "bar"} <= set(document_terms("call foo_bar()"))
    assert {"foobar", "foo", "bar"} <= set(document_terms("call fooBar()"))
    assert document_analysis("call foo_bar()")[1] == 2  # the parts do not lengthen the chunk
    assert {"httpserver", "http", "server"} <= set(document_terms("HTTPServer"))
    assert "__init__" in document_terms("def __init__(self)") and "init" not in document_terms("__init__")
    assert document_terms("Café NAÏVE") == document_terms("cafe naive")
    assert query_terms("the running of the bulls") == ["run", "bull"]  # stemmed, stopwords gone
    assert query_terms("to be or not to be") == ["to", "be", "or", "not", "to", "be"]  # only stopwords: kept
    assert query_terms("where") == ["where"] and "where" in document_terms("jnp.where(x)")
    assert query_terms("zebra zebra okapi").count("zebra") == 2  # a repeated word weighs twice
    rows = [(1, "/a.py", "", "call foo_bar() then"), (2, "/b.md", "", "foo and bar are friends"),
            (3, "/c.js", "", "fooBar here"), (4, "/d.md", "", "nothing to see")]
    LexicalIndex(tmp_path).write_generation(1, None, rows, np.zeros(0, np.int64), np.arange(1, 5), lambda: rows)
    snap = LexicalIndex(tmp_path).snapshot(1)
    found = lambda q: [i for i, _ in snap.search(q, 10)]  # noqa: E731
    assert found("foo_bar") == [1] and found("fooBar") == [3]  # the exact spelling, where the index has it
    assert sorted(found("foo bar")) == [1, 2, 3] and sorted(found("foo_baz")) == [1, 2, 3]  # else the parts


def test_lexical_files_are_written_before_the_commit_and_a_missing_one_is_rebuilt(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(6):
        (docs / f"d{i}.md").write_text(f"# Page {i}\n\nZebra {i} grazes near river_bank{i}; okapi count {i * 7}.\n")
    index = tmp_path / "idx"

    def cli(*args):  # in this process: only the kill needs a process of its own
        r = runner.invoke(app, [*map(str, args), "--index", str(index)])
        return r.exit_code, r.stdout

    assert cli("ingest", docs, "--model", "none", "--json")[0] == 0
    (docs / "d6.md").write_text("# Page 6\n\nA newcomer: the quagga.\n")
    r = subprocess.run([sys.executable, "-m", "llara_search", "ingest", str(docs), "--index", str(index), "--json"],
                       capture_output=True, text=True, env={**os.environ, "LLARA_SEARCH_CRASH_AT": "lexical"},
                       timeout=300)  # files written, no commit
    assert r.returncode == -signal.SIGKILL
    assert (index / "lexical" / "gen-00000002.lexg").is_file()
    code, out = cli("doctor", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["generation"] == 1 and doc["checked"]["lexical"] == "ok"
    assert any("gen-00000002.lexg" in w["detail"] for w in doc["warnings"])  # named by no committed generation
    code, out = cli("query", "quagga", "--mode", "bm25", "--json")
    assert code == 0 and json.loads(out)["results"] == []  # readers still see generation 1
    code, out = cli("ingest", docs, "--json")
    assert code == 0 and json.loads(out)["generation"] == 2
    doc = json.loads(cli("doctor", "--json")[1])
    assert doc["ok"] and doc["warnings"] == []  # the interrupted write's leftovers are gone
    hit = json.loads(cli("query", "river_bank3", "--mode", "bm25", "--json")[1])["results"][0]
    assert hit["path"].endswith("d3.md")
    # the lexical files of the current generation lost: searches rebuild them in memory, doctor says so and
    # --repair (or the next ingest) writes them again
    for f in (index / "lexical").iterdir():
        f.unlink()
    code, out = cli("query", "quagga", "--mode", "bm25", "--json")
    assert code == 0 and json.loads(out)["results"][0]["path"].endswith("d6.md")
    code, out = cli("doctor", "--json")
    assert code == 1 and [p["check"] for p in json.loads(out)["problems"]] == ["lexical"]
    code, out = cli("ingest", docs, "--json")  # nothing changed: no new generation, yet the files are back
    assert code == 0 and json.loads(out)["generation"] == 2
    assert cli("doctor", "--json")[0] == 0


def test_a_search_pins_the_generation_without_asking_the_database_and_follows_new_ones(tmp_path, monkeypatch):
    from sqlalchemy import event

    from llara_search.search import GenerationPin

    monkeypatch.setattr(GenerationPin, "REVALIDATE_S", 3600.0)  # only HEAD decides here, however slow the machine

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nZebras graze at dawn.\n")
    engine = Engine.open(tmp_path / "idx", create=True)
    engine.ingest([str(docs)], model="none")
    statements: list[str] = []  # every statement SQLite runs, whichever layer sends it
    event.listen(engine.store.engine, "checkout", lambda con, *_: con.set_trace_callback(statements.append))
    engine.search("zebra", k=3, mode="bm25")
    statements.clear()
    for _ in range(5):
        assert engine.search("zebra", k=3, mode="bm25")[0].path.endswith("a.md")
    assert len(statements) == 5 and all(s.startswith("SELECT c.id, d.path") for s in statements)  # the records
    other = Engine.open(tmp_path / "idx")  # another writer commits a new generation
    (docs / "b.md").write_text("# B\n\nZebras and okapis.\n")
    other.ingest([str(docs)])
    assert {h.path[-4:] for h in engine.search("zebra", k=3, mode="bm25")} == {"a.md", "b.md"}


def test_an_index_from_before_the_lexical_files_upgrades_and_keeps_searching(tmp_path):
    """An index written by llara-search with FTS5 (schema 0003, no lexical folder): searches answer at once from a
    copy built in memory, and the first ingest, even one that changes nothing, writes the files."""
    from alembic import command

    from llara_search.store.db import _alembic_config

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nZebras graze at dawn near the river_bank.\n")
    (docs / "b.md").write_text("# B\n\nOkapis hide in the forest.\n")
    index = tmp_path / "idx"
    engine = Engine.open(index, create=True)
    engine.ingest([str(docs)], model="none")
    want = [(h.chunk_id, h.score) for h in engine.search("zebras river bank", k=5, mode="bm25")]
    with engine.store.engine.begin() as conn:  # back to the schema FTS5 had, and without our files
        command.downgrade(_alembic_config(conn), "0003")
    engine.close()
    for f in (index / "lexical").iterdir():
        f.unlink()
    (index / "lexical").rmdir()
    (index / "HEAD").unlink()
    old = Engine.open(index)  # migrates to 0004
    assert [(h.chunk_id, h.score) for h in old.search("zebras river bank", k=5, mode="bm25")] == want
    assert not (index / "lexical").exists()  # a search never writes
    assert old.ingest([str(docs)]).chunks_added == 0
    assert LexicalIndex(index / "lexical").has(old.store.current_generation().id)
    r = runner.invoke(app, ["doctor", "--index", str(index), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["checked"]["lexical"] == "ok"


def test_best_positions_is_the_plain_top_k_with_ties():
    """The block-maximum selection returns exactly what sorting every score would: the k best positive scores and
    every score tied with the k-th, over sparse, dense, tied and tiny inputs."""
    from llara_search.lexical.snapshot import best_positions

    rng = np.random.default_rng(7)
    for trial in range(300):
        n = int(rng.choice([0, 5, 300, 4096, 20_000]))
        k = int(rng.integers(1, 60))
        scores = np.zeros(n)
        dense = rng.random()
        hit = rng.random(n) < dense
        scores[hit] = rng.integers(1, 6, hit.sum()) if trial % 3 == 0 else rng.random(hit.sum()) * 10  # ties
        pos, top = best_positions(scores, k)
        positive = np.flatnonzero(scores > 0)
        if len(positive) > k:
            kth = np.sort(scores[positive])[-k]
            want = positive[scores[positive] >= kth]
        else:
            want = positive
        assert pos.tolist() == want.tolist() and top.tolist() == scores[want].tolist(), (n, k, trial)


def test_segment_builds_pin_the_mmap_threshold_on_glibc():
    """Freed posting arrays go back to the system between segments (llara_search/lexical/heap.py)."""
    import platform

    from llara_search.lexical.heap import pin_mmap_threshold

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert pin_mmap_threshold() is True
