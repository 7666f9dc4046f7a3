"""Concurrency on the virtual clock: a conservative discrete-event scheduler.

What AWS would run at the same time (Lambda invocations of an event source, up to its
concurrency) runs here as *processes*: one thread each, exactly one of them running at a time.
Whenever a process spends virtual time (a request's latency, a botocore retry sleep, the
adaptive rate limiter's wait) it yields to the process with the earliest wake time, and the
clock moves to that time. The clock stays monotonic, requests that overlap in virtual time
overlap, and a run is the same every time: the order of wake-ups is (wake time, sequence of
sleeping), never the operating system's.

Code outside a concurrent run (the world's own sequential steps, a handler invoked one at a time)
spends virtual time by moving the clock. Threads a handler starts on its own (a thread pool inside
one invocation) are no processes: their spending is shared between the requests in flight
together (overlapping, not deterministic); the handlers start none. A handler's asyncio event
loop is no thread of its own: it runs in its process on the virtual clock
(drainctl/world/virtual_loop.py).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from drainctl.world.clock import VirtualClock

T = TypeVar("T")

# Real time a non-process thread holds each spending, so that threads spending "at once" are in
# flight together (the local servers answer in microseconds).
_SHARED_HOLD_SECONDS = 0.002


class SchedulerError(Exception):
    """A concurrent run was misused: nested runs, a process that never ends."""


@dataclass
class ProcessResult(Generic[T]):
    """What one process returned, or the exception that ended it."""

    value: T | None = None
    error: BaseException | None = None
    started_at: float = 0.0
    ended_at: float = 0.0
    ended: bool = False


@dataclass(eq=False)
class _Process:
    seq: int
    target: Callable[[], Any]
    result: ProcessResult[Any]
    thread: threading.Thread | None = None
    woken: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    counted: bool = False  # one of its run's targets


class VirtualTime:
    """The world's one way to spend virtual time, sequentially or as concurrent processes."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._local = threading.local()
        self._heap: list[tuple[float, int, _Process]] = []
        self._live = 0
        self._seq = 0
        self._idle = threading.Event()
        self._running_run = False
        self._shared_lock = threading.Lock()
        self._in_flight = 0
        self._park = False
        self._horizon: float | None = None
        self._targets_left = 0

    # -- spending ---------------------------------------------------------------------------------

    def current(self) -> _Process | None:
        """The process the calling thread is, if any."""
        process: _Process | None = getattr(self._local, "process", None)
        return process

    @property
    def concurrent(self) -> bool:
        """A concurrent run is under way (processes exist)."""
        return self._running_run

    def spend(self, seconds: float) -> None:
        """Let `seconds` of virtual time pass for the calling thread."""
        if seconds < 0:
            raise ValueError("a clock never runs backwards")
        process = self.current()
        if process is not None:
            if seconds > 0:  # spending nothing keeps the run: no reordering at the same instant
                self._yield(process, self.clock.now() + seconds)
        elif threading.current_thread() is threading.main_thread():
            self.clock.advance(seconds)
        else:
            self._spend_shared(seconds)

    def sleep_until(self, t: float) -> None:
        self.spend(max(0.0, t - self.clock.now()))

    def _spend_shared(self, seconds: float) -> None:
        with self._shared_lock:
            self._in_flight += 1
        try:
            time.sleep(_SHARED_HOLD_SECONDS)
        finally:
            with self._shared_lock:
                share = seconds / self._in_flight
                self._in_flight -= 1
            self.clock.advance(share)

    # -- concurrent runs -------------------------------------------------------------------------

    def spawn(self, target: Callable[[], T]) -> ProcessResult[T]:
        """Start a process now (virtual time); only inside a run (from a process)."""
        if not self._running_run:
            raise SchedulerError("processes are spawned inside a concurrent run")
        return self._add(target)

    def run(
        self, targets: Sequence[Callable[[], T]], *, park: bool = False, until: float | None = None
    ) -> list[ProcessResult[T]]:
        """Run `targets` as concurrent processes from now. Called from outside any process.

        Without `park`, until every process (those parked by an earlier run included, and every
        one they spawned) has ended. With `park`, until the targets have ended and no process is
        due by `until` (default: the clock's time), each run at its own wake time: processes
        waiting for a later time stay parked, and resume in a later run.
        """
        if self.current() is not None or self._running_run:
            raise SchedulerError("concurrent runs do not nest")
        self._running_run = True
        self._park = park
        self._horizon = until
        self._idle.clear()
        try:
            with self._lock:
                results = [self._add_locked(target, counted=True) for target in targets]
                if self._stop_locked():
                    return results
                self._dispatch_locked()
            self._idle.wait()
            return results
        finally:
            self._running_run = False

    @property
    def parked(self) -> int:
        """Processes waiting for a later run (left by a run with `park`)."""
        with self._lock:
            return self._live

    def finish(self) -> None:
        """Run every parked process to its end (before the world stops)."""
        if self.parked:
            self.run([])

    def _stop_locked(self) -> bool:
        if self._park and self._targets_left == 0:
            horizon = self.clock.now() if self._horizon is None else max(self._horizon, self.clock.now())
            return not self._heap or self._heap[0][0] > horizon
        return not self._heap and self._live == 0

    def _add(self, target: Callable[[], T]) -> ProcessResult[T]:
        with self._lock:
            return self._add_locked(target)

    def _add_locked(self, target: Callable[[], T], counted: bool = False) -> ProcessResult[T]:
        result: ProcessResult[T] = ProcessResult(started_at=self.clock.now())
        process = _Process(self._next_seq(), target, result, counted=counted)
        if counted:
            self._targets_left += 1
        thread = threading.Thread(
            target=self._body, args=(process,), name=f"process-{process.seq}", daemon=True
        )
        process.thread = thread
        self._live += 1
        heapq.heappush(self._heap, (self.clock.now(), process.seq, process))
        thread.start()
        return result

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _body(self, process: _Process) -> None:
        self._local.process = process
        process.woken.wait()
        try:
            process.result.value = process.target()
        except BaseException as exc:
            process.result.error = exc
        finally:
            process.result.ended_at = self.clock.now()
            process.result.ended = True
            with self._lock:
                process.done = True
                self._live -= 1
                if process.counted:
                    self._targets_left -= 1
                self._dispatch_locked()

    def _yield(self, process: _Process, wake_at: float) -> None:
        with self._lock:
            process.woken.clear()
            heapq.heappush(self._heap, (wake_at, self._next_seq(), process))
            self._dispatch_locked()
        process.woken.wait()

    def _dispatch_locked(self) -> None:
        """Hand the run to the process with the earliest wake time (the lock held)."""
        if self._stop_locked():
            self._idle.set()
            return
        if not self._heap:
            return  # a process still runs: it yields or ends, and dispatches again
        wake_at, _, process = heapq.heappop(self._heap)
        if wake_at > self.clock.now():
            self.clock.set(wake_at)
        process.woken.set()


__all__ = ["ProcessResult", "SchedulerError", "VirtualTime"]
