"""Scale-out on one machine: `ingest` under torchrun with 2 CPU processes (gloo) equals a single-process run: the
same chunk ids and rows, vectors within float tolerance, the same search results. (`reencode` shares its batches
through the same EncodePool.)"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np

from helpers import make_corpus
from llara_search.engine import Engine


def _torchrun(*args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "llara_search",
           *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _rows(index) -> list[tuple]:
    con = sqlite3.connect(index / "meta.sqlite")
    try:
        return con.execute("SELECT id, document_id, ordinal, content_hash, added_gen, removed_gen FROM chunks "
                           "ORDER BY id").fetchall()
    finally:
        con.close()


def test_torchrun_ingest_equals_a_single_process(tmp_path, tiny_model):
    corpus = make_corpus(tmp_path / "docs")
    for i in range(12):
        (corpus / f"page{i}.md").write_text(f"# Page {i}\n\n" + "\n\n".join(
            f"Paragraph {j} of page {i} is about subject {i * 17 + j}." for j in range(20)))
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    Engine.open(single, create=True).ingest([str(corpus)], model=str(tiny_model))
    r = _torchrun("ingest", corpus, "--index", sharded, "--model", tiny_model, "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    reports = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1 and reports[0]["files_failed"] == []  # only rank 0 reports
    assert _rows(sharded) == _rows(single)

    a, b = Engine.open(single), Engine.open(sharded)
    ids = np.array([row[0] for row in _rows(single)])
    assert np.abs(a.searcher.vectors.get(ids) - b.searcher.vectors.get(ids)).max() <= 1e-3  # float16 storage
    for q in ("subject 40", "llama packing", "proxy timeouts"):
        assert [h.chunk_id for h in a.search(q, k=8)] == [h.chunk_id for h in b.search(q, k=8)]

