"""The rescue rules of domain/rescue.py as properties over calls, threats and looks drawn by hypothesis."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drain_coordinator.domain.rescue import (
    CallAtRisk,
    Danger,
    RescuePolicy,
    Worry,
    danger_of,
    plan_rescues,
    worries_of,
)

T0 = 1_767_225_600.0
policies = st.builds(
    RescuePolicy,
    reconcile_period_seconds=st.sampled_from([10, 30, 60, 120]),
    rescue_on_deploy=st.booleans(),
    handover_seconds=st.floats(min_value=0, max_value=30),
)
offsets = st.one_of(st.none(), st.floats(min_value=-60, max_value=7200))


@st.composite
def calls(draw: st.DrawFn) -> CallAtRisk:
    def at() -> float | None:
        offset = draw(offsets)
        return None if offset is None else T0 + offset

    return CallAtRisk(
        room=f"call-{draw(st.integers(0, 30))}",
        task_arn=f"task-{draw(st.integers(0, 5))}",
        worry=Worry(
            reclaim_at=at() if draw(st.booleans()) else None,
            deadline_at=at(),
            sigkill_at=at(),
            stopped_by_deploy=draw(st.booleans()),
        ),
        rescue_running=draw(st.booleans()),
    )


slots = st.one_of(st.none(), st.integers(min_value=-2, max_value=40))


@settings(deadline=None)  # a loaded machine is no failure
@given(st.lists(calls(), max_size=40), policies, slots)
def test_a_call_is_rescued_at_most_once_and_never_while_its_rescue_runs(
    looked: list[CallAtRisk], policy: RescuePolicy, free: int | None
) -> None:
    # GIVEN calls, some with a rescue running  WHEN a look plans
    plan = plan_rescues(looked, T0, policy, free)
    # THEN no room twice, none whose rescue runs, none both rescued and left for lack of room
    rooms = [r.room for r in plan.rescue + plan.no_capacity]
    assert len(rooms) == len(set(rooms))
    running = {c.room for c in looked if c.rescue_running}
    assert not running & {r.room for r in plan.rescue}


@settings(deadline=None)  # a loaded machine is no failure
@given(st.lists(calls(), max_size=40), policies, slots)
def test_a_healthy_call_in_no_danger_is_never_rescued(
    looked: list[CallAtRisk], policy: RescuePolicy, free: int | None
) -> None:
    # GIVEN any calls  WHEN a look plans
    plan = plan_rescues(looked, T0, policy, free)
    # THEN every call planned is doomed by its own worry, by the reason given (a room and task
    # drawn twice: by one of its worries)
    horizon = T0 + policy.horizon_seconds

    def dooms(worry: Worry, danger: Danger) -> bool:
        if danger_of(worry, T0, policy) is not danger:
            return False
        if danger is Danger.SPOT:
            return worry.reclaim_at is not None
        if danger is Danger.STOP_TIMEOUT:
            return worry.sigkill_at is not None and worry.sigkill_at <= horizon
        if danger is Danger.DEADLINE:
            return worry.deadline_at is not None and worry.deadline_at <= horizon
        return policy.rescue_on_deploy and worry.stopped_by_deploy

    for rescue in plan.rescue + plan.no_capacity:
        own = [c.worry for c in looked if (c.room, c.task_arn) == (rescue.room, rescue.task_arn)]
        assert any(dooms(worry, rescue.danger) for worry in own)


@settings(deadline=None)  # a loaded machine is no failure
@given(st.lists(calls(), max_size=40), policies, st.integers(min_value=0, max_value=40))
def test_never_more_rescues_than_free_slots_and_the_earliest_kills_first(
    looked: list[CallAtRisk], policy: RescuePolicy, free: int
) -> None:
    # GIVEN a fleet with `free` slots  WHEN a look plans
    plan = plan_rescues(looked, T0, policy, free)
    # THEN at most `free` rescues; no call left without room dies before one rescued
    assert len(plan.rescue) <= free
    if plan.no_capacity:
        assert len(plan.rescue) == free
        latest = max((r.kill_at for r in plan.rescue if r.kill_at is not None), default=None)
        for left in plan.no_capacity:
            if latest is not None and left.kill_at is not None:
                assert left.kill_at >= latest


@settings(deadline=None)  # a loaded machine is no failure
@given(
    policies,
    st.floats(min_value=0, max_value=7200),
    st.lists(st.floats(min_value=0.5, max_value=1.0), min_size=1, max_size=300),
    st.sampled_from(["deadline", "sigkill"]),
)
def test_a_doomed_call_is_always_rescued_before_its_kill_when_a_worker_has_room(
    policy: RescuePolicy, kill_offset: float, gaps: list[float], kind: str
) -> None:
    # GIVEN a call whose worker is killed at `kill`, not nearer than one look's horizon at the
    # first look, and looks no more than one period apart
    kill = T0 + policy.horizon_seconds + kill_offset
    worry = Worry(deadline_at=kill) if kind == "deadline" else Worry(sigkill_at=kill)
    call = CallAtRisk("call-1", "task-1", worry)
    now, rescued_at = T0, None
    for fraction in gaps:
        # WHEN each look plans with a free slot, until the kill
        if now >= kill:
            break
        plan = plan_rescues([call], now, policy, free_slots=1)
        if plan.rescue:
            rescued_at = now
            break
        now += fraction * policy.reconcile_period_seconds
    # THEN the rescue is dispatched with time for the handover, or the looks ended first
    if rescued_at is not None:
        assert rescued_at + policy.handover_seconds <= kill
    else:
        assert now < kill - policy.handover_seconds


def test_a_spot_warning_dooms_every_call_of_the_instance_at_once() -> None:
    # GIVEN a Spot warning for an instance with two calls, far from any other danger
    rooms = {"call-a": "task-1", "call-b": "task-2"}
    looked = worries_of(rooms, reclaim_at=T0 + 120, deadline_at=T0 + 3600)
    # WHEN the look plans
    plan = plan_rescues(looked, T0, RescuePolicy(), free_slots=None)
    # THEN both are rescued now, for the Spot reclaim
    assert [(r.room, r.danger) for r in plan.rescue] == [("call-a", Danger.SPOT), ("call-b", Danger.SPOT)]


def test_a_deploy_stop_dooms_a_call_only_with_rescue_on_deploy() -> None:
    # GIVEN a call on a worker a deploy told to stop, its SIGKILL far away
    looked = worries_of(
        {"call-a": "task-1"}, sigkill_at={"task-1": T0 + 900}, stopped_by_deploy=frozenset({"task-1"})
    )
    # WHEN planned without and with RescueOnDeploy
    without = plan_rescues(looked, T0, RescuePolicy(rescue_on_deploy=False), None)
    with_it = plan_rescues(looked, T0, RescuePolicy(rescue_on_deploy=True), None)
    # THEN only the second rescues it
    assert without.rescue == ()
    assert [r.danger for r in with_it.rescue] == [Danger.DEPLOY]


def test_no_free_slot_keeps_every_doomed_call_in_place_with_a_reason() -> None:
    # GIVEN two doomed calls and a full fleet
    looked = worries_of({"call-a": "task-1", "call-b": "task-1"}, reclaim_at=T0 + 120)
    # WHEN planned
    plan = plan_rescues(looked, T0, RescuePolicy(), free_slots=0)
    # THEN nothing is dispatched and both are left for lack of room
    assert plan.rescue == ()
    assert [r.room for r in plan.no_capacity] == ["call-a", "call-b"]
