"""Reliability soak: kill -9 at every crash point and at random moments on a real docs folder, then resume; and
a long bounded HTTP load while ingests commit new generations underneath.

What CI runs (tests/test_reliability.py) is a few kill points on a small corpus; this runs them all, on
../shared/data/docs-jax/docs (synthetic markdown when it is absent), and checks after every resume that
`doctor --json` is ok and that `status --json` reports the same documents and chunks as an uninterrupted ingest
into a fresh index, with the same chunk texts.

    python -m benchmarks.soak [--kills 6] [--requests 5000] [--concurrency 32] [--subset 40]
    python -m benchmarks.soak --milvus-lite     # every crash point (Milvus's too) with vectors in Milvus Lite
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .common import RESULTS_JSON, SHARED, machine, record, start_server

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
INGESTED = (0, 3)  # `ingest` exit statuses of a finished run (3: some files failed, listed; the rest indexed)


def cli(*args, env=None, timeout=3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llara_search", *map(str, args)], capture_output=True, text=True,
                          env={**ENV, **(env or {})}, timeout=timeout)


def summary(index: Path) -> dict:
    """What must match an uninterrupted ingest: status counts, doctor, and the multiset of chunk texts."""
    status = json.loads(cli("status", "--index", index, "--json").stdout)
    doctor = cli("doctor", "--index", index, "--json")
    con = sqlite3.connect(index / "meta.sqlite")
    gen = con.execute("SELECT max(id) FROM generations").fetchone()[0]
    hashes = sorted(r[0] for r in con.execute(
        "SELECT content_hash FROM chunks WHERE added_gen <= ? AND (removed_gen IS NULL OR removed_gen > ?)",
        (gen, gen)))
    con.close()
    d = json.loads(doctor.stdout)
    return {"documents": status["documents"], "chunks_total": status["chunks_total"], "doctor_ok": d["ok"],
            "doctor_warnings": len(d["warnings"]), "doctor_exit": doctor.returncode, "hashes": hashes}


def docs_folder(root: Path, subset: int | None) -> tuple[Path, str]:
    src = SHARED / "data" / "docs-jax" / "docs"
    dst = root / ("docs-subset" if subset else "docs")
    if src.is_dir():
        if subset:
            files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix in {".md", ".rst", ".ipynb"})
            for f in random.Random(0).sample(files, min(subset, len(files))):
                out = dst / f.relative_to(src)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, out)
        else:
            shutil.copytree(src, dst)
        return dst, f"JAX docs ({'a sample of ' + str(subset) + ' md/rst/ipynb files' if subset else 'whole folder'})"
    rng = random.Random(0)
    words = "array grad jit vmap device shard compile trace kernel memory batch tensor".split()
    for i in range(subset or 300):
        (dst / f"d{i // 50}").mkdir(parents=True, exist_ok=True)
        (dst / f"d{i // 50}" / f"page{i}.md").write_text(f"# Page {i}\n\n" + "\n\n".join(
            " ".join(rng.choice(words) for _ in range(rng.randint(20, 80))) for _ in range(rng.randint(3, 30))))
    return dst, "synthetic markdown (../shared absent)"


def named_points(root: Path, model: Path, subset: int, milvus_lite: bool = False) -> dict:
    """`milvus_lite`: each killed index keeps its vectors in a Milvus Lite database of its own, and Milvus's crash
    points are killed too."""
    from llara_search.faults import MILVUS_POINTS, POINTS

    docs, data = docs_folder(root, subset)
    ref = root / "named-ref"
    first = cli("ingest", docs, "--index", ref, "--model", model, "--json")
    assert first.returncode in INGESTED, first.stderr
    want = summary(ref)
    out = {"data": data, "chunks": want["chunks_total"], "points": {}}
    for point in [p for p in POINTS if p not in ("train-step", "compact")
                  and (milvus_lite or p not in MILVUS_POINTS)]:
        at = f"{point}:2" if point in ("parse", "encode", "vectors", "commit", "batch") else point
        index = root / f"named-{point}"
        vector_db = ["--vector-db", root / f"named-{point}.milvus.db"] if milvus_lite else []
        crashed = cli("ingest", docs, "--index", index, "--model", model, "--json", *vector_db,
                      env={"LLARA_SEARCH_CRASH_AT": at})
        after_crash = cli("doctor", "--index", index, "--json") if (index / "meta.sqlite").exists() else None
        resumed = cli("ingest", docs, "--index", index, "--model", model, "--json")
        got = summary(index)
        out["points"][at] = {
            "killed": crashed.returncode == -signal.SIGKILL,
            "doctor_ok_after_crash": None if after_crash is None else json.loads(after_crash.stdout)["ok"],
            "resume_ok": resumed.returncode in INGESTED,
            "encoded_on_resume": json.loads(resumed.stdout)["chunks_encoded"] if resumed.returncode in INGESTED
            else None,
            "same_as_uninterrupted": got["hashes"] == want["hashes"] and got["documents"] == want["documents"],
            "doctor_ok": got["doctor_ok"] and got["doctor_warnings"] == 0,
        }
        shutil.rmtree(index)
        if milvus_lite:
            shutil.rmtree(root / f"named-{point}.milvus.db", ignore_errors=True)
        print(at, out["points"][at], flush=True)
    return out


def random_kills(root: Path, model: Path, kills: int, seed: int = 0) -> dict:
    """The issue's check: kill -9 the whole-folder ingest at random moments, re-run, compare with a fresh one."""
    docs, data = docs_folder(root / "full", None)
    fresh = root / "fresh"
    t = time.perf_counter()
    ok = cli("ingest", docs, "--index", fresh, "--model", model, "--json")
    uninterrupted_s = time.perf_counter() - t
    assert ok.returncode in INGESTED, ok.stderr
    want = summary(fresh)
    rng = random.Random(seed)
    index = root / "killed"
    log = []
    startup = 10.0  # seconds before a process does any work (imports, model load)
    for i in range(kills):
        # within the first fifth of the work, so that each run dies before finishing what is left
        delay = startup + rng.uniform(0.02, 0.2) * uninterrupted_s
        p = subprocess.Popen([sys.executable, "-m", "llara_search", "ingest", str(docs), "--index", str(index),
                              "--model", str(model), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=ENV)
        try:
            p.wait(timeout=delay)
            log.append({"kill": i, "after_s": round(delay, 1), "finished_first": True})
            break  # nothing was left to interrupt
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
        doctor = json.loads(cli("doctor", "--index", index, "--json").stdout) if (index / "meta.sqlite").exists() \
            else {"ok": True, "note": "killed before the database existed"}
        log.append({"kill": i, "after_s": round(delay, 1), "doctor_ok_after_kill": doctor["ok"]})
        print(log[-1], flush=True)
    t = time.perf_counter()
    final = cli("ingest", docs, "--index", index, "--model", model, "--json")
    assert final.returncode in INGESTED, final.stderr
    got = summary(index)
    return {"data": data, "kills": log, "killed": sum("doctor_ok_after_kill" in k for k in log),
            "uninterrupted_s": round(uninterrupted_s, 1),
            "final_run_s": round(time.perf_counter() - t, 1),
            "final_run_encoded": json.loads(final.stdout)["chunks_encoded"],
            "documents": [got["documents"], want["documents"]], "chunks_total": [got["chunks_total"],
                                                                                 want["chunks_total"]],
            "same_chunk_texts": got["hashes"] == want["hashes"],
            "doctor_ok": got["doctor_ok"] and got["doctor_warnings"] == 0}, fresh, docs


def load_while_ingesting(index: Path, docs: Path, model: Path, n_requests: int, concurrency: int) -> dict:
    """HTTP load on the index while ingests commit new generations: no request may fail or mix generations."""
    import httpx

    from llara_search import Engine
    from llara_search.serve import create_app

    base, server = start_server(create_app(Engine.open(index), token="soak"))
    stop = threading.Event()
    generations: list[int] = []

    def churn() -> None:  # edit one file, ingest, restore, ingest: a new generation each time
        target = next(p for p in sorted(docs.rglob("*.md")))
        original = target.read_bytes()
        n = 0
        while not stop.is_set():
            target.write_bytes(original + f"\n\nSoak edit {n}: the quick zebra.\n".encode())
            r = cli("ingest", docs, "--index", index, "--json", "--wait")
            if r.returncode in INGESTED:
                generations.append(json.loads(r.stdout)["generation"])
            n += 1
        target.write_bytes(original)
        cli("ingest", docs, "--index", index, "--json", "--wait")

    writer = threading.Thread(target=churn)
    writer.start()
    queries = ["how do I compile a function", "random numbers and keys", "sharding arrays across devices",
               "automatic differentiation of loops", "pytrees", "debugging nans", "quick zebra soak edit"]
    lat, errors, codes = [], 0, {}
    lock = threading.Lock()
    from concurrent.futures import ThreadPoolExecutor

    local = threading.local()

    def one(i: int) -> None:
        nonlocal errors
        client = getattr(local, "c", None) or httpx.Client(base_url=base, headers={"Authorization": "Bearer soak"},
                                                           timeout=120)
        local.c = client
        mode = ("dense", "bm25", "hybrid")[i % 3]
        t0 = time.perf_counter()
        try:
            r = client.post("/search", json={"query": queries[i % len(queries)], "k": 10, "mode": mode})
            ok = r.status_code == 200 and len(r.json()["results"]) == 10
            code = r.status_code
        except httpx.HTTPError as exc:
            ok, code = False, type(exc).__name__
        with lock:
            lat.append(time.perf_counter() - t0)
            errors += int(not ok)
            codes[str(code)] = codes.get(str(code), 0) + 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n_requests)))
    wall = time.perf_counter() - t0
    stop.set()
    writer.join()
    server.should_exit = True
    import numpy as np

    return {"requests": n_requests, "concurrency": concurrency, "errors": errors, "status_codes": codes,
            "requests_per_s": round(n_requests / wall, 1), "p50_ms": round(1000 * float(np.median(lat)), 1),
            "p99_ms": round(1000 * float(np.percentile(lat, 99)), 1),
            "generations_committed_during_load": len(generations)}


def main(argv=None) -> dict:
    from llara_search.testing import make_tiny_llara, shared_tokenizer_dir

    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=6)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--subset", type=int, default=40, help="files of the docs folder used for the named points")
    ap.add_argument("--parts", default="named,kills,load", help="which parts to run (the others keep their last "
                    "recorded result)")
    ap.add_argument("--milvus-lite", action="store_true", help="only the named crash points, vectors in Milvus Lite")
    args = ap.parse_args(argv)
    if args.milvus_lite:
        with tempfile.TemporaryDirectory() as tmp:
            model = make_tiny_llara(Path(tmp) / "model", tokenizer_dir=shared_tokenizer_dir())
            named = named_points(Path(tmp), model, args.subset, milvus_lite=True)
        res = {"named_points": named, "machine": machine(),
               "all_ok": all(p["killed"] and p["resume_ok"] and p["same_as_uninterrupted"] and p["doctor_ok"]
                             for p in named["points"].values()),
               "command": f"python -m benchmarks.soak --milvus-lite --subset {args.subset}"}
        record("soak_milvus_lite", res)
        print(json.dumps(res, indent=1))
        return res
    parts = set(args.parts.split(","))
    res = dict(json.loads(RESULTS_JSON.read_text()).get("soak", {})) if RESULTS_JSON.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = make_tiny_llara(root / "model", tokenizer_dir=shared_tokenizer_dir())
        if "named" in parts:
            res["named_points"] = named_points(root, model, args.subset)
        if parts & {"kills", "load"}:
            killed, fresh, docs = random_kills(root, model, args.kills)
            if "kills" in parts:
                res["random_kills"] = killed
            if "load" in parts:
                res["load_while_ingesting"] = load_while_ingesting(fresh, docs, model, args.requests,
                                                                   args.concurrency)
    named, killed, load = res["named_points"], res["random_kills"], res["load_while_ingesting"]
    res.update(all_ok=all(p["killed"] and p["resume_ok"] and p["same_as_uninterrupted"] and p["doctor_ok"]
                          for p in named["points"].values())
               and killed["killed"] >= 3 and killed["same_chunk_texts"] and killed["doctor_ok"]
               and load["errors"] == 0,
               model="tiny random Llama (hidden 64, 2 layers)", machine=machine(),
               command=f"python -m benchmarks.soak --kills {args.kills} --requests {args.requests} "
                       f"--concurrency {args.concurrency} --subset {args.subset}")
    record("soak", res)
    print(json.dumps({k: v for k, v in res.items() if k != "named_points"}, indent=1))
    return res


if __name__ == "__main__":
    main()
