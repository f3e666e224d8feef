"""Run every benchmark at a size that fits 2 CPU cores in minutes, then rewrite benchmarks/RESULTS.md.

    python -m benchmarks            # all
    python -m benchmarks --report   # only rewrite RESULTS.md from benchmarks/.work/results.json
"""

from __future__ import annotations

import json
import sys

from . import encode, index, ingest
from .common import RESULTS_JSON, ROOT, machine


def report() -> str:
    data = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    lines = ["# Benchmark results", "",
             "Each figure is a ratio against a baseline measured in the same run, on the machine named. "
             "`python -m benchmarks` re-runs everything and rewrites this file.", "",
             f"Machine of the last run: {machine()}", "", "## Headline", "",
             "| what | ours | baseline (same run) | ratio | command |", "|---|---|---|---|---|"]
    e = data.get("encode")
    if e:
        lines.append(f"| encoder throughput ({e['data']}, {e['texts']} texts) | {e['ours_texts_per_s']} texts/s | "
                     f"{e['baseline_texts_per_s']} texts/s (model-card loop, batch 16, input order) | "
                     f"**{e['speedup']}×** (max abs diff {e['max_abs_diff']:.1e}) | `{e['command']}` |")
    g = data.get("ingest")
    if g:
        lines.append(f"| re-ingest of an unchanged folder ({g['files']} files, {g['chunks']} chunks) | "
                     f"{g['reingest_s']} s, {g['reingest_encoded']} encoded | {g['first_s']} s first ingest | "
                     f"**{100 * g['reingest_ratio']:.2f}%** | `{g['command']}` |")
    for key, r in sorted(data.items()):
        if key.startswith("index_"):
            lines.append(f"| ANN + exact re-rank, {r['n']}×{r['dim']} ({r['factory']}) | p50 {r['p50_ms']} ms, "
                         f"recall@10 {r['recall@10']}, {r['bytes_per_vector']} B/vector | exact flat p50 "
                         f"{r['flat_p50_ms']} ms, {r['flat_bytes_per_vector']} B/vector | **{r['speedup_vs_flat']}×** "
                         f"faster | `{r['command']}` |")
    lines += ["", "## Details", ""]
    for key, r in sorted(data.items()):
        lines += [f"### {key}", "", "```json", json.dumps(r, indent=2), "```", ""]
    return "\n".join(lines)


def main() -> None:
    if "--report" not in sys.argv:
        encode.main([])
        ingest.main([])
        index.main(["--n", "20000", "--dim", "512"])
    (ROOT / "benchmarks" / "RESULTS.md").write_text(report())
    print(f"wrote {ROOT / 'benchmarks' / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
