"""Where a request's work runs: off the event loop, in one of two bounded lanes, under one deadline.

Why two lanes: a 256-query batch at k=1000 is legal and takes a while; a one-line search from someone else must not
wait for it. Small requests (`limits.Cost.small`) have a lane of their own; big ones share another, with a short
queue past which they are refused at once (503 with Retry-After) instead of piling up. The event loop only parses
and answers, so `/healthz` never waits for either.

Why checkpoints: Python cannot stop a running thread. The work calls `Deadline.check()` between pieces (a slice of
queries encoded, one query searched and collapsed, one reranker batch), so a request past its deadline, or a
server told to stop, ends at the next piece instead of running to completion for nobody.

Why small first (`SmallFirst`): two lanes are not enough in one Python process. A big request's thread and a small
one's share the interpreter lock and the cores, and a one-line search that had its own lane still took 55x longer
while big ones ran (benchmarks/hostile_serve.py). So a big request's checkpoints also wait while any small request
is in the server (from its arrival to its answer; up to BIG_MAX_WAIT_S at each checkpoint): a small search shares
the machine with one piece of a big request at most, never with all of it. (Two more causes of the slow tail are
mended elsewhere: the encoder's quick seat, encoder/seats.py, and the frozen start-up heap, heap.py.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")

SMALL_WORKERS = 4
BIG_WORKERS = 1
BIG_QUEUE = 2  # big requests waiting for the big lane before more are refused
STOP_POLL_S = 0.1  # how often a waiting request looks at the server's stop
BIG_MAX_WAIT_S = 0.5  # the longest a big request's checkpoint waits for small requests


class DeadlineExceeded(Exception):
    """The request's time ran out (or the server is stopping); said to the client as 503."""


class Busy(Exception):
    """The big lane is full; said to the client as 503 with Retry-After."""


class SmallFirst:
    """Counts the small requests running; big work waits at its checkpoints while there is any."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._small = 0

    @contextmanager
    def small(self) -> Iterator[None]:
        with self._cond:
            self._small += 1
        try:
            yield
        finally:
            with self._cond:
                self._small -= 1
                if not self._small:
                    self._cond.notify_all()

    def wait_turn(self, deadline: Deadline | None = None, max_wait: float | None = None) -> None:
        """Return when no small request is running, at `max_wait` seconds, or (raising) at `deadline`."""
        end = None if max_wait is None else time.monotonic() + max_wait
        with self._cond:
            while self._small:
                left = [0.05]
                if end is not None:
                    left.append(end - time.monotonic())
                if deadline is not None and deadline.at is not None:
                    left.append(deadline.at - time.monotonic())
                if min(left) <= 0:
                    break
                self._cond.wait(min(left))
                if deadline is not None:
                    deadline.check_time()
        if deadline is not None:
            deadline.check_time()


class Deadline:
    """One request's time limit, checked by its work between pieces. `seconds=None`: no limit (the server's stop
    still ends it). `yields_to`: a big request's checkpoints wait for the small requests running."""

    def __init__(self, seconds: float | None, stop: threading.Event | None = None):
        self.seconds = seconds
        self.at = None if seconds is None else time.monotonic() + seconds
        self.stop = stop or threading.Event()
        self.cancelled = False
        self.yields_to: SmallFirst | None = None

    @property
    def big(self) -> bool:
        """Whether this is a big request's deadline (its work yields to small requests)."""
        return self.yields_to is not None

    def remaining(self) -> float | None:
        return None if self.at is None else max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return self.cancelled or self.stop.is_set() or (self.at is not None and time.monotonic() > self.at)

    def check(self) -> None:
        """Raise DeadlineExceeded past the deadline; for a big request, first let the small ones finish (for at most
        BIG_MAX_WAIT_S: a steady stream of small requests slows a big one down, it never stops it)."""
        if self.yields_to is not None:
            self.yields_to.wait_turn(self, max_wait=BIG_MAX_WAIT_S)
        self.check_time()

    def check_time(self) -> None:
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
        self.gate = SmallFirst()
        self._lock = threading.Lock()

    def deadline(self, seconds: float | None) -> Deadline:
        return Deadline(seconds, self.stop)

    async def run(self, fn: Callable[[Deadline], T], deadline: Deadline, *, small: bool) -> T:
        """`fn(deadline)` in its lane; DeadlineExceeded at the deadline (the work stops at its next checkpoint). A
        small job counts as running for `gate` from start to end; a big one's checkpoints wait for those."""
        deadline.check_time()
        pool = self.small if small else self.big
        if not small:
            deadline.yields_to = self.gate
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
                if small:
                    with self.gate.small():
                        return fn(deadline)
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
                    deadline.check_time()
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

