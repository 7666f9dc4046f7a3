"""asyncio on the virtual clock, for the event loops a handler runs inside an invocation.

The coordinator asks LiveKit through livekit-api, which is asyncio and aiohttp: it runs its
ListParticipants calls 16 at a time (`asyncio.gather` under a semaphore), bounds each call and
each look with `asyncio.timeout`. On a real clock those timeouts are what end a slow look inside
its budget, and the calls in flight together answer in the order of their latencies.

The world's LiveKit answers in microseconds, so both would be lost: the timeouts read the loop's
real clock and never fire, and the order in which answers reach the coroutines is the order the
operating system delivers them. This module gives an invocation's event loop the world's clock
and a deterministic order (https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.loop.time):

- `loop.time()` is the virtual clock, so `asyncio.timeout`, `call_later` and aiohttp's own timers
  fall due in virtual time.
- Each LiveKit request the world's aiohttp hooks see is registered with the virtual time its
  answer is due (its latency drawn when it starts). Its coroutine parks at the response until then.
- The loop's selector is asked to wait only when nothing is ready to run (asyncio computes a
  timeout of 0 otherwise). At that point, once every request in flight has its answer back from
  the local server (a real wait, microseconds), the loop moves the clock to the next event in
  virtual time, the earliest parked answer or the earliest timer, and lets that one happen. A
  timer due before an answer fires first and cancels the call, as on a real clock.

So a run is the same every time: answers are delivered in order of their due times, the clock
moves only at quiescent points, and a request started after another answer was delivered reads
the clock of that delivery, not of whichever answer the OS handed over first.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

# The longest real wait for an answer the local servers owe (they answer in microseconds; this
# only bounds a wait for a connection that closes).
_REAL_WAIT_SECONDS: Final = 5.0
# A quiescent loop with nothing in flight but a timer pending (an `asyncio.sleep`): how long the
# world lets real I/O (a transport closing) arrive before it moves the clock to that timer.
_IDLE_REAL_WAIT_SECONDS: Final = 0.5
_RESOLUTION_SECONDS: Final = 1e-6


@dataclass(eq=False)
class _Answer:
    seq: int
    due: float
    parked: asyncio.Future[None] | None = None


@dataclass
class _Requests:
    """The LiveKit requests one loop has in flight, by start order."""

    items: dict[int, _Answer] = field(default_factory=dict)
    seq: int = 0

    def unanswered(self) -> bool:
        """A request whose answer the local server has not yet delivered to its coroutine."""
        return any(a.parked is None for a in self.items.values())

    def next_parked(self) -> _Answer | None:
        parked = [a for a in self.items.values() if a.parked is not None and not a.parked.done()]
        return min(parked, key=lambda a: (a.due, a.seq), default=None)


class _QuiescentSelector(selectors.BaseSelector):
    """The loop's selector: a real one, except when the loop would wait (see the module text)."""

    def __init__(self, loop: VirtualEventLoop, inner: selectors.BaseSelector) -> None:
        self._inner = inner
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            return self._inner.select(0)
        return self._loop._quiescent()


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock is the world's (see the module text). `sleep_until` spends the
    invocation's virtual time; it raises once the invocation's deadline has passed."""

    def __init__(self, now: Callable[[], float], sleep_until: Callable[[float], None]) -> None:
        self._now = now
        self._sleep_until = sleep_until
        self._requests = _Requests()
        self._expired = False
        self._real: selectors.BaseSelector = selectors.DefaultSelector()
        super().__init__(_QuiescentSelector(self, self._real))
        # A timer runs once `when < time() + resolution`; at the clock's epoch seconds (1.7e9, a
        # float's step there is 2.4e-7 s) the real clock's nanosecond would round away.
        self._clock_resolution = _RESOLUTION_SECONDS

    def time(self) -> float:
        return self._now()

    # -- the requests' side ------------------------------------------------------------------

    def request_started(self, due: float) -> int:
        """A LiveKit request starts; its answer is due at `due` (virtual). Returns its ticket."""
        self._requests.seq += 1
        self._requests.items[self._requests.seq] = _Answer(self._requests.seq, due)
        return self._requests.seq

    async def answer(self, ticket: int) -> None:
        """The local server answered `ticket`: wait for the virtual time it is due."""
        answer = self._requests.items[ticket]
        answer.parked = self.create_future()
        try:
            await answer.parked
        finally:
            self._requests.items.pop(ticket, None)

    def request_failed(self, ticket: int) -> None:
        """The request ended without an answer (a connection error, a cancellation)."""
        self._requests.items.pop(ticket, None)

    # -- the selector's side -----------------------------------------------------------------

    def _timer(self) -> float | None:
        """The earliest timer the loop holds (asyncio's own heap: BaseEventLoop._scheduled)."""
        scheduled: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]
        return min((h.when() for h in scheduled if not h.cancelled()), default=None)

    def _move_to(self, t: float) -> None:
        if self._expired:
            return
        try:
            self._sleep_until(t)
        except BaseException:
            self._expired = True  # the invocation is over: let the loop wind down on real time
            raise

    def _quiescent(self) -> list[tuple[selectors.SelectorKey, int]]:
        inner = self._real
        if self._expired:
            return inner.select(_IDLE_REAL_WAIT_SECONDS)
        if self._requests.unanswered():
            return inner.select(_REAL_WAIT_SECONDS)
        ready = inner.select(0)
        if ready:
            return ready
        answer = self._requests.next_parked()
        timer = self._timer()
        if answer is None:
            if timer is None:
                return inner.select(None)
            ready = inner.select(_IDLE_REAL_WAIT_SECONDS)
            if not ready:
                self._move_to(timer)
            return ready
        if timer is not None and timer <= answer.due:
            self._move_to(timer)  # the timer first: it may cancel the call it bounds
            return []
        self._move_to(answer.due)
        assert answer.parked is not None
        answer.parked.set_result(None)
        return []


class VirtualLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """New event loops are virtual when `virtual()` gives the invocation's clock functions, the
    operating system's otherwise (the world's own servers and agents run on real time)."""

    def __init__(
        self, virtual: Callable[[], tuple[Callable[[], float], Callable[[float], None]] | None]
    ) -> None:
        super().__init__()
        self._virtual = virtual

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        clock = self._virtual()
        if clock is None:
            return super().new_event_loop()
        return VirtualEventLoop(*clock)


def running_virtual_loop() -> VirtualEventLoop | None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop if isinstance(loop, VirtualEventLoop) else None


__all__ = ["VirtualEventLoop", "VirtualLoopPolicy", "running_virtual_loop"]
