"""Load reporting: the worker is as loaded as the share of its call slots in use.

livekit-agents calls ``load_fnc`` about twice a second and marks the worker unavailable when
the load reaches ``load_threshold``. Counting jobs rather than CPU gives a hard ceiling of
`max_jobs` calls per worker; size `max_jobs` below the point where your agent saturates the
task's CPU (measure it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol


class RunsJobs(Protocol):
    """What the load function needs of livekit-agents' `AgentServer`."""

    @property
    def active_jobs(self) -> Sequence[object]: ...


def job_load(active_jobs: int, max_jobs: int) -> float:
    """Share of the call slots in use, in [0, 1]."""
    if max_jobs < 1:
        raise ValueError(f"max_jobs must be at least 1, got {max_jobs}")
    return min(max(active_jobs, 0) / max_jobs, 1.0)


def load_threshold(max_jobs: int) -> float:
    """The load at which the worker reports itself full: half a job below all slots in use.

    livekit-agents takes a job only while (running + reserved jobs) / max_jobs stays below the
    threshold, so the worker holds at most `max_jobs` calls; the half-job gap keeps float
    rounding from letting one more in. Always below 1, as livekit-agents asks in production.
    """
    if max_jobs < 1:
        raise ValueError(f"max_jobs must be at least 1, got {max_jobs}")
    return (max_jobs - 0.5) / max_jobs


def idle_processes(max_jobs: int, cpu_count: float) -> int:
    """How many job processes to keep warm: livekit-agents' default, never more than `max_jobs`.

    While no job runs, livekit-agents estimates one job's load as threshold / idle processes;
    more warm processes than call slots would let a burst of requests take more than
    `max_jobs` calls.
    """
    return max(1, min(max_jobs, math.ceil(cpu_count), 4))


class ActiveJobsLoad:
    """A livekit-agents ``load_fnc``; a class so the worker options stay picklable."""

    def __init__(self, max_jobs: int) -> None:
        if max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, got {max_jobs}")
        self.max_jobs = max_jobs

    def __call__(self, server: RunsJobs) -> float:
        return job_load(len(server.active_jobs), self.max_jobs)
