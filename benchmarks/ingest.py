"""Ingest of a real docs folder with a tiny model: time per stage, and the unchanged re-ingest as a ratio of the first.

    python -m benchmarks.ingest [--docs ../shared/data/docs-jax/docs]
"""

from __future__ import annotations

import argparse
import shutil
import time

from .common import SHARED, WORK, machine, record


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", default=str(SHARED / "data" / "docs-jax" / "docs"))
    args = ap.parse_args(argv)
    from llara_search.engine import Engine
    from llara_search.testing import make_tiny_llara

    from pathlib import Path

    src = Path(args.docs)
    if not src.is_dir():
        print(f"skip: {src} not present")
        return {}
    model = make_tiny_llara(WORK / "tiny-64x2")
    docs = WORK / "ingest-docs"
    index = WORK / "ingest-index"
    shutil.rmtree(docs, ignore_errors=True)
    shutil.rmtree(index, ignore_errors=True)
    shutil.copytree(src, docs)
    engine = Engine.open(index, create=True)
    t = time.perf_counter()
    first = engine.ingest([str(docs)], model=str(model))
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    again = engine.ingest([str(docs)])
    t_again = time.perf_counter() - t
    res = {"folder": str(src), "files": first.files_seen, "documents": first.documents, "chunks": first.chunks_total,
           "failed": len(first.files_failed), "first_s": round(t_first, 2),
           "stages_s": {k: round(v, 2) for k, v in first.stages.items()}, "reingest_s": round(t_again, 3),
           "reingest_encoded": again.chunks_encoded, "reingest_ratio": round(t_again / t_first, 4),
           "model": "random Llama, hidden 64, 2 layers (LLaMA-2 tokenizer)", "machine": machine(),
           "command": "python -m benchmarks.ingest"}
    record("ingest", res)
    print(res)
    return res


if __name__ == "__main__":
    main()
