"""A rescue dispatch with the real livekit-agents: the coordinator's CreateDispatch (livekit-api,
through the local LiveKit's AgentDispatchService) lands on a packaged worker that reports itself
available, never on a draining one, and carries the rescue's metadata to it."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest

from drain_coordinator.domain.rescue import Danger, Rescue
from drain_coordinator.integrations.livekit import LiveKitCredentials, LiveKitRescues
from drain_coordinator.services.rescue import RESCUE_METADATA_KEY, rescue_metadata
from drainctl.world.agent_server import LocalAgentServer
from drainctl.world.call_agent import CallPlan
from drainctl.world.livekit_server import LocalLiveKit
from livekit_drain_worker.testing import LocalEcsEndpoints
from tests.worker.test_real_worker import (
    JOIN_SLACK_SECONDS,
    STATUS_SLACK_SECONDS,
    agents_in,
    place_call,
    start_worker,
    wait_until,
)


@pytest.fixture
def livekit() -> Iterator[LocalLiveKit]:
    with LocalLiveKit(delete_room_when_empty=False) as server:
        yield server


@pytest.fixture
def agent_server(livekit: LocalLiveKit) -> Iterator[LocalAgentServer]:
    with LocalAgentServer(livekit) as server:
        server.take_dispatches()
        yield server


def test_a_rescue_dispatch_lands_on_the_available_real_worker_not_the_draining_one(
    livekit: LocalLiveKit, agent_server: LocalAgentServer, ecs: LocalEcsEndpoints
) -> None:
    # GIVEN two packaged workers, a call on the first
    first = start_worker(agent_server, ecs, drain_timeout=60)
    with first:
        second = start_worker(agent_server, ecs, drain_timeout=60)
        with second:
            job = place_call(livekit, agent_server, "call-1", CallPlan(call_seconds=40))
            assert wait_until(lambda: agents_in(livekit, "call-1"), JOIN_SLACK_SECONDS)
            (held,) = [j for j in agent_server.jobs() if j.job_id == job]
            doomed = first if held.worker_id == first.worker_id else second
            healthy = second if doomed is first else first
            # WHEN ECS stops the call's worker (it reports itself full) and the coordinator
            # dispatches the call's rescue through livekit-api
            doomed.signal(signal.SIGTERM)
            assert wait_until(lambda: doomed.snapshot().status == "WS_FULL", STATUS_SLACK_SECONDS)
            rescues = LiveKitRescues(
                livekit.url, lambda: LiveKitCredentials(livekit.api_key, livekit.api_secret)
            )
            metadata = rescue_metadata(Rescue("call-1", "arn:aws:ecs:task/old", Danger.SPOT, None))
            dispatch_id = rescues.create_dispatch("call-1", "", metadata)
            # THEN the healthy worker took its job, with the rescue's metadata, and its agent joined
            assert wait_until(
                lambda: any(j.dispatch_id == dispatch_id for j in agent_server.jobs()), JOIN_SLACK_SECONDS
            )
            (rescue_job,) = [j for j in agent_server.jobs() if j.dispatch_id == dispatch_id]
            assert rescue_job.worker_id == healthy.worker_id
            assert json.loads(rescue_job.metadata)[RESCUE_METADATA_KEY]["checkpoint"] == "call-1"
            assert wait_until(lambda: len(agents_in(livekit, "call-1")) == 2, JOIN_SLACK_SECONDS)
            assert rescues.dispatch_jobs("call-1", dispatch_id) == 1
            # AND the coordinator sees the new agent in the room
            assert len(rescues.agents_in("call-1")) == 2
