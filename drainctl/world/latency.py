"""Virtual time that requests to the local AWS and LiveKit cost, so a handler's remaining time
means something on the virtual clock.

Off by default. When set, every request served advances the clock by `seconds_per_request`
divided by the number of requests in flight when it ends: requests made at the same time
overlap, as they would against AWS. A tick that makes its calls one after the other pays the full
cost of each; one that keeps ten in flight pays about a tenth of each.

The local servers answer in microseconds, so requests made "at once" by several threads would
rarely be in flight together; `real_seconds_per_request` holds each answer that long (real time)
so that they are, as over a network.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from drainctl.world.clock import VirtualClock


class VirtualLatency:
    def __init__(
        self, clock: VirtualClock, seconds_per_request: float = 0.0, real_seconds_per_request: float = 0.0
    ) -> None:
        self._clock = clock
        self.seconds_per_request = seconds_per_request
        self.real_seconds_per_request = real_seconds_per_request
        self._lock = threading.Lock()
        self._in_flight = 0
        self.requests = 0

    def set(self, seconds_per_request: float, real_seconds_per_request: float = 0.0) -> None:
        self.seconds_per_request = seconds_per_request
        self.real_seconds_per_request = real_seconds_per_request

    @contextmanager
    def request(self) -> Iterator[None]:
        """Wraps the serving of one request."""
        with self._lock:
            self._in_flight += 1
        try:
            yield
            if self.real_seconds_per_request > 0:
                time.sleep(self.real_seconds_per_request)
        finally:
            with self._lock:
                share = self.seconds_per_request / self._in_flight
                self._in_flight -= 1
                self.requests += 1
            if share > 0:
                self._clock.advance(share)
