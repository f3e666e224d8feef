"""How long an encode will take, said once after its first batch, while stopping is still cheap.

A 7B model on a CPU encodes a few chunks a second: a docs folder can take hours, and a user who knows it in the
first minute can stop (Ctrl-C keeps every committed batch; re-running resumes) and move to a GPU or a smaller model.
The number of chunks still to encode is extrapolated from what was parsed so far, per file type (a PDF's bytes
yield far fewer chunks than a text file's), over the files still to read that are new or changed.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import asdict, dataclass

DEFAULT_MIN_SECONDS = 30.0  # shorter encodes are not worth a line
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
        """Chunks expected from `files` ((path, size) still to read and encode)."""
        total_chunks = self.chunks
        total_bytes = sum(b for _, b in self._seen.values()) or 1
        expected = 0.0
        for path, size in files:
            chunks, nbytes = self._seen.get(_ext(path), (total_chunks, total_bytes))
            expected += size * chunks / max(1, nbytes)
        return round(expected)


def _ext(path: str) -> str:
    return os.path.splitext(path)[1].lower()
