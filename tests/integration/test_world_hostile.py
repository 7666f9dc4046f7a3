"""The local world as hostile as AWS: rate limits answered with AWS's codes, Lambda timeouts that
stop a handler's effects and lose its late metrics, botocore's backoff spent on the virtual clock,
concurrent processes that overlap, lifecycle actions opened by a scale helper that expire."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries import standard

from drainctl.world.clock import VirtualClock
from drainctl.world.hostile import AWS_RATE_LIMITS, LatencyTail, virtual_botocore
from drainctl.world.lambda_runtime import current_invocation
from drainctl.world.lifecycle_actions import TERMINATING
from drainctl.world.scheduler import VirtualTime
from drainctl.world.world import World
from tests.integration.conftest import SINGLE_ATTEMPT

# -- a handler module the tests invoke: what it does is set per test ------------------------------

ACTIONS: list[Any] = []


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    for action in list(ACTIONS):
        action()
    return {"done": True}


def _lambda_aws_client(world: World, service: str) -> Any:
    """A client on the handlers' session (boto3's default), as the coordinator builds its own."""
    return boto3.client(service, endpoint_url=world.aws.endpoint_url, config=SINGLE_ATTEMPT)


def _invoke(world: World, timeout: float) -> Any:
    return world.lambdas.invoke("TestFunction", f"{__name__}.handler", {}, timeout)


def test_ecs_answers_throttling_exception_beyond_its_documented_burst(world: World) -> None:
    # GIVEN the world's rate limits on, and a handler that calls ListClusters in a burst
    world.throttle = True
    ecs = _lambda_aws_client(world, "ecs")
    answers: list[str] = []

    def burst() -> None:
        for _ in range(int(AWS_RATE_LIMITS["ecs"].capacity) + 5):
            try:
                ecs.list_clusters()
                answers.append("ok")
            except ClientError as exc:
                answers.append(
                    f"{exc.response['Error']['Code']}:{exc.response['Error']['Message']}:"
                    f"{exc.response['ResponseMetadata']['HTTPStatusCode']}"
                )

    ACTIONS[:] = [burst]
    # WHEN it runs at one instant of virtual time
    _invoke(world, 30)
    ACTIONS.clear()

    # THEN the burst capacity was served, the rest answered as ECS does
    assert answers.count("ok") == AWS_RATE_LIMITS["ecs"].capacity
    assert set(answers) - {"ok"} == {"ThrottlingException:Rate exceeded:400"}


def test_auto_scaling_answers_throttling_in_the_query_protocol(world: World) -> None:
    # GIVEN the rate limits on and a burst of DescribeAutoScalingGroups
    world.throttle = True
    autoscaling = _lambda_aws_client(world, "autoscaling")
    codes: list[str] = []

    def burst() -> None:
        for _ in range(int(AWS_RATE_LIMITS["autoscaling"].capacity) + 3):
            try:
                autoscaling.describe_auto_scaling_groups()
            except ClientError as exc:
                codes.append(exc.response["Error"]["Code"])

    ACTIONS[:] = [burst]
    # WHEN it runs
    _invoke(world, 30)
    ACTIONS.clear()

    # THEN the requests over the burst were answered Throttling
    assert codes == ["Throttling"] * 3


def test_a_timed_out_invocations_later_requests_never_reach_the_server_and_its_late_emf_is_lost(
    world: World,
) -> None:
    # GIVEN a handler that prints one EMF metric, spends past its 10 s timeout, then prints
    # another and calls DynamoDB
    dynamodb = _lambda_aws_client(world, "dynamodb")
    emf = {
        "_aws": {"CloudWatchMetrics": [{"Namespace": "t", "Dimensions": [[]], "Metrics": [{"Name": "M"}]}]}
    }
    reached: list[str] = []

    def early() -> None:
        print(json.dumps({**emf, "M": 1}))

    def late() -> None:
        running = current_invocation()
        assert running is not None
        try:
            running.spend(20)
        finally:
            print(json.dumps({**emf, "M": [1, 2]}))
            dynamodb.list_tables()
            reached.append("after")

    ACTIONS[:] = [early, late]
    before = len(world.server_side.requests)
    # WHEN it is invoked
    result = _invoke(world, 10)
    ACTIONS.clear()

    # THEN Lambda's timeout answer; nothing after the deadline reached a server
    (invocation,) = world.lambdas.invocations[-1:]
    assert result["errorType"] == "Sandbox.Timedout"
    assert invocation.timed_out
    assert reached == []
    assert world.server_side.requests[before:] == []
    # THEN the metric printed in time was kept, the late one lost and counted
    assert '"M": 1' in invocation.output
    assert invocation.metrics_lost == 2
    assert world.clock.now() == pytest.approx(invocation.t + 10)


def test_botocore_retries_spend_the_virtual_time_its_backoff_chose(world: World) -> None:
    # GIVEN a handler's client with botocore's retries, and ECS hung (no answer within the
    # client's 2 s read timeout)
    world.hostility.hang("ecs")
    ecs = boto3.client(
        "ecs",
        endpoint_url=world.aws.endpoint_url,
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}, read_timeout=2),
    )
    errors: list[str] = []

    def call() -> None:
        try:
            ecs.list_clusters()
        except Exception as exc:
            errors.append(type(exc).__name__)

    ACTIONS[:] = [call]
    backoffs_before = len(world.botocore_waits.backoffs)
    start = world.clock.now()
    # WHEN it runs
    _invoke(world, 60)
    ACTIONS.clear()

    # THEN three attempts each waited the read timeout, and the two backoffs botocore chose
    # were spent on the virtual clock, nothing more
    backoffs = world.botocore_waits.backoffs[backoffs_before:]
    assert errors == ["ReadTimeoutError"]
    assert len(backoffs) == 2
    assert world.clock.now() - start == pytest.approx(3 * 2 + sum(backoffs), abs=1e-3)


def test_concurrent_processes_overlap_on_the_virtual_clock() -> None:
    # GIVEN three processes that each spend 10 virtual seconds in two halves
    clock = VirtualClock(0.0)
    time = VirtualTime(clock)
    order: list[tuple[int, float]] = []

    def process(n: int) -> Any:
        def body() -> float:
            time.spend(5)
            order.append((n, clock.now()))
            time.spend(5)
            return clock.now()

        return body

    # WHEN they run concurrently
    results = time.run([process(1), process(2), process(3)])

    # THEN they overlapped (10 s in all, not 30), in a deterministic order
    assert [r.value for r in results] == [10.0, 10.0, 10.0]
    assert order == [(1, 5.0), (2, 5.0), (3, 5.0)]
    assert clock.now() == 10.0


def test_concurrent_invocations_overlap_their_latency(world: World) -> None:
    # GIVEN DynamoDB answering in 3 s, and a handler making one request
    world.hostility.set_latency(["dynamodb"], LatencyTail(3, 3))
    dynamodb = _lambda_aws_client(world, "dynamodb")
    ACTIONS[:] = [lambda: dynamodb.list_tables()]
    start = world.clock.now()

    # WHEN four invocations run at once
    results = world.time.run([lambda: _invoke(world, 30) for _ in range(4)])
    ACTIONS.clear()

    # THEN all succeeded, and together took one request's latency
    assert [r.value for r in results] == [{"done": True}] * 4
    assert world.clock.now() - start == pytest.approx(3.0)


def test_a_lifecycle_action_opened_by_a_scale_helper_expires_by_its_heartbeat_timer(world: World) -> None:
    # GIVEN an instance held by an action opened directly in the log, as the scale tests do
    (instance,) = world.create_fleet(1)
    action = world.aws.lifecycle.start(
        token=str(uuid.uuid4()),
        group_name=world.config.group_name,
        hook_name=world.hook_name,
        instance_id=instance,
        transition=TERMINATING,
        heartbeat_timeout=world.hook_heartbeat_timeout,
        default_result="CONTINUE",
        now=world.clock.now(),
    )

    # WHEN its heartbeat timeout passes with no heartbeat
    world.clock.advance(world.hook_heartbeat_timeout + 1)
    world.aws.expire_due_actions()

    # THEN it ended by its timer with the DefaultResult, and the instance is gone
    ended = world.aws.lifecycle.action_for(instance)
    assert ended is not None
    assert ended.ended_by == "heartbeat_timeout"
    assert ended.result == "CONTINUE"
    assert ended.ended_at == action.heartbeat_deadline
    assert world.instance_state(instance) == "Terminated"


# -- LiveKit's asyncio client on the virtual clock -------------------------------------------------


def _list_rooms_gathered(world: World, calls: int, bound: float | None, outcome: list[str]) -> None:
    """From inside an invocation: `calls` ListRooms at once, under `asyncio.timeout(bound)`."""
    from livekit import api

    async def ask() -> None:
        async with api.LiveKitAPI(
            url=world.livekit.url, api_key=world.livekit.api_key, api_secret=world.livekit.api_secret
        ) as lk:
            async with asyncio.timeout(bound):
                await asyncio.gather(*(lk.room.list_rooms(api.ListRoomsRequest()) for _ in range(calls)))

    try:
        asyncio.run(ask())
        outcome.append("answered")
    except TimeoutError:
        outcome.append("timed out")


def test_livekit_calls_in_flight_together_overlap_on_the_virtual_clock(world: World) -> None:
    # GIVEN LiveKit answering in 2 s, and a handler asking it 16 things at once
    world.hostility.set_latency(["livekit"], LatencyTail(2, 2))
    outcome: list[str] = []
    ACTIONS[:] = [lambda: _list_rooms_gathered(world, 16, None, outcome)]
    start = world.clock.now()

    # WHEN it is invoked
    _invoke(world, 30)
    ACTIONS.clear()

    # THEN all were answered, together in one latency
    assert outcome == ["answered"]
    assert world.clock.now() - start == pytest.approx(2.0)


def test_an_asyncio_timeout_cuts_a_slow_livekit_call_at_its_virtual_deadline(world: World) -> None:
    # GIVEN LiveKit answering in 5 s, and a handler bounding its calls with asyncio.timeout(3)
    # (as the coordinator bounds each call and each look)
    world.hostility.set_latency(["livekit"], LatencyTail(5, 5))
    outcome: list[str] = []
    ACTIONS[:] = [lambda: _list_rooms_gathered(world, 3, 3.0, outcome)]
    start = world.clock.now()

    # WHEN it is invoked
    _invoke(world, 30)
    ACTIONS.clear()

    # THEN the timeout fired 3 virtual seconds in, before the answers were due, as on a real
    # clock (the loop's real clock never reaches 3 s while the local server answers at once)
    assert outcome == ["timed out"]
    assert world.clock.now() - start == pytest.approx(3.0)


def test_a_livekit_call_past_the_invocations_deadline_ends_the_invocation_at_its_deadline(
    world: World,
) -> None:
    # GIVEN LiveKit answering in 20 s, and a handler with a 10 s timeout asking it
    world.hostility.set_latency(["livekit"], LatencyTail(20, 20))
    outcome: list[str] = []
    ACTIONS[:] = [lambda: _list_rooms_gathered(world, 2, None, outcome)]

    # WHEN it is invoked
    result = _invoke(world, 10)
    ACTIONS.clear()

    # THEN Lambda's timeout, at the deadline: the answers never reached the handler
    (invocation,) = world.lambdas.invocations[-1:]
    assert result["errorType"] == "Sandbox.Timedout"
    assert outcome == []
    assert world.clock.now() == pytest.approx(invocation.t + 10)


def test_botocores_backoff_jitter_comes_from_the_worlds_seed_not_the_process_wide_random() -> None:
    # GIVEN two installs of the world's botocore with the same seed, the process-wide random
    # drawn from in between (as the world's other threads and libraries do)
    clock = VirtualClock(0.0)
    time = VirtualTime(clock)
    context = SimpleNamespace(
        attempt_number=3, http_response=None, parsed_response=None, caught_exception=None
    )

    def delays() -> list[float]:
        with virtual_botocore(clock, time, lambda: None, seed=7):
            backoff = standard.ExponentialBackoff()
            return [backoff.delay_amount(context) for _ in range(5)]  # type: ignore[arg-type]

    first = delays()
    random.random()
    # WHEN botocore chooses its backoffs again
    second = delays()

    # THEN it chose the same jittered waits
    assert first == second
    assert len(set(first)) == 5  # jittered, not a fixed wait
