"""The packaged worker, run for real (livekit-agents as pinned) against the local agent server.

Each test starts ``python -m livekit_drain_worker start`` as the image does, with the task
definition's environment, and watches it from outside as the coordinator does: the rooms of
the local RoomService, the worker's status as the agent server sees it, the ECS agent's
endpoints, the process's exit. Drain timeouts are seconds, so the whole file runs in about a
minute.
"""

from __future__ import annotations

import signal
import time
import urllib.request
from collections.abc import Iterator

import pytest

from drain_coordinator.domain.task_stops import ContainerExit, TaskStateChange, Verdict, judge
from drain_coordinator.integrations.livekit import SESSION_TAG_ATTRIBUTE, LiveKitCredentials, LiveKitSessions
from drainctl.world import fleet
from drainctl.world.agent_server import LocalAgentServer, NoWorkerAvailableError
from drainctl.world.call_agent import CallPlan
from drainctl.world.livekit_server import LocalLiveKit
from drainctl.world.real_worker import RealWorker
from livekit_drain_worker.app import PROTECTION_SYNC_SECONDS
from livekit_drain_worker.testing import LocalEcsEndpoints

# Real time, on a loaded 2-core machine: how long the worker may take to show a change.
STATUS_SLACK_SECONDS = 3.0
EXIT_SLACK_SECONDS = 5.0
# A job needs a warm job process; the first ones are still starting right after registration.
JOIN_SLACK_SECONDS = 20.0


@pytest.fixture
def livekit() -> Iterator[LocalLiveKit]:
    with LocalLiveKit(delete_room_when_empty=False) as server:
        yield server


@pytest.fixture
def agent_server(livekit: LocalLiveKit) -> Iterator[LocalAgentServer]:
    with LocalAgentServer(livekit) as server:
        yield server


def start_worker(
    agent_server: LocalAgentServer, ecs: LocalEcsEndpoints, *, drain_timeout: int, **options: object
) -> RealWorker:
    worker = RealWorker(
        agent_server, drain_timeout_seconds=drain_timeout, ecs_environ=ecs.environ(), **options
    )  # type: ignore[arg-type]
    try:
        worker.start()
    except BaseException:
        worker.close()
        raise
    return worker


def place_call(livekit: LocalLiveKit, agent_server: LocalAgentServer, room: str, plan: CallPlan) -> str:
    """A caller dials in; the agent is dispatched to the room. Returns the job id."""
    livekit.join(room, f"caller-{room}", kind="SIP")
    return agent_server.dispatch(room, metadata=plan.metadata()).job_id


def agents_in(livekit: LocalLiveKit, room: str) -> list[dict[str, str]]:
    return [dict(p.attributes) for p in livekit.rooms().get(room, []) if p.kind == "AGENT"]


def wait_until(condition: object, timeout_seconds: float) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(condition())  # type: ignore[operator]


def test_on_sigterm_the_worker_reports_full_takes_no_new_job_finishes_its_calls_and_exits_0(
    livekit: LocalLiveKit, agent_server: LocalAgentServer, ecs: LocalEcsEndpoints
) -> None:
    # GIVEN the packaged worker with task protection on, answering its health check
    worker = start_worker(agent_server, ecs, drain_timeout=30, task_protection=True)
    with worker:
        health = f"http://127.0.0.1:{worker.health_port}/"
        with urllib.request.urlopen(health, timeout=5) as answer:
            assert (answer.status, answer.read()) == (200, b"OK")

        # WHEN a call comes in, longer than the worker's protection sync period
        call_seconds = PROTECTION_SYNC_SECONDS + 1
        place_call(livekit, agent_server, "call-1", CallPlan(call_seconds=call_seconds))

        # THEN its agent is in the room tagged (the attribute the coordinator reads) with the
        # task ARN from the metadata endpoint,
        # and the task is protected from scale-in while the call runs, then released
        assert wait_until(lambda: agents_in(livekit, "call-1"), JOIN_SLACK_SECONDS)
        assert agents_in(livekit, "call-1")[0][SESSION_TAG_ATTRIBUTE] == ecs.task_arn
        assert wait_until(lambda: any(r["ProtectionEnabled"] for r in ecs.protection_requests), call_seconds)
        assert agents_in(livekit, "call-1")
        assert wait_until(lambda: not agents_in(livekit, "call-1"), call_seconds + STATUS_SLACK_SECONDS)
        assert wait_until(
            lambda: not ecs.protection_requests[-1]["ProtectionEnabled"],
            PROTECTION_SYNC_SECONDS + STATUS_SLACK_SECONDS,
        )

        # WHEN another call runs and ECS stops the task
        place_call(livekit, agent_server, "call-2", CallPlan(call_seconds=3))
        assert wait_until(lambda: agents_in(livekit, "call-2"), JOIN_SLACK_SECONDS)
        worker.signal(signal.SIGTERM)

        # THEN it reports itself full, is given no new call, keeps the running one
        assert wait_until(lambda: worker.snapshot().status == "WS_FULL", STATUS_SLACK_SECONDS)
        with pytest.raises(NoWorkerAvailableError):
            place_call(livekit, agent_server, "call-3", CallPlan(call_seconds=1))
        assert agents_in(livekit, "call-2")
        assert not agents_in(livekit, "call-3")

        # AND exits 0 once that call ended, not waiting out its drain timeout
        code = worker.wait(timeout_seconds=30)
        assert code == 0, worker.output()
        sigterm_at = worker.signalled_at[0]
        assert worker.exited_at is not None
        assert worker.exited_at - sigterm_at < 3 + fleet.EXIT_AFTER_LAST_CALL_SECONDS + EXIT_SLACK_SECONDS
        assert agents_in(livekit, "call-2") == []


def test_calls_longer_than_the_drain_timeout_are_cut_after_the_job_grace_and_judged_drain_timed_out(
    livekit: LocalLiveKit, agent_server: LocalAgentServer, ecs: LocalEcsEndpoints
) -> None:
    # GIVEN a worker with a 2 s drain timeout, holding two calls that outlast it and close slowly
    drain_timeout = 2
    worker = start_worker(agent_server, ecs, drain_timeout=drain_timeout)
    with worker:
        plan = CallPlan(call_seconds=120, shutdown_seconds=60)
        place_call(livekit, agent_server, "call-a", plan)
        place_call(livekit, agent_server, "call-b", plan)
        assert wait_until(
            lambda: agents_in(livekit, "call-a") and agents_in(livekit, "call-b"), JOIN_SLACK_SECONDS
        )
        # the coordinator finds the task's calls as it does when the task starts stopping
        sessions = LiveKitSessions(
            livekit.url, lambda: LiveKitCredentials(livekit.api_key, livekit.api_secret)
        )
        held = sessions.discover([ecs.task_arn])
        assert set(held) == {"call-a", "call-b"}

        # WHEN ECS stops the task
        worker.signal(signal.SIGTERM)
        code = worker.wait(timeout_seconds=drain_timeout + 30)

        # THEN the worker gave up at drain_timeout, gave its jobs livekit-agents' shutdown
        # grace, killed them and exited 0: the timings the fleet model's worker uses
        assert code == 0, worker.output()
        assert worker.exited_at is not None
        took = worker.exited_at - worker.signalled_at[0]
        expected = drain_timeout + fleet.JOB_SHUTDOWN_GRACE_SECONDS
        assert expected - 0.5 <= took <= expected + EXIT_SLACK_SECONDS, took

        # AND the coordinator judges the stop drain_timed_out, with both calls dropped
        still_up = sessions.callers_still_in(held)
        stopped = TaskStateChange(
            task_arn=ecs.task_arn,
            cluster_arn=ecs.task_arn.split(":task/")[0] + ":cluster/voice",
            container_instance_arn=None,
            task_definition_arn="arn:aws:ecs:eu-west-1:123456789012:task-definition/voice-worker:7",
            group="service:voice",
            last_status="STOPPED",
            desired_status="STOPPED",
            stop_code="ServiceSchedulerInitiated",
            stopped_reason="Scaling activity initiated by (deployment ecs-svc/voice)",
            stopping_at=0.0,
            stopped_at=took,
            observed_at=took,
            version=3,
            containers=(ContainerExit(name="worker", exit_code=code, reason=""),),
        )
        judgement = judge(stopped, stop_timeout=drain_timeout + 60, calls_still_up=len(still_up))
        assert (judgement.verdict, judgement.dropped_sessions) == (Verdict.DRAIN_TIMED_OUT, 2)


def test_a_second_signal_ends_a_draining_worker_at_once(
    livekit: LocalLiveKit, agent_server: LocalAgentServer, ecs: LocalEcsEndpoints
) -> None:
    # GIVEN a draining worker holding a long call
    worker = start_worker(agent_server, ecs, drain_timeout=60)
    with worker:
        place_call(livekit, agent_server, "call-x", CallPlan(call_seconds=120))
        assert wait_until(lambda: agents_in(livekit, "call-x"), JOIN_SLACK_SECONDS)
        worker.signal(signal.SIGTERM)
        assert wait_until(lambda: worker.snapshot().status == "WS_FULL", STATUS_SLACK_SECONDS)

        # WHEN it is signalled again
        worker.signal(signal.SIGTERM)

        # THEN it exits at once, with livekit-agents' forced-exit code, well before its drain
        code = worker.wait(timeout_seconds=EXIT_SLACK_SECONDS)
        assert code == 1
