"""Which open drain is looked at first, how long a look may take, and how a tick's work is split.

Pure: functions of records, `now` and the policy. The rules (tests/unit/test_schedule_properties.py):
1. Most urgent first: a drain whose hook timer, look or deadline comes due sooner goes ahead.
2. A drain not looked at in a tick is due before every drain that was: first next tick.
3. Every heartbeat that is due is sent before any look starts, so no probe can delay one.
4. A look never gets more than its share of the invocation's time, and never less than
   `min_look_seconds`; what does not fit is deferred (its heartbeat, if due, was already sent).
5. A tick sends no more shards than the work queue runs at once (its MaximumConcurrency): the
   due heartbeats it does not send itself first, in heartbeat-only shards, then as many look
   shards as the remaining slots take. Nothing a tick sends waits behind another shard, so no
   heartbeat waits behind a look; looks that do not fit are deferred to the next tick, first.
6. Heartbeats are spread under a budget a period (a share of Auto Scaling's request rate): when
   more hooks come due in the next periods than the budget can renew then, the surplus is renewed
   early, now, closest to expiry first, so a fleet-wide scale-in's hooks (all started at once) do
   not all fall due in one window the rate cannot serve.
7. Every open drain has a heartbeat decision every tick: a heartbeat (in a shard), a look, or the
   tick's own "not due before the next tick" for a drain whose look is deferred.
8. No more invocations renew hooks at once than one wave of heartbeat-only shards under the budget
   (`senders`), however many the queue runs: Auto Scaling's rate is shared by all of them, and
   fifty invocations each renewing their own drains at once throttle each other past botocore's
   retries. The slots left go to looks that renew nothing (drains the tick did not choose).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

from drain_coordinator.domain.decide import DrainPolicy, heartbeat_due
from drain_coordinator.domain.records import DrainRecord


class WorkKind(StrEnum):
    ORPHAN = "orphan"  # an instance in Terminating:Wait with no drain: its hook timer is unknown
    DRAIN = "drain"
    TASK_STOP = "task_stop"


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One unit of a tick, by key: the record is read again by whoever does the work."""

    kind: WorkKind
    key: str  # instance id (orphan, drain) or task ARN (task stop)
    due_at: float
    renew: bool = False  # the tick chose to renew this hook now, due or early (rule 6)

    def as_dict(self) -> dict[str, str | float | bool]:
        raw: dict[str, str | float | bool] = {"kind": self.kind.value, "key": self.key, "due_at": self.due_at}
        if self.renew:
            raw["renew"] = True
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> WorkItem:
        return cls(
            WorkKind(str(raw["kind"])),
            str(raw["key"]),
            float(str(raw.get("due_at", 0))),
            renew=raw.get("renew") is True,
        )


@dataclass(frozen=True, slots=True)
class LookLimits:
    """Time a look may spend, derived from the invocation's remaining time."""

    reserve_seconds: float = 8.0  # kept back for the last save, the metrics and the return
    min_look_seconds: float = 4.0  # below this a look cannot finish one LiveKit round trip
    max_look_seconds: float = 25.0  # one look never eats a whole invocation


def look_due_at(record: DrainRecord, policy: DrainPolicy) -> float:
    """When this drain must next be looked at: its heartbeat coming due, a period after its last
    look, or the last look before its deadline, whichever is first."""
    slack = policy.slack_seconds
    last_look = record.looked_at if record.looked_at is not None else record.opened_at
    return min(
        record.heartbeat_expires_at - 2 * slack,
        last_look + policy.reconcile_period_seconds,
        record.deadline_at - slack,
    )


# A look that changes nothing but its own time writes nothing to its drain: each run records the
# looks it made in one item instead, kept this many periods, and the tick reads those still kept.
# Three periods cover what the tick asks of a look's time: a period back for its order (rule 2)
# and two for `overdue`; a drain not looked at within them is overdue by either clock.
LOOKS_KEPT_PERIODS: Final = 3


def looks_kept_until(now: float, policy: DrainPolicy) -> float:
    """Until when a run's record of its looks, made at `now`, is read by the ticks."""
    return now + LOOKS_KEPT_PERIODS * policy.reconcile_period_seconds


def with_looks(records: Iterable[DrainRecord], looks: Mapping[str, float]) -> list[DrainRecord]:
    """The records, each with the time of its last look: the record's own, or the later one the
    runs recorded (instance id -> time) for a look that changed nothing else and so saved
    nothing. A look no run recorded (its invocation died first) counts as not made: that drain
    comes first next tick, as one deferred does."""
    out: list[DrainRecord] = []
    for record in records:
        seen = looks.get(record.instance_id)
        if seen is not None and (record.looked_at is None or seen > record.looked_at):
            record = replace(record, looked_at=seen)
        out.append(record)
    return out


def in_urgency_order(records: Iterable[DrainRecord], policy: DrainPolicy) -> list[DrainRecord]:
    return sorted(records, key=lambda r: (look_due_at(r, policy), r.instance_id))


def heartbeats_due(records: Iterable[DrainRecord], now: float, policy: DrainPolicy) -> list[DrainRecord]:
    """The open drains whose hook timer must be renewed now, the one closest to expiry first."""
    due = [r for r in records if r.is_open and heartbeat_due(r, now, policy)]
    return sorted(due, key=lambda r: (r.heartbeat_expires_at, r.instance_id))


def overdue(record: DrainRecord, now: float, policy: DrainPolicy) -> bool:
    """Deferred past one period: not looked at for more than two periods (a tick was missed)."""
    last_look = record.looked_at if record.looked_at is not None else record.opened_at
    return now - last_look > 2 * policy.reconcile_period_seconds


def look_budget(remaining_seconds: float, looks_left: int, limits: LookLimits) -> float | None:
    """Seconds the next look may take, or None: no time for a look, defer it."""
    usable = remaining_seconds - limits.reserve_seconds
    if usable < limits.min_look_seconds:
        return None
    share = usable / max(1, looks_left)
    return max(limits.min_look_seconds, min(limits.max_look_seconds, share))


def work_items(
    orphans: Sequence[str],
    drains: Iterable[DrainRecord],
    task_stops: Iterable[tuple[str, float]],
    policy: DrainPolicy,
) -> list[WorkItem]:
    """Every unit of a tick in the order it is done: orphans (hook timer unknown, so treated as
    expiring), then drains by urgency, then task stops by when they would be killed."""
    items = [WorkItem(WorkKind.ORPHAN, instance_id, 0.0) for instance_id in orphans]
    items += [
        WorkItem(WorkKind.DRAIN, r.instance_id, look_due_at(r, policy))
        for r in in_urgency_order(drains, policy)
    ]
    items += [
        WorkItem(WorkKind.TASK_STOP, arn, kill_at)
        for arn, kill_at in sorted(task_stops, key=lambda s: (s[1], s[0]))
    ]
    return items


# Heartbeats in one heartbeat-only shard: each is two requests, the heartbeat and the record's
# conditional save, one after the other (about 0.7 s when AWS answers in 0.2 s with a 2 s P99),
# so fifty fit well inside one invocation's 55 s. Auto Scaling's rate (assumed 10 a second) bounds
# all shards together: more shards at once send no more heartbeats than that.
HEARTBEATS_PER_SHARD: Final = 50


def renewal_budget(heartbeat_rate: float, period_seconds: int, concurrency: int | None) -> int:
    """Renewals a period the tick spreads the hooks' heartbeats under: its share of Auto Scaling's
    rate, and no more than one wave of heartbeat-only shards sends (the queue runs `concurrency`
    at once, each of HEARTBEATS_PER_SHARD), so a tick's renewals never wait for a free invocation."""
    by_rate = int(heartbeat_rate * period_seconds)
    return by_rate if concurrency is None else min(by_rate, concurrency * HEARTBEATS_PER_SHARD)


def heartbeats_to_send(
    records: Iterable[DrainRecord], now: float, policy: DrainPolicy, per_period: int | None
) -> list[DrainRecord]:
    """The hooks to renew this tick, closest to expiry first: every due one, and as many more as
    keep each coming period within `per_period` renewals (None: no budget, the due ones only).

    A hook must be renewed by the tick at which it falls due (two periods left, decide.py); the
    next j ticks renew at most j x `per_period`: whatever falls due by then beyond that goes now."""
    ready = sorted((r for r in records if r.is_open), key=lambda r: (r.heartbeat_expires_at, r.instance_id))
    need = sum(1 for r in ready if heartbeat_due(r, now, policy))
    if per_period is not None and ready:
        period = policy.reconcile_period_seconds
        horizon = math.ceil(max(r.heartbeat_timeout for r in ready) / period)
        for ahead in range(1, horizon + 1):
            later = now + ahead * period
            falling = sum(1 for r in ready if heartbeat_due(r, later, policy))
            need = max(need, falling - ahead * per_period)
    return ready[:need]


@dataclass(frozen=True, slots=True)
class TickPlan:
    """What one tick does itself, what it sends, and what waits for the next tick."""

    own: list[WorkItem]
    heartbeat_shards: list[list[WorkItem]]
    look_shards: list[list[WorkItem]]
    deferred: list[WorkItem]  # no look this tick (first next tick); due heartbeats in heartbeat_shards


def plan_tick(
    items: Sequence[WorkItem],
    drains: Mapping[str, DrainRecord],
    now: float,
    policy: DrainPolicy,
    shard_size: int,
    concurrency: int | None,
    heartbeat_budget: int | None = None,
) -> TickPlan:
    """Split a tick's work (in urgency order, `work_items`): the first shard for the tick itself;
    then, within `concurrency` shards at once (None: no queue limit), heartbeat-only shards for
    the heartbeats to send (`heartbeats_to_send` under `heartbeat_budget` a period) of the drains
    not looked at, and look shards in urgency order in what is left.

    A heartbeat-only shard renews every hook it holds: due, or renewed early to spread them."""
    if shard_size < 1:
        raise ValueError("a shard holds at least one item")
    own, rest = list(items[:shard_size]), list(items[shard_size:])
    if concurrency is None:
        return TickPlan(own, [], shards(rest, shard_size), [])

    renew = heartbeats_to_send(drains.values(), now, policy, heartbeat_budget)
    due = {r.instance_id for r in renew if heartbeat_due(r, now, policy)}
    # Closest to expiry first: the drains a heartbeat shard renews, when not looked at.
    by_expiry = sorted(
        (i for i in rest if i.kind is WorkKind.DRAIN and i.key in drains and drains[i.key].is_open),
        key=lambda i: (drains[i.key].heartbeat_expires_at, i.key),
    )

    chosen = {r.instance_id for r in renew}
    # Invocations that renew hooks at once: no more than one wave of heartbeat-only shards under
    # the budget (rule 8), however many the queue runs; the due ones alone may need more.
    outside = len(renew) - len(chosen & {i.key for i in own})
    least = math.ceil(outside / HEARTBEATS_PER_SHARD)
    senders = concurrency
    if heartbeat_budget is not None:
        senders = min(concurrency, max(1, math.ceil(heartbeat_budget / HEARTBEATS_PER_SHARD)))

    def split(slots: int) -> tuple[list[WorkItem], list[WorkItem]]:
        """The look shards' items and the heartbeat shards' for `slots` look shards. A look renews
        the chosen hooks it holds (marked `renew`); the other renewals come from the drains not
        looked at (the due ones, then early ones up to the count)."""
        looked = rest[: slots * shard_size]
        looked_keys = {i.key for i in [*own, *looked]}
        candidates = [i for i in by_expiry if i.key not in looked_keys]
        due_left = sum(1 for i in candidates if i.key in due)
        renewed_in_looks = len(chosen & looked_keys)
        return looked, candidates[: max(due_left, len(renew) - renewed_in_looks)]

    def fits(slots: int, looked: list[WorkItem], beats: list[WorkItem]) -> bool:
        wave = math.ceil(len(beats) / HEARTBEATS_PER_SHARD)
        renewing = sum(1 for part in shards(looked, shard_size) if any(i.key in chosen for i in part))
        return slots + wave <= concurrency and renewing + wave <= max(senders, least)

    # As many look shards as leave room for the heartbeat shards they need, and keep the
    # invocations that renew within `senders`: each look shard takes renewals of its own drains
    # out of the heartbeat shards (slots and wave together never shrink as looks are added).
    slots = 0
    looked, beats = split(slots)
    while slots * shard_size < len(rest) and fits(slots + 1, *(more := split(slots + 1))):
        slots += 1
        looked, beats = more

    # Then, in the slots left, looks that renew nothing: drains neither chosen nor beaten (rule 8).
    wave = math.ceil(len(beats) / HEARTBEATS_PER_SHARD)
    spare = concurrency - slots - wave if heartbeat_budget is not None else 0
    skip = chosen | {i.key for i in beats}
    quiet = [i for i in rest[len(looked) :] if i.kind is not WorkKind.DRAIN or i.key not in skip]
    quiet = quiet[: max(0, spare) * shard_size]
    quiet_keys = {(i.kind, i.key) for i in quiet}

    def marked(items: list[WorkItem]) -> list[WorkItem]:
        return [replace(i, renew=True) if i.key in chosen and i.kind is WorkKind.DRAIN else i for i in items]

    return TickPlan(
        own=marked(own),
        heartbeat_shards=shards(beats, HEARTBEATS_PER_SHARD) if beats else [],
        look_shards=shards(marked(looked), shard_size) + shards(quiet, shard_size),
        deferred=[i for i in rest[len(looked) :] if (i.kind, i.key) not in quiet_keys],
    )


def shards(items: Sequence[WorkItem], size: int) -> list[list[WorkItem]]:
    """Consecutive slices of at most `size` items; the first slice is the most urgent."""
    if size < 1:
        raise ValueError("a shard holds at least one item")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


@dataclass(frozen=True, slots=True)
class Shard:
    """A slice of one tick's work, sent to the work queue for another invocation to do."""

    tick_at: float
    items: tuple[WorkItem, ...]
    looks: bool = True  # False: a heartbeat-only shard (no probe, no look)

    def to_body(self) -> str:
        body: dict[str, object] = {"tick_at": self.tick_at, "items": [i.as_dict() for i in self.items]}
        if not self.looks:
            body["looks"] = False
        return json.dumps(body)

    @classmethod
    def from_body(cls, body: str) -> Shard:
        raw = json.loads(body)
        if not isinstance(raw, dict) or not isinstance(raw.get("items"), list):
            raise ValueError("a shard is an object with an items list")
        items = tuple(WorkItem.from_dict(i) for i in raw["items"])
        return cls(float(raw["tick_at"]), items, looks=raw.get("looks", True) is not False)

    def stale(self, now: float, policy: DrainPolicy) -> bool:
        """Superseded: the next tick has planned (and sent) this work again."""
        return now - self.tick_at > policy.reconcile_period_seconds


@dataclass
class Breaker:
    """Within one invocation, a dependency that failed `threshold` looks in a row is not asked
    again: the drains after it hold at once instead of each waiting out its timeouts."""

    threshold: int = 2
    failures: dict[str, int] = field(default_factory=dict)

    def is_open(self, dependency: str) -> bool:
        return self.failures.get(dependency, 0) >= self.threshold

    def record(self, dependency: str, ok: bool) -> None:
        self.failures[dependency] = 0 if ok else self.failures.get(dependency, 0) + 1
