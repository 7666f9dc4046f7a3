"""The real handlers, fed the event files, wired to in-memory fakes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from drain_coordinator.domain.events import LaunchRequested
from drain_coordinator.domain.probe import WorkerTask
from drain_coordinator.domain.records import DrainOutcome, LifecycleRef
from drain_coordinator.handlers import lifecycle, reconcile
from drain_coordinator.integrations.ecs import EcsError
from tests.factories import TASK_A
from tests.fakes import FakeLambdaContext
from tests.functional.conftest import CI_ARN, INSTANCE, Harness, load_event

TASK_DAEMON = "arn:aws:ecs:us-east-1:123456789012:task/agents/da3m0nda3m0nda3m0nda3m0nda3m0n00"

TERMINATE = "asg-terminate-lifecycle-action.json"


def actions(result: dict) -> list[str]:  # type: ignore[type-arg]
    return [step["action"] for step in result["steps"]]


def emitted_metrics(captured: str) -> dict[str, list[float]]:
    """Metric name -> values, from the EMF lines Powertools printed."""
    values: dict[str, list[float]] = {}
    for line in captured.splitlines():
        if not line.startswith("{") or "_aws" not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                values.setdefault(metric["Name"], []).extend(value if isinstance(value, list) else [value])
    return values


def test_idle_instance_is_released_when_the_drain_opens(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an instance with no worker task and no session
    harness.ecs.instances[INSTANCE] = CI_ARN
    # WHEN its terminate lifecycle action arrives
    result = lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())
    # THEN the container instance is drained, and the action completed at once
    assert actions(result) == ["drain_started", "complete"]
    assert result["steps"][1]["outcome"] == "drained"
    assert harness.ecs.draining == [CI_ARN]
    assert harness.lifecycle.calls == [("complete:CONTINUE", INSTANCE)]
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["DrainStarted"] == [1.0]
    assert metrics["DrainCompleted"] == [1.0]
    assert "ForcedKills" not in metrics


def test_busy_instance_is_held_with_heartbeats_until_its_last_call_ends(harness: Harness) -> None:
    # GIVEN an instance whose worker holds three calls
    harness.busy(calls=3)
    result = lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())
    assert actions(result) == ["drain_started", "wait"]
    assert result["steps"][1]["sessions"] == 3
    # WHEN reconcile ticks every minute while the calls run
    by_minute: list[list[str]] = []
    for minute in range(1, 8):
        harness.clock.t += 60
        if minute == 6:
            harness.calls_end()
            harness.tasks_exit()
        by_minute.append(
            actions(reconcile.handler(load_event("scheduled-reconcile.json"), FakeLambdaContext()))
        )
    seen = [action for minute in by_minute for action in minute]
    # THEN it heartbeats before the 300 s hook runs out, and completes once, after the calls end
    assert "heartbeat" in seen
    assert seen.count("complete") == 1
    # (a heartbeat that was due went first: it never waits for the look)
    assert by_minute[5][-1] == "complete"
    assert "complete" not in [a for minute in by_minute[:5] for a in minute]
    record = harness.store.get(INSTANCE)
    assert record is not None and record.outcome is DrainOutcome.DRAINED
    assert [c for c, _ in harness.lifecycle.calls].count("complete:CONTINUE") == 1


def test_a_daemon_task_still_running_does_not_keep_discovery_open(harness: Harness) -> None:
    # GIVEN a draining instance whose workers hold calls, beside a daemon task (stopped last)
    harness.busy(calls=2)
    daemon = WorkerTask(arn=TASK_DAEMON, last_status="RUNNING", desired_status="RUNNING", daemon=True)
    harness.ecs.tasks[CI_ARN].append(daemon)
    lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())
    # WHEN reconcile looks three times
    for _ in range(3):
        harness.clock.t += 60
        reconcile.handler(load_event("scheduled-reconcile.json"), FakeLambdaContext())
    # THEN every room was scanned once (every worker was told to stop), then only watched
    assert harness.sessions.room_names_calls == 1
    assert harness.sessions.still_held_calls == 4
    assert harness.index.queries == 1


def test_rooms_are_audited_once_then_only_watched(harness: Harness) -> None:
    harness.busy(calls=2)
    lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())  # DRAINING tells the tasks to stop
    for _ in range(3):
        harness.clock.t += 60
        reconcile.handler(load_event("scheduled-reconcile.json"), FakeLambdaContext())
    # the first look already saw every task told to stop: one audit, then watching only
    assert harness.sessions.room_names_calls == 1
    assert harness.sessions.still_held_calls == 4
    assert harness.index.queries == 1
    record = harness.store.get(INSTANCE)
    assert record is not None and set(record.watched_rooms or {}) == {"call-0", "call-1"}
    assert record.rooms_audited and record.rooms_final


def test_a_room_whose_join_webhook_was_lost_is_found_by_the_audit_and_counted(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a busy instance, one of whose rooms the room index never heard of
    harness.busy(calls=3)
    harness.index.lost.add("call-2")
    # WHEN its drain opens and looks
    result = lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())
    # THEN the audit found the room, it is watched with the others, and the miss is counted
    assert result["steps"][1]["sessions"] == 3
    record = harness.store.get(INSTANCE)
    assert record is not None and set(record.watched_rooms or {}) == {"call-0", "call-1", "call-2"}
    assert emitted_metrics(capsys.readouterr().out)["IndexMisses"] == [1.0]
    # AND the index now names it, so no later reader counts it again
    assert harness.index.recorded == {"call-2": TASK_A}
    # AND the drain waits for that call too
    harness.sessions.rooms = {"call-2": TASK_A}
    harness.ecs.tasks[CI_ARN] = []
    harness.clock.t += 60
    steps = reconcile.handler(load_event("scheduled-reconcile.json"), FakeLambdaContext())["steps"]
    assert [s["action"] for s in steps if s.get("instance_id") == INSTANCE][-1] in ("wait", "heartbeat")


def test_no_audit_while_a_worker_may_still_take_a_call_until_the_last_look(harness: Harness) -> None:
    # GIVEN an instance whose standalone worker ECS never tells to stop, with a room the index missed
    harness.busy(calls=1)
    standalone = WorkerTask(arn=TASK_A, last_status="RUNNING", desired_status="RUNNING", group="family:agent")
    harness.ecs.tasks[CI_ARN] = [standalone]
    harness.ecs.drain = lambda arn: harness.ecs.draining.append(arn)  # type: ignore[method-assign]
    harness.index.lost.add("call-0")
    lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())
    # WHEN reconcile looks until the drain closes at its deadline
    record = harness.store.get(INSTANCE)
    assert record is not None
    looks = 0
    while record.is_open and looks < 200:
        harness.clock.t += 60
        reconcile.handler(load_event("scheduled-reconcile.json"), FakeLambdaContext())
        record = harness.store.get(INSTANCE)
        assert record is not None
        looks += 1
    # THEN one audit only, at the last look before the deadline: it counted the call cut there
    assert harness.sessions.room_names_calls == 1
    assert record.outcome is DrainOutcome.DEADLINE
    assert record.dropped_sessions == 1


def test_an_unreadable_room_index_holds_the_drain(harness: Harness) -> None:
    # GIVEN a busy instance and a room index DynamoDB will not answer for
    harness.busy(calls=1)
    harness.index.failing = True
    # WHEN the drain opens and looks
    result = lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())
    # THEN the look failed: the instance is held, not released
    assert result["steps"][1]["action"] == "hold"
    assert "room index" in result["steps"][1]["error"]


def test_an_indexed_room_livekit_no_longer_has_is_dropped(harness: Harness) -> None:
    # GIVEN a busy instance whose index still names a room that ended (its leave webhook was lost)
    harness.busy(calls=1)
    harness.index.stale["ended-call"] = TASK_A
    # WHEN its drain opens and looks
    result = lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())
    # THEN the drain watches only the room LiveKit still has
    assert result["steps"][1]["sessions"] == 1
    record = harness.store.get(INSTANCE)
    assert record is not None and set(record.watched_rooms or {}) == {"call-0"}


def test_duplicate_lifecycle_event_opens_no_second_drain(harness: Harness) -> None:
    harness.busy(calls=1)
    lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())
    again = lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())
    assert again["steps"] == [{"action": "skip", "instance_id": INSTANCE, "reason": "duplicate"}]
    assert len(harness.store.items) == 1


def test_lifecycle_action_ended_elsewhere_closes_the_drain_as_gone(harness: Harness) -> None:
    harness.busy(calls=2)
    lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())
    harness.lifecycle.gone.add(INSTANCE)  # someone completed it from the console
    harness.clock.t += 200
    result = reconcile.handler(load_event("scheduled-reconcile.json"), FakeLambdaContext())
    assert result["steps"][0]["action"] == "complete"
    assert result["steps"][0]["outcome"] == "gone"
    assert result["steps"][0]["dropped_sessions"] == 2


def test_probe_failure_holds_and_never_completes_before_the_deadline(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.busy(calls=1)
    lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())
    harness.sessions.failing = True
    harness.calls_end()
    harness.tasks_exit()
    seen: list[str] = []
    for _ in range(10):
        harness.clock.t += 60
        seen += actions(reconcile.handler(load_event("scheduled-reconcile.json"), FakeLambdaContext()))
    # held every tick; the due heartbeats went out before each look, the probe failing or not
    assert [a for a in seen if a != "heartbeat"] == ["hold"] * 10
    assert ("heartbeat", INSTANCE) in harness.lifecycle.calls
    assert sum(emitted_metrics(capsys.readouterr().out)["ProbeErrors"]) == 10


def test_drain_at_deadline_counts_dropped_sessions_and_a_forced_kill(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.busy(calls=2)
    lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())
    outcome = None
    for _ in range(25):
        harness.clock.t += 60
        for step in reconcile.handler(load_event("scheduled-reconcile.json"), FakeLambdaContext())["steps"]:
            outcome = step.get("outcome", outcome)
    assert outcome == "deadline"
    record = harness.store.get(INSTANCE)
    assert record is not None and record.dropped_sessions == 2
    assert record.closed_at is not None and record.closed_at <= record.deadline_at
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["ForcedKills"] == [1.0]
    assert metrics["DroppedSessions"] == [2.0]


@pytest.mark.parametrize("event_file", ["asg-test-notification.json", "asg-launch-lifecycle-action.json"])
def test_events_that_are_not_ours_are_skipped_without_touching_aws(harness: Harness, event_file: str) -> None:
    result = lifecycle.handler(load_event(event_file), FakeLambdaContext())
    assert actions(result) == ["skip"]
    assert harness.store.items == {}
    assert harness.lifecycle.calls == []


def test_malformed_event_is_rejected_counted_and_not_raised(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    event = load_event(TERMINATE)
    del event["detail"]["LifecycleActionToken"]
    result = lifecycle.handler(event, FakeLambdaContext())
    assert actions(result) == ["reject"]
    assert emitted_metrics(capsys.readouterr().out)["EventsRejected"] == [1.0]


def test_every_log_line_of_a_drain_carries_the_four_keys(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.busy(calls=1)
    lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())
    drain_lines = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and '"level"' in line and "drain" in line
    ]
    assert drain_lines, "the drain logged nothing"
    for line in drain_lines:
        assert {"asgName", "lifecycleHookName", "lifecycleActionToken", "instanceID"} <= line.keys()


def test_ecs_failure_at_open_still_opens_the_drain_and_retries_draining(harness: Harness) -> None:
    harness.busy(calls=1)
    harness.ecs.failing = True
    result = lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())
    assert actions(result) == ["drain_started", "hold"]
    harness.ecs.failing = False
    harness.clock.t += 60
    reconcile.handler(load_event("scheduled-reconcile.json"), FakeLambdaContext())
    assert harness.ecs.draining == [CI_ARN]
    record = harness.store.get(INSTANCE)
    assert record is not None and record.container_instance_arn == CI_ARN


def test_calls_left_at_the_deadline_are_handed_to_their_task_stops_and_counted_once(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a coordinator that hands calls over to task-stop records, and two calls that never end
    harness.coordinator.task_stops = harness.stops
    harness.busy(calls=2)
    lifecycle.handler(load_event(TERMINATE), FakeLambdaContext())
    for _ in range(25):
        harness.clock.t += 60
        reconcile.handler(load_event("scheduled-reconcile.json"), FakeLambdaContext())
    record = harness.store.get(INSTANCE)
    # THEN the drain ended at the deadline with the two calls noted, but did not count them itself
    assert record is not None
    assert record.outcome is DrainOutcome.DEADLINE
    assert record.dropped_sessions == 2
    assert record.extra["handed_over"] == "2"
    metrics = emitted_metrics(capsys.readouterr().out)
    assert "DroppedSessions" not in metrics
    # AND the task that held them has a stop record watching exactly those rooms
    stop = harness.stops.get(TASK_A)
    assert stop is not None
    assert set(stop.watched_rooms) == {"call-0", "call-1"}


def test_an_instance_taken_again_from_a_warm_pool_is_drained_again(harness: Harness) -> None:
    # GIVEN an instance whose first scale-in drained it (ReuseOnScaleIn sent it to the warm pool)
    harness.ecs.instances[INSTANCE] = CI_ARN
    first = load_event(TERMINATE)
    assert actions(lifecycle.handler(first, FakeLambdaContext())) == ["drain_started", "complete"]

    # WHEN it came back, took calls, and a later scale-in opens a new lifecycle action for it
    harness.clock.t += 3600
    harness.busy(calls=2)
    second = json.loads(json.dumps(first))
    second["detail"]["LifecycleActionToken"] = "2c1f0e9d-8b7a-4c6d-9e5f-4a3b2c1d0e9f"
    second["id"] = "second-scale-in"
    taken = datetime.fromisoformat(first["time"].replace("Z", "+00:00")) + timedelta(hours=1)
    second["time"] = taken.strftime("%Y-%m-%dT%H:%M:%SZ")
    result = lifecycle.handler(second, FakeLambdaContext())
    # ... and the first action's event is delivered once more
    duplicate = lifecycle.handler(second, FakeLambdaContext())

    # THEN the new action has a drain of its own, holding the instance while its calls run
    assert actions(result) == ["drain_started", "wait"]
    record = harness.store.get(INSTANCE)
    assert record is not None and record.is_open
    assert record.lifecycle.action_token == second["detail"]["LifecycleActionToken"]
    assert actions(duplicate) == ["skip"]


def a_launch_from_the_warm_pool(harness: Harness) -> LaunchRequested:
    harness.ecs.instances[INSTANCE] = CI_ARN
    harness.ecs.draining.append(CI_ARN)  # as its last drain left it
    return LaunchRequested(
        lifecycle=LifecycleRef(
            asg_name="livekit-agents-asg",
            hook_name="livekit-drain-launch",
            instance_id=INSTANCE,
            action_token="0b9f8e7d-6c5b-4a39-8271-605f4e3d2c1b",
        ),
        origin="WarmPool",
        destination="AutoScalingGroup",
        event_id="back-from-the-pool",
    )


def test_an_instance_back_from_the_warm_pool_is_set_active_before_its_launch_goes_on(
    harness: Harness,
) -> None:
    # GIVEN an instance leaving the warm pool for the group, its container instance DRAINING
    launch = a_launch_from_the_warm_pool(harness)
    # WHEN its launch action reaches the coordinator
    steps = harness.coordinator.instance_launched(launch)
    # THEN it is ACTIVE again, and only then the launch action is completed
    assert [s.action for s in steps] == ["reactivated", "launch_continued"]
    assert harness.ecs.draining == []
    assert harness.lifecycle.calls == [("complete:CONTINUE", INSTANCE)]


def test_ecs_failing_when_an_instance_comes_back_leaves_its_launch_action_open(harness: Harness) -> None:
    # GIVEN an instance leaving the warm pool, and ECS failing
    launch = a_launch_from_the_warm_pool(harness)
    harness.ecs.failing = True
    # WHEN its launch action reaches the coordinator
    # THEN the invocation fails (to be retried), and the launch is not let go on DRAINING
    with pytest.raises(EcsError):
        harness.coordinator.instance_launched(launch)
    assert harness.lifecycle.calls == []


def test_a_late_copy_of_an_earlier_actions_event_does_not_drain_the_instance_again(harness: Harness) -> None:
    # GIVEN an instance drained twice (into the warm pool, back, taken again), both drains closed
    harness.ecs.instances[INSTANCE] = CI_ARN
    first = load_event(TERMINATE)
    assert actions(lifecycle.handler(first, FakeLambdaContext())) == ["drain_started", "complete"]
    harness.clock.t += 3600
    second = json.loads(json.dumps(first))
    second["detail"]["LifecycleActionToken"] = "2c1f0e9d-8b7a-4c6d-9e5f-4a3b2c1d0e9f"
    second["id"] = "second-scale-in"
    taken = datetime.fromisoformat(first["time"].replace("Z", "+00:00")) + timedelta(hours=1)
    second["time"] = taken.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert actions(lifecycle.handler(second, FakeLambdaContext())) == ["drain_started", "complete"]
    drained = list(harness.ecs.draining)

    # WHEN EventBridge delivers the first action's event once more, late (a retry)
    late = lifecycle.handler(first, FakeLambdaContext())

    # THEN it is a duplicate: no new drain, the instance is not set DRAINING again
    assert actions(late) == ["skip"]
    assert harness.ecs.draining == drained
    record = harness.store.get(INSTANCE)
    assert record is not None and record.lifecycle.action_token == second["detail"]["LifecycleActionToken"]
