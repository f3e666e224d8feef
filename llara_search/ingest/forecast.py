"""How long an encode will take, said once after its first batch, while stopping is still cheap.

A 7B model on a CPU encodes a few chunks a second: a docs folder can take hours, and a user who knows it in the
first minute can stop (Ctrl-C keeps every committed batch; re-running resumes) and move to a GPU or a smaller model.
The number of chunks still to encode is extrapolated from what was parsed so far, per file type (a PDF's bytes
yield far fewer chunks than a text file's), over the files still to read that are new or changed.

Sizes are *text* sizes: a Markdown or HTML page exported from a notebook can carry megabytes of base64 images
that yield no chunk. Counted as text, one such file made every other file of its type look sparse (the docs-jax
folder: 4,853 chunks forecast for 7,627) or, still unread, looked like thousands of chunks to come
(benchmarks/forecast_accuracy.py measures both).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import asdict, dataclass

DEFAULT_MIN_SECONDS = 30.0  # shorter encodes are not worth a line
SNIFF_ABOVE = 64 * 1024  # files this large are read to measure their text size (base64 runs left out)
SNIFF_BUDGET = 256 * 2**20  # bytes read in all for that, per forecast
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/=]{256,}")
MIN_SECONDS_ENV = "LLARA_SEARCH_ESTIMATE_MIN_S"


def min_seconds() -> float:
    try:
        return float(os.environ.get(MIN_SECONDS_ENV, DEFAULT_MIN_SECONDS))
    except ValueError:
        return DEFAULT_MIN_SECONDS


@dataclass
class EncodeEstimate:
    chunks: int  # chunks this run encodes in all (estimated)
    chunks_done: int  # encoded when the estimate was made
    chunks_per_s: float
    seconds: float  # still to go
    device: str
    dtype: str

    def to_dict(self) -> dict:
        return asdict(self)

    def message(self) -> str:
        rate = f"{self.chunks_per_s:.1f}" if self.chunks_per_s < 10 else f"{self.chunks_per_s:,.0f}"
        return (f"~{self.chunks:,} chunks at ~{rate} chunks/s on {describe_device(self.device)} ({self.dtype}): "
                f"about {duration(self.seconds)}; Ctrl-C is safe, re-running resumes")


def describe_device(device: str) -> str:
    return "the CPU" if device.split(":")[0] == "cpu" else f"the GPU ({device})" if device.startswith("cuda") \
        else device


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} seconds"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} minutes"
    hours = seconds / 3600
    return f"{hours:.1f} hours" if hours < 48 else f"{hours / 24:.1f} days"


class ChunkForecast:
    """Chunks per byte by file extension, learned from the files parsed so far."""

    def __init__(self) -> None:
        self._seen: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # extension -> [chunks, bytes]

    def observe(self, path: str, size: int, chunks: int) -> None:
        row = self._seen[_ext(path)]
        row[0] += chunks
        row[1] += max(1, size)

    @property
    def chunks(self) -> int:
        return sum(c for c, _ in self._seen.values())

    def remaining(self, files: list[tuple[str, int]]) -> int:
        """Chunks expected from `files` ((path, size) still to read and encode); large files are read to measure
        their text size, within SNIFF_BUDGET bytes."""
        total_chunks = self.chunks
        total_bytes = sum(b for _, b in self._seen.values()) or 1
        expected = 0.0
        budget = SNIFF_BUDGET
        for path, size in files:
            if size > SNIFF_ABOVE and size <= budget:
                budget -= size
                size = file_text_bytes(path, size)
            chunks, nbytes = self._seen.get(_ext(path), (total_chunks, total_bytes))
            expected += size * chunks / max(1, nbytes)
        return round(expected)


def text_bytes(data: bytes) -> int:
    """The bytes of `data` that can become text: long base64 runs (embedded images, notebook outputs) left out."""
    if len(data) <= SNIFF_ABOVE:
        return len(data)
    return max(1, len(data) - sum(m.end() - m.start() for m in _BASE64_RUN.finditer(data)))


def file_text_bytes(path: str, size: int) -> int:
    try:
        with open(path, "rb") as fh:
            return text_bytes(fh.read())
    except OSError:
        return size


def _ext(path: str) -> str:
    return os.path.splitext(path)[1].lower()
