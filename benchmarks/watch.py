"""Live sync: save-to-searchable latency, chunks encoded by a folder rename, the watcher's idle cost on a large tree;
each next to a full `llara-search ingest` of the same change, measured in the same run.

    python -m benchmarks.watch [--saves 20] [--burst 1000] [--tree 100000]

The watcher is the real CLI (`llara-search watch --json`) in its own process; searches run here, on their own
engine, as another client would. "Searchable" is the first moment a search sees the file: BM25 (`--mode bm25`
finds its unique word) and dense (a dense search restricted to its path with `where` returns it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from .common import RESULTS_JSON, WORK, machine, record

DEBOUNCE = 0.2


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))], 3)


class WatchProc:
    """`llara-search watch --json` as a user runs it; its JSON lines collected in a thread."""

    def __init__(self, docs: Path, index: Path, model: str, *extra: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "llara_search", "watch", str(docs), "--index", str(index),
                                      "--model", model, "--json", "--debounce", str(DEBOUNCE), *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.events: list[dict] = []
        self.watching = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            e = json.loads(line)
            e["t"] = time.monotonic()
            self.events.append(e)
            if e["event"] == "watching":
                self.watching.set()

    def syncs(self) -> list[dict]:
        return [e for e in self.events if e["event"] == "sync" and e["kind"] == "change"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(120)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _mem_mib(pid: int) -> tuple[float, float]:
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            vals[k] = int(v.split()[0]) / 1024
    return round(vals["VmRSS"], 1), round(vals["VmHWM"], 1)


def _cli_ingest(docs: Path, index: Path, model: str, *extra: str) -> tuple[float, dict]:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "llara_search", "ingest", str(docs), "--index", str(index), "--model",
                        model, "--json", *extra], capture_output=True, text=True, check=True)
    return time.perf_counter() - t, json.loads(r.stdout)


def _searchable(engine, token: str, path: str, dense: bool) -> bool:
    try:
        if dense:
            return any(h.path == path for h in engine.search(token, k=1, mode="dense", where=path))
        return any(h.path == path for h in engine.search(token, k=3, mode="bm25"))
    except Exception:  # noqa: BLE001 - an index between its first commits
        return False


def latency(docs: Path, index: Path, model: str, saves: int, burst: int, twin: Path) -> dict:
    from llara_search.engine import Engine

    w = WatchProc(docs, index, model)
    assert w.watching.wait(600), "watcher did not start"
    engine = Engine.open(index)
    out: dict = {}
    single = {"bm25": [], "dense": []}
    for i in range(saves):
        p = docs / "notes" / f"save{i}.md"
        p.parent.mkdir(exist_ok=True)
        token = f"zqsave{i}x"
        p.write_text(f"# Save {i}\n\nA note saved while working, with the word {token}.\n")
        t0 = time.monotonic()
        got = {}
        while len(got) < 2:
            for mode in ("bm25", "dense"):
                if mode not in got and _searchable(engine, token, str(p), mode == "dense"):
                    got[mode] = time.monotonic() - t0
            time.sleep(0.005)
        for mode, v in got.items():
            single[mode].append(v)
        time.sleep(0.3)
    out["single_save"] = {m: {"p50_s": _pct(v, 50), "p95_s": _pct(v, 95), "n": len(v)} for m, v in single.items()}
    # the same single save by re-running a full ingest of the folder (what a user does without a watcher)
    (twin / "notes" / "one-more.md").parent.mkdir(parents=True, exist_ok=True)
    _cli_ingest(twin, WORK / "watch-twin-index", model)
    (twin / "notes" / "one-more.md").write_text("# One more\n\nA note saved while working, zqonemorex.\n")
    out["single_save"]["full_ingest_s"] = round(_cli_ingest(twin, WORK / "watch-twin-index", model)[0], 3)

    # a burst: files written as fast as Python can; each file's latency from its own write
    written: dict[str, float] = {}
    bdir = docs / "burst"
    bdir.mkdir()
    n0 = len(w.syncs())
    for i in range(burst):
        p = bdir / f"b{i:04d}.md"
        p.write_text(f"# Burst {i}\n\nA file of a checkout, word zqburst{i}x.\n")
        written[str(p)] = time.monotonic()
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 1800
    import sqlite3

    while len(seen) < burst and time.monotonic() < deadline:
        con = sqlite3.connect(index / "meta.sqlite")
        gen = con.execute("SELECT max(id) FROM generations").fetchone()[0]
        now = time.monotonic()
        for (path,) in con.execute("SELECT path FROM documents WHERE added_gen <= ? AND (removed_gen IS NULL OR "
                                   "removed_gen > ?) AND path LIKE ?", (gen, gen, str(bdir) + "/%")):
            seen.setdefault(path, now)
        con.close()
        time.sleep(0.02)
    lat = [seen[p] - written[p] for p in seen]
    time.sleep(1.0)  # the watcher's JSON line for the last commit
    last = engine.search(f"zqburst{burst - 1}x", k=1, mode="bm25")
    assert last and last[0].path.endswith(f"b{burst - 1:04d}.md")
    out["burst"] = {"files": burst, "searchable": len(seen), "p50_s": _pct(lat, 50), "p95_s": _pct(lat, 95),
                    "generations": len(w.syncs()) - n0,
                    "write_s": round(max(written.values()) - min(written.values()), 3)}
    tb = twin / "burst"
    tb.mkdir()
    for i in range(burst):
        (tb / f"b{i:04d}.md").write_text(f"# Burst {i}\n\nA file of a checkout, word zqburst{i}x.\n")
    out["burst"]["full_ingest_s"] = round(_cli_ingest(twin, WORK / "watch-twin-index", model)[0], 3)

    # a rename of a 100-file folder: chunks the watcher encodes, and a full ingest of the same rename
    n0 = len(w.syncs())
    moved = docs / "manual"
    t0 = time.monotonic()
    (docs / "base").rename(moved)
    while not _searchable(engine, "zqpage99x", str(moved / "page99.md"), False):
        time.sleep(0.01)
    t_rename = time.monotonic() - t0
    time.sleep(1)
    enc = sum(e["chunks_encoded"] for e in w.syncs()[n0:])
    (twin / "base").rename(twin / "manual")
    t_full, rep = _cli_ingest(twin, WORK / "watch-twin-index", model)
    out["rename"] = {"files": 100, "chunks_in_folder": rep["chunks_added"], "watch_chunks_encoded": enc,
                     "watch_searchable_s": round(t_rename, 3), "full_ingest_chunks_encoded": rep["chunks_encoded"],
                     "full_ingest_s": round(t_full, 3)}
    engine.close()
    w.stop()
    return out


def idle(tree: int, seconds: float, include: str | None = None) -> dict:
    """Idle CPU and memory of a watcher on a `tree`-file folder vs one on an empty folder (text-only index).
    `include`: a glob none of the tree's files match, so that the watcher observes every file (kernel watches on
    every folder; polling stats every file) while the index stays empty: the watcher's own cost without building a
    100,000-document index first (which takes the better part of an hour on a loaded 2-core box)."""
    base = WORK / "watch-tree"
    docs, index, empty, eindex = base / "docs", base / "idx", base / "empty", base / "eidx"
    if not (base / "done").exists():
        shutil.rmtree(base, ignore_errors=True)
        per = 100
        for d in range(tree // per):
            sub = docs / f"d{d // 100:03d}" / f"s{d % 100:02d}"
            sub.mkdir(parents=True)
            for f in range(per):
                (sub / f"f{f:03d}.txt").write_text(f"file {d}-{f} of the large tree\n")
        empty.mkdir()
        (base / "done").write_text("")
    shutil.rmtree(index, ignore_errors=True)
    shutil.rmtree(eindex, ignore_errors=True)
    out: dict = {"files": tree}
    # the first start builds the index (its catch-up is an ingest); the second start finds everything unchanged
    for name, folder, idx in (("tree", docs, index), ("empty", empty, eindex)):
        for mode, extra in (("events", ()), ("poll", ("--poll", "2"))):
            t0 = time.monotonic()
            w = WatchProc(folder, idx, "none", *extra, *(("--include", include) if include else ()))
            assert w.watching.wait(7200)
            start_s = time.monotonic() - t0
            time.sleep(1.0)
            c0 = _cpu_s(w.proc.pid)
            time.sleep(seconds)
            cpu = _cpu_s(w.proc.pid) - c0
            rss, hwm = _mem_mib(w.proc.pid)
            w.stop()
            out[f"{name}_{mode}"] = {"start_s": round(start_s, 2), "idle_cpu_pct": round(100 * cpu / seconds, 2),
                                     "rss_mib": rss, "peak_rss_mib": hwm}
    t, rep = _cli_ingest(docs, index, "none", *(("--include", include) if include else ()))
    out["full_reingest_unchanged_s"] = round(t, 2)
    out["documents"] = rep["documents"]
    out["include"] = include
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--saves", type=int, default=20)
    ap.add_argument("--burst", type=int, default=1000)
    ap.add_argument("--tree", type=int, default=100_000)
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--idle-include", default=None, help="A glob for the idle watcher (see idle())")
    ap.add_argument("--only", choices=("latency", "idle"), help="Run one half (the other half's record is kept)")
    args = ap.parse_args(argv)
    from llara_search.testing import make_tiny_llara

    model = str(make_tiny_llara(WORK / "tiny-64x2"))
    docs, index, twin = WORK / "watch-docs", WORK / "watch-index", WORK / "watch-twin"
    for p in (docs, index, twin, WORK / "watch-twin-index"):
        shutil.rmtree(p, ignore_errors=True)
    for folder in (docs, twin):
        (folder / "base").mkdir(parents=True)
        for i in range(100):
            (folder / "base" / f"page{i}.md").write_text(
                f"# Page {i}\n\n## Part\n\nText of page {i} of the manual, zqpage{i}x.\n")
    res = {"model": "random Llama, hidden 64, 2 layers (LLaMA-2 tokenizer)", "debounce_s": DEBOUNCE,
           "machine": machine(), "load_average_1min_start": os.getloadavg()[0]}
    if args.only != "idle":
        res.update(latency(docs, index, model, args.saves, args.burst, twin))
        res["load_average_1min_end"] = os.getloadavg()[0]
        res["command"] = "python -m benchmarks.watch " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.tree and args.only != "latency":
        half = idle(args.tree, args.idle_seconds, args.idle_include) | {
            "machine": machine(), "load_average_1min": os.getloadavg()[0],
            "command": "python -m benchmarks.watch " + " ".join(sys.argv[1:] if argv is None else argv)}
        res = {"idle": half} if args.only == "idle" else res | {"idle": half}
    prev = json.loads(RESULTS_JSON.read_text()).get("watch", {}) if RESULTS_JSON.exists() else {}
    res = prev | res
    record("watch", res)
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()


def report_rows(data: dict) -> list[str]:
    """Headline rows of RESULTS.md (benchmarks/__main__.py) for issue #32."""
    w = data.get("watch")
    if not w:
        return []
    rows = []
    if "single_save" in w:
        s, b, r = w["single_save"], w["burst"], w["rename"]
        load = f"; 2-core box at load average {w['load_average_1min_start']:.0f}-{w['load_average_1min_end']:.0f}"
        rows.append(f"| save-to-searchable, single saves ({s['bm25']['n']}, {w['model'].split(',')[0]} tiny model, "
                    f"debounce {w['debounce_s']} s{load}) | BM25 p50 {s['bm25']['p50_s']} s, p95 {s['bm25']['p95_s']} "
                    f"s; dense p50 {s['dense']['p50_s']} s, p95 {s['dense']['p95_s']} s | `llara-search ingest` of "
                    f"the folder after the save: {s['full_ingest_s']} s | "
                    f"**{s['full_ingest_s'] / s['bm25']['p50_s']:.1f}×** "
                    f"sooner (p50) | `{w['command']}` |")
        rows.append(f"| save-to-searchable, a burst of {b['files']} files | p50 {b['p50_s']} s, p95 {b['p95_s']} s "
                    f"from each file's write, in {b['generations']} generation(s) | `ingest` of the same burst: "
                    f"{b['full_ingest_s']} s | **{b['full_ingest_s'] / b['p95_s']:.1f}×** sooner (p95) | "
                    f"`{w['command']}` |")
        rows.append(f"| rename of a {r['files']}-file folder | **{r['watch_chunks_encoded']} chunks encoded** of "
                    f"{r['chunks_in_folder']}, searchable at the new path in {r['watch_searchable_s']} s | `ingest` "
                    f"after the same rename: {r['full_ingest_chunks_encoded']} encoded (same vector reuse), "
                    f"{r['full_ingest_s']} s | | `{w['command']}` |")
    i = w.get("idle")
    if i:
        t, e = i["tree_events"], i["empty_events"]
        tp, ep = i["tree_poll"], i["empty_poll"]
        how = f"every file observed, none indexed: `--include '{i['include']}'`" if i.get("include") else \
            "text-only index"
        rows.append(f"| idle watcher on a {i['files']:,}-file tree ({how}; start {t['start_s']} s vs "
                    f"{e['start_s']} s) | events: "
                    f"{t['idle_cpu_pct']}% CPU, RSS {t['rss_mib']} MiB (peak {t['peak_rss_mib']}); "
                    f"`--poll 2`: {tp['idle_cpu_pct']}% CPU, RSS {tp['rss_mib']} MiB | a watcher on an empty folder: "
                    f"{e['idle_cpu_pct']}% CPU, {e['rss_mib']} MiB (poll {ep['idle_cpu_pct']}%); one `ingest` of "
                    f"the unchanged tree: {i['full_reingest_unchanged_s']} s | **{t['rss_mib'] / e['rss_mib']:.2f}×** "
                    f"the memory | `{i['command']}` |")
    return rows
