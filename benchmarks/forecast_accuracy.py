"""How close the encode forecast (llara_search/ingest/forecast.py) comes to the chunks an ingest really encodes.

Each file of the folders is parsed and chunked as `ingest` does (the shared LLaMA-2 tokenizer, 256-token chunks);
then the forecast is replayed as the pipeline makes it: after the first committed batch (256 chunks), from the
files read so far, over the files still to read. Two size measures side by side, in the same run: raw file bytes
(before) and text bytes (base64 runs of embedded images left out, now). The figure is estimate / actual (1.0 is
exact), in the walk's sorted order and over 200 shuffled orders (p10 / p50 / p90).

    python -m benchmarks.forecast_accuracy [FOLDER ...]   # default: docs-jax and docs-haproxy of ../shared
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from .common import SHARED, machine


def measure(folder: Path) -> list[tuple[str, int, int, int]]:
    from llara_search.encoder import load_tokenizer
    from llara_search.ingest.chunking import Chunker
    from llara_search.ingest.forecast import text_bytes
    from llara_search.ingest.parsers import parse_file
    from llara_search.ingest.walk import walk

    chunker = Chunker(load_tokenizer(str(SHARED / "models" / "llama2-llara-tokenizer")), 256)
    rows = []
    for f in walk([folder]).files:
        data = f.read_bytes()
        try:
            n = len(chunker.chunk(parse_file(f, data)))
        except Exception:  # noqa: BLE001 - skipped or failed files encode nothing
            continue
        rows.append((str(f), len(data), text_bytes(data), n))
    return rows


def replay(order: list[tuple[str, int, int, int]], col: int) -> float:
    from llara_search.ingest.forecast import ChunkForecast

    fc, pending = ChunkForecast(), 0
    for i, row in enumerate(order):
        fc.observe(row[0], row[col], row[3])
        pending += row[3]
        if pending >= 256:
            rest = sum(fc.remaining([(r[0], r[col])]) for r in order[i + 1:])
            return (pending + rest) / sum(r[3] for r in order)
    return 1.0


def main(argv: list[str]) -> None:
    import llara_search.ingest.forecast as forecast

    folders = [Path(a) for a in argv] or [SHARED / "data" / "docs-jax" / "docs", SHARED / "data" / "docs-haproxy" / "doc"]
    print(f"machine: {machine()}")
    sniff = forecast.SNIFF_ABOVE
    for folder in folders:
        forecast.SNIFF_ABOVE = sniff
        rows = measure(folder)
        forecast.SNIFF_ABOVE = 1 << 62  # the replay takes sizes from the columns, not from re-reading files
        print(f"{folder.name}: {len(rows)} files, {sum(r[3] for r in rows)} chunks")
        for name, col in (("raw bytes (before)", 1), ("text bytes (now)", 2)):
            runs = sorted(replay(random.Random(s).sample(rows, len(rows)), col) for s in range(200))
            print(f"  {name}: sorted {replay(sorted(rows), col):.2f}, shuffled p10/p50/p90 "
                  f"{runs[20]:.2f}/{runs[100]:.2f}/{runs[180]:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
