"""`drainctl simulate`: one fleet, one stream of calls, four ways to stop workers, side by side.

Each strategy runs in its own local world with the same call arrivals (a Poisson process), the
same call lengths and the same event at the same moment:

- `fargate`: stopTimeout capped at 120 s and no lifecycle hook. A deploy, a scale-in and a Spot
  reclaim all come down to the same thing: the tasks get SIGTERM, then SIGKILL 120 s later
  (Fargate has no instances: a scale-in of K instances stops the K x M tasks they stand for).
- `ec2-no-coordinator`: stopTimeout as the template sets it, the terminate lifecycle hook in
  place but nothing answering it. The instance waits in `Terminating:Wait` for the hook's
  HeartbeatTimeout, its workers still taking calls (nobody set the container instance to
  DRAINING), then the hook's DefaultResult applies and the instance is terminated with every
  call still on it. That is what AWS documents for a hook nobody completes; without any hook the
  instance would go at once, which only drops more.
- `ec2-coordinator`: the project as deployed: the real handlers on the template's routes.
- `ec2-coordinator-rescue`: the same with `CallRescue` on (and `RescueOnDeploy` with
  `--rescue-on-deploy`): a call whose worker must die (the Spot warning, a drain's deadline, a
  stop's timeout, a deploy's stop) is handed to a healthy worker by a rescue job in its room.

Workers take at most `ceil(calls per worker / (1 - headroom))` calls at once (their load
threshold), in every strategy: `--headroom` (default the README's 35 %) is the share of the
fleet's call slots kept free. Rescue needs that room: a Spot reclaim of K of N instances moves
K/N of the calls onto the rest.

ECS's service scheduler: with `--minimum-healthy-percent P` (the template's service says 100) and
`--health-delay S`, a worker ECS means to stop (on a DRAINING instance, or in a deploy) gets its
replacement placed first (within `--maximum-percent`, 200), and SIGTERM only once the replacement
is healthy S seconds later and P % of the service stays healthy; until then the old worker
reports itself available and LiveKit keeps sending it calls, unless it quiesces (the packaged
worker does, on a DRAINING instance, within 10 s; `--no-quiesce` models a worker that does not).
"calls kept off by the quiesce" counts the calls LiveKit would otherwise have dispatched to a
quiesced worker. Without either flag, ECS stops the tasks seconds after DRAINING.

A Spot reclaim is the world's EC2 interruption: the two-minute warning event, then the instance
gone 120 s later whatever anyone does. The coordinator hears the warning and drains (no new
call lands on the instance), but cannot extend the two minutes.

Each event runs in a world of its own per strategy, after the same warm-up with the same seed:
the calls in flight when the event begins are the same calls in every column.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TextIO

from boto3.dynamodb.types import TypeDeserializer

from drain_coordinator.observability import MetricName
from drainctl.world.alarms import datapoints
from drainctl.world.decisions import decisions, longest_wait
from drainctl.world.fleet import DEFAULT_SERVICE, Worker, WorkerState
from drainctl.world.hostile import AWS_DEPENDENCIES, HANGABLE, HostileInputError, LatencyTail
from drainctl.world.world import Delivery, World, WorldConfig

FARGATE: Final = "fargate"
EC2_NO_COORDINATOR: Final = "ec2-no-coordinator"
EC2_COORDINATOR: Final = "ec2-coordinator"
EC2_COORDINATOR_RESCUE: Final = "ec2-coordinator-rescue"
STRATEGIES: Final = (FARGATE, EC2_NO_COORDINATOR, EC2_COORDINATOR, EC2_COORDINATOR_RESCUE)
COORDINATED: Final = (EC2_COORDINATOR, EC2_COORDINATOR_RESCUE)
# The README's headroom rule: keep this share of the workers' call slots free.
DEFAULT_HEADROOM_PCT: Final = 35.0

DEPLOY: Final = "deploy"
SCALE_IN: Final = "scale-in"
SPOT_RECLAIM: Final = "spot-reclaim"

FARGATE_STOP_TIMEOUT_CAP: Final = 120  # seconds: Fargate refuses a longer stopTimeout
FARGATE_SERVICE: Final = "fargate-agents"
DEFAULT_LENGTHS: Final = "uniform:180-480"
DEFAULT_CALLS_PER_WORKER: Final = 3.0
MIN_WARM_UP_SECONDS: Final = 600.0
STEP_SECONDS: Final = 1.0


class SimulateInputError(ValueError):
    """A scenario that cannot be simulated: bad numbers, an unreadable lengths file."""


# -- call lengths --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallLengths:
    """How long calls last, in seconds: `uniform:A-B`, `lognormal:MU,SIGMA` (of ln seconds) or
    `csv:FILE` (one length a line, drawn with replacement)."""

    spec: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    mu: float = 0.0
    sigma: float = 0.0
    values: tuple[float, ...] = ()

    def sample(self, rng: random.Random) -> float:
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        if self.kind == "lognormal":
            return rng.lognormvariate(self.mu, self.sigma)
        return rng.choice(self.values)

    def mean(self) -> float:
        if self.kind == "uniform":
            return (self.low + self.high) / 2
        if self.kind == "lognormal":
            return math.exp(self.mu + self.sigma**2 / 2)
        return sum(self.values) / len(self.values)

    def upper(self) -> float:
        """A length hardly any call exceeds (all of them but 1 in 1000 for a lognormal)."""
        if self.kind == "uniform":
            return self.high
        if self.kind == "lognormal":
            return math.exp(self.mu + 3.09 * self.sigma)
        return max(self.values)

    def excess_mean(self, cap: float) -> float:
        """E[(L - cap)+]: the mean time a call has beyond `cap` seconds."""
        if self.kind == "uniform":
            start = max(self.low, cap)
            if start >= self.high:
                return 0.0
            return ((self.high - cap) ** 2 - (start - cap) ** 2) / (2 * (self.high - self.low))
        if self.kind == "lognormal":
            if self.sigma == 0:
                return max(0.0, math.exp(self.mu) - cap)
            d2 = (self.mu - math.log(cap)) / self.sigma
            return self.mean() * _phi(d2 + self.sigma) - cap * _phi(d2)
        return sum(max(0.0, v - cap) for v in self.values) / len(self.values)

    def dropped_fraction(self, cap: float) -> float:
        """The share of calls in flight with more than `cap` seconds left: E[(L - cap)+] / E[L].

        A call in flight at a given instant is length-biased (a long call is more likely to be
        up) and its time left is uniform over its length; averaging P(left > cap | L) = (L - cap)+/L
        over the length-biased density L f(L) / E[L] gives the ratio.
        """
        return self.excess_mean(cap) / self.mean()


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def parse_lengths(text: str) -> CallLengths:
    kind, sep, rest = text.partition(":")
    if not sep or not rest:
        raise SimulateInputError(f"--lengths takes uniform:A-B, lognormal:MU,SIGMA or csv:FILE, not {text!r}")
    if kind == "uniform":
        low_text, dash, high_text = rest.partition("-")
        if not dash:
            raise SimulateInputError(f"--lengths uniform:A-B needs two numbers, not {text!r}")
        low, high = _number(low_text, text), _number(high_text, text)
        if not 0 < low < high:
            raise SimulateInputError(f"--lengths uniform:A-B needs 0 < A < B seconds, not {text!r}")
        return CallLengths(text, "uniform", low=low, high=high)
    if kind == "lognormal":
        parts = rest.split(",")
        if len(parts) != 2:
            raise SimulateInputError(f"--lengths lognormal:MU,SIGMA takes two numbers, not {text!r}")
        mu, sigma = _number(parts[0], text), _number(parts[1], text)
        if sigma < 0 or sigma > 3:
            raise SimulateInputError(f"--lengths lognormal: SIGMA must be within 0-3, not {sigma:g}")
        return CallLengths(text, "lognormal", mu=mu, sigma=sigma)
    if kind == "csv":
        return CallLengths(text, "csv", values=_read_lengths_file(Path(rest)))
    raise SimulateInputError(f"--lengths: unknown distribution {kind!r} (uniform, lognormal, csv)")


def _number(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SimulateInputError(f"--lengths: {text!r} is not a number in {spec!r}") from None
    if not math.isfinite(value):
        raise SimulateInputError(f"--lengths: {text!r} is not a finite number in {spec!r}")
    return value


def _read_lengths_file(path: Path) -> tuple[float, ...]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SimulateInputError(f"--lengths csv: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SimulateInputError(f"--lengths csv: {path} is not UTF-8 text (byte {exc.start})") from None
    values: list[float] = []
    for number, raw in enumerate(lines, start=1):
        cell = raw.split(",", 1)[0].strip()
        if not cell or cell.startswith("#"):
            continue
        try:
            value = float(cell)
        except ValueError:
            if not values and number == 1:
                continue  # a header line
            raise SimulateInputError(
                f"--lengths csv: {path} line {number}: {cell!r} is not a number"
            ) from None
        if not (math.isfinite(value) and value > 0):
            raise SimulateInputError(f"--lengths csv: {path} line {number}: a length must be > 0 seconds")
        values.append(value)
    if not values:
        raise SimulateInputError(f"--lengths csv: {path} holds no call length")
    return tuple(values)


# -- the scenario --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    instances: int = 6
    workers_per_instance: int = 2
    lengths: CallLengths = field(default_factory=lambda: parse_lengths(DEFAULT_LENGTHS))
    concurrency: float | None = None  # calls in flight on average (Little's law gives the rate)
    rate_per_minute: float | None = None  # or the arrival rate itself
    deploy: bool = True
    scale_in: int = 1
    spot_reclaim: int = 0
    warm_up_seconds: float | None = None
    seed: int = 7
    strategies: tuple[str, ...] = STRATEGIES
    template: Path | None = None
    # ECS's deploymentConfiguration; None: no service scheduler (tasks stop seconds after DRAINING)
    minimum_healthy_percent: int | None = None
    maximum_percent: int = 200
    health_delay_seconds: float = 0.0
    quiesce: bool = True
    headroom_pct: float = DEFAULT_HEADROOM_PCT
    rescue_on_deploy: bool = False

    @property
    def calls_per_worker(self) -> int:
        """The most calls a worker takes at once: the mean load with `headroom_pct` kept free."""
        per_worker = self.target_concurrency / (self.instances * self.workers_per_instance)
        return max(1, math.ceil(per_worker / (1 - self.headroom_pct / 100) - 1e-9))

    @property
    def scheduled(self) -> bool:
        return self.minimum_healthy_percent is not None or self.health_delay_seconds > 0

    # The world's hostility during the event (drainctl/world/hostile.py): latency P50:P99 per
    # request to AWS (ECS, Auto Scaling, DynamoDB, Secrets Manager, SQS) and to LiveKit, AWS's
    # and LiveKit's rate limits, dependencies that stop answering for the whole event.
    aws_latency: LatencyTail | None = None
    aws_throttle: bool = False
    livekit_latency: LatencyTail | None = None
    hang: tuple[str, ...] = ()

    @property
    def arrival_rate(self) -> float:
        """Calls per second."""
        if self.rate_per_minute is not None:
            return self.rate_per_minute / 60
        return self.target_concurrency / self.lengths.mean()

    @property
    def target_concurrency(self) -> float:
        if self.concurrency is not None:
            return self.concurrency
        if self.rate_per_minute is not None:
            return self.rate_per_minute / 60 * self.lengths.mean()
        return DEFAULT_CALLS_PER_WORKER * self.instances * self.workers_per_instance

    @property
    def warm_up(self) -> float:
        # The calls in flight are those of a steady stream only once the longest call started
        # after the stream did: before that, too few long calls are up.
        if self.warm_up_seconds is not None:
            return self.warm_up_seconds
        return float(max(MIN_WARM_UP_SECONDS, math.ceil(self.lengths.upper())))

    def events(self) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        if self.deploy:
            out.append((DEPLOY, self.instances))
        if self.scale_in:
            out.append((SCALE_IN, self.scale_in))
        if self.spot_reclaim:
            out.append((SPOT_RECLAIM, self.spot_reclaim))
        return out

    def validate(self) -> None:
        if not 1 <= self.instances <= 200:
            raise SimulateInputError(f"--instances must be within 1-200, not {self.instances}")
        if not 1 <= self.workers_per_instance <= 32:
            raise SimulateInputError(
                f"--workers-per-instance must be within 1-32, not {self.workers_per_instance}"
            )
        if self.scale_in < 0 or self.spot_reclaim < 0:
            raise SimulateInputError("--scale-in and --spot-reclaim count instances: they cannot be negative")
        if self.scale_in + self.spot_reclaim >= self.instances:
            raise SimulateInputError(
                f"--scale-in {self.scale_in} and --spot-reclaim {self.spot_reclaim} leave no instance "
                f"of {self.instances} to take the calls"
            )
        if not self.events():
            raise SimulateInputError("nothing to simulate: give --deploy, --scale-in K or --spot-reclaim K")
        if self.concurrency is not None and self.rate_per_minute is not None:
            raise SimulateInputError("give --concurrency or --rate, not both")
        if self.concurrency is not None and not 0 < self.concurrency <= 20_000:
            raise SimulateInputError(f"--concurrency must be within 0-20000 calls, not {self.concurrency:g}")
        if self.rate_per_minute is not None and not 0 < self.rate_per_minute <= 10_000:
            raise SimulateInputError(
                f"--rate must be within 0-10000 calls a minute, not {self.rate_per_minute:g}"
            )
        if self.warm_up_seconds is not None and not 0 <= self.warm_up_seconds <= 86_400:
            raise SimulateInputError(
                f"--warm-up must be within 0-86400 seconds, not {self.warm_up_seconds:g}"
            )
        if self.minimum_healthy_percent is not None and not 0 <= self.minimum_healthy_percent <= 100:
            raise SimulateInputError(
                f"--minimum-healthy-percent must be within 0-100, not {self.minimum_healthy_percent}"
            )
        if not 0 <= self.headroom_pct <= 90:
            raise SimulateInputError(f"--headroom must be within 0-90 %, not {self.headroom_pct:g}")
        if not 100 <= self.maximum_percent <= 200:
            raise SimulateInputError(f"--maximum-percent must be within 100-200, not {self.maximum_percent}")
        if not 0 <= self.health_delay_seconds <= 3600:
            raise SimulateInputError(
                f"--health-delay must be within 0-3600 seconds, not {self.health_delay_seconds:g}"
            )
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies or len(set(self.strategies)) != len(self.strategies):
            raise SimulateInputError(
                f"--strategies takes distinct names among {', '.join(STRATEGIES)}, not {','.join(self.strategies)!r}"
            )


# -- results -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one event did under one strategy."""

    calls_in_flight: int  # on the workers the event stopped, when it began
    calls_dropped: int  # every call the event dropped (late arrivals on doomed workers included)
    dropped_in_flight: int  # of the calls in flight when it began
    finish_seconds: float | None  # None: not finished within its window
    draining_instance_minutes: float
    heartbeats: int
    lambda_invocations: int
    invocations_by_function: dict[str, int]
    series: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, sessions left)
    calls_kept_off_by_quiesce: int = 0
    hooks_expired: int = 0  # lifecycle actions ended by their heartbeat or global timer
    drains_deferred: int = 0  # the reconcile ticks' `deferred`, summed
    metrics_lost: int = 0  # EMF metric values lost to Lambda timeouts
    # The longest a lifecycle hook went without the coordinator deciding on it (heartbeat, wait,
    # complete): two periods at most when no drain starves.
    max_seconds_without_heartbeat_decision: float = 0.0
    # The template's alarms the event's metrics set off (drainctl/world/alarms.py), by name.
    alarms_fired: list[str] = field(default_factory=list)
    # The calls the coordinator counted lost (`DroppedSessions`, stack-wide), the stops of the
    # tasks that went with the instances included: against `calls_dropped`, the world's truth.
    calls_counted_dropped: int = 0
    rescued: int = 0  # calls in flight carried on to another worker
    rescue_failed: int = 0  # calls in flight the rescue strategy could not save
    rescue_gaps: list[float] = field(default_factory=list)  # what each rescued caller waited
    # why each call in flight that was dropped was not saved (rescue strategy only)
    unsaved_reasons: dict[str, int] = field(default_factory=dict)

    def gap_percentile(self, q: float) -> float | None:
        if not self.rescue_gaps:
            return None
        ordered = sorted(self.rescue_gaps)
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 2)

    @property
    def dropped_pct(self) -> float:
        return 100.0 * self.dropped_in_flight / self.calls_in_flight if self.calls_in_flight else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls_in_flight": self.calls_in_flight,
            "calls_dropped": self.calls_dropped,
            "hooks_expired": self.hooks_expired,
            "drains_deferred": self.drains_deferred,
            "metrics_lost": self.metrics_lost,
            "max_seconds_without_heartbeat_decision": self.max_seconds_without_heartbeat_decision,
            "alarms_fired": self.alarms_fired,
            "calls_counted_dropped": self.calls_counted_dropped,
            "dropped_in_flight": self.dropped_in_flight,
            "dropped_pct": round(self.dropped_pct, 1),
            "finish_seconds": self.finish_seconds,
            "draining_instance_minutes": round(self.draining_instance_minutes, 2),
            "heartbeats": self.heartbeats,
            "lambda_invocations": self.lambda_invocations,
            "lambda_invocations_by_function": dict(sorted(self.invocations_by_function.items())),
            "calls_kept_off_by_quiesce": self.calls_kept_off_by_quiesce,
            "rescued": self.rescued,
            "rescue_failed": self.rescue_failed,
            "rescue_gap_seconds": {"p50": self.gap_percentile(0.5), "p95": self.gap_percentile(0.95)},
            "unsaved_reasons": dict(sorted(self.unsaved_reasons.items())),
        }


@dataclass
class EventResult:
    kind: str
    count: int
    at_seconds: float  # from the start of the simulation
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.kind == DEPLOY:
            return "rolling deploy (every worker replaced)"
        noun = "instance" if self.count == 1 else "instances"
        if self.kind == SCALE_IN:
            return f"scale-in of {self.count} {noun}"
        return f"Spot reclaim of {self.count} {noun} (2-minute warning)"


@dataclass
class StrategyTotals:
    calls_placed: int = 0
    calls_unserved: int = 0  # no worker took new calls when they arrived
    calls_dropped: int = 0
    wall_seconds: float = 0.0


@dataclass
class SimulationResult:
    scenario: Scenario
    events: list[EventResult]
    totals: dict[str, StrategyTotals]
    stop_timeout: int
    drain_timeout: int
    hook_heartbeat_timeout: int
    drain_deadline: int

    @property
    def expected_capped_drop_pct(self) -> float:
        return 100.0 * self.scenario.lengths.dropped_fraction(FARGATE_STOP_TIMEOUT_CAP)

    def as_dict(self) -> dict[str, Any]:
        s = self.scenario
        return {
            "scenario": {
                "instances": s.instances,
                "workers_per_instance": s.workers_per_instance,
                "lengths": s.lengths.spec,
                "mean_length_seconds": round(s.lengths.mean(), 1),
                "arrival_rate_per_minute": round(s.arrival_rate * 60, 3),
                "target_concurrency": round(s.target_concurrency, 1),
                "warm_up_seconds": s.warm_up,
                "seed": s.seed,
                "strategies": list(s.strategies),
                "stop_timeout": self.stop_timeout,
                "drain_timeout": self.drain_timeout,
                "hook_heartbeat_timeout": self.hook_heartbeat_timeout,
                "drain_deadline": self.drain_deadline,
                "fargate_stop_timeout": FARGATE_STOP_TIMEOUT_CAP,
                "minimum_healthy_percent": s.minimum_healthy_percent,
                "maximum_percent": s.maximum_percent,
                "health_delay_seconds": s.health_delay_seconds,
                "quiesce": s.quiesce,
                "headroom_pct": s.headroom_pct,
                "calls_per_worker": s.calls_per_worker,
                "rescue_on_deploy": s.rescue_on_deploy,
            },
            "expected_fargate_dropped_pct": round(self.expected_capped_drop_pct, 1),
            "events": [
                {
                    "event": e.kind,
                    "count": e.count,
                    "at_seconds": e.at_seconds,
                    "strategies": {name: o.as_dict() for name, o in e.outcomes.items()},
                }
                for e in self.events
            ],
            "totals": {
                name: {
                    "calls_placed": t.calls_placed,
                    "calls_unserved": t.calls_unserved,
                    "calls_dropped": t.calls_dropped,
                    "wall_seconds": round(t.wall_seconds, 2),
                }
                for name, t in self.totals.items()
            },
        }


# -- the worlds ----------------------------------------------------------------------------------


class StrategyWorld(World):
    """The local world, with or without the coordinator.

    Without it, AWS still emits its events (the hook still opens its action), but no function
    receives them and the reconcile schedule does not exist.
    """

    def __init__(self, config: WorldConfig, *, coordinated: bool) -> None:
        super().__init__(config)
        self.coordinated = coordinated

    def deliver(self, event: Mapping[str, Any]) -> list[Delivery]:
        return super().deliver(event) if self.coordinated else []

    def _tick(self) -> Delivery:
        if self.coordinated:
            return super()._tick()
        return Delivery(self.clock.now(), self.schedule.logical_id, {}, None)


@dataclass(frozen=True)
class Arrival:
    at: float  # seconds from the start of the simulation
    length: float


def arrivals(rate_per_second: float, lengths: CallLengths, seed: int) -> Iterator[Arrival]:
    """A Poisson stream of calls; the same seed gives every strategy the same calls."""
    rng = random.Random(seed)
    at = 0.0
    while True:
        at += rng.expovariate(rate_per_second)
        yield Arrival(at, lengths.sample(rng))


def event_window(world: World) -> float:
    """Long enough for any strategy to finish an event: the drain deadline, plus two reconcile
    periods for the completing look and the STOPPED events after it. An event still going after
    that is reported unfinished."""
    longest = max(int(world.params["DrainDeadline"]), world.stop_timeout, world.hook_heartbeat_timeout)
    return float(longest + 2 * world.period)


class _Driver:
    """Moves one world through the scenario: calls arrive, events happen, outcomes are measured."""

    def __init__(self, world: World, scenario: Scenario, strategy: str, service: str) -> None:
        self.world = world
        self.scenario = scenario
        self.strategy = strategy
        self.service = service
        self.start = world.clock.now()
        self.totals = StrategyTotals()
        self._arrivals = arrivals(scenario.arrival_rate, scenario.lengths, scenario.seed)
        self._next = next(self._arrivals)
        # Placement has its own generator: the world's is also drawn for event ids.
        self._placement = random.Random(scenario.seed + 1)
        self._reclaims: dict[str, float] = {}  # Spot instance -> when EC2 takes it back
        self._instances: list[str] = []

    def build(self) -> None:
        s = self.scenario
        if s.scheduled:
            self.world.configure_deployment(
                self.service,
                minimum_healthy_percent=100
                if s.minimum_healthy_percent is None
                else s.minimum_healthy_percent,
                maximum_percent=s.maximum_percent,
                health_delay_seconds=s.health_delay_seconds,
            )
        self._instances = self.world.create_fleet(
            s.instances, s.workers_per_instance, services=[self.service]
        )
        if not s.quiesce:
            for worker in self.world.fleet.workers.values():
                worker.quiesce_seconds = None
        self.world.fleet.calls_per_worker = s.calls_per_worker

    @property
    def now(self) -> float:
        return self.world.clock.now()

    def step(self) -> None:
        self.world.step(STEP_SECONDS)
        now = self.now
        while self.start + self._next.at <= now:
            self._place(now, self._next.length)
            self._next = next(self._arrivals)

    def advance_to(self, t: float) -> None:
        while self.now < t:
            self.step()

    def _place(self, now: float, length: float) -> None:
        """LiveKit's dispatch: the least-loaded worker that takes jobs gets the call."""
        candidates = self.world.fleet.accepting_workers(self.service)
        if not candidates:
            self.totals.calls_unserved += 1
            return
        least = min(len(w.calls) for w in candidates)
        worker = self._placement.choice([w for w in candidates if len(w.calls) == least])
        self.world.fleet.count_kept_off(self.service)
        self.world.fleet.start_call(worker, now, length)
        self.totals.calls_placed += 1

    # -- events ----------------------------------------------------------------------------------

    def run_event(self, kind: str, count: int, window_end: float) -> Outcome:
        """Start the event now; step until it has finished (or its window ran out); measure."""
        world = self.world
        t0 = self.now
        kept_off_before = world.fleet.quiesce_kept_off
        victims: list[str] = []
        if kind == DEPLOY:
            affected = world.deploy(self.service, now=t0)
        else:
            victims = self._busiest(count)
            affected = [
                w
                for v in victims
                for w in world.workers_on(v)
                if w.service == self.service and w.state is not WorkerState.STOPPED
            ]
            if self.strategy == FARGATE:
                # Fargate Spot and a Fargate scale-in alike: SIGTERM, SIGKILL at the 120 s cap.
                for worker in affected:
                    world.fleet.sigterm(
                        worker, t0, f"Scaling activity initiated by ({kind} of {self.service})"
                    )
            else:
                for instance_id in victims:
                    if kind == SPOT_RECLAIM:
                        # The world's EC2: the warning event now, the instance gone 120 s later.
                        self._reclaims[instance_id] = world.spot.interrupt(instance_id)
                    else:
                        world.aws.terminate_instance(instance_id, should_decrement_desired_capacity=True)
        in_flight = {call.room for w in affected for call in w.calls.values()}
        series = [(0.0, len(in_flight))]
        finished_at = self._finished_at(affected, victims)
        while self.now < window_end and finished_at is None:
            self.step()
            series.append((self.now - t0, sum(len(w.calls) for w in affected)))
            finished_at = self._finished_at(affected, victims)
        end = finished_at if finished_at is not None else self.now
        outcome = self._measure(t0, end, affected, victims, in_flight)
        outcome.finish_seconds = None if finished_at is None else round(finished_at - t0, 1)
        outcome.series = series
        outcome.calls_kept_off_by_quiesce = world.fleet.quiesce_kept_off - kept_off_before
        if self.strategy == EC2_COORDINATOR_RESCUE:
            self._measure_rescues(outcome, affected, in_flight)
        return outcome

    def _measure_rescues(self, outcome: Outcome, affected: list[Worker], in_flight: set[str]) -> None:
        """The calls in flight carried on, the gaps their callers heard, and for each one dropped
        why the rescue did not save it (the coordinator's own ledger in the drain table)."""
        fleet = self.world.fleet
        arns = {w.task_arn for w in affected}
        carried = [c for c in fleet.calls if c.room in in_flight and c.rescued_from is not None]
        outcome.rescued = len({c.room for c in carried if c.rescued_from in arns})
        outcome.rescue_gaps = [c.gap_seconds for c in carried if c.gap_seconds is not None]
        dropped = {c.room for c in fleet.calls if c.room in in_flight and c.dropped}
        outcome.rescue_failed = len(dropped)
        ledger = _rescue_ledger(self.world)
        reasons: Counter[str] = Counter()
        for room in sorted(dropped):
            entry = ledger.get(room)
            if entry is None:
                reasons["never_doomed"] += 1  # no look saw it in danger before it went
            elif entry.get("status") == "failed":
                reasons[str(entry.get("reason", "unknown"))] += 1
            elif entry.get("status") == "running":
                reasons["killed_before_the_join"] += 1
            else:
                reasons["dropped_after_its_rescue"] += 1
        outcome.unsaved_reasons = dict(reasons)

    def _busiest(self, count: int) -> list[str]:
        """The instances still in service holding the most calls (Auto Scaling does not look at
        load: the busiest is the worst case), ties in launch order."""
        load: list[tuple[int, int, str]] = []
        for index, instance_id in enumerate(self._instances):
            if self.world.aws.lifecycle.state_of(instance_id) is not None or instance_id in self._reclaims:
                continue  # already leaving or gone
            workers = [w for w in self.world.workers_on(instance_id) if w.accepting]
            if workers:
                load.append((-sum(len(w.calls) for w in workers), index, instance_id))
        return [instance_id for _, _, instance_id in sorted(load)[:count]]

    def _finished_at(self, affected: list[Worker], victims: list[str]) -> float | None:
        if victims and self.strategy != FARGATE:
            ends = [self._terminated_at(v) for v in victims]
            return None if any(e is None for e in ends) else max(e for e in ends if e is not None)
        if any(w.state is not WorkerState.STOPPED for w in affected):
            return None
        return max((w.stopped_at for w in affected if w.stopped_at is not None), default=self.now)

    def _terminated_at(self, instance_id: str) -> float | None:
        if instance_id in self._reclaims:
            return self._reclaims[instance_id] if instance_id in self.world.spot.reclaimed else None
        action = self.world.aws.lifecycle.action_for(instance_id)
        return None if action is None else action.ended_at

    def _measure(
        self, t0: float, end: float, affected: list[Worker], victims: list[str], in_flight: set[str]
    ) -> Outcome:
        world = self.world
        arns = {w.task_arn for w in affected}
        dropped = [c for c in world.fleet.calls if c.task_arn in arns and c.dropped]
        invocations = Counter(i.function for i in world.lambdas.invocations if t0 <= i.t <= end)
        heartbeats = sum(a.heartbeats for a in world.aws.lifecycle.actions() if t0 <= a.started_at <= end)
        if victims and self.strategy != FARGATE:
            held = sum((self._terminated_at(v) or end) - t0 for v in victims)
        else:
            # Tasks, not instances: M draining tasks hold what one instance holds.
            held = sum(
                (w.stopped_at or end) - (w.sigterm_at if w.sigterm_at is not None else t0) for w in affected
            ) / max(1, self.scenario.workers_per_instance)
        return Outcome(
            calls_in_flight=len(in_flight),
            calls_dropped=len(dropped),
            dropped_in_flight=sum(1 for c in dropped if c.room in in_flight),
            finish_seconds=None,
            draining_instance_minutes=held / 60,
            heartbeats=heartbeats,
            lambda_invocations=sum(invocations.values()),
            invocations_by_function=dict(invocations),
        )


def _rescue_ledger(world: World) -> dict[str, dict[str, Any]]:
    """The coordinator's rescue items (integrations/rescues.py), by room."""
    dynamodb = world.aws.client("dynamodb")
    plain = TypeDeserializer()
    items: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {
        "TableName": world.table_name,
        "FilterExpression": "#kind = :rescue",
        "ExpressionAttributeNames": {"#kind": "kind"},
        "ExpressionAttributeValues": {":rescue": {"S": "rescue"}},
    }
    while True:
        page = dynamodb.scan(**kwargs)
        for raw in page.get("Items", []):
            item = {k: plain.deserialize(v) for k, v in raw.items()}
            items[str(item["room"])] = item
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _run_event(
    scenario: Scenario, strategy: str, kind: str, count: int
) -> tuple[Outcome, StrategyTotals, dict[str, int]]:
    """One event under one strategy, in a world of its own: the fleet, the warm-up, the event."""
    began = time.perf_counter()
    coordinated = strategy in COORDINATED
    params: dict[str, str] = {}
    if strategy == EC2_COORDINATOR_RESCUE:
        params = {"CallRescue": "true", "RescueOnDeploy": "true" if scenario.rescue_on_deploy else "false"}
    # Without the coordinator, LiveKit's webhooks reach no function either.
    config = WorldConfig(
        seed=scenario.seed, template=scenario.template, livekit_webhooks=coordinated, params=params
    )
    with StrategyWorld(config, coordinated=coordinated) as world:
        service = DEFAULT_SERVICE
        if strategy == FARGATE:
            world.add_service(
                FARGATE_SERVICE,
                drain_timeout=world.drain_timeout,
                stop_timeout=min(FARGATE_STOP_TIMEOUT_CAP, world.stop_timeout),
            )
            service = FARGATE_SERVICE
        driver = _Driver(world, scenario, strategy, service)
        driver.build()
        at = driver.start + scenario.warm_up
        driver.advance_to(at)
        _make_hostile(world, scenario)
        began_at = world.clock.now()
        outcome = driver.run_event(kind, count, at + event_window(world))
        # What the event's end set off is handled before its metrics are read: the STOPPED events
        # of the tasks that went with their instances, whose verdicts count the calls cut then.
        world.run(world.settled, limit_seconds=world.period)
        outcome = _with_hostile_figures(world, outcome, began_at)
        driver.totals.calls_dropped = len(world.fleet.dropped_calls)
        driver.totals.wall_seconds = time.perf_counter() - began
        timers = {
            "stop_timeout": world.stop_timeout,
            "drain_timeout": world.drain_timeout,
            "hook_heartbeat_timeout": world.hook_heartbeat_timeout,
            "drain_deadline": int(world.params["DrainDeadline"]),
        }
        return outcome, driver.totals, timers


def _make_hostile(world: World, scenario: Scenario) -> None:
    if scenario.aws_latency is not None:
        world.hostility.set_latency(list(AWS_DEPENDENCIES), scenario.aws_latency)
    if scenario.livekit_latency is not None:
        world.hostility.set_latency(["livekit"], scenario.livekit_latency)
    world.throttle = scenario.aws_throttle
    for dependency in scenario.hang:
        world.hostility.hang(dependency)


def _with_hostile_figures(world: World, outcome: Outcome, since: float) -> Outcome:
    invocations = [i for i in world.lambdas.invocations if i.t >= since]
    decided_at: dict[str, list[float]] = {}
    deferred = 0
    for invocation in invocations:
        decided, later = decisions(world, invocation)
        deferred += later
        for instance_id, at in decided:
            decided_at.setdefault(instance_id, []).append(at)
    actions = [a for a in world.aws.lifecycle.actions() if (a.ended_at or world.clock.now()) >= since]
    expired = sum(1 for a in actions if a.ended_by in ("heartbeat_timeout", "global_timeout"))
    return replace(
        outcome,
        hooks_expired=expired,
        drains_deferred=deferred,
        metrics_lost=sum(i.metrics_lost for i in invocations),
        max_seconds_without_heartbeat_decision=longest_wait(actions, decided_at, world.clock.now()),
        alarms_fired=sorted({f.alarm.logical_id for f in world.alarms_firing(since)}),
        calls_counted_dropped=round(
            sum(
                p.value
                for p in datapoints(invocations)
                if p.metric == MetricName.DROPPED_SESSIONS and "ServiceName" not in p.dimensions
            )
        ),
    )


def simulate(scenario: Scenario, progress: Callable[[str], None] | None = None) -> SimulationResult:
    """Run each event of the scenario under each strategy.

    Every (event, strategy) pair gets a fresh world with the same seed: the same fleet, the same
    calls, the same warm-up. The calls in flight when an event begins are then the very same
    calls under every strategy, so the columns differ only by how the workers are stopped.
    """
    scenario.validate()
    events = [EventResult(kind, count, scenario.warm_up) for kind, count in scenario.events()]
    totals = {strategy: StrategyTotals() for strategy in scenario.strategies}
    timers: dict[str, int] = {}
    runs, done, began = len(events) * len(scenario.strategies), 0, time.perf_counter()
    for event in events:
        for strategy in scenario.strategies:
            if progress is not None:
                progress(
                    _progress_line(done, runs, time.perf_counter() - began, f"{event.label}, {strategy}")
                )
            outcome, spent, timers = _run_event(scenario, strategy, event.kind, event.count)
            done += 1
            event.outcomes[strategy] = outcome
            total = totals[strategy]
            total.calls_placed += spent.calls_placed
            total.calls_unserved += spent.calls_unserved
            total.calls_dropped += spent.calls_dropped
            total.wall_seconds += spent.wall_seconds
    return SimulationResult(scenario, events, totals, **timers)


def _progress_line(done: int, runs: int, elapsed: float, what: str) -> str:
    """`[k/n] what (about S s left)`: the estimate is the mean wall time of the runs so far."""
    left = f"about {elapsed / done * (runs - done):.0f} s left" if done else "estimating"
    return f"drainctl simulate: [{done + 1}/{runs}] {what} ({left})"


# -- output --------------------------------------------------------------------------------------


def render_table(result: SimulationResult) -> str:
    s = result.scenario
    names = list(s.strategies)
    width = max(20, *(len(n) + 2 for n in names))
    lines = [
        f"drainctl simulate: {s.instances} instances x {s.workers_per_instance} workers; calls "
        f"{s.lengths.spec} (mean {s.lengths.mean():.0f} s), Poisson arrivals {s.arrival_rate * 60:.2f}/min "
        f"(~{s.target_concurrency:.0f} in flight); warm-up {s.warm_up:.0f} s; seed {s.seed}",
        f"  fargate: stopTimeout {FARGATE_STOP_TIMEOUT_CAP} s, no hook.  ec2-no-coordinator: stopTimeout "
        f"{result.stop_timeout} s (drain_timeout {result.drain_timeout} s), terminate hook unanswered "
        f"({result.hook_heartbeat_timeout} s, then its default result).  ec2-coordinator: this project "
        f"(drain deadline {result.drain_deadline} s).  ec2-coordinator-rescue: the same, doomed calls "
        f"handed to healthy workers{' (and on deploys)' if s.rescue_on_deploy else ''}.",
        f"  workers take at most {s.calls_per_worker} calls each (headroom {s.headroom_pct:g} %).",
    ]
    for event in result.events:
        lines += ["", f"{event.label}, after {_mmss(event.at_seconds)} of calls"]
        lines.append(f"  {'':<30}" + "".join(f"{n:>{width}}" for n in names))
        rows: list[tuple[str, list[str]]] = [
            ("calls in flight at the start", [str(event.outcomes[n].calls_in_flight) for n in names]),
            ("calls dropped, all", [str(event.outcomes[n].calls_dropped) for n in names]),
            (
                "  counted (DroppedSessions)",
                [str(event.outcomes[n].calls_counted_dropped) if n in COORDINATED else "-" for n in names],
            ),
            (
                "  of those in flight",
                [
                    f"{event.outcomes[n].dropped_in_flight} ({event.outcomes[n].dropped_pct:.1f} %)"
                    for n in names
                ],
            ),
            ("time to finish (mm:ss)", [_finish(event.outcomes[n].finish_seconds) for n in names]),
            (
                "instance-minutes draining",
                [f"{event.outcomes[n].draining_instance_minutes:.1f}" for n in names],
            ),
            ("heartbeats", [str(event.outcomes[n].heartbeats) for n in names]),
            ("Lambda invocations", [str(event.outcomes[n].lambda_invocations) for n in names]),
            (
                "calls kept off by the quiesce",
                [str(event.outcomes[n].calls_kept_off_by_quiesce) for n in names],
            ),
        ]
        if EC2_COORDINATOR_RESCUE in names:
            rows += [
                ("calls rescued", [str(event.outcomes[n].rescued) for n in names]),
                (
                    "rescue gap p50/p95 (s)",
                    [_gaps(event.outcomes[n]) for n in names],
                ),
                (
                    "  unsaved, by reason",
                    [_reasons(event.outcomes[n].unsaved_reasons) for n in names],
                ),
            ]
        for title, cells in rows:
            lines.append(f"  {title:<30}" + "".join(f"{c:>{width}}" for c in cells))
    lines += [
        "",
        f"A 120 s cap drops the calls in flight with more than 120 s left: expected "
        f"{result.expected_capped_drop_pct:.1f} % of them for {s.lengths.spec} (E[(L-120)+]/E[L]).",
        "'calls dropped, all' counts calls that started on the stopped capacity after the event began, too.",
        "  calls placed        " + ", ".join(f"{n} {result.totals[n].calls_placed}" for n in names),
        "  no worker free      " + ", ".join(f"{n} {result.totals[n].calls_unserved}" for n in names),
        "  wall time (s)       " + ", ".join(f"{n} {result.totals[n].wall_seconds:.1f}" for n in names),
    ]
    return "\n".join(lines)


def _gaps(outcome: Outcome) -> str:
    p50, p95 = outcome.gap_percentile(0.5), outcome.gap_percentile(0.95)
    return "-" if p50 is None or p95 is None else f"{p50:.1f}/{p95:.1f}"


def _reasons(reasons: Mapping[str, int]) -> str:
    return ",".join(f"{k}:{v}" for k, v in sorted(reasons.items())) or "-"


def _finish(seconds: float | None) -> str:
    return "unfinished" if seconds is None else _mmss(seconds)


def _mmss(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"


_LINE_STYLES: Final = ("-", "--", ":", "-.")


def plot(result: SimulationResult, path: Path) -> None:
    """Sessions still up on the stopped capacity over time, one panel per event, a line per
    strategy. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = result.events
    figure, axes = plt.subplots(len(events), 1, figsize=(8, 3.2 * len(events)), squeeze=False)
    for axis, event in zip(axes[:, 0], events, strict=True):
        for index, (name, outcome) in enumerate(event.outcomes.items()):
            xs = [t / 60 for t, _ in outcome.series]
            ys = [n for _, n in outcome.series]
            # Dashed and thinner lines on top: strategies that agree stay visible.
            axis.step(
                xs,
                ys,
                where="post",
                linestyle=_LINE_STYLES[index % len(_LINE_STYLES)],
                linewidth=2.5 - 0.7 * index,
                label=f"{name} ({outcome.calls_dropped} dropped"
                + (f", {outcome.rescued} rescued)" if name == EC2_COORDINATOR_RESCUE else ")"),
            )
        axis.set_title(event.label)
        axis.set_xlabel("minutes since the event began")
        axis.set_ylabel("sessions remaining")
        axis.set_ylim(bottom=0)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# -- command line --------------------------------------------------------------------------------

_DESCRIPTION = (
    "Fleet scenarios on the local world, under four strategies side by side: Fargate (stopTimeout "
    "capped at 120 s, no hook), EC2 without the coordinator (the terminate hook unanswered), EC2 "
    "with it, and EC2 with it and call rescue. Without an event flag: a rolling deploy and a scale-in of one instance."
)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instances", type=int, default=6, help="instances in the group (default 6)")
    parser.add_argument(
        "--workers-per-instance", type=int, default=2, help="worker tasks on each instance (default 2)"
    )
    load = parser.add_mutually_exclusive_group()
    load.add_argument(
        "--concurrency",
        type=float,
        default=None,
        help=f"calls in flight on average (default {DEFAULT_CALLS_PER_WORKER:g} per worker)",
    )
    load.add_argument("--rate", type=float, default=None, help="Poisson arrivals, calls per minute")
    parser.add_argument(
        "--lengths",
        default=DEFAULT_LENGTHS,
        help=f"call lengths: uniform:A-B | lognormal:MU,SIGMA (of ln seconds) | csv:FILE (default {DEFAULT_LENGTHS})",
    )
    parser.add_argument("--deploy", action="store_true", help="a rolling deploy of every worker")
    parser.add_argument(
        "--scale-in", type=int, default=0, metavar="K", help="the group scales in by K instances"
    )
    parser.add_argument(
        "--spot-reclaim",
        type=int,
        default=0,
        metavar="K",
        help="EC2 reclaims K Spot instances (2-minute warning)",
    )
    parser.add_argument(
        "--strategies", default=",".join(STRATEGIES), help=f"comma-separated subset of {','.join(STRATEGIES)}"
    )
    parser.add_argument(
        "--minimum-healthy-percent",
        type=int,
        default=None,
        metavar="P",
        help="run the service under ECS's scheduler: replacements healthy before old tasks stop (template: 100)",
    )
    parser.add_argument(
        "--maximum-percent", type=int, default=200, metavar="P", help="ECS maximumPercent (200)"
    )
    parser.add_argument(
        "--health-delay",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds a replacement takes to become healthy (implies the scheduler)",
    )
    parser.add_argument(
        "--no-quiesce", action="store_true", help="workers that keep taking calls on a DRAINING instance"
    )
    parser.add_argument(
        "--headroom",
        type=float,
        default=DEFAULT_HEADROOM_PCT,
        metavar="PCT",
        help=f"share of the workers' call slots kept free (default {DEFAULT_HEADROOM_PCT:g}, the README's rule)",
    )
    parser.add_argument(
        "--rescue-on-deploy",
        action="store_true",
        help="ec2-coordinator-rescue also hands over the calls of workers a deploy stops (RescueOnDeploy)",
    )
    parser.add_argument("--warm-up", type=float, default=None, help="seconds of calls before the first event")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--template", type=Path, default=None)
    parser.add_argument(
        "--aws-latency",
        default=None,
        metavar="P50[:P99]",
        help="seconds a request to AWS takes during the event (lognormal, seeded)",
    )
    parser.add_argument(
        "--aws-throttle",
        action="store_true",
        help="AWS's (and LiveKit's) per-account rate limits answer the handlers during the event",
    )
    parser.add_argument(
        "--livekit-latency", default=None, metavar="P50[:P99]", help="seconds a request to LiveKit takes"
    )
    parser.add_argument(
        "--hang",
        action="append",
        default=[],
        choices=HANGABLE,
        help="a dependency that stops answering for the whole event (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    parser.add_argument(
        "--plot", type=Path, default=None, metavar="FILE.png", help="sessions remaining over time"
    )


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `simulate` to a `drainctl` command line."""
    parser = subparsers.add_parser(
        "simulate",
        help="fleet scenarios under Fargate, EC2 and EC2 with the coordinator",
        description=_DESCRIPTION,
    )
    _add_arguments(parser)


def scenario_from(args: argparse.Namespace) -> Scenario:
    any_event = args.deploy or args.scale_in or args.spot_reclaim
    scenario = Scenario(
        instances=args.instances,
        workers_per_instance=args.workers_per_instance,
        lengths=parse_lengths(args.lengths),
        concurrency=args.concurrency,
        rate_per_minute=args.rate,
        deploy=bool(args.deploy) if any_event else True,
        scale_in=args.scale_in if any_event else 1,
        spot_reclaim=args.spot_reclaim,
        warm_up_seconds=args.warm_up,
        seed=args.seed,
        strategies=tuple(s.strip() for s in args.strategies.split(",") if s.strip()),
        template=args.template,
        minimum_healthy_percent=args.minimum_healthy_percent,
        maximum_percent=args.maximum_percent,
        health_delay_seconds=args.health_delay,
        quiesce=not args.no_quiesce,
        headroom_pct=args.headroom,
        rescue_on_deploy=bool(args.rescue_on_deploy),
        aws_latency=_latency(args.aws_latency, "--aws-latency"),
        aws_throttle=bool(args.aws_throttle),
        livekit_latency=_latency(args.livekit_latency, "--livekit-latency"),
        hang=tuple(args.hang),
    )
    scenario.validate()
    if args.template is not None and not args.template.is_file():
        raise SimulateInputError(f"--template {args.template}: no such file")
    return scenario


def _latency(text: str | None, option: str) -> LatencyTail | None:
    if text is None:
        return None
    try:
        return LatencyTail.parse(text)
    except HostileInputError as exc:
        raise SimulateInputError(f"{option}: {exc}") from exc


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run `drainctl simulate` with parsed arguments; prints the table (or JSON), returns 0."""
    out = out or sys.stdout
    try:
        scenario = scenario_from(args)
        if args.plot is not None:
            _require_matplotlib()
    except SimulateInputError as exc:
        print(f"drainctl simulate: {exc}", file=sys.stderr)
        return 2
    result = simulate(scenario, progress=lambda line: print(line, file=sys.stderr, flush=True))
    if args.plot is not None:
        plot(result, args.plot)
    if args.json:
        out.write(json.dumps(result.as_dict()) + "\n")
    else:
        out.write(render_table(result) + "\n")
        if args.plot is not None:
            out.write(f"plot: {args.plot}\n")
    return 0


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SimulateInputError("--plot needs matplotlib: pip install matplotlib") from None


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="drainctl simulate", description=_DESCRIPTION)
    _add_arguments(parser)
    return run(parser.parse_args(argv), out)


if __name__ == "__main__":
    sys.exit(main())
