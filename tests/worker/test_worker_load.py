from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livekit_drain_worker.load import ActiveJobsLoad, idle_processes, job_load, load_threshold


@dataclass
class FakeServer:
    active_jobs: list[object] = field(default_factory=list)


@pytest.mark.parametrize(
    ("active", "expected"),
    [(0, 0.0), (1, 0.125), (4, 0.5), (8, 1.0), (9, 1.0)],
)
def test_job_load_is_the_share_of_call_slots_in_use(active: int, expected: float) -> None:
    # GIVEN a worker with 8 call slots and `active` calls
    # WHEN its load is computed
    load = job_load(active, max_jobs=8)

    # THEN it is active / 8, never above 1
    assert load == expected


def test_load_function_counts_the_servers_active_jobs() -> None:
    # GIVEN livekit-agents' server view with 3 running jobs, and 4 slots
    server = FakeServer(active_jobs=[object(), object(), object()])

    # WHEN livekit-agents calls the load function
    load = ActiveJobsLoad(max_jobs=4)(server)

    # THEN the load is 3 / 4
    assert load == 0.75


@given(max_jobs=st.integers(min_value=1, max_value=256))
def test_worker_reports_full_at_max_jobs_and_not_before(max_jobs: int) -> None:
    # GIVEN a worker with `max_jobs` slots and its threshold
    threshold = load_threshold(max_jobs)

    # WHEN it holds one call less than its slots, then all of them
    one_free = job_load(max_jobs - 1, max_jobs)
    all_used = job_load(max_jobs, max_jobs)

    # THEN it takes a job while a slot is free, reports full once none is, and the
    # threshold stays below 1 as livekit-agents expects in production
    assert one_free < threshold
    assert all_used >= threshold
    assert threshold < 1.0


@given(
    max_jobs=st.integers(min_value=1, max_value=64),
    cpus=st.floats(min_value=0.25, max_value=64),
)
def test_reserved_requests_never_take_more_than_max_jobs(max_jobs: int, cpus: float) -> None:
    # GIVEN an idle worker: livekit-agents counts each reserved request as
    # threshold / idle processes of load until the job shows up as running
    threshold = load_threshold(max_jobs)
    per_reservation = threshold / idle_processes(max_jobs, cpus)

    # WHEN a burst of requests arrives at once
    reserved = 0
    while reserved * per_reservation < threshold:
        reserved += 1

    # THEN at most max_jobs of them were taken
    assert reserved <= max_jobs


def test_idle_processes_follow_livekit_default_below_max_jobs() -> None:
    # GIVEN a worker on a 2-vCPU task with 8 slots, and one with a single slot
    # WHEN the warm process count is chosen
    # THEN it is livekit-agents' default (vCPUs, at most 4) but never above max_jobs
    assert idle_processes(max_jobs=8, cpu_count=2) == math.ceil(2)
    assert idle_processes(max_jobs=8, cpu_count=16) == 4
    assert idle_processes(max_jobs=1, cpu_count=16) == 1


def test_max_jobs_below_one_is_refused() -> None:
    # GIVEN a load function asked for with no slot
    # WHEN it is built
    # THEN it is a ValueError
    with pytest.raises(ValueError, match="max_jobs"):
        ActiveJobsLoad(max_jobs=0)
