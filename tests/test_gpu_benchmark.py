"""`python -m benchmarks.gpu --device cpu --tiny` runs on a box without the server and database stack: every
process it starts has SQLAlchemy, FastAPI and the rest blocked at import, and it still reports every row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCKED = ["sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "typer", "pymilvus", "psycopg", "mcp"]

# Installed through sitecustomize, so that the benchmark's own subprocesses (the cold-load ones) are blocked too.
BLOCKER = f'''
import sys

BLOCKED = {BLOCKED!r}


class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked: benchmarks.gpu must run on a bare GPU box")
        return None


sys.meta_path.insert(0, _Blocked())
'''


def _env(tmp_path: Path) -> dict:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "TOKENIZERS_PARALLELISM": "false"}


def test_the_blocker_blocks(tmp_path):
    r = subprocess.run([sys.executable, "-c", "import sqlalchemy"], env=_env(tmp_path), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "sqlalchemy is blocked" in r.stderr
    r = subprocess.run([sys.executable, "-c", "import llara_search.engine"], env=_env(tmp_path), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0 and "is blocked" in r.stderr  # the engine does need them: the block is real


@pytest.mark.slow
def test_gpu_script_runs_on_cpu_tiny_with_heavy_imports_blocked(tmp_path):
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--device", "cpu", "--tiny", "--no-record",
                        "--out", str(out), "--work-dir", str(tmp_path / "work"), "--budget-s", "100000"],
                       env=_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    res = json.loads(out.read_text())
    q = res["query"]
    for b in (1, 8, 32):
        row = q[f"batch_{b}"]
        assert row["eager"]["p50_ms"] > 0 and row["ours"]["p99_ms"] >= row["ours"]["p50_ms"] > 0
    assert q["failed"] is None and q["compiled_share"] == 1.0 and q["max_abs_diff_vs_eager"] <= 1e-5
    b = res["bulk"]
    assert b["ours_tokens_per_s"] > 0 and 0 < b["mfu"] and b["max_abs_diff_vs_previous"] <= 1e-5
    ld = res["load"]
    assert ld["plain"]["process_s"] > 0 and ld["ours"]["process_s"] > 0 and ld["loader"]["peak_rss_mib"] > 0
    assert res["train"]["tokens_per_s"] > 0 and res["train"]["loss_last"] == res["train"]["loss_last"]  # not NaN
    assert 0 <= res["faiss"]["recall@10"] <= 1 and res["faiss"]["p50_ms"] > 0
    for line in ("query encode, batch 1", "query encode, batch 32", "bulk encode", "cold query process",
                 "LoRA pretext training", "IVF-PQ + exact re-rank"):
        assert line in r.stdout, line
    assert not (tmp_path / "work" / "model").exists()  # the saved model is removed after the load step
