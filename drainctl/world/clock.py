"""The virtual clock every part of the local world reads."""

from __future__ import annotations

import threading


class VirtualClock:
    """Seconds since the epoch, moved only by `advance`/`set`.

    The handlers, the Auto Scaling lifecycle extension and the fleet model all read the same
    clock, so a drain of half an hour replays in well under a second.
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock never runs backwards")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, t: float) -> None:
        with self._lock:
            if t < self._now:
                raise ValueError("a clock never runs backwards")
            self._now = float(t)
