"""`llara-search query` wall time, as a user sees it in a shell: answered by a running `llara-search serve` for the
same index (found through `<index>/server.json`; the process imports neither torch nor the model) against a cold
in-process query (`--local`: a fresh process that imports torch and loads the model), same index, same run, with
the same results checked on every pair.

Each measurement is one whole `python -m llara_search query ... --json` process; the two kinds alternate so that
contention on the machine hits both alike, and one unmeasured run of each warms the page cache first.

    python -m benchmarks.cli_query [--model PATH_OR_HF_ID] [--chunks 2000] [--repeats 7]

Without `--model` a tiny random LLaRA model is built (CPU: the cold path then costs the torch import and model load
of a small model; with the 7B model on a GPU the cold path is far longer, see the GPU issue).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import ROOT, WORK, machine, record
from .serve import _records

QUERIES = ["server port timeout", "gradient of a batch", "replica memory cache", "proxy health check config"]
TOKEN = "bench-cli-query"


def _run_query(index: Path, query: str, mode: str, local: bool) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "llara_search", "query", query, "--index", str(index), "--mode", mode, "-k", "10",
           "--json"] + (["--local"] if local else [])
    env = {**os.environ, "LLARA_SEARCH_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"query failed: {r.stderr.strip()}")
    return wall, json.loads(r.stdout)


def _start_server(index: Path, log: Path) -> subprocess.Popen:
    from llara_search.server_record import find_server

    env = {**os.environ, "LLARA_SEARCH_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "llara_search", "serve", "--index", str(index), "--port", "0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    deadline = time.monotonic() + 900
    while find_server(index) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"serve did not start: {log.read_text()}")
        time.sleep(0.1)
    return proc


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="HF id or local folder [default: a tiny random LLaRA model]")
    ap.add_argument("--chunks", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    from llara_search.engine import Engine
    from llara_search.testing import make_tiny_llara, shared_tokenizer_dir

    model = args.model or str(make_tiny_llara(WORK / "cli-query-model", tokenizer_dir=shared_tokenizer_dir()))
    index = WORK / "cli-query-index"
    shutil.rmtree(index, ignore_errors=True)
    engine = Engine.open(index, create=True)
    engine.ingest_records(_records(args.chunks), "synthetic", model=model)
    engine.close()
    load_before = os.getloadavg()[0]
    proc = _start_server(index, WORK / "cli-query-serve.err")
    results: dict[str, dict[str, list[float]]] = {}
    identical = True
    try:
        for mode in ("dense", "bm25"):
            times = {"server": [], "local": []}
            for local in (False, True):  # warm the page cache for both; not measured
                _run_query(index, QUERIES[0], mode, local)
            for i in range(args.repeats):
                q = QUERIES[i % len(QUERIES)]
                pair = {}
                for local in ((False, True) if i % 2 == 0 else (True, False)):
                    wall, out = _run_query(index, q, mode, local)
                    times["local" if local else "server"].append(wall)
                    pair[local] = out["results"]
                identical &= pair[False] == pair[True]
            results[mode] = times
    finally:
        proc.terminate()
        proc.wait(60)
    rows = {}
    for mode, times in results.items():
        server, local = statistics.median(times["server"]), statistics.median(times["local"])
        rows[mode] = {"server_median_s": round(server, 3), "local_median_s": round(local, 3),
                      "server_s": [round(t, 3) for t in times["server"]],
                      "local_s": [round(t, 3) for t in times["local"]], "speedup": round(local / server, 1)}
    res = {"model": args.model or "tiny random Llama (hidden 64, 2 layers, LLaMA-2 tokenizer)",
           "chunks": args.chunks, "repeats": args.repeats, "modes": rows, "identical_results": identical,
           "machine": machine(), "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
           "command": "python -m benchmarks.cli_query" + (f" --model {args.model}" if args.model else "") +
                      (f" --chunks {args.chunks}" if args.chunks != 2000 else "") +
                      (f" --repeats {args.repeats}" if args.repeats != 7 else "")}
    record("cli_query", res)
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
