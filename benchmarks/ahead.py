"""Encoding ahead (issue #29: "the encoder never waits on bookkeeping"): a batch is encoded while the next one is
parsed, chunked and looked up (llara_search/ingest/ahead.py). A real docs folder ingested with a tiny model, with
the encoder ahead and in turn (`IngestOptions(encode_ahead=False)`, the ingest as it was), the two taking turns run
by run in one process. The figures: wall time in turn over wall time ahead, and how much of the wall time the
ingest spent waiting for the encoder (`encode_wait`): the rest of the encoder's time was hidden behind bookkeeping.

On 2 CPU cores the encoder (torch, 2 threads) and the parsing share the same cores and the interpreter lock, and the
tiny model's many short operations each wait for that lock: ahead is slower there, which is why it is on by default
only with the encoder on a GPU (where it is not measured yet: no GPU was lent).

    python -m benchmarks.ahead [--docs ../shared/data/docs-haproxy/doc] [--runs 2]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from .common import SHARED, WORK, machine, record


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", default=str(SHARED / "data" / "docs-haproxy" / "doc"))
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args(argv)
    from llara_search.engine import Engine
    from llara_search.ingest.report import IngestOptions
    from llara_search.testing import make_tiny_llara

    src = Path(args.docs)
    if not src.is_dir():
        print(f"skip: {src} not present")
        return {}
    model = make_tiny_llara(WORK / "tiny-64x2")
    runs: dict[bool, list[dict]] = {True: [], False: []}
    for i in range(args.runs):
        for ahead in ((True, False) if i % 2 == 0 else (False, True)):
            index = WORK / f"ahead-{ahead}"
            shutil.rmtree(index, ignore_errors=True)
            engine = Engine.open(index, create=True)
            engine.ingest([str(src)], model=str(model))  # warm: model loaded, files in the page cache
            shutil.rmtree(index, ignore_errors=True)
            engine = Engine.open(index, create=True)
            t = time.perf_counter()
            rep = engine.ingest([str(src)], model=str(model), options=IngestOptions(encode_ahead=ahead))
            wall = time.perf_counter() - t
            engine.close()
            runs[ahead].append({"wall_s": round(wall, 2), "chunks": rep.chunks_total,
                                "stages_s": {k: round(v, 2) for k, v in rep.stages.items()}})
    best = {a: min(runs[a], key=lambda r: r["wall_s"]) for a in runs}
    on, off = best[True], best[False]
    res = {"folder": str(src), "chunks": on["chunks"], "runs": runs, "ahead_wall_s": on["wall_s"],
           "in_turn_wall_s": off["wall_s"], "speedup": round(off["wall_s"] / on["wall_s"], 2),
           "encode_s": on["stages_s"].get("encode", 0.0), "encode_wait_s": on["stages_s"].get("encode_wait", 0.0),
           "hidden_share": round(1 - on["stages_s"].get("encode_wait", 0.0) / max(on["stages_s"].get("encode", 0.0),
                                                                                   1e-9), 2),
           "model": "random Llama, hidden 64, 2 layers (LLaMA-2 tokenizer)", "machine": machine(),
           "command": f"python -m benchmarks.ahead --runs {args.runs}"}
    record("ahead", res)
    print(res)
    return res


def report_rows(data: dict) -> list[str]:
    """Rows of the headline table."""
    r = data.get("ahead")
    if not r:
        return []
    return [f"| ingest with the encoder ahead, CPU ({Path(r['folder']).name}/: {r['chunks']} chunks, tiny model; "
            f"off by default on the CPU for this) | "
            f"{r['ahead_wall_s']} s; waited for the encoder {r['encode_wait_s']} s of its {r['encode_s']} s "
            f"({int(100 * r['hidden_share'])}% hidden behind parsing and storing) | {r['in_turn_wall_s']} s in turn "
            f"(the ingest before) | **{r['speedup']}×** | `{r['command']}` |"]


if __name__ == "__main__":
    main()
