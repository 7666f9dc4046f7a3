from __future__ import annotations

import asyncio
import logging

import pytest

from livekit_drain_worker.protection import (
    ScaleInProtection,
    TaskProtectionClient,
    TaskProtectionError,
    keep_protection,
)
from livekit_drain_worker.testing import (
    LocalEcsEndpoints,
    protection_error,
    protection_failure,
)

MINUTES = 60
HALF_LIFE_SECONDS = MINUTES * 60 / 2


def protection_for(ecs: LocalEcsEndpoints) -> ScaleInProtection:
    return ScaleInProtection(TaskProtectionClient(ecs.agent_uri), expires_in_minutes=MINUTES)


def test_protection_is_enabled_when_the_first_call_starts(ecs: LocalEcsEndpoints) -> None:
    # GIVEN an idle, unprotected worker
    protection = protection_for(ecs)

    # WHEN its first call starts
    protection.sync(active_jobs=1, now=1000.0)

    # THEN the task is protected for the configured time
    assert ecs.protection_requests == [{"ProtectionEnabled": True, "ExpiresInMinutes": MINUTES}]
    assert protection.protected is True


def test_protection_is_not_asked_again_before_half_its_lifetime(ecs: LocalEcsEndpoints) -> None:
    # GIVEN a worker protected at t=1000 while holding calls
    protection = protection_for(ecs)
    protection.sync(active_jobs=1, now=1000.0)

    # WHEN more calls come and go, short of half the protection's lifetime
    protection.sync(active_jobs=3, now=1000.0 + HALF_LIFE_SECONDS - 1)

    # THEN the ECS agent was asked once only
    assert len(ecs.protection_requests) == 1


def test_protection_is_renewed_before_it_expires(ecs: LocalEcsEndpoints) -> None:
    # GIVEN a worker protected at t=1000 and still holding calls
    protection = protection_for(ecs)
    protection.sync(active_jobs=2, now=1000.0)

    # WHEN half the protection's lifetime has passed
    protection.sync(active_jobs=2, now=1000.0 + HALF_LIFE_SECONDS)

    # THEN it is renewed for the full time again, and the next renewal moves on
    assert ecs.protection_requests == [
        {"ProtectionEnabled": True, "ExpiresInMinutes": MINUTES},
        {"ProtectionEnabled": True, "ExpiresInMinutes": MINUTES},
    ]
    assert protection.renew_at == 1000.0 + 2 * HALF_LIFE_SECONDS


def test_protection_is_released_when_the_worker_goes_idle(ecs: LocalEcsEndpoints) -> None:
    # GIVEN a protected worker
    protection = protection_for(ecs)
    protection.sync(active_jobs=1, now=1000.0)

    # WHEN its last call ends
    protection.sync(active_jobs=0, now=1200.0)

    # THEN the protection is released, once
    protection.sync(active_jobs=0, now=1210.0)
    assert ecs.protection_requests[1:] == [{"ProtectionEnabled": False}]
    assert protection.protected is False


def test_idle_worker_never_protected_sends_nothing(ecs: LocalEcsEndpoints) -> None:
    # GIVEN a worker that never held a call
    protection = protection_for(ecs)

    # WHEN it syncs while idle
    protection.sync(active_jobs=0, now=1000.0)

    # THEN the ECS agent is not asked anything
    assert ecs.protection_requests == []


def test_agent_error_is_logged_not_raised_and_retried_next_sync(
    ecs: LocalEcsEndpoints, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an ECS agent that refuses once (task role without ecs:UpdateTaskProtection)
    ecs.fail_protection(protection_error(403, "AccessDeniedException", "not authorized"))
    protection = protection_for(ecs)

    # WHEN the worker's first call starts
    with caplog.at_level(logging.WARNING, logger="livekit_drain_worker"):
        protection.sync(active_jobs=1, now=1000.0)

    # THEN the error is logged with the agent's code, and the worker stays unprotected
    assert protection.protected is False
    assert any(
        record.getMessage() == "task protection update failed"
        and "AccessDeniedException" in str(getattr(record, "error", ""))
        for record in caplog.records
    )

    # WHEN it syncs again
    protection.sync(active_jobs=1, now=1010.0)

    # THEN it asks again and is protected
    assert len(ecs.protection_requests) == 2
    assert protection.protected is True


def test_ecs_failure_answer_is_an_error_not_a_protection(ecs: LocalEcsEndpoints) -> None:
    # GIVEN ECS answering 200 with a failure for the task
    ecs.fail_protection(protection_failure("TASK_NOT_VALID"))
    client = TaskProtectionClient(ecs.agent_uri)

    # WHEN protection is asked for
    # THEN it is a TaskProtectionError carrying the reason
    with pytest.raises(TaskProtectionError, match="TASK_NOT_VALID"):
        client.set_protection(True, MINUTES)


def test_release_failure_is_retried_on_the_next_sync(ecs: LocalEcsEndpoints) -> None:
    # GIVEN a protected worker whose release fails once
    protection = protection_for(ecs)
    protection.sync(active_jobs=1, now=1000.0)
    ecs.fail_protection(protection_error(500, "ServerException", "try again"))

    # WHEN it goes idle, and syncs twice
    protection.sync(active_jobs=0, now=1100.0)
    still_protected = protection.protected
    protection.sync(active_jobs=0, now=1110.0)

    # THEN the second release goes through
    assert still_protected is True
    assert protection.protected is False
    assert ecs.protection_requests[1:] == [
        {"ProtectionEnabled": False},
        {"ProtectionEnabled": False},
    ]


def test_unreachable_agent_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN an agent URI where nothing listens (a server started and stopped)
    with LocalEcsEndpoints() as gone:
        agent_uri = gone.agent_uri
    protection = ScaleInProtection(
        TaskProtectionClient(agent_uri, timeout_seconds=2.0), expires_in_minutes=MINUTES
    )

    # WHEN the worker's first call starts
    with caplog.at_level(logging.WARNING, logger="livekit_drain_worker"):
        protection.sync(active_jobs=1, now=1000.0)

    # THEN the worker carries on unprotected, and the log says why
    assert protection.protected is False
    assert any("unreachable" in str(getattr(r, "error", "")) for r in caplog.records)


def test_keep_protection_follows_the_active_job_count(ecs: LocalEcsEndpoints) -> None:
    # GIVEN a worker whose job count goes 1, 1, 0 over three syncs
    protection = protection_for(ecs)
    counts = iter([1, 1, 0])
    stop = asyncio.Event()
    ticks = iter([1000.0, 1005.0, 1010.0])

    def active_jobs() -> int:
        count = next(counts)
        if count == 0:
            stop.set()
        return count

    # WHEN the keeper runs until the worker is idle
    asyncio.run(
        keep_protection(protection, active_jobs, interval_seconds=0, clock=lambda: next(ticks), stop=stop)
    )

    # THEN the task was protected once and released once
    assert ecs.protection_requests == [
        {"ProtectionEnabled": True, "ExpiresInMinutes": MINUTES},
        {"ProtectionEnabled": False},
    ]


# -- a deploy is never held past the cap -----------------------------------------------------------

from dataclasses import dataclass, field  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

HOLD_CAP = 600 + 900  # drain timeout + stop timeout


@dataclass
class RecordingAgent:
    """The ECS agent's protection, as a deploy sees it: when the protection in force ends."""

    now: float = 0.0
    expires_at: float | None = None
    requests: list[tuple[float, bool, int | None]] = field(default_factory=list)

    def set_protection(self, enabled: bool, expires_in_minutes: int | None = None) -> None:
        self.requests.append((self.now, enabled, expires_in_minutes))
        self.expires_at = self.now + 60 * (expires_in_minutes or 0) if enabled else None


def test_steady_traffic_no_longer_renews_protection_forever() -> None:
    # GIVEN a worker that always holds a call (steady traffic), protection of 60 minutes
    agent = RecordingAgent()
    protection = ScaleInProtection(agent, expires_in_minutes=MINUTES, max_hold_seconds=HOLD_CAP)

    # WHEN it syncs every 10 s for ten hours
    for tick in range(3600):
        agent.now = tick * 10.0
        protection.sync(active_jobs=2, now=agent.now)

    # THEN protection was released within the cap of its start, and never asked for again
    assert agent.requests[0] == (0.0, True, HOLD_CAP // 60)
    assert agent.requests[-1][1] is False and agent.requests[-1][0] <= HOLD_CAP
    assert agent.expires_at is None and protection.protected is False


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(min_value=1, max_value=900), st.integers(0, 3)), min_size=1, max_size=300)
)
def test_a_deploy_starting_at_any_moment_waits_at_most_drain_plus_stop_timeout(
    syncs: list[tuple[float, int]],
) -> None:
    # GIVEN any sequence of syncs with calls coming and going
    agent = RecordingAgent()
    protection = ScaleInProtection(agent, expires_in_minutes=MINUTES, max_hold_seconds=HOLD_CAP)
    for gap, jobs in syncs:
        agent.now += gap
        # WHEN the worker syncs
        protection.sync(active_jobs=jobs, now=agent.now)
        # THEN the protection in force ends no later than the cap from now
        if agent.expires_at is not None:
            assert agent.expires_at - agent.now <= HOLD_CAP + 1e-6  # float sums


def test_an_idle_moment_starts_a_new_spell_of_protection() -> None:
    agent = RecordingAgent()
    protection = ScaleInProtection(agent, expires_in_minutes=MINUTES, max_hold_seconds=HOLD_CAP)
    protection.sync(active_jobs=1, now=0.0)
    protection.sync(active_jobs=1, now=HOLD_CAP + 10.0)  # spent: released
    protection.sync(active_jobs=0, now=HOLD_CAP + 20.0)  # idle
    agent.now = HOLD_CAP + 30.0
    protection.sync(active_jobs=1, now=agent.now)
    assert protection.protected is True and agent.requests[-1] == (agent.now, True, HOLD_CAP // 60)
