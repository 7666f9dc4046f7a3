"""The scheduling rules of domain/schedule.py, and the two passes of schedule.py over in-memory
fakes whose LiveKit spends the clock: heartbeats never wait for a look, no drain starves."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from drain_coordinator.domain.decide import DrainPolicy, heartbeat_due
from drain_coordinator.domain.probe import WorkerTask
from drain_coordinator.domain.records import DrainRecord, LifecycleRef, save_needed
from drain_coordinator.domain.schedule import (
    HEARTBEATS_PER_SHARD,
    Breaker,
    LookLimits,
    Shard,
    WorkItem,
    WorkKind,
    heartbeats_due,
    heartbeats_to_send,
    in_urgency_order,
    look_budget,
    looks_kept_until,
    overdue,
    plan_tick,
    renewal_budget,
    shards,
    with_looks,
    work_items,
)
from drain_coordinator.integrations.autoscaling import AutoScalingError
from drain_coordinator.services.drains import Coordinator
from drain_coordinator.services.schedule import RunResult, Scheduler
from drain_coordinator.services.task_stops import TaskStopTracker
from tests.factories import T0, TASK_A, a_record, a_ref
from tests.fakes import FakeClock, FakeEcs, FakeLifecycle, FakeSessions, FakeStore, FakeTaskStopStore

POLICY = DrainPolicy(reconcile_period_seconds=60)


def drain(n: int, **overrides: object) -> DrainRecord:
    return a_record(lifecycle=a_ref(f"i-{n:017x}"), **overrides)


# -- pure rules --------------------------------------------------------------------------------


@given(st.lists(st.floats(min_value=0, max_value=600), min_size=2, max_size=30))
def test_a_drain_not_looked_at_comes_before_every_drain_that_was(looks_ago: list[float]) -> None:
    # GIVEN drains whose hook timers and deadlines are alike, last looked at at various times
    now = T0 + 1000
    records = [
        drain(i, last_heartbeat_at=now, deadline_at=now + 5000, looked_at=now - ago)
        for i, ago in enumerate(looks_ago)
    ]
    # WHEN ordered
    ordered = in_urgency_order(records, POLICY)
    # THEN the longer ago a drain was looked at, the sooner it comes
    ages = [now - (r.looked_at or 0) for r in ordered]
    assert ages == sorted(ages, reverse=True)


@given(st.lists(st.floats(min_value=-120, max_value=400), min_size=1, max_size=30))
def test_heartbeats_due_are_every_due_drain_closest_to_expiry_first(beats_ago: list[float]) -> None:
    now = T0 + 5000
    records = [drain(i, last_heartbeat_at=now - 300 + 120 - ago) for i, ago in enumerate(beats_ago)]
    due = heartbeats_due(records, now, POLICY)
    assert {r.instance_id for r in due} == {r.instance_id for r in records if heartbeat_due(r, now, POLICY)}
    expiries = [r.heartbeat_expires_at for r in due]
    assert expiries == sorted(expiries)


@given(st.floats(min_value=0, max_value=900), st.integers(min_value=1, max_value=5000))
def test_a_look_gets_its_share_within_bounds_or_is_deferred(remaining: float, looks_left: int) -> None:
    limits = LookLimits()
    budget = look_budget(remaining, looks_left, limits)
    if remaining - limits.reserve_seconds < limits.min_look_seconds:
        assert budget is None
    else:
        assert budget is not None
        assert limits.min_look_seconds <= budget <= limits.max_look_seconds
        assert budget <= remaining - limits.reserve_seconds


@given(st.integers(min_value=0, max_value=300), st.integers(min_value=1, max_value=50))
def test_shards_hold_every_item_once_in_order(count: int, size: int) -> None:
    items = [WorkItem(WorkKind.DRAIN, f"i-{n}", float(n)) for n in range(count)]
    parts = shards(items, size)
    assert [i for part in parts for i in part] == items
    assert all(1 <= len(part) <= size for part in parts)


@settings(deadline=None)  # a loaded machine; the property, not the speed, is tested
@given(
    st.lists(st.booleans(), min_size=0, max_size=400),
    st.integers(min_value=1, max_value=30),
    st.integers(min_value=2, max_value=20),
)
def test_a_tick_plan_sends_heartbeats_first_and_never_more_shards_than_run_at_once(
    due_flags: list[bool], shard_size: int, concurrency: int
) -> None:
    # GIVEN open drains, some of them due a heartbeat, in urgency order
    now = T0 + 5000
    records = [
        drain(n, last_heartbeat_at=now - 300 + (60 if due else 250), deadline_at=now + 5000)
        for n, due in enumerate(due_flags)
    ]
    items = work_items([], records, [], POLICY)
    by_key = {r.instance_id: r for r in records}
    due = {r.instance_id for r in records if heartbeat_due(r, now, POLICY)}

    # WHEN a tick plans its work for a queue that runs `concurrency` shards at once
    plan = plan_tick(items, by_key, now, POLICY, shard_size, concurrency)

    # THEN the tick keeps the first shard, and every other drain is looked at or deferred, once;
    # a deferred drain due a heartbeat is in a heartbeat-only shard
    looked = [i.key for part in plan.look_shards for i in part]
    beaten = [i.key for part in plan.heartbeat_shards for i in part]
    deferred = [i.key for i in plan.deferred]
    assert [i.key for i in plan.own] == [i.key for i in items[:shard_size]]
    assert sorted([*looked, *deferred]) == sorted(i.key for i in items[shard_size:])
    assert len(beaten) == len(set(beaten))
    assert set(beaten) == set(deferred) & due
    # AND the looks that go out are the most urgent of the rest, the ones deferred the least
    assert looked == [i.key for i in items[shard_size : shard_size + len(looked)]]
    # AND nothing waits for a free invocation unless the due heartbeats alone need more
    beat_shards = -(-len(set(beaten)) // HEARTBEATS_PER_SHARD)
    assert len(plan.heartbeat_shards) == beat_shards
    assert len(plan.heartbeat_shards) + len(plan.look_shards) <= max(concurrency, beat_shards)
    assert all(len(part) <= HEARTBEATS_PER_SHARD for part in plan.heartbeat_shards)


def renewals_per_tick(
    count: int, timeout: int, budget: int | None, ticks: int = 12
) -> tuple[list[int], float]:
    """`count` hooks started at once (a fleet-wide scale-in), renewed tick by tick as
    `heartbeats_to_send` says: how many each tick sends, and the least time any hook had left."""
    start = T0
    records = {
        n: drain(n, last_heartbeat_at=start, heartbeat_timeout=timeout, deadline_at=start + 10_000)
        for n in range(count)
    }
    sent, least = [], float(timeout)
    for tick in range(1, ticks + 1):
        now = start + tick * POLICY.reconcile_period_seconds
        least = min(least, *(r.heartbeat_expires_at - now for r in records.values()))
        chosen = heartbeats_to_send(records.values(), now, POLICY, budget)
        sent.append(len(chosen))
        for record in chosen:
            records[int(record.instance_id[2:], 16)] = replace(record, last_heartbeat_at=now)
    return sent, least


def test_a_fleet_wide_scale_in_has_its_renewals_spread_under_the_budget_instead_of_all_in_one_tick() -> None:
    # GIVEN 2,000 hooks started at once with a 370 s heartbeat timeout
    # WHEN each tick renews only the due ones, or spreads them under 480 a period (8 a second)
    due_only, _ = renewals_per_tick(2000, 370, None)
    spread, least = renewals_per_tick(2000, 370, 480)

    # THEN due-only renews all 2,000 in one tick, more than Auto Scaling's rate lets through in a
    # period; spread keeps every tick within the budget (the first pulls some forward) and every
    # hook keeps at least one period on its timer at every tick
    assert max(due_only) == 2000
    assert max(spread) <= 480
    assert sum(spread[:5]) >= 2000
    assert least >= POLICY.reconcile_period_seconds


@settings(deadline=None)  # a loaded machine; the property, not the speed, is tested
@given(
    st.integers(min_value=1, max_value=600),
    st.sampled_from([300, 370, 600]),
    st.integers(min_value=20, max_value=600),
)
def test_renewals_are_never_fewer_than_the_due_ones_and_stay_in_the_budget_when_it_suffices(
    count: int, timeout: int, budget: int
) -> None:
    sent, least = renewals_per_tick(count, timeout, budget, ticks=8)
    # Every due heartbeat is always sent (and never more than needed beyond the budget) ...
    due_only, _ = renewals_per_tick(count, timeout, None, ticks=8)
    assert max(sent) <= max(budget, max(due_only))
    # ... and a budget that covers the hooks' first window keeps every hook alive by a period.
    window = (timeout - 2 * POLICY.reconcile_period_seconds) // POLICY.reconcile_period_seconds + 1
    if budget * window >= count:
        assert least >= POLICY.reconcile_period_seconds


@settings(deadline=None)  # a loaded machine; the property, not the speed, is tested
@given(
    st.lists(st.integers(min_value=0, max_value=240), min_size=0, max_size=400),
    st.integers(min_value=2, max_value=20),
    st.integers(min_value=10, max_value=300),
)
def test_a_tick_plan_makes_every_renewal_the_budget_asks_for_from_drains_it_does_not_look_at(
    beats_ago: list[int], concurrency: int, budget: int
) -> None:
    # GIVEN open drains heartbeaten at various times, and a budget of renewals a period
    now = T0 + 5000
    records = [
        drain(n, last_heartbeat_at=now - ago, deadline_at=now + 5000) for n, ago in enumerate(beats_ago)
    ]
    by_key = {r.instance_id: r for r in records}
    wanted = heartbeats_to_send(records, now, POLICY, budget)

    # WHEN a tick plans its work
    plan = plan_tick(work_items([], records, [], POLICY), by_key, now, POLICY, 20, concurrency, budget)

    # THEN the heartbeat shards hold only drains not looked at this tick, and with the due ones the
    # looks renew, they make as many renewals as the budget asks for (when there are drains enough)
    looked = {i.key for i in plan.own} | {i.key for part in plan.look_shards for i in part}
    beaten = [i.key for part in plan.heartbeat_shards for i in part]
    assert not set(beaten) & looked
    renewed_in_looks = {
        r.instance_id for r in wanted if r.instance_id in looked and heartbeat_due(r, now, POLICY)
    }
    unlooked = len(records) - len(looked)
    assert len(beaten) + len(renewed_in_looks) >= min(len(wanted), len(renewed_in_looks) + unlooked)
    assert {r.instance_id for r in wanted if heartbeat_due(r, now, POLICY)} <= set(beaten) | renewed_in_looks
    # AND the drains looked at that the budget asks to renew are marked so, for their look to renew
    marked = {i.key for i in plan.own if i.renew} | {
        i.key for part in plan.look_shards for i in part if i.renew
    }
    assert marked == {r.instance_id for r in wanted} & looked
    assert len(beaten) + len(marked) >= min(len(wanted), len(marked) + unlooked)


def test_the_renewal_budget_is_auto_scalings_share_or_one_wave_of_heartbeat_shards_whichever_is_less() -> (
    None
):
    # 8 a second is 480 a period; ten shards at once renew 500, three only 150
    assert renewal_budget(8.0, 60, None) == 480
    assert renewal_budget(8.0, 60, 10) == 480
    assert renewal_budget(8.0, 60, 3) == 3 * HEARTBEATS_PER_SHARD
    # and with that budget, 400 hooks started together are spread over ticks none of which
    # sends more than the queue runs at once
    sent, least = renewals_per_tick(400, 300, renewal_budget(8.0, 60, 3))
    assert max(sent) <= 3 * HEARTBEATS_PER_SHARD
    assert least >= POLICY.reconcile_period_seconds


def test_a_heartbeat_only_shard_survives_its_message() -> None:
    marked = [replace(i, renew=True) for i in work_items([], [drain(2)], [], POLICY)]
    assert Shard.from_body(Shard(T0, tuple(marked)).to_body()).items[0].renew
    shard = Shard(T0, tuple(work_items([], [drain(1)], [], POLICY)), looks=False)
    again = Shard.from_body(shard.to_body())
    assert again == shard
    assert not again.looks


def test_a_shard_survives_its_message_and_goes_stale_after_one_period() -> None:
    shard = Shard(T0, tuple(work_items(["i-orphan"], [drain(1)], [(TASK_A, T0 + 900)], POLICY)))
    again = Shard.from_body(shard.to_body())
    assert again == shard
    assert [i.kind for i in again.items] == [WorkKind.ORPHAN, WorkKind.DRAIN, WorkKind.TASK_STOP]
    assert not again.stale(T0 + 60, POLICY)
    assert again.stale(T0 + 61, POLICY)


def test_overdue_means_a_whole_tick_was_missed() -> None:
    record = drain(1, looked_at=T0)
    assert not overdue(record, T0 + 120, POLICY)
    assert overdue(record, T0 + 121, POLICY)


def test_breaker_opens_after_consecutive_failures_and_closes_on_success() -> None:
    breaker = Breaker(threshold=2)
    breaker.record("ECS", ok=False)
    assert not breaker.is_open("ECS")
    breaker.record("ECS", ok=True)
    breaker.record("ECS", ok=False)
    assert not breaker.is_open("ECS")
    breaker.record("ECS", ok=False)
    assert breaker.is_open("ECS")
    assert not breaker.is_open("LiveKit")


# -- the two passes ----------------------------------------------------------------------------


@dataclass
class SlowSessions(FakeSessions):
    """A LiveKit whose every look costs `seconds` of the clock (and times out past `within`)."""

    clock: FakeClock | None = None
    seconds: float = 0.0

    def still_held(self, rooms: object, within: float | None = None) -> dict[str, str]:
        assert self.clock is not None
        self.clock.t += min(self.seconds, within if within is not None else self.seconds)
        return super().still_held(rooms, within)  # type: ignore[arg-type]


@dataclass
class Tick:
    scheduler: Scheduler
    clock: FakeClock
    lifecycle: FakeLifecycle
    store: FakeStore
    sessions: SlowSessions


def a_tick(
    count: int, *, look_seconds: float, timeout: float = 55.0, heartbeat_left: float = 100.0
) -> tuple[Tick, list[float]]:
    """`count` open drains, each with one call, opened together, their hook timers
    `heartbeat_left` from running out (by default 100 s: every heartbeat is due)."""
    clock = FakeClock(T0 + 200)
    store, lifecycle, ecs = FakeStore(), FakeLifecycle(), FakeEcs()
    sessions = SlowSessions(clock=clock, seconds=look_seconds)
    for n in range(count):
        ci = f"ci-{n}"
        record = drain(
            n,
            container_instance_arn=ci,
            watched_rooms={f"call-{n}": TASK_A},
            rooms_final=True,
            last_heartbeat_at=clock.t + heartbeat_left - 300,
        )
        store.open_drain(record)
        ecs.tasks[ci] = [WorkerTask(TASK_A, "RUNNING", "STOPPED")]
        sessions.rooms[f"call-{n}"] = TASK_A
    coordinator = Coordinator(
        policy=POLICY,
        cluster="agents",
        drain_deadline_seconds=1200,
        heartbeat_timeout_seconds=300,
        store=store,
        lifecycle=lifecycle,
        ecs=ecs,
        sessions=sessions,
        clock=clock,
        task_stops=FakeTaskStopStore(),
    )
    tracker = TaskStopTracker(
        store=coordinator.task_stops,  # type: ignore[arg-type]
        ecs=ecs,
        sessions=sessions,
        drains=coordinator,
        clock=clock,
        cluster="agents",
    )
    scheduler = Scheduler(coordinator, tracker, "asg", "hook", clock, queue=None, shard_size=10_000)
    started = [clock.t]
    return Tick(scheduler, clock, lifecycle, store, sessions), started


def test_every_due_heartbeat_goes_out_before_a_slow_lookup_can_use_the_tick() -> None:
    # GIVEN 200 drains, all due a heartbeat, and a LiveKit that takes 2 s a look
    tick, (started,) = a_tick(200, look_seconds=2.0)
    remaining = lambda: 55.0 - (tick.clock.t - started)  # noqa: E731

    # WHEN one tick runs out of time long before it has looked at them all
    result = tick.scheduler.tick(remaining)

    # THEN every drain was heartbeated, and before the first look
    beats = [i for c, i in tick.lifecycle.calls if c == "heartbeat"]
    assert len(set(beats)) == 200
    first_look = next(n for n, s in enumerate(result.steps) if s.get("reason") != "before_look")
    assert all(s["action"] == "heartbeat" for s in result.steps[:first_look])
    # AND the looks that did not fit were deferred, not lost, each with its heartbeat decision
    # (not due before the next tick: it was just renewed)
    looked = [
        s
        for s in result.steps[first_look:]
        if s["action"] in ("wait", "heartbeat", "hold") and s.get("reason") != "look_deferred"
    ]
    assert result.deferred == 200 - len(looked)
    assert 0 < len(looked) < 200
    deferred = {s["instance_id"] for s in result.steps if s.get("reason") == "look_deferred"}
    assert deferred == {f"i-{n:017x}" for n in range(200)} - {s["instance_id"] for s in looked}


def test_a_tick_says_when_it_decided_each_hook_not_only_that_it_did() -> None:
    # GIVEN 20 drains, all due a heartbeat, and a LiveKit that takes 2 s a look
    tick, (started,) = a_tick(20, look_seconds=2.0)
    remaining = lambda: 55.0 - (tick.clock.t - started)  # noqa: E731

    # WHEN one tick heartbeats them all, then looks at as many as fit
    result = tick.scheduler.tick(remaining)

    # THEN each drain's decisions carry the clock time they were made: the heartbeats at the
    # start of the tick, the looks spread over it, none after the tick ended
    ended = tick.clock.t
    assert set(result.decided_at) == {f"i-{n:017x}" for n in range(20)}
    firsts = sorted(times[0] for times in result.decided_at.values())
    assert firsts[-1] == started  # every heartbeat before the first look spent the clock
    lasts = sorted(times[-1] for times in result.decided_at.values())
    assert lasts[0] < lasts[-1] <= ended
    assert len({round(t) for t in lasts}) > 10  # one look each, two seconds apart
    assert result.as_dict()["decided_at"] == result.decided_at


def test_a_hook_that_falls_due_while_the_looks_run_is_renewed_before_the_run_gives_up() -> None:
    # GIVEN 40 drains whose hook timers have 125 s left (not due: two periods and more), and a
    # LiveKit that takes 2 s a look: the tick has time for about 20 looks
    tick, (started,) = a_tick(40, look_seconds=2.0, heartbeat_left=125.0)
    remaining = lambda: 55.0 - (tick.clock.t - started)  # noqa: E731

    # WHEN the tick runs out of time with looks left
    result = tick.scheduler.tick(remaining)

    # THEN every drain had its heartbeat decision at the start (none due then) ...
    assert all(times[0] == started for times in result.decided_at.values())
    assert len(result.decided_at) == 40
    assert result.deferred > 0
    # ... and the hooks that fell due while the looks ran (under two periods left) were renewed
    # before the run gave up, not left for the next tick
    deferred = [s["instance_id"] for s in result.steps if s.get("reason") == "look_deferred"]
    beats = {i for c, i in tick.lifecycle.calls if c == "heartbeat"}
    looked = {
        s["instance_id"] for s in result.steps if s.get("reason") not in ("before_look", "look_deferred")
    }
    unlooked = {f"i-{n:017x}" for n in range(40)} - looked
    assert len(unlooked) == result.deferred
    assert unlooked <= beats
    assert deferred == []  # each of them was due by then: renewed, not merely deferred
    assert remaining() > 0


def test_drains_deferred_by_one_tick_are_looked_at_first_by_the_next() -> None:
    # GIVEN a tick that could look at only some of 100 drains
    tick, (started,) = a_tick(100, look_seconds=2.0)
    first = tick.scheduler.tick(lambda: 55.0 - (tick.clock.t - started))
    looked_first = {
        s["instance_id"] for s in first.steps if s.get("reason") not in ("before_look", "look_deferred")
    }
    assert first.deferred > 0

    # WHEN the next tick runs, a period later
    tick.clock.t = started + 60
    second = tick.scheduler.tick(lambda: 55.0 - (tick.clock.t - (started + 60)))

    # THEN its first looks are drains the first tick never looked at
    looks = [
        s["instance_id"] for s in second.steps if s.get("reason") not in ("before_look", "look_deferred")
    ]
    assert looks
    assert not set(looks[: first.deferred]) & looked_first


def _looked_at(result: RunResult) -> list[str]:
    """The drains a run looked at, in order (not its heartbeats, not the looks it deferred)."""
    return [
        s["instance_id"]
        for s in result.steps
        if "instance_id" in s and s.get("reason") not in ("before_look", "look_deferred", "spread")
    ]


def test_looks_that_saved_nothing_still_put_the_drains_deferred_after_them_first_next_tick() -> None:
    # GIVEN 30 drains, a tick that looks at about 25 of them, and a first tick done: its looks
    # learned each drain's tasks and counts (saved); what it deferred was looked at next
    tick, (started,) = a_tick(30, look_seconds=2.0)
    tick.scheduler.tick(lambda: 55.0 - (tick.clock.t - started))
    saves, versions = tick.store.saves, {i: r.version for i, r in tick.store.items.items()}

    # WHEN the next tick looks again at drains whose looks change nothing (so save nothing) and
    # defers the rest, and a third tick follows
    tick.clock.t = started + 60
    second = tick.scheduler.tick(lambda: 55.0 - (tick.clock.t - (started + 60)))
    unchanged = [i for i in _looked_at(second) if tick.store.items[i].version == versions[i]]
    deferred = {s["instance_id"] for s in second.steps if s.get("reason") == "look_deferred"}
    tick.clock.t = started + 120
    third = tick.scheduler.tick(lambda: 55.0 - (tick.clock.t - (started + 120)))

    # THEN the second tick's unchanged looks wrote no record, only its one record of looks
    assert unchanged and deferred
    assert tick.store.saves - saves == len(_looked_at(second)) - len(unchanged)
    assert set(unchanged) <= set(tick.store.recent_looks(started + 120))
    # AND the third tick looks first at what the second deferred (rule 2), not at the drains
    # whose records still carry the first tick's look
    assert set(_looked_at(third)[: len(deferred)]) == deferred


def test_a_look_that_changes_nothing_but_its_time_saves_nothing_however_long_ago_the_last() -> None:
    before = drain(1, looked_at=T0)
    for later in (30.0, 60.0, 600.0):
        assert not save_needed(before, replace(before, looked_at=T0 + later))
    assert save_needed(before, replace(before, looked_at=T0 + 60, sessions_remaining=1))
    assert save_needed(replace(before, looked_at=None), replace(before, tasks_remaining=0))


def test_a_drain_takes_the_later_of_its_own_look_and_the_runs_record_of_it() -> None:
    old, fresh, never = drain(1, looked_at=T0), drain(2, looked_at=T0 + 100), drain(3)
    looks = {old.instance_id: T0 + 60, fresh.instance_id: T0 + 60, never.instance_id: T0 + 30}
    merged = {r.instance_id: r.looked_at for r in with_looks([old, fresh, never], looks)}
    assert merged == {old.instance_id: T0 + 60, fresh.instance_id: T0 + 100, never.instance_id: T0 + 30}
    # AND a drain no run recorded keeps its own time (the record is otherwise untouched)
    assert with_looks([old], {}) == [old]
    assert looks_kept_until(T0, POLICY) == T0 + 3 * 60


def test_a_tick_alone_covers_everything_when_there_is_time() -> None:
    tick, (started,) = a_tick(5, look_seconds=0.5)
    result = tick.scheduler.tick(lambda: 55.0 - (tick.clock.t - started))
    assert result.deferred == 0
    records = [tick.store.get(f"i-{n:017x}") for n in range(5)]
    assert all(r is not None and r.looked_at is not None for r in records)


@dataclass
class FakeQueue:
    sent: list[Shard]

    def send(self, shards: list[Shard]) -> int:
        self.sent += shards
        return len(shards)


def test_a_tick_sends_what_it_cannot_cover_as_shards_and_does_the_most_urgent_itself() -> None:
    # GIVEN 45 open drains and shards of 20
    tick, (started,) = a_tick(45, look_seconds=0.1)
    queue = FakeQueue([])
    scheduler = replace(tick.scheduler, queue=queue, shard_size=20)

    # WHEN a tick runs
    result = scheduler.tick(lambda: 55.0 - (tick.clock.t - started))

    # THEN two shards went to the queue and the tick looked at the first 20 drains itself
    assert result.shards_sent == 2
    assert [len(s.items) for s in queue.sent] == [20, 5]
    looked = {s["instance_id"] for s in result.steps if s.get("reason") != "before_look"}
    assert len(looked) == 20
    assert looked.isdisjoint({i.key for s in queue.sent for i in s.items})

    # AND a shard, run by the advance function, looks at its own drains
    done = scheduler.run_shard(queue.sent[1], lambda: 55.0)
    assert {s["instance_id"] for s in done.steps if s.get("reason") != "before_look"} == {
        i.key for i in queue.sent[1].items
    }


def test_a_stale_shard_still_sends_its_due_heartbeats_but_looks_at_nothing() -> None:
    # GIVEN a shard that waited for a free invocation longer than a period
    tick, _ = a_tick(5, look_seconds=0.5)
    items = tuple(work_items([], tick.store.open_drains(), [], POLICY))
    shard = Shard(tick.clock.t, items)
    tick.clock.t += 61

    # WHEN the advance function gets it
    done = tick.scheduler.run_shard(shard, lambda: 55.0)

    # THEN every due heartbeat was sent (a later tick may be waiting too), and no look was made
    assert {i for c, i in tick.lifecycle.calls if c == "heartbeat"} == {i.key for i in items}
    assert [s["action"] for s in done.steps if s.get("reason") != "before_look"] == ["skip"]
    assert tick.sessions.still_held_calls == 0


def test_a_tick_sends_heartbeat_shards_before_look_shards_and_defers_looks_that_cannot_run_at_once() -> None:
    # GIVEN open drains, all due a heartbeat: 20 for the tick and six heartbeat shards' worth
    # more, in shards of 20, for a queue that runs 5 at once
    beyond = 6 * HEARTBEATS_PER_SHARD
    tick, (started,) = a_tick(20 + beyond, look_seconds=0.1)
    queue = FakeQueue([])
    scheduler = replace(tick.scheduler, queue=queue, shard_size=20, concurrency=5)

    # WHEN a tick runs
    result = scheduler.tick(lambda: 55.0 - (tick.clock.t - started))

    # THEN it sent heartbeat-only shards for every drain it does not do itself (six: more than
    # run at once, for heartbeats are never held back) and no look shard
    assert [s.looks for s in queue.sent] == [False] * 6
    assert sum(len(s.items) for s in queue.sent) == beyond
    # AND their looks were deferred; each is due a heartbeat, so none has a "not due" decision
    assert result.deferred == beyond
    assert not [s for s in result.steps if s.get("reason") == "look_deferred"]

    # WHEN the heartbeat shards are run
    for shard in queue.sent:
        scheduler.run_shard(shard, lambda: 55.0)

    # THEN every hook was heartbeaten once and nobody looked but the tick, at its own 20
    beats = [i for c, i in tick.lifecycle.calls if c == "heartbeat"]
    assert len(beats) == len(set(beats)) == 20 + beyond
    assert tick.sessions.still_held_calls <= 20


def test_a_tick_fills_the_slots_its_heartbeat_shards_leave_with_look_shards() -> None:
    # GIVEN 20 drains for the tick and two heartbeat shards' worth more, all due, and a queue
    # that runs 5 at once
    tick, (started,) = a_tick(20 + 2 * HEARTBEATS_PER_SHARD, look_seconds=0.1)
    queue = FakeQueue([])
    scheduler = replace(tick.scheduler, queue=queue, shard_size=20, concurrency=5)

    # WHEN a tick runs
    result = scheduler.tick(lambda: 55.0 - (tick.clock.t - started))

    # THEN the heartbeat-only shards went first, then look shards (heartbeat first in each) in
    # the slots they left: five at most, every drain the tick does not do itself in one of them
    kinds = [s.looks for s in queue.sent]
    assert kinds == sorted(kinds)
    assert kinds.count(True) >= 1
    assert len(queue.sent) <= 5
    assert all(len(s.items) == 20 for s in queue.sent if s.looks)
    assert sum(len(s.items) for s in queue.sent) == 2 * HEARTBEATS_PER_SHARD
    assert result.deferred == sum(len(s.items) for s in queue.sent if not s.looks)


def test_looks_deferred_for_want_of_invocations_come_first_in_the_next_tick_and_get_a_decision_each() -> None:
    # GIVEN 200 open drains just heartbeaten, shards of 20 and a queue that runs 3 at once
    tick, (started,) = a_tick(200, look_seconds=0.1)
    for record in tick.store.open_drains():
        tick.store.save(replace(record, last_heartbeat_at=tick.clock.t))
    queue = FakeQueue([])
    scheduler = replace(tick.scheduler, queue=queue, shard_size=20, concurrency=3)

    # WHEN a tick runs
    first = scheduler.tick(lambda: 55.0 - (tick.clock.t - started))

    # THEN it looked at 20 itself and sent 3 look shards: the other 120 were deferred, each with
    # the tick's decision that its heartbeat is not due before the next tick
    assert [s.looks for s in queue.sent] == [True] * 3
    assert first.deferred == 120
    deferred = {s["instance_id"] for s in first.steps if s.get("reason") == "look_deferred"}
    assert len(deferred) == 120
    for shard in queue.sent:
        scheduler.run_shard(shard, lambda: 55.0)

    # WHEN the next tick runs, a period later
    queue.sent.clear()
    tick.clock.t = started + 60
    second = scheduler.tick(lambda: 55.0 - (tick.clock.t - (started + 60)))

    # THEN the drains it does itself and sends first are the ones the first tick deferred
    first_looks = [
        s["instance_id"] for s in second.steps if s.get("reason") not in ("before_look", "look_deferred")
    ]
    sent_looks = [i.key for s in queue.sent for i in s.items]
    assert set(first_looks) | set(sent_looks) <= deferred
    assert len(set(first_looks) | set(sent_looks)) == 80


def test_a_heartbeat_only_shard_renews_every_hook_it_holds_even_before_it_is_due() -> None:
    # GIVEN a heartbeat-only shard of 5 drains whose timers still have 250 s left
    tick, _ = a_tick(5, look_seconds=0.5)
    for record in tick.store.open_drains():
        tick.store.save(replace(record, last_heartbeat_at=tick.clock.t - 50))
    shard = Shard(tick.clock.t, tuple(work_items([], tick.store.open_drains(), [], POLICY)), looks=False)

    # WHEN the advance function runs it
    done = tick.scheduler.run_shard(shard, lambda: 55.0)

    # THEN each hook was renewed early (the tick spread them), and nobody looked
    assert sorted(i for c, i in tick.lifecycle.calls if c == "heartbeat") == sorted(
        i.key for i in shard.items
    )
    assert {s["reason"] for s in done.steps} == {"spread"}
    assert tick.sessions.still_held_calls == 0


def test_a_look_shard_renews_the_hooks_the_tick_marked_before_it_looks() -> None:
    # GIVEN a look shard of 5 drains whose timers still have 250 s left, 2 of them marked to renew
    tick, _ = a_tick(5, look_seconds=0.5)
    for record in tick.store.open_drains():
        tick.store.save(replace(record, last_heartbeat_at=tick.clock.t - 50))
    items = work_items([], tick.store.open_drains(), [], POLICY)
    items = [replace(i, renew=True) if n < 2 else i for n, i in enumerate(items)]

    # WHEN the advance function runs it
    done = tick.scheduler.run_shard(Shard(tick.clock.t, tuple(items)), lambda: 55.0)

    # THEN the two marked hooks were renewed first, early, and every drain was looked at
    renewed = [i for c, i in tick.lifecycle.calls if c == "heartbeat"]
    assert sorted(renewed) == sorted(i.key for i in items[:2])
    assert [s["reason"] for s in done.steps[:2]] == ["spread", "spread"]
    assert tick.sessions.still_held_calls > 0


def test_a_queue_sized_to_the_fleet_still_renews_from_no_more_invocations_than_one_wave_of_heartbeat_shards() -> (
    None
):
    # GIVEN 1,000 hooks started together two periods ago (a fleet-wide scale-in), a queue that runs
    # 49 shards at once (every shard of the tick) and a budget of 480 renewals a period
    now = T0 + 5000
    records = [
        drain(n, last_heartbeat_at=now - 120, heartbeat_timeout=300, deadline_at=now + 5000)
        for n in range(1000)
    ]
    by_key = {r.instance_id: r for r in records}
    budget = renewal_budget(8.0, 60, 49)

    # WHEN a tick plans its work
    plan = plan_tick(work_items([], records, [], POLICY), by_key, now, POLICY, 20, 49, budget)

    # THEN every renewal the budget asks for is made (in heartbeat shards or marked in looks) ...
    wanted = {r.instance_id for r in heartbeats_to_send(records, now, POLICY, budget)}
    beaten = {i.key for part in plan.heartbeat_shards for i in part}
    marked = {i.key for part in [plan.own, *plan.look_shards] for i in part if i.renew}
    assert len(wanted) >= budget  # the next tick's due ones beyond the budget come forward
    assert beaten | marked >= wanted
    # ... by no more queued invocations at once than one wave of heartbeat-only shards (Auto
    # Scaling's rate is shared: 49 invocations renewing at once throttle each other past botocore's
    # retries, and the hooks they lose expire) ...
    renewing = [part for part in plan.look_shards if any(i.renew for i in part)]
    assert len(plan.heartbeat_shards) + len(renewing) <= -(-len(wanted) // HEARTBEATS_PER_SHARD)
    # ... while the queue's other slots look at the drains not renewed, renewing none of them:
    # every drain is renewed or looked at this tick
    quiet = [part for part in plan.look_shards if not any(i.renew for i in part)]
    assert len(plan.heartbeat_shards) + len(plan.look_shards) <= 49
    looked = {i.key for part in [plan.own, *plan.look_shards] for i in part}
    assert looked | beaten == set(by_key)
    assert quiet
    assert not {i.key for part in quiet for i in part} & (wanted | beaten)


@dataclass
class RefusesFirstTry(FakeLifecycle):
    """Auto Scaling throttling each hook's first heartbeat (its rate shared with other invocations)."""

    refused: set[str] = field(default_factory=set)

    def record_heartbeat(self, ref: LifecycleRef) -> None:
        if ref.instance_id not in self.refused:
            self.refused.add(ref.instance_id)
            raise AutoScalingError("record_lifecycle_action_heartbeat failed: Throttling: Rate exceeded")
        super().record_heartbeat(ref)


def test_a_renewal_auto_scaling_throttled_is_tried_again_after_the_others_in_the_same_run() -> None:
    # GIVEN a heartbeat-only shard of 5 drains whose hooks are due, and Auto Scaling refusing each
    # hook's first heartbeat
    tick, _ = a_tick(5, look_seconds=0.5)
    lifecycle = RefusesFirstTry()
    tick.scheduler.drains.lifecycle = lifecycle
    shard = Shard(tick.clock.t, tuple(work_items([], tick.store.open_drains(), [], POLICY)), looks=False)

    # WHEN the advance function runs it
    done = tick.scheduler.run_shard(shard, lambda: 55.0)

    # THEN every hook was renewed, on its second try, in the order of the first
    assert [i for c, i in lifecycle.calls if c == "heartbeat"] == [i.key for i in shard.items]
    assert [s["action"] for s in done.steps].count("heartbeat") == 5
    assert [s["action"] for s in done.steps].count("error") == 5
