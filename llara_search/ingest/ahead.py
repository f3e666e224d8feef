"""One batch encoded beside the ingest, so that the encoder does not wait while the next batch is parsed, chunked
and looked up, and that work does not wait for the encoder.

Only the vectors are computed beside it: every database write and every stored-vector append stays on the ingest's
own thread, in the order a sequential ingest makes them, after the vectors it needs are ready. So generations,
crash points and what a crash leaves are those of a sequential run; a run that fails or is stopped waits for the
batch being encoded ahead and drops it (nothing of it was written), as a crash would.

On by default only with the encoder on a GPU (`IngestOptions.encode_ahead`): there the encoder's kernels run on the
card and leave Python's lock free between launches. On the CPU the encoder's threads and the parsing share the
same cores and lock, and a small model's many short operations wait for the lock: measured 0.56x (slower) on 2
cores (benchmarks/ahead.py).
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Ahead(Generic[T]):
    """`fn(*args)` started in a daemon thread; `take()` waits for its result (or raises its error)."""

    def __init__(self, fn: Callable[..., T], *args) -> None:
        self.seconds = 0.0  # how long fn ran
        self._done = threading.Event()
        self._result: T | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(fn, args), name="llara-encode-ahead", daemon=True).start()

    def _run(self, fn: Callable[..., T], args: tuple) -> None:
        t = time.perf_counter()
        try:
            self._result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - raised again on the ingest's thread by take()
            self._error = exc
        finally:
            self.seconds = time.perf_counter() - t
            self._done.set()

    def wait(self) -> None:
        """Until fn has returned (its result or error left unread)."""
        while not self._done.wait(0.5):  # in slices: a Ctrl-C on the waiting thread is not held off
            pass

    def take(self) -> T:
        self.wait()
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]
