"""Call rescue with the real livekit-agents: the coordinator's CreateDispatch (livekit-api, through
the local LiveKit's AgentDispatchService) lands on a packaged worker that reports itself
available, never on a draining one, and carries the rescue's metadata to it; and the whole
handover between two packaged workers: the old agent's checkpoints (moto DynamoDB), the
coordinator's `Rescuer`, the rescue job loading the call into a real `AgentSession`, the old
agent leaving once the new one is in the room (the world's call agent, drainctl/world/call_agent.py,
whose room is the local LiveKit's RoomService: the local world has no WebRTC)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from drain_coordinator.domain.rescue import (
    CallAtRisk,
    Danger,
    Rescue,
    RescuePolicy,
    RescueRecord,
    RescueStatus,
    Worry,
)
from drain_coordinator.integrations.livekit import LiveKitCredentials, LiveKitRescues
from drain_coordinator.integrations.rescues import RescueStore
from drain_coordinator.services.rescue import RESCUE_METADATA_KEY, Rescuer, rescue_metadata
from drainctl.world.agent_server import LocalAgentServer
from drainctl.world.aws import LocalAws
from drainctl.world.call_agent import HISTORY_ATTRIBUTE, RESUME_LINE, STATE_ATTRIBUTE, CallPlan
from drainctl.world.call_room import ROOM_SERVICE_URL_ENV
from drainctl.world.clock import VirtualClock
from drainctl.world.livekit_server import LocalLiveKit
from livekit_drain_worker.checkpoints import CheckpointStore
from livekit_drain_worker.rescue import CHECKPOINT_ATTRIBUTE, CHECKPOINT_TABLE_ENV, RESCUE_OF_ATTRIBUTE
from livekit_drain_worker.tagging import SESSION_TAG_ATTRIBUTE
from livekit_drain_worker.testing import LocalEcsEndpoints
from tests.worker.test_real_worker import (
    EXIT_SLACK_SECONDS,
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


# -- the whole handover, with the real livekit-agents on both sides --------------------------------

CONVERSATION = (
    ("assistant", "Thanks for calling Pizza Planet, what can I get you?"),
    ("user", "Two margheritas for delivery, please."),
    ("assistant", "Two margheritas. What's the address?"),
    ("user", "12 Harbour Street."),
)
STATE = {"order": {"margherita": 2}, "address": "12 Harbour Street"}
TASK_A = "arn:aws:ecs:us-east-1:123456789012:task/agents/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
TASK_B = "arn:aws:ecs:us-east-1:123456789012:task/agents/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
CHECKPOINT_TABLE = "livekit-drain-checkpoints"


@dataclass(frozen=True)
class Tables:
    aws: LocalAws
    checkpoints: Any
    drains: Any


@pytest.fixture
def tables() -> Iterator[Tables]:
    """The stack's checkpoint table and the drain table (its rescue ledger), in moto over HTTP."""
    with LocalAws(VirtualClock(time.time())) as aws:
        dynamodb = boto3.resource(
            "dynamodb",
            endpoint_url=aws.endpoint_url,
            region_name=aws.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        checkpoints = dynamodb.create_table(
            TableName=CHECKPOINT_TABLE,
            AttributeDefinitions=[{"AttributeName": "room", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "room", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        drains = dynamodb.create_table(
            TableName="livekit-drain-drains",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield Tables(aws, checkpoints, drains)


def rescue_environ(livekit: LocalLiveKit, aws: LocalAws) -> dict[str, str]:
    """What the template gives a worker with CallRescue on (the checkpoint table), the AWS
    endpoint in place of the task role's, and where the world's call agent reads its room."""
    return {
        CHECKPOINT_TABLE_ENV: CHECKPOINT_TABLE,
        "AWS_ENDPOINT_URL": aws.endpoint_url,
        "AWS_DEFAULT_REGION": aws.region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        ROOM_SERVICE_URL_ENV: livekit.url,
    }


def texts(history: dict[str, Any]) -> list[str]:
    return [
        " ".join(str(c) for c in item.get("content", []))
        for item in history.get("items", [])
        if item.get("type") == "message"
    ]


def test_a_rescued_call_goes_on_on_the_healthy_real_worker_with_its_history_and_state(
    livekit: LocalLiveKit, agent_server: LocalAgentServer, tables: Tables
) -> None:
    store = CheckpointStore(tables.checkpoints)
    environ = rescue_environ(livekit, tables.aws)
    with (
        LocalEcsEndpoints(task_arn=TASK_A) as ecs_a,
        LocalEcsEndpoints(task_arn=TASK_B) as ecs_b,
        start_worker(agent_server, ecs_a, drain_timeout=60, extra_environ=environ) as worker_a,
    ):
        # GIVEN a call on worker A whose agent opted into CallRescue and has checkpointed a few
        # turns and its order
        plan = CallPlan(call_rescue=True, conversation=CONVERSATION, state=STATE)
        job = place_call(livekit, agent_server, "call-1", plan)
        (held,) = [j for j in agent_server.jobs() if j.job_id == job]
        assert held.worker_id == worker_a.worker_id
        said = [text for _, text in CONVERSATION]

        def checkpointed() -> bool:
            saved = store.load("call-1")
            return saved is not None and texts(saved.history) == said

        assert wait_until(checkpointed, JOIN_SLACK_SECONDS), worker_a.output()
        # AND a healthy worker B beside it
        with start_worker(agent_server, ecs_b, drain_timeout=60, extra_environ=environ) as worker_b:
            # WHEN A is stopped (it reports itself full) and the coordinator's rescuer, seeing
            # the call doomed, dispatches its rescue through livekit-api
            worker_a.signal(signal.SIGTERM)
            assert wait_until(lambda: worker_a.snapshot().status == "WS_FULL", STATUS_SLACK_SECONDS)
            ledger = RescueStore(tables.drains)
            rescuer = Rescuer(
                store=ledger,
                livekit=LiveKitRescues(
                    livekit.url, lambda: LiveKitCredentials(livekit.api_key, livekit.api_secret)
                ),
                policy=RescuePolicy(),
                clock=time.time,
            )
            doomed = [CallAtRisk("call-1", TASK_A, Worry(reclaim_at=time.time() + 120))]
            first = rescuer.look(doomed)
            assert [s.action for s in first] == ["rescue_dispatched"]
            record = ledger.get("call-1")
            assert record is not None
            dispatched_at = record.started_at

            # THEN a second rescue of the call is refused while this one runs: the ledger
            # refuses it, and a second look dispatches nothing
            again = RescueRecord("call-1", TASK_A, Danger.SPOT, started_at=time.time())
            assert ledger.begin(again) is None
            assert "rescue_dispatched" not in [s.action for s in rescuer.look(doomed)]

            # AND the rescue job landed on B, whose agent joined with the checkpoint loaded
            def b_agent() -> dict[str, str] | None:
                return next(
                    (a for a in agents_in(livekit, "call-1") if a.get(SESSION_TAG_ATTRIBUTE) == TASK_B), None
                )

            assert wait_until(lambda: (b_agent() or {}).get(HISTORY_ATTRIBUTE), JOIN_SLACK_SECONDS), (
                worker_b.output()
            )
            (dispatch,) = livekit.dispatches("call-1")  # the coordinator's one CreateDispatch
            rescue_jobs = [j for j in agent_server.jobs() if j.dispatch_id == dispatch.id]
            assert [j.worker_id for j in rescue_jobs] == [worker_b.worker_id]
            carried = b_agent()
            assert carried is not None
            assert carried[RESCUE_OF_ATTRIBUTE] == TASK_A
            assert carried[CHECKPOINT_ATTRIBUTE] == "loaded"
            # its agent's chat context holds the earlier turns, and it has the registered state
            assert json.loads(carried[HISTORY_ATTRIBUTE]) == [
                f"{role}: {text}" for role, text in CONVERSATION
            ]
            assert json.loads(carried[STATE_ATTRIBUTE]) == STATE

            # AND B carries on: its first line is checkpointed after the whole earlier call
            def resumed() -> Any:
                saved = store.load("call-1")
                return saved if saved is not None and saved.from_task == TASK_B else None

            assert wait_until(resumed, JOIN_SLACK_SECONDS), worker_b.output()
            first_line_seen_at = time.time()
            saved = resumed()
            assert texts(saved.history) == [*said, RESUME_LINE]
            assert saved.state == STATE

            # AND A's agent left, only after B's had joined; the caller never left
            assert wait_until(lambda: len(agents_in(livekit, "call-1")) == 1, JOIN_SLACK_SECONDS)
            events = [e for e in livekit.events("call-1") if e.event.startswith("participant_")]
            a_identity = held.participant_identity
            b_identity = rescue_jobs[0].participant_identity
            b_joined = next(e for e in events if e.event == "participant_joined" and e.identity == b_identity)
            a_left = next(e for e in events if e.event == "participant_left" and e.identity == a_identity)
            assert events.index(b_joined) < events.index(a_left)
            assert not [e for e in events if e.event == "participant_left" and e.identity == "caller-call-1"]
            assert "caller-call-1" in [p.identity for p in livekit.rooms()["call-1"]]

            # AND the coordinator's looks counted the rescue, with its gap
            rescuer.look(doomed)
            done = ledger.get("call-1")
            assert done is not None
            # (with its state: B's agent said so from the moment it joined, whenever the look)
            assert (done.status, done.to_task, done.reason) == (RescueStatus.RESCUED, TASK_B, None)
            assert done.gap_seconds is not None
            # AND A, its only call handed over, drains at once and exits 0
            assert worker_a.wait(timeout_seconds=EXIT_SLACK_SECONDS + 5) == 0, worker_a.output()

        join_gap = b_joined.at - dispatched_at
        print(
            "\nrescue gap, real livekit-agents workers (wall time): "
            f"dispatch -> new agent joined {join_gap:.2f} s "
            f"(the coordinator's RescueGapSeconds: {done.gap_seconds:.2f} s); "
            f"dispatch -> its first line checkpointed <= {first_line_seen_at - dispatched_at:.2f} s; "
            f"old agent left {a_left.at - b_joined.at:.2f} s after the new one joined"
        )
        # Wall time on a shared machine: a generous bound (the 3 s target is simulate's p95). The
        # local agent server puts the new agent in the room when its job runs, before the job
        # has loaded the checkpoint: the caller's gap is to its first line.
        assert 0 <= join_gap <= first_line_seen_at - dispatched_at <= JOIN_SLACK_SECONDS
