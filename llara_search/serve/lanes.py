"""Where a request's work runs: off the event loop, in one of two bounded lanes, under one deadline.

Why two lanes: a 256-query batch at k=1000 is legal and takes a while; a one-line search from someone else must not
wait for it. Small requests (`limits.Cost.small`) have a lane of their own; big ones share another, with a short
queue past which they are refused at once (503 with Retry-After) instead of piling up. The event loop only parses
and answers, so `/healthz` never waits for either.

Why checkpoints: Python cannot stop a running thread. The work calls `Deadline.check()` between pieces (a slice of
queries encoded, one query searched and collapsed, one reranker batch), so a request past its deadline, or a
server told to stop, ends at the next piece instead of running to completion for nobody.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

T = TypeVar("T")

SMALL_WORKERS = 4
BIG_WORKERS = 1
BIG_QUEUE = 2  # big requests waiting for the big lane before more are refused
STOP_POLL_S = 0.1  # how often a waiting request looks at the server's stop


class DeadlineExceeded(Exception):
    """The request's time ran out (or the server is stopping); said to the client as 503."""


class Busy(Exception):
    """The big lane is full; said to the client as 503 with Retry-After."""


class Deadline:
    """One request's time limit, checked by its work between pieces. `seconds=None`: no limit (the server's stop
    still ends it)."""

    def __init__(self, seconds: float | None, stop: threading.Event | None = None):
        self.seconds = seconds
        self.at = None if seconds is None else time.monotonic() + seconds
        self.stop = stop or threading.Event()
        self.cancelled = False

    def remaining(self) -> float | None:
        return None if self.at is None else max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return self.cancelled or self.stop.is_set() or (self.at is not None and time.monotonic() > self.at)

    def check(self) -> None:
        if self.stop.is_set():
            raise DeadlineExceeded("the server is stopping; send the request again to another server or later")
        if self.cancelled or (self.at is not None and time.monotonic() > self.at):
            raise DeadlineExceeded(self.message())

    def message(self) -> str:
        return (f"the request took longer than this server's limit of {self.seconds:g} s per request "
                "(--request-timeout): send fewer or shorter queries, or a smaller k")

    def cancel(self) -> None:
        self.cancelled = True


class Lanes:
    """Two thread pools: `small` for small requests, `big` (with a bounded queue) for the rest."""

    def __init__(self, small_workers: int = SMALL_WORKERS, big_workers: int = BIG_WORKERS, big_queue: int = BIG_QUEUE):
        self.small = ThreadPoolExecutor(small_workers, thread_name_prefix="llara-small")
        self.big = ThreadPoolExecutor(big_workers, thread_name_prefix="llara-big")
        self.big_slots = big_workers + big_queue
        self.big_taken = 0
        self.running = 0  # jobs started and not finished, both lanes (observable for tests and shutdown)
        self.started = 0  # jobs ever started (a request refused by the limits never starts one)
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def deadline(self, seconds: float | None) -> Deadline:
        return Deadline(seconds, self.stop)

    async def run(self, fn: Callable[[Deadline], T], deadline: Deadline, *, small: bool) -> T:
        """`fn(deadline)` in its lane; DeadlineExceeded at the deadline (the work stops at its next checkpoint)."""
        deadline.check()
        pool = self.small if small else self.big
        if not small:
            with self._lock:
                if self.big_taken >= self.big_slots:
                    raise Busy("the server is busy with other large requests; retry in a few seconds, or send "
                               "smaller ones (fewer queries, lower k)")
                self.big_taken += 1

        def job() -> T:
            with self._lock:
                self.running += 1
                self.started += 1
            try:
                deadline.check()  # it may have waited in the lane past its deadline
                return fn(deadline)
            finally:
                with self._lock:
                    self.running -= 1

        try:
            fut = pool.submit(job)
        except RuntimeError:  # the pool is shut down: the server is stopping
            self._release(small)
            raise DeadlineExceeded("the server is stopping; send the request again later") from None
        fut.add_done_callback(lambda _f: self._release(small))
        waiting = asyncio.wrap_future(fut)
        try:
            while True:  # the answer, the deadline or the server's stop, whichever comes first
                remaining = deadline.remaining()
                done, _ = await asyncio.wait({waiting}, timeout=STOP_POLL_S if remaining is None else
                                             min(STOP_POLL_S, remaining))
                if done:
                    return waiting.result()
                if self.stop.is_set() or deadline.expired():
                    deadline.cancel()  # a started job ends at its next checkpoint; a queued one never starts
                    waiting.cancel()
                    deadline.check()
                    raise DeadlineExceeded(deadline.message())
        except asyncio.CancelledError:
            deadline.cancel()
            waiting.cancel()
            raise

    def _release(self, small: bool) -> None:
        if not small:
            with self._lock:
                self.big_taken -= 1

    def stop_all(self) -> None:
        """Every running job stops at its next checkpoint; new ones are refused."""
        self.stop.set()

    def close(self, wait_s: float) -> bool:
        """Stop taking work and wait up to `wait_s` for running jobs; True when none is left running."""
        self.stop_all()
        for pool in (self.small, self.big):
            pool.shutdown(wait=False, cancel_futures=True)
        end = time.monotonic() + wait_s
        while self.running and time.monotonic() < end:
            time.sleep(0.02)
        return not self.running

