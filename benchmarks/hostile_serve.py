"""Hostile requests (issue #28): what oversized requests cost everyone else, and what near-copy collapsing costs at
k=1000, each against a baseline measured in the same run.

1. collapse: a text-only index whose passages are ~1,000 characters, some of them copies under other paths (the same
   text re-wrapped). Per BM25 query at k=1000: the search without collapsing, the collapse as it was before issue
   #28 (its windows scanned in all kept text; read from git at BEFORE_COMMIT), and as it is now (windows looked up
   in a dictionary).
2. load: a server over a tiny-model index; small searches (one query, k=10, hybrid) and `/healthz` timed one after
   another, alone and then while two clients keep sending the largest legal `/batch_search` (8 queries of 1,000
   characters at k=1000, hybrid). The figure is small-search p99 under that load over p99 alone.

    python -m benchmarks.hostile_serve [--docs 4000] [--queries 20] [--small 600]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import ROOT, machine, record

BEFORE_COMMIT = "541e3705"  # main before issue #28: llara_search/collapse.py as it was


def _collapse_before():
    """The previous collapse_duplicates, from git (None outside a git checkout)."""
    import subprocess
    import types

    try:
        src = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:llara_search/collapse.py"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    mod = types.ModuleType("collapse_before")
    exec(compile(src, "collapse_before.py", "exec"), mod.__dict__)  # noqa: S102 - our own file at a known commit
    return mod.collapse_duplicates

WORDS = ("index query vector passage search model token cluster server backend frontend proxy config port timeout "
         "health check compile array gradient batch shard replica memory latency cache disk thread process").split()


def _vocabulary(n: int = 20_000, seed: int = 7) -> tuple[list[str], list[float]]:
    """Pseudo-words with Zipf frequencies (s=1.1): unrelated passages share few word trigrams, as in real text
    (a 50-word vocabulary would make every passage look like a copy of every other)."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(n)]
    weights = [1 / (r + 1) ** 1.1 for r in range(n)]
    return WORDS + words, [1.0] * len(WORDS) + weights


VOCAB, WEIGHTS = _vocabulary()


def _text(rng: random.Random, chars: int = 1000) -> str:
    """Words with a comma or a full stop now and then, as prose has."""
    out, n = [], 0
    while n < chars:
        for w in rng.choices(VOCAB, WEIGHTS, k=32):
            p = rng.random()
            out.append(w + ("," if p < 0.07 else "." if p < 0.13 else ""))
            n += len(out[-1]) + 1
    return " ".join(out)[:chars]


def _records(n: int, seed: int = 0, copies: float = 0.1):
    """(key, title, text); a share of them a copy of an earlier one, wrapped at other places, under another key."""
    rng = random.Random(seed)
    texts: list[str] = []
    for i in range(n):
        if texts and rng.random() < copies:
            words = rng.choice(texts).split()
            step = rng.randint(7, 13)
            text = "\n".join(" ".join(words[j:j + step]) for j in range(0, len(words), step))
        else:
            text = _text(rng)
            texts.append(text)
        yield f"doc{i}", f"Doc {i}", text


def _pct(xs: list[float]) -> dict:
    return {"p50_ms": round(1000 * float(np.median(xs)), 2), "p99_ms": round(1000 * float(np.percentile(xs, 99)), 2)}


def collapse_cost(engine, mode: str, n_queries: int) -> dict:
    from llara_search import retrieval as engine_module  # where search calls collapse_duplicates

    rng = random.Random(3)
    queries = [" ".join(rng.choice(WORDS) for _ in range(6)) for _ in range(n_queries)]
    engine.search_many(queries[:2], k=1000, mode=mode)  # warm: lexical snapshot and vectors loaded

    previous = _collapse_before()
    old = None if previous is None else (lambda results, k, probes=None: previous(results, k))  # it took no probes
    now = engine_module.collapse_duplicates

    def one(arm: str, q: str) -> tuple[float, list]:
        engine_module.collapse_duplicates = old if arm == "before" else now
        try:
            t = time.perf_counter()
            hits = engine.search(q, k=1000, mode=mode, collapse=arm != "plain")
            return time.perf_counter() - t, hits
        finally:
            engine_module.collapse_duplicates = now

    # plain and after take turns on every query, 3 times each, and the fastest of the 3 counts: a load spike on a
    # shared box (it moved one arm alone by 2x when they ran one after the other) hits neither alone. The old
    # collapse runs in a pass of its own, after: interleaved, its garbage (a set of tuples per result) slowed the
    # arm after it by 2x, and the collapse came out negative. The objects made before the timing are frozen, as
    # `serve` freezes its own (serve/heap.py).
    import gc

    gc.collect()
    gc.freeze()

    def timed(arms: list[str]) -> tuple[dict[str, float], dict[str, list]]:
        best: dict[str, list[float]] = {a: [] for a in arms}
        got: dict[str, list] = {a: [] for a in arms}
        for i, q in enumerate(queries):
            times: dict[str, list[float]] = {a: [] for a in arms}
            for rep in range(3):
                for a in arms[(i + rep) % len(arms):] + arms[:(i + rep) % len(arms)]:
                    s, hits = one(a, q)
                    times[a].append(s)
                    if rep == 0:
                        got[a].append(hits)
            for a in arms:
                best[a].append(min(times[a]))
        return {a: float(np.mean(v)) for a, v in best.items()}, got

    mean, got = timed(["plain", "after"])
    plain_s, after_s, after = mean["plain"], mean["after"], got["after"]
    before_s, before, plain_then = after_s, after, plain_s
    if old is not None:
        mean, got = timed(["before", "plain"])  # the search it trims, measured again beside it
        before_s, before, plain_then = mean["before"], got["before"], mean["plain"]
    same = [[h.chunk_id for h in a] for a in after] == [[h.chunk_id for h in b] for b in before]
    # a short passage past the first SMALL results is now a copy only through a shared window (collapse.py): the
    # results that one arm has and the other lacks, per query
    differ = float(np.mean([len({h.chunk_id for h in a} ^ {h.chunk_id for h in b}) for a, b in zip(after, before)]))
    dropped = sum(len(h.also_in) for hits in after for h in hits) / len(queries)
    return {"mode": mode, "queries": n_queries, "k": 1000, "copies_dropped_per_query": round(dropped, 1),
            "search_without_collapse_ms": round(1000 * plain_s, 1),
            "collapse_before_ms": round(1000 * (before_s - plain_then), 1),
            "collapse_after_ms": round(1000 * (after_s - plain_s), 1),
            "collapse_over_search_before": round((before_s - plain_then) / plain_then, 2),
            "collapse_over_search_after": round((after_s - plain_s) / plain_s, 2),
            "speedup": round((before_s - plain_then) / max(after_s - plain_s, 1e-9), 1) if old else None,
            "same_results_as_before": same, "results_in_one_arm_only_per_query": round(differ, 1)}


def _big_client(base: str, headers: dict, body: dict, stop, results) -> None:
    """One client sending the big request again and again (in a process of its own: reading 8 MB answers must not
    take the measuring client's or the server's interpreter lock)."""
    import httpx

    with httpx.Client(base_url=base, headers=headers, timeout=120) as c:
        while not stop.is_set():
            t = time.perf_counter()
            try:
                status = c.post("/batch_search", json=body).status_code
            except httpx.HTTPError as exc:  # counted as not answered, with the reason in the log
                print(f"big client: {type(exc).__name__}: {exc}", flush=True)
                status = 0
            results.put((status, time.perf_counter() - t))
            if status != 200:
                time.sleep(0.2)


def load(index: Path, n_small: int) -> dict:
    """The server is `llara-search serve` in its own process, as users run it; the two big clients run in two
    more, and the small client here: in one process, as this benchmark once ran them, the clients' own parsing of
    the big answers held the interpreter lock that the server and the small client needed, and was measured as
    the server's delay."""
    import os
    import subprocess
    import sys

    from llara_search.server_record import find_server

    env = {**os.environ, "LLARA_SEARCH_TOKEN": "bench"}
    server = subprocess.Popen([sys.executable, "-m", "llara_search", "serve", "--index", str(index), "--port", "0",
                               "--request-timeout", "30"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while (rec := find_server(index)) is None:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("hostile_serve: the server did not start")
            time.sleep(0.1)
        return _load(rec.url, n_small)
    finally:
        server.terminate()
        server.wait(60)


def _load(base: str, n_small: int) -> dict:
    import multiprocessing as mp

    import httpx

    headers = {"Authorization": "Bearer bench"}
    rng = random.Random(5)
    small_qs = [" ".join(rng.choice(WORDS) for _ in range(5)) for _ in range(n_small)]
    big_body = {"queries": [_text(rng, 1000) for _ in range(8)], "k": 1000, "mode": "hybrid"}

    def small_run() -> tuple[list[float], list[float]]:
        lat, health = [], []
        with httpx.Client(base_url=base, headers=headers, timeout=120) as c:
            for q in small_qs:
                t = time.perf_counter()
                r = c.post("/search", json={"query": q, "k": 10, "mode": "hybrid"})
                assert r.status_code == 200 and len(r.json()["results"]) == 10, r.text
                lat.append(time.perf_counter() - t)
                t = time.perf_counter()
                assert c.get("/healthz").status_code == 200
                health.append(time.perf_counter() - t)
        return lat, health

    small_run()  # warm
    alone, health_alone = small_run()
    ctx = mp.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    clients = [ctx.Process(target=_big_client, args=(base, headers, big_body, stop, results)) for _ in range(2)]
    for p in clients:
        p.start()
    time.sleep(3.0)  # the big requests are running (a spawned client takes a second to import httpx)
    loaded, health_loaded = small_run()
    stop.set()
    for p in clients:
        p.join(180)
    done = []
    while not results.empty():
        done.append(results.get())
    statuses = [c for c, _ in done]
    big_s = [s for c, s in done if c == 200]
    return {"small_searches": n_small, "server": "llara-search serve, its own process",
            "big_request": "8 queries x 1,000 chars, k=1000, hybrid (the largest legal batch at that k)",
            "big_requests_done": statuses.count(200), "big_requests_refused_busy_or_late": len(statuses) -
            statuses.count(200), "big_request_s_p50": round(float(np.median(big_s)), 2) if big_s else None,
            "small_alone": _pct(alone), "small_under_load": _pct(loaded),
            "small_p99_ratio": round(float(np.percentile(loaded, 99) / np.percentile(alone, 99)), 2),
            "healthz_alone": _pct(health_alone), "healthz_under_load": _pct(health_loaded),
            "healthz_p99_ratio": round(float(np.percentile(health_loaded, 99) / np.percentile(health_alone, 99)), 2)}


def _haproxy(tmp: Path, n_queries: int) -> dict | None:
    """The same on a real folder: HAProxy's doc/ of ../shared (text, man page, rst; copies of one text in several
    files), text-only. None without ../shared."""
    from llara_search import Engine

    from .common import SHARED

    src = SHARED / "data" / "docs-haproxy" / "doc"
    if not src.is_dir():
        return None
    engine = Engine.open(tmp / "haproxy", create=True)
    engine.ingest([src], model="none")
    return {"folder": "docs-haproxy/doc", **collapse_cost(engine, "bm25", n_queries)}


def report_lines(data: dict) -> list[str]:
    """The RESULTS.md section (python -m benchmarks --report writes it from results.json)."""
    r = data.get("hostile_serve")
    if not r:
        return []
    lines = ["", "## Hostile requests (issue #28)", "",
             f"`{r['command']}`, {r['machine']}. Ratios against baselines measured in the same run.", "",
             "| what | now | baseline (same run) | ratio |", "|---|---|---|---|"]
    for key, label in (("collapse_k1000_bm25", "synthetic prose, text-only, BM25"),
                       ("collapse_k1000_haproxy_docs", "HAProxy's doc/ folder, text-only, BM25"),
                       ("collapse_k1000_hybrid", "synthetic prose, tiny Llama, hybrid")):
        c = r.get(key)
        if c:
            lines.append(f"| near-copy collapsing at k=1000, {label} ({c['queries']} queries; "
                         f"{c['copies_dropped_per_query']} copies dropped per query) | {c['collapse_after_ms']} ms "
                         f"= **{c['collapse_over_search_after']}×** the search it trims "
                         f"({c['search_without_collapse_ms']} ms) | before: {c['collapse_before_ms']} ms = "
                         f"{c['collapse_over_search_before']}× the search | **{c['speedup']}×** faster; same results "
                         f"as before: {c['same_results_as_before']}"
                         + ("" if c['same_results_as_before'] else
                            f" ({c.get('results_in_one_arm_only_per_query', '?')} of {c['k']} per query in one arm "
                            "only: short passages past the first 16 are copies only through a shared window now)")
                         + " |")
    ld = r["load"]
    lines.append(f"| small searches (1 query, k=10, hybrid), one after another, while 2 clients send "
                 f"{ld['big_request']} ({ld['big_requests_done']} answered, p50 {ld['big_request_s_p50']} s) | "
                 f"p50 {ld['small_under_load']['p50_ms']} ms, p99 {ld['small_under_load']['p99_ms']} ms | alone: "
                 f"p50 {ld['small_alone']['p50_ms']} ms, p99 {ld['small_alone']['p99_ms']} ms | p99 "
                 f"**{ld['small_p99_ratio']}×** |")
    lines.append(f"| `/healthz` in the same runs | p99 {ld['healthz_under_load']['p99_ms']} ms | alone: p99 "
                 f"{ld['healthz_alone']['p99_ms']} ms | p99 **{ld['healthz_p99_ratio']}×** |")
    return lines + ["", "GPU figures: not measured (no GPU this session).", ""]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=4000)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--small", type=int, default=600)
    args = ap.parse_args(argv)
    from llara_search import Engine
    from llara_search.testing import make_tiny_llara, shared_tokenizer_dir

    with tempfile.TemporaryDirectory() as tmp:
        text_only = Engine.open(Path(tmp) / "text-only", create=True)
        text_only.ingest_records(_records(args.docs), "synthetic", model="none")
        model = make_tiny_llara(Path(tmp) / "model", tokenizer_dir=shared_tokenizer_dir())
        dense = Engine.open(Path(tmp) / "idx", create=True)
        dense.ingest_records(_records(args.docs), "synthetic", model=str(model))
        res = {"docs": args.docs, "collapse_k1000_bm25": collapse_cost(text_only, "bm25", args.queries),
               "collapse_k1000_haproxy_docs": _haproxy(Path(tmp), args.queries),
               "collapse_k1000_hybrid": collapse_cost(dense, "hybrid", args.queries),
               "load": load(Path(tmp) / "idx", args.small), "machine": machine(),
               "command": f"python -m benchmarks.hostile_serve --docs {args.docs} --queries {args.queries} "
                          f"--small {args.small}"}
    record("hostile_serve", res)
    print(res)
    return res


if __name__ == "__main__":
    main()
