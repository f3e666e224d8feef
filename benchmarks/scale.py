"""Corpus scale (issue #29): everything but the encoder, at 100k and 1M passages, against bm25s in the same run.

    pip install -e '.[bench]'      # bm25s, PyStemmer
    nice -n 10 python -m benchmarks.scale --passages 100000,1000000 [--queries 300] [--pg URL]

The corpus: SciFact's 45k sentences (../shared/data/beir-scifact) recombined, 3-9 per passage under a random
SciFact title, passage i drawn from its own seed so any passage can be rebuilt without the others. Known-item
queries: a 4-word window of each of two sentences of a random passage (one sentence recurs in ~N/7,000 passages; the
pair marks the one). Without ../shared the benchmark says so and exits 0.

Each arm runs in a subprocess of its own so that its peak RSS is its own: bm25s (the texts as a list, as its API
takes them; tokenize + index with its English stopwords and PyStemmer, as benchmarks/bm25.py) and ours
(`Engine.ingest_records` streaming the passages into a text-only index, `--model none`: the path `eval --mode bm25`
takes, no encoder). Times are wall-clock and CPU seconds (on a shared 2-core box the CPU seconds are the steadier
ratio). Then, on our index: BM25 `Engine.search(k=10)` p50/p99 against bm25s's tokenize + retrieve on the same
queries (each in its own arm's process), and each maintenance command: status, doctor, re-ingest of the unchanged
corpus, delete of a tenth of the corpus (its "folder" prefix), compact. Disk per chunk by part.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .common import RESULTS_JSON, SHARED, WORK, machine, record

SRC = SHARED / "data" / "beir-scifact" / "corpus.jsonl"
SHARDS = 10  # the corpus's "folders": a tenth each, in order
_SENTS: tuple[list[str], list[str]] | None = None


# ---------------------------------------------------------------------------------------------------- corpus
def _sentences() -> tuple[list[str], list[str]]:
    global _SENTS
    if _SENTS is None:
        sents, titles = [], []
        for line in SRC.open():
            d = json.loads(line)
            titles.append(d["title"])
            sents += [s for s in re.split(r"(?<=[.!?])\s+", d["text"]) if len(s.split()) >= 4]
        _SENTS = sents, titles
    return _SENTS


def _parts(i: int, seed: int) -> tuple[str, list[int]]:
    sents, titles = _sentences()
    rng = random.Random(seed * 1_000_003 + i)
    title = titles[rng.randrange(len(titles))]
    return title, [rng.randrange(len(sents)) for _ in range(rng.randint(3, 9))]


def key(i: int, n: int) -> str:
    return f"s{i * SHARDS // n}/p{i}"


def passages(n: int, seed: int = 0):
    """`(doc key, title, text)` of passage 0..n-1, generated lazily."""
    sents = _sentences()[0]
    for i in range(n):
        title, idx = _parts(i, seed)
        yield key(i, n), title, " ".join(sents[j] for j in idx)


def known_items(n: int, count: int, seed: int = 0) -> list[tuple[str, int]]:
    """(query, passage number): 4 consecutive words from each of two different sentences of the passage."""
    sents = _sentences()[0]
    rng = random.Random(seed + 17)
    out = []
    while len(out) < count:
        i = rng.randrange(n)
        _, idx = _parts(i, seed)
        a, b = rng.sample(sorted(set(idx)), 2) if len(set(idx)) > 1 else (idx[0], idx[0])
        words = []
        for j in (a, b):
            w = sents[j].split()
            s = rng.randrange(max(1, len(w) - 3))
            words += w[s:s + 4]
        out.append((" ".join(words), i))
    return out


# ---------------------------------------------------------------------------------------------------- helpers
def rss_mb() -> float:
    """Peak resident memory of this process (VmHWM: unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Timer:
    def __enter__(self):
        self.w, self.c = time.perf_counter(), cpu()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = round(time.perf_counter() - self.w, 3), round(cpu() - self.c, 3)


def progress(work: Path, arm: str, n: int, out: dict) -> None:
    """What an arm has measured so far, for a long run that is stopped before its end."""
    (work / f"progress-{arm}-{n}.json").write_text(json.dumps(out))


def dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.exists() else 0


# ---------------------------------------------------------------------------------------------------- arms
def arm_bm25s(n: int, nq: int, work: Path) -> dict:
    from .bm25 import Bm25s

    with Timer() as t:
        docs = list(passages(n))
    corpus_s = t.wall
    with Timer() as t:
        base = Bm25s(docs)
    out = {"corpus_list_s": corpus_s, "build_s": t.wall, "build_cpu_s": t.cpu, "peak_rss_mb": rss_mb()}
    progress(work, "bm25s", n, out)
    del docs
    saved = work / f"bm25s-{n}"
    shutil.rmtree(saved, ignore_errors=True)
    base.retriever.save(str(saved))
    out["disk_bytes"] = dir_bytes(saved)
    progress(work, "bm25s", n, out)
    return out


def arm_ours(n: int, nq: int, work: Path, db_url: str | None) -> dict:
    from llara_search.engine import Engine

    index = work / f"ours-{n}"
    shutil.rmtree(index, ignore_errors=True)
    out: dict = {}
    with Timer() as t:
        eng = Engine.open(index, db_url=db_url, create=True)
        rep = eng.ingest_records(passages(n), _source(work), model="none")
    out.update(build_s=t.wall, build_cpu_s=t.cpu, peak_rss_mb=rss_mb(), chunks=rep.chunks_total,
               stages={k: round(v, 2) for k, v in rep.stages.items()})
    from llara_search.maintenance import disk_sizes

    sizes = disk_sizes(eng)
    out["bytes_per_chunk"] = {k: round(v / rep.chunks_total, 1) for k, v in sizes.items() if v}
    if db_url:
        from sqlalchemy import text

        with eng.store.engine.connect() as c:
            out["bytes_per_chunk"]["database"] = round(c.execute(text(
                "SELECT pg_database_size(current_database())")).scalar() / rep.chunks_total, 1)
    out["lexical_segments"] = eng.status()["lexical"]["segments"]
    progress(work, "ours", n, out)
    eng.close()
    return out


def _source(work: Path) -> str:
    return str(work / "corpus")  # paths `<work>/corpus:s3/p123`: a tenth of the corpus under each "folder"


def arm_query(n: int, nq: int, work: Path, db_url: str | None) -> dict:
    """Both indexes opened in one process (bm25s's memory-mapped from its saved files) and timed taking turns on
    every query, so that a load spike on the shared box hits both alike."""
    import bm25s
    import Stemmer

    from llara_search.engine import Engine

    eng = Engine.open(work / f"ours-{n}", db_url=db_url)
    retriever = bm25s.BM25.load(str(work / f"bm25s-{n}"), mmap=True)
    stemmer = Stemmer.Stemmer("english")
    items = known_items(n, nq)

    def theirs(q: str):
        tokens = bm25s.tokenize(q, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)[0]
        if not tokens:
            return np.zeros((1, 0), np.int64)
        return retriever.retrieve([tokens], k=10, show_progress=False, n_threads=1)[0]

    fns = {"ours": lambda q: eng.search(q, k=10, mode="bm25", collapse=False),
           "ours_collapse": lambda q: eng.search(q, k=10, mode="bm25"),
           "ours_rank": lambda q: eng.searcher.bm25(q, 10),
           "bm25s": theirs}
    out: dict = {"success@10": {
        "ours": round(sum(any(h.doc_key == key(i, n) for h in fns["ours"](q)) for q, i in items) / len(items), 4),
        "bm25s": round(sum(i in {int(x) for x in theirs(q)[0]} for q, i in items) / len(items), 4)}}
    out.update(interleaved(fns, [q for q, _ in items]))
    eng.close()
    return out


def interleaved(fns: dict, queries: list[str]) -> dict:
    """Wall and process-CPU milliseconds per query of each function, one query at a time, the functions taking turns
    on every query (first 20 untimed)."""
    for q in queries[:20]:
        for f in fns.values():
            f(q)
    names = list(fns)
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpus: dict[str, list[float]] = {k: [] for k in names}
    for i, q in enumerate(queries):
        for k in names[i % len(names):] + names[:i % len(names)]:
            w, c = time.perf_counter(), time.process_time()  # every thread's CPU, should a library use several
            fns[k](q)
            cpus[k].append(time.process_time() - c)
            wall[k].append(time.perf_counter() - w)
    ms = lambda xs, p: round(1000 * float(np.percentile(xs, p)), 3)  # noqa: E731
    return {k: {"p50_ms": ms(wall[k], 50), "p99_ms": ms(wall[k], 99), "cpu_p50_ms": ms(cpus[k], 50),
                "cpu_p99_ms": ms(cpus[k], 99)} for k in names}


def arm_maint(n: int, nq: int, work: Path, db_url: str | None) -> dict:
    """Each maintenance command on the built index, in the order a user might run them."""
    from llara_search.engine import Engine

    index, source = work / f"ours-{n}", _source(work)
    m: dict = {}
    out = {"maintenance": m}
    with Timer() as t:
        eng = Engine.open(index, db_url=db_url)
        st = eng.status()
    cold = t.wall
    with Timer() as t:
        eng.status()
    m["status"] = {"s": t.wall, "first_in_process_s": cold, "documents": st["documents"]}
    progress(work, "maint", n, out)
    with Timer() as t:
        again = eng.ingest_records(passages(n), source, model="none")
    m["reingest_unchanged"] = {"s": t.wall, "cpu_s": t.cpu, "files_unchanged": again.files_unchanged,
                               "chunks_added": again.chunks_added, "chunks_encoded": again.chunks_encoded}
    progress(work, "maint", n, out)
    with Timer() as t:
        d = eng.doctor()
    m["doctor"] = {"s": t.wall, "ok": d["ok"]}
    progress(work, "maint", n, out)
    with Timer() as t:
        gone = eng.delete([f"{source}:s3"])
    m["delete_folder"] = {"s": t.wall, "documents_removed": gone.files_removed, "chunks_removed": gone.chunks_removed}
    progress(work, "maint", n, out)
    with Timer() as t:
        c = eng.compact(grace_s=0)
    m["compact"] = {"s": t.wall, "chunk_rows_purged": c["chunk_rows_purged"]}
    progress(work, "maint", n, out)
    with Timer() as t:
        back = eng.ingest_records(passages(n), source, model="none")
    m["reingest_folder_back"] = {"s": t.wall, "files_new": back.files_new}
    out["peak_rss_maintenance_mb"] = rss_mb()
    progress(work, "maint", n, out)
    eng.close()
    shutil.rmtree(index, ignore_errors=True)
    shutil.rmtree(work / f"bm25s-{n}", ignore_errors=True)
    return out


def run_arm(arm: str, n: int, nq: int, work: Path, db_url: str | None) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.scale", "--arm", arm, "--passages", str(n), "--queries", str(nq),
           "--work", str(work)] + (["--pg", db_url] if db_url else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{arm} at {n} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------- main
def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passages", default="100000,1000000")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--pg", default=None, help="a PostgreSQL URL (a scratch database is made there per size)")
    ap.add_argument("--arm", choices=["ours", "bm25s", "query", "maint"], help=argparse.SUPPRESS)
    ap.add_argument("--work", default=str(WORK / "scale"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not SRC.is_file():
        print(f"benchmarks.scale needs {SRC} (../shared); skipped")
        return None
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(x) for x in args.passages.split(",")]
    if args.arm:
        n = sizes[0]
        res = arm_bm25s(n, args.queries, work) if args.arm == "bm25s" else \
            {"ours": arm_ours, "query": arm_query, "maint": arm_maint}[args.arm](n, args.queries, work, args.pg)
        print(json.dumps(res))
        return res
    out = {"command": "python -m benchmarks.scale --passages " + args.passages, "machine": machine(),
           "data": f"SciFact sentences recombined ({len(_sentences()[0])} sentences, 3-9 per passage), "
                   f"{args.queries} known-item queries", "sizes": {}}
    if args.pg:
        out["command"] += " --pg URL"
    name = f"scale{'_pg' if args.pg else ''}"
    if len(sizes) == 1 and RESULTS_JSON.exists():  # one size re-measured: the other sizes of the last run stay
        kept = json.loads(RESULTS_JSON.read_text()).get(name, {})
        out["sizes"] = {k: v for k, v in kept.get("sizes", {}).items() if k != str(sizes[0])}
        out["command"] = kept.get("command", out["command"])
    for n in sizes:
        from contextlib import nullcontext

        from llara_search.testing import scratch_pg_database

        r = {}
        with (scratch_pg_database(args.pg, "llara_scale") if args.pg else nullcontext(None)) as url:
            r["ours"] = run_arm("ours", n, args.queries, work, url)
            r["bm25s"] = run_arm("bm25s", n, args.queries, work, None)
            r["query"] = run_arm("query", n, args.queries, work, url)
            r["ours"].update(run_arm("maint", n, args.queries, work, url))
        o, b, q = r["ours"], r["bm25s"], r["query"]
        r["ratios"] = {"build_wall": round(o["build_s"] / b["build_s"], 2),
                       "build_cpu": round(o["build_cpu_s"] / b["build_cpu_s"], 2),
                       "peak_rss": round(o["peak_rss_mb"] / b["peak_rss_mb"], 2),
                       "query_p50": round(q["ours"]["p50_ms"] / q["bm25s"]["p50_ms"], 2),
                       "query_cpu_p50": round(q["ours"]["cpu_p50_ms"] / q["bm25s"]["cpu_p50_ms"], 2)}
        out["sizes"][str(n)] = r
        print(json.dumps({n: r}), flush=True)
        record(name, out)
    if len(sizes) > 1:
        a, z = out["sizes"][str(sizes[0])]["ours"], out["sizes"][str(sizes[-1])]["ours"]
        out["ours_peak_rss_growth"] = round(z["peak_rss_mb"] / a["peak_rss_mb"], 2)
        record(name, out)
    return out


def report_rows(data: dict) -> list[str]:
    """Rows for benchmarks/RESULTS.md's headline table."""
    rows = []
    for name in ("scale", "scale_pg"):
        r = data.get(name)
        if not r:
            continue
        db = "PostgreSQL" if name == "scale_pg" else "SQLite"
        for n, s in sorted(r["sizes"].items(), key=lambda x: int(x[0])):
            o, b, q, x = s["ours"], s["bm25s"], s["query"], s["ratios"]
            m = o.get("maintenance", {})
            how = "taking turns on each query" if q.get("interleaved", True) else "each in its own process, one after the other"
            rows.append(f"| BM25-only ingest of {int(n):,} passages ({o['chunks']:,} chunks, {db}, `--model none`) | "
                        f"{o['build_s']} s ({o['build_cpu_s']} CPU s), peak RSS {o['peak_rss_mb']} MB | bm25s tokenize "
                        f"+ index {b['build_s']} s ({b['build_cpu_s']} CPU s), peak RSS {b['peak_rss_mb']} MB | "
                        f"**{x['build_cpu']}×** in CPU time ({x['build_wall']}× wall), {x['peak_rss']}× RSS | "
                        f"`{r['command']}` |")
            rows.append(f"| BM25 `Engine.search` k=10 with texts at {int(n):,} passages ({db}), {how} | p50 "
                        f"{q['ours']['cpu_p50_ms']} ms CPU ({q['ours']['p50_ms']} ms wall), known-item success@10 "
                        f"{q['success@10']['ours']}; near-copies collapsed (the default) p50 "
                        f"{q['ours_collapse']['cpu_p50_ms']} ms CPU | bm25s tokenize + retrieve p50 "
                        f"{q['bm25s']['cpu_p50_ms']} ms CPU ({q['bm25s']['p50_ms']} ms wall), success@10 "
                        f"{q['success@10']['bm25s']} | **{x['query_cpu_p50']}×** in CPU time ({x['query_p50']}× wall) | "
                        f"`{r['command']}` |")
            if m:
                cold = m["status"].get("first_in_process_s")
                cold = f" (the first in a fresh process, with Engine.open and imports: {cold} s)" if cold else ""
                rows.append(f"| maintenance at {int(n):,} passages ({db}) | status {m['status']['s']} s{cold}, doctor "
                            f"{m['doctor']['s']} s, re-ingest unchanged {m['reingest_unchanged']['s']} s (encoded "
                            f"{m['reingest_unchanged']['chunks_encoded']}, added "
                            f"{m['reingest_unchanged']['chunks_added']}), delete a tenth {m['delete_folder']['s']} s, "
                            f"compact {m['compact']['s']} s | first ingest {o['build_s']} s | | `{r['command']}` |")
            rows.append(f"| disk per chunk at {int(n):,} passages ({db}) | " + ", ".join(
                f"{k} {v} B" for k, v in o["bytes_per_chunk"].items()) + f" | bm25s's saved index "
                f"{round(b['disk_bytes'] / o['chunks'], 1)} B per chunk | | `{r['command']}` |")
        o3 = r.get("ours_only_300000")
        if o3:
            rows.append(f"| our text-only ingest of 300,000 passages ({o3['chunks']:,} chunks, {o3['lexical_segments']} "
                        f"lexical segments), {db} | {o3['build_cpu_s']} CPU s, peak RSS {o3['peak_rss_mb']} MB | the "
                        f"100k run: {r['sizes']['100000']['ours']['build_cpu_s']} CPU s, "
                        f"{r['sizes']['100000']['ours']['peak_rss_mb']} MB | **{o3['peak_rss_vs_100000']}×** the peak "
                        f"RSS for 3× the corpus, {o3['build_cpu_vs_100000']}× the CPU | `{o3['command']}` |")
        if r.get("ours_peak_rss_growth"):
            rows.append(f"| peak RSS of our ingest, largest over smallest size ({db}) | **{r['ours_peak_rss_growth']}×** "
                        f"| | | `{r['command']}` |")
    return rows


if __name__ == "__main__":
    main()
