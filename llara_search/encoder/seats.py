"""Two seats at one loaded model: `bulk` for batches (ingest, the watcher, a big request's slices) and `quick` for
the few short texts of a small request (a search's queries, a small `/embed`).

Why two: a Python lock is not fair. A thread that releases it and asks again at once nearly always gets it back, so
with one lock a server's one-line query waited behind a big request's slices one after another: p99 483 ms against
8.5 ms alone on the tiny test model (a loop of 2 x 1,000-character slices in another thread). With a seat of its own
the query waits for no slice at all (p99 10 ms).

Why it is safe: a forward in inference mode writes nothing into the model, so two threads may run it at once; and
our calls never change the fast tokenizer's settings (no truncation or padding options; `split_special_tokens` is
always on), so two threads only read it. Each seat runs one forward at a time: at most two run at once, and the
quick one is a few queries, whose memory on a GPU is small next to a bulk batch (which halves itself on out of
memory; batching.py). The compiled query path (static_query.py) runs its calls on one thread of its own, so both
seats may use it.
"""

from __future__ import annotations

import threading


class EncoderSeats:
    def __init__(self) -> None:
        self.bulk = threading.Lock()
        self.quick = threading.Lock()

    def lock(self, *, quick: bool = False) -> threading.Lock:
        return self.quick if quick else self.bulk
