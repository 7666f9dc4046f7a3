"""`drainctl bench`: what the coordinator costs, in figures to compare run to run (no assertions).

- release latency: from the last call's end to CompleteLifecycleAction, on the virtual clock;
- LiveKit API calls per reconcile tick, against R rooms in all and D rooms on the draining worker,
  once the drain has discovered its rooms;
- reconcile wall time and AWS requests against 1, 10, 100 and 1,000 open drains in the local
  world, with the largest shard (500, ShardSize's maximum): up to 500 the tick's own invocation
  does every drain, at 1,000 it sends the other 500 to the work queue (one advance invocation,
  run beside it and counted with it); `--degraded` measures the template's own fan-out;
- cold start: import time of each handler module, as a ratio to `import boto3` alone;
- `sam build` artifact size per function and for the dependencies layer.

The local world's servers answer over real HTTP on 127.0.0.1, so wall times include the local
AWS and LiveKit servers' own work: they compare runs of this machine, not Lambda's latency.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

import boto3

from drain_coordinator.domain.records import DrainOutcome, DrainRecord, LifecycleRef
from drain_coordinator.domain.task_stops import Verdict
from drain_coordinator.integrations import aws_clients
from drain_coordinator.integrations.room_index import RoomIndex
from drain_coordinator.integrations.store import DrainStore
from drain_coordinator.observability import MetricName
from drainctl.cost import Workload, monthly_cost
from drainctl.degraded import OPEN_DRAINS as DEGRADED
from drainctl.degraded import QUICK_OPEN_DRAINS as QUICK_DEGRADED
from drainctl.degraded import run_degraded
from drainctl.template import load_template
from drainctl.world.fleet import SESSION_TAG_ATTRIBUTE
from drainctl.world.world import World, WorldConfig, default_template_path

ROOMS: Final = (100, 1_000, 10_000)
QUICK_ROOMS: Final = (100,)
DRAINING_ROOMS: Final = 10
QUICK_DRAINING_ROOMS: Final = 5
OPEN_DRAINS: Final = (1, 10, 100, 1_000)
QUICK_OPEN_DRAINS: Final = (1, 10)
# The largest shard one invocation is given (ShardSize's maximum in the template).
LARGEST_SHARD: Final = 500
IMPORT_RUNS: Final = 5
QUICK_IMPORT_RUNS: Final = 3
# Compiling every module at each import is an upper bound a few runs pin well enough.
NO_BYTECODE_IMPORT_RUNS: Final = 3
RELEASE_TRIALS: Final = 5
QUICK_RELEASE_TRIALS: Final = 2
LAYER: Final = "DependenciesLayer"
FUNCTION_TYPE: Final = "AWS::Serverless::Function"
_DRAINED_CALL_SECONDS: Final = 150.0  # calls that end well inside the workers' drain timeout
_ROOT: Final = Path(__file__).resolve().parents[1]
_SAM_CLI: Final = _ROOT / ".venv-sam" / "bin" / "sam"


class BenchError(Exception):
    """A benchmark could not be set up (missing template, failed build)."""


@dataclass(frozen=True)
class BenchOptions:
    rooms: tuple[int, ...] = ROOMS
    draining_rooms: int = DRAINING_ROOMS
    open_drains: tuple[int, ...] = OPEN_DRAINS
    import_runs: int = IMPORT_RUNS
    release_trials: int = RELEASE_TRIALS
    no_bytecode_imports: bool = True
    sam_build: bool = True
    template: Path | None = None
    seed: int = 7

    @classmethod
    def quick(cls, **overrides: Any) -> BenchOptions:
        values: dict[str, Any] = {
            "rooms": QUICK_ROOMS,
            "draining_rooms": QUICK_DRAINING_ROOMS,
            "open_drains": QUICK_OPEN_DRAINS,
            "import_runs": QUICK_IMPORT_RUNS,
            "release_trials": QUICK_RELEASE_TRIALS,
            "no_bytecode_imports": False,
            "sam_build": False,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def template_path(self) -> Path:
        return self.template or default_template_path()


Report = Callable[[str], None]


# -- one world for several figures ---------------------------------------------------------------


@dataclass
class _Fleet:
    """A started world, whose group's instances are launched as each figure asks for them (its
    first ask makes the group, later ones scale it out): a world starts in about two seconds
    (moto, the local LiveKit, the stack's table and queues), and the figures that share one take
    instances no other touched. Launched when asked, not all at once: a group of a thousand
    instances would slow every request that lists it (the tick's orphan sweep)."""

    world: World
    launched: bool = False

    def take(self, count: int) -> list[str]:
        if not self.launched:
            self.launched = True
            return self.world.create_fleet(count, 1)
        return self.world.add_instances(count, 1)


def _calls_world(options: BenchOptions) -> World:
    return World(WorldConfig(seed=options.seed, template=options.template))


# -- release latency -----------------------------------------------------------------------------


def release_latency(options: BenchOptions, report: Report, fleet: _Fleet | None = None) -> dict[str, Any]:
    """Scale in instances whose calls end at random times; how long after its last call ends is
    each instance released (CompleteLifecycleAction)? On `fleet`'s world, or a world of its own."""
    if fleet is None:
        with _calls_world(options) as world:
            return release_latency(options, report, _Fleet(world))
    world = fleet.world
    rng = random.Random(options.seed)
    victims = fleet.take(options.release_trials + 1)[: options.release_trials]
    now = world.clock.now()
    # Calls shorter than the worker's drain timeout: every one ends by itself.
    longest = max(60.0, world.drain_timeout - 60.0)
    for instance_id in victims:
        worker = world.workers_on(instance_id)[0]
        for _ in range(2):
            world.fleet.start_call(worker, now, rng.uniform(30.0, longest))
        world.aws.terminate_instance(instance_id, should_decrement_desired_capacity=True)
    limit = float(world.params["DrainDeadline"]) + 3 * world.period
    world.run(lambda: set(victims) <= world.terminated_instances(), limit_seconds=limit)
    samples: list[float] = []
    for instance_id in victims:
        action = world.aws.lifecycle.action_for(instance_id)
        ends = [c.ended_at for c in world.fleet.calls_on(instance_id) if c.ended_at is not None]
        if action is None or action.ended_at is None or not ends:
            continue
        samples.append(round(action.ended_at - max(ends), 1))
    figure = {
        "samples": samples,
        "median": statistics.median(samples) if samples else None,
        "max": max(samples) if samples else None,
    }
    report(
        f"release latency (virtual s, last call end -> CompleteLifecycleAction): "
        f"median {figure['median']}, max {figure['max']}, samples {samples}"
    )
    return figure


# -- LiveKit calls per tick ----------------------------------------------------------------------


def livekit_calls_per_tick(
    options: BenchOptions, report: Report, fleet: _Fleet | None = None
) -> dict[str, dict[str, Any]]:
    """One drain per R, smallest R first, on one world: the rooms of the other instance's
    worker grow from one R to the next (each drain's own rooms are gone when it ends, LiveKit
    closing a room its last participant left), so each drain sees R rooms in all."""
    if fleet is None:
        with _calls_world(options) as world:
            return livekit_calls_per_tick(options, report, _Fleet(world))
    out: dict[str, dict[str, Any]] = {}
    busy = fleet.world.workers_on(fleet.take(1)[0])[0]
    background = 0
    for rooms in sorted(options.rooms):
        began = time.perf_counter()
        draining = min(options.draining_rooms, rooms)
        added = background_rooms(fleet.world, rooms - draining - background, busy.task_arn, first=background)
        background += len(added)
        figure = _livekit_calls(fleet.world, fleet.take(1)[0], draining)
        figure["wall_seconds"] = round(time.perf_counter() - began, 1)
        out[str(rooms)] = figure
        report(
            f"LiveKit calls, R={rooms} rooms, {figure['draining_rooms']} on the draining worker: "
            f"whole drain {figure['whole_drain_calls']} (its audit and first looks "
            f"{figure['discovery_calls']}), then per reconcile tick {figure['per_tick']} "
            f"{figure['per_tick_by_method']} ({figure['wall_seconds']} s)"
        )
    return out


def _livekit_calls(world: World, victim: str, draining_rooms: int) -> dict[str, Any]:
    """One instance's drain, from its scale-in to its release, among the world's other rooms
    (another instance's, indexed as the webhooks would have it): the draining worker's calls end
    within the drain timeout."""
    # Where a new world stands, a whole period before its first tick: how many ticks a drain
    # sees (and so its requests) depends on where its scale-in falls between two ticks.
    for _ in range(world.period):
        if world.next_tick_at - world.clock.now() >= world.period - 1e-6:
            break
        world.step(1.0)
    draining = world.workers_on(victim)[0]
    now = world.clock.now()
    for index in range(draining_rooms):
        world.fleet.start_call(draining, now, _DRAINED_CALL_SECONDS + 10.0 * index)
    world.step(1.0)  # their webhooks index the rooms
    store = _drain_store(world)
    world.livekit.reset_counts()
    world.aws.terminate_instance(victim, should_decrement_desired_capacity=True)
    # The audit: the first look that sees every worker told to stop.
    limit = world.clock.now() + 5 * world.period
    while world.clock.now() < limit:
        world.step(1.0)
        record = store.get(victim)
        if record is not None and (record.rooms_audited or not record.is_open):
            break
    discovery = world.livekit.request_counts.get("total", 0)
    tick = _count_one_tick(world)
    deadline = float(world.params["DrainDeadline"]) + 3 * world.period
    world.run(lambda: world.instance_state(victim) == "Terminated", limit_seconds=deadline)
    whole = world.livekit.request_counts.get("total", 0)
    return {
        "draining_rooms": draining_rooms,
        "discovery_calls": discovery,
        "per_tick": tick.get("total", 0),
        "per_tick_by_method": {k: v for k, v in sorted(tick.items()) if k != "total"},
        "whole_drain_calls": whole,
    }


def background_rooms(
    world: World, count: int, task_arn: str, *, indexed: bool = True, first: int = 0
) -> list[str]:
    """Rooms held by a worker no drain watches, each with a caller and that worker's agent,
    numbered from `first`.

    Made straight in LiveKit, without webhooks (10,000 of them would be 20,000 invocations of
    the webhook function); with `indexed`, the room index gets the entries the webhook function
    writes for each agent's join, in batches, as if every webhook had arrived."""
    hook = world.livekit.on_room_event
    world.livekit.on_room_event = None
    numbers = range(first, first + max(0, count))
    names = [f"busy-{index:06d}" for index in numbers]
    try:
        for index, room in zip(numbers, names, strict=True):
            world.livekit.join(room, f"caller-{index:06d}", kind="SIP")
            world.livekit.join(
                room, f"agent-{index:06d}", kind="AGENT", attributes={SESSION_TAG_ATTRIBUTE: task_arn}
            )
    finally:
        world.livekit.on_room_event = hook
    if indexed and names:
        table = aws_clients.resource("dynamodb").Table(world.table_name)
        room_index = RoomIndex(table, clock=world.clock.now)
        now = world.clock.now()
        with table.batch_writer() as batch:
            for index, room in zip(numbers, names, strict=True):
                batch.put_item(Item=room_index.item_for(room, task_arn, f"agent-{index:06d}", now))
    return names


def _count_one_tick(world: World) -> dict[str, int]:
    """LiveKit requests during the step that runs the next reconcile tick (the counts go on)."""
    for _ in range(2 * world.period):
        before = Counter(world.livekit.request_counts)
        deliveries = world.step(1.0)
        if any(d.function == world.schedule.logical_id for d in deliveries):
            return dict(Counter(world.livekit.request_counts) - before)
    return {}


def _drain_store(world: World) -> DrainStore:
    # The functions' own adapter, on the world's table (the world set AWS_ENDPOINT_URL).
    return DrainStore(aws_clients.resource("dynamodb").Table(world.table_name))


# -- reconcile wall time -------------------------------------------------------------------------


def reconcile_ticks(options: BenchOptions, report: Report) -> tuple[dict[str, float], dict[str, Any]]:
    """Per D open drains: one tick that heartbeats every drain, then one a period later that only
    looks; wall time of the first (`reconcile_seconds`), and the AWS and LiveKit requests of each.

    One world for every D, smallest first: each D's drains on instances of their own, the drains
    of the D before closed and their lifecycle actions completed first, so a tick sees D drains.
    An invocation is given at most the largest shard (ShardSize's maximum): a tick over more does
    that many itself and sends the rest to the work queue, whose invocations the world runs
    beside it; the tick's figures count them too."""
    seconds: dict[str, float] = {}
    calls: dict[str, Any] = {}
    sizes = sorted(options.open_drains)
    # Webhooks play no part in a tick: leave them out of the building.
    params = {"ShardSize": str(max(1, min(max(sizes), LARGEST_SHARD)))}
    config = WorldConfig(seed=options.seed, template=options.template, livekit_webhooks=False, params=params)
    with World(config) as world, _AwsCalls() as aws:
        # A first run with nothing open: the function's cold start is not part of the figures.
        world.tick()
        fleet = _Fleet(world)
        done: list[str] = []
        for drains in sizes:
            _retire(world, done)
            began = time.perf_counter()
            done = fleet.take(drains)
            figure = _reconcile(world, aws, done, began)
            seconds[str(drains)] = figure["heartbeat_tick"]["wall_seconds"]
            calls[str(drains)] = figure
            beat, look = figure["heartbeat_tick"], figure["steady_tick"]
            report(
                f"reconcile, D={drains} open drains ({figure['invocations']} invocations a tick): "
                f"heartbeat tick {beat['wall_seconds']:.2f} s (ECS {beat['ecs']}, Auto Scaling "
                f"{beat['autoscaling']}, DynamoDB {beat['dynamodb_reads']} reads / "
                f"{beat['dynamodb_writes']} writes, LiveKit {beat['livekit']}); steady tick "
                f"{look['wall_seconds']:.2f} s (ECS {look['ecs']}, Auto Scaling {look['autoscaling']}, "
                f"DynamoDB {look['dynamodb_reads']} reads / {look['dynamodb_writes']} writes, LiveKit "
                f"{look['livekit']}); the function's timeout {figure['timeout_seconds']:g} s; building the "
                f"drains took {figure['build_seconds']:.1f} s"
            )
    return seconds, calls


_DYNAMODB_READS: Final = frozenset({"GetItem", "BatchGetItem", "Query", "Scan"})
_DYNAMODB_WRITES: Final = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"})


class _AwsCalls:
    """Every AWS request the handlers make: their clients come from boto3's default session
    (the world's own clients do not), and each copies the session's event hooks when built."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def __enter__(self) -> _AwsCalls:
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
        events.register("before-call", self._count, unique_id="bench-aws-calls")
        return self

    def __exit__(self, *exc: object) -> None:
        boto3.DEFAULT_SESSION.events.unregister("before-call", unique_id="bench-aws-calls")  # type: ignore[union-attr]

    def _count(self, model: Any, **_: Any) -> None:
        self.counts[(model.service_model.service_name, model.name)] += 1

    def figure(self, wall_seconds: float, livekit: int) -> dict[str, Any]:
        def of(service: str, names: frozenset[str] | None = None) -> int:
            return sum(
                n for (svc, op), n in self.counts.items() if svc == service and (names is None or op in names)
            )

        return {
            "wall_seconds": round(wall_seconds, 3),
            "ecs": of("ecs"),
            "autoscaling": of("autoscaling"),
            "dynamodb_reads": of("dynamodb", _DYNAMODB_READS),
            "dynamodb_writes": of("dynamodb", _DYNAMODB_WRITES),
            "livekit": livekit,
            "by_operation": {f"{svc}:{op}": n for (svc, op), n in sorted(self.counts.items())},
        }


def _reconcile(world: World, aws: _AwsCalls, instance_ids: list[str], began: float) -> dict[str, Any]:
    """Open drains seeded straight into the table on these instances (one worker and room each,
    the lifecycle actions really open), then two warm reconcile ticks, timed and counted;
    `began`: when the instances' launch began (building the drains)."""
    seed_open_drains(world, len(instance_ids), instance_ids=instance_ids)
    built = time.perf_counter() - began
    ticks: list[dict[str, Any]] = []
    invocations = 0
    for _ in range(2):
        aws.counts.clear()
        world.livekit.reset_counts()
        before = len(world.lambdas.invocations)
        started = time.perf_counter()
        world.tick()
        wall = time.perf_counter() - started
        invocations = len(world.lambdas.invocations) - before
        ticks.append(aws.figure(wall, world.livekit.request_counts.get("total", 0)))
        world.clock.advance(world.period)
    return {
        "heartbeat_tick": ticks[0],
        "steady_tick": ticks[1],
        "invocations": invocations,
        "timeout_seconds": _function_timeout(world, world.schedule.logical_id),
        "build_seconds": round(built, 1),
    }


def _retire(world: World, instance_ids: list[str]) -> None:
    """The drains of these instances closed and their lifecycle actions completed, as their ends
    would leave them: a later tick sees neither them nor orphans in Terminating:Wait."""
    if not instance_ids:
        return
    store = _drain_store(world)
    autoscaling = world.aws.client("autoscaling")
    now = world.clock.now()
    closed = []
    for record in store.get_many(instance_ids).values():
        ref = record.lifecycle
        autoscaling.complete_lifecycle_action(
            LifecycleHookName=ref.hook_name,
            AutoScalingGroupName=ref.asg_name,
            LifecycleActionToken=ref.action_token,
            LifecycleActionResult="CONTINUE",
            InstanceId=ref.instance_id,
        )
        closed.append(record.closed(DrainOutcome.DRAINED, now))
    with aws_clients.resource("dynamodb").Table(world.table_name).batch_writer() as batch:
        for record in closed:
            batch.put_item(Item=store.item_for(record))
    world.take_pending_events()


def seed_open_drains(
    world: World, count: int, *, heartbeat_due: bool = True, instance_ids: Sequence[str] | None = None
) -> list[str]:
    """`count` instances of one worker and one call each (the group's fleet, launched here, or
    `instance_ids` of it), scaled in, their drains open in the table as a look in the middle of
    a drain leaves them (rooms audited, tasks and calls counted, looked at a period ago): the
    lifecycle actions are really open in Auto Scaling. With `heartbeat_due`, the hooks' timers
    run out within two periods, so the next tick heartbeats every drain."""
    ids = list(instance_ids) if instance_ids is not None else world.create_fleet(count, 1)
    store = _drain_store(world)
    now = world.clock.now()
    deadline = float(world.params["DrainDeadline"])
    last_heartbeat = now - world.hook_heartbeat_timeout + world.period if heartbeat_due else now
    records = []
    for instance_id in ids:
        worker = world.workers_on(instance_id)[0]
        room = f"drain-{instance_id}"
        world.livekit.join(room, f"caller-{instance_id}", kind="SIP")
        world.livekit.join(
            room, f"agent-{instance_id}", kind="AGENT", attributes={SESSION_TAG_ATTRIBUTE: worker.task_arn}
        )
        action = world.aws.terminate_instance(instance_id, should_decrement_desired_capacity=True)
        if action is None:
            raise BenchError(f"{instance_id} was not held by the terminate hook")
        records.append(
            DrainRecord(
                lifecycle=LifecycleRef(world.config.group_name, world.hook_name, instance_id, action.token),
                cluster=world.config.cluster,
                container_instance_arn=worker.container_instance_arn,
                hook_started_at=action.started_at,
                deadline_at=action.started_at + deadline,
                heartbeat_timeout=world.hook_heartbeat_timeout,
                last_heartbeat_at=last_heartbeat,
                opened_at=now,
                watched_rooms={room: worker.task_arn},
                rooms_final=True,
                rooms_audited=True,
                known_tasks=(worker.task_arn,),
                sessions_remaining=1,
                tasks_remaining=1,
                looked_at=now - world.period,
            )
        )
    # New items, written in batches (open_drain's condition has nothing to refuse here).
    with aws_clients.resource("dynamodb").Table(world.table_name).batch_writer() as batch:
        for record in records:
            batch.put_item(Item=store.item_for(record))
    # The lifecycle events were answered by the seeding: nobody else receives them.
    world.take_pending_events()
    return ids


def _function_timeout(world: World, logical_id: str) -> float:
    own = world.template.body["Resources"][logical_id].get("Properties", {}).get("Timeout")
    shared = world.template.body.get("Globals", {}).get("Function", {}).get("Timeout", 3)
    return float(world.template.resolve(own if own is not None else shared, world.params))


# -- cold start ----------------------------------------------------------------------------------


def handler_modules(template: Path) -> dict[str, str]:
    """Function logical id -> handler module, from the template."""
    body = load_template(template).body
    out: dict[str, str] = {}
    for logical_id, resource in body.get("Resources", {}).items():
        if resource.get("Type") == FUNCTION_TYPE:
            handler = str(resource.get("Properties", {}).get("Handler", ""))
            if handler:
                out[logical_id] = handler.rpartition(".")[0]
    return dict(sorted(out.items()))


def import_ratio(options: BenchOptions, report: Report) -> tuple[dict[str, float], dict[str, Any]]:
    """Median import time of each handler module over `import boto3`'s, in fresh interpreters.

    The runs go round the modules (boto3, each handler, boto3 again...) rather than one module's
    runs in a row: a shared machine's load then falls alike on every module of a ratio. Each run
    also gives the import's CPU time (`cpu_ratio`): what other processes do to the wall time on a
    shared machine, they hardly do to it."""
    modules = ["boto3", *sorted(set(handler_modules(options.template_path).values()))]
    modes = [False, True] if options.no_bytecode_imports else [False]
    detail: dict[str, Any] = {"runs": options.import_runs}
    ratios: dict[str, float] = {}
    for no_bytecode in modes:
        mode = "no_bytecode" if no_bytecode else "cached_bytecode"
        runs = min(options.import_runs, NO_BYTECODE_IMPORT_RUNS) if no_bytecode else options.import_runs
        samples: dict[str, list[tuple[float, float]]] = {module: [] for module in modules}
        for _ in range(runs):
            for module in modules:
                samples[module].append(_import_seconds(module, no_bytecode=no_bytecode))
        seconds = {
            module: round(statistics.median(w for w, _ in taken), 4) for module, taken in samples.items()
        }
        cpu = {module: round(statistics.median(c for _, c in taken), 4) for module, taken in samples.items()}
        base, cpu_base = seconds["boto3"], cpu["boto3"]
        if not no_bytecode:
            ratios = {module: round(seconds[module] / base, 2) for module in modules[1:]}
            detail["cpu_ratio"] = {module: round(cpu[module] / cpu_base, 2) for module in modules[1:]}
        detail[mode] = seconds
        detail[f"{mode}_cpu"] = cpu
        detail[f"{mode}_runs"] = runs
        report(
            f"import time, median of {runs} ({mode.replace('_', ' ')}), wall and CPU: "
            + ", ".join(
                f"{m} {1000 * s:.0f} ms ({s / base:.1f}x), CPU {1000 * cpu[m]:.0f} ms ({cpu[m] / cpu_base:.2f}x)"
                for m, s in seconds.items()
            )
        )
    return ratios, detail


def _import_seconds(module: str, *, no_bytecode: bool) -> tuple[float, float]:
    """How long `import module` takes in a fresh interpreter that looks like Lambda: wall and CPU
    seconds."""
    code = (
        "import time; t, c = time.perf_counter(), time.process_time(); "
        f"import {module}; print(time.perf_counter() - t, time.process_time() - c)"
    )
    with tempfile.TemporaryDirectory() as scratch:
        env = lambda_like_env()
        if no_bytecode:
            # What a zip without bytecode gives: every module compiled at import, nothing kept
            # (the standard library included, so an upper bound).
            env.update({"PYTHONPYCACHEPREFIX": scratch, "PYTHONDONTWRITEBYTECODE": "1"})
        answer = subprocess.run(  # noqa: S603 - this interpreter, a fixed snippet
            [sys.executable, "-c", code],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if answer.returncode != 0:
        raise BenchError(f"import {module} failed: {answer.stderr.strip()[-400:]}")
    wall, cpu = answer.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def lambda_like_env() -> dict[str, str]:
    # Powertools turns tracing on only inside Lambda: look like it, so the Tracer's imports count.
    return {
        "PATH": os.environ.get("PATH", ""),
        "LAMBDA_TASK_ROOT": "/var/task",
        "AWS_LAMBDA_FUNCTION_NAME": "livekit-drain-bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(_ROOT / "functions"),
    }


# -- artifact sizes ------------------------------------------------------------------------------


def artifact_bytes(options: BenchOptions, report: Report) -> tuple[dict[str, int], dict[str, Any]]:
    sam = _SAM_CLI
    if not sam.exists():
        report("sam build skipped: .venv-sam/bin/sam is missing (`make dev` creates it)")
        return {}, {"skipped": "sam CLI missing"}
    with tempfile.TemporaryDirectory() as scratch:
        build = Path(scratch) / "build"
        began = time.perf_counter()
        env = {
            **os.environ,
            "SAM_CLI_TELEMETRY": "0",
            # The layer's Makefile runs pip from this interpreter, whatever python3 is on PATH.
            "PIP": f"{shlex.quote(sys.executable)} -m pip",
        }
        answer = subprocess.run(  # noqa: S603 - a fixed command line
            [
                str(sam),
                "build",
                "--template-file",
                str(options.template_path),
                "--build-dir",
                str(build),
                "--no-cached",
            ],
            cwd=_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if answer.returncode != 0:
            # The other figures stand without this one (no network for pip, say): report, go on.
            tail = (answer.stdout + answer.stderr).strip().splitlines()[-5:]
            report("sam build failed, no artifact sizes: " + " | ".join(tail))
            return {}, {"failed": tail}
        sizes = {entry.name: _tree_bytes(entry) for entry in sorted(build.iterdir()) if entry.is_dir()}
        layer = build / LAYER / "python"
        biggest = (
            sorted(((_tree_bytes(p), p.name) for p in layer.iterdir() if p.is_dir()), reverse=True)[:6]
            if layer.is_dir()
            else []
        )
        seconds = time.perf_counter() - began
    detail = {"largest_in_layer": {name: size for size, name in biggest}, "build_seconds": round(seconds, 1)}
    report(
        "sam build artifacts: "
        + ", ".join(f"{name} {_mib(size)}" for name, size in sizes.items())
        + "; largest in the layer: "
        + ", ".join(f"{name} {_mib(size)}" for size, name in biggest)
        + f" ({seconds:.0f} s)"
    )
    return sizes, detail


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.2f} MiB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KiB"


# -- all of it -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "date": datetime.now(tz=UTC).strftime("%Y-%m-%d"),
    }


# Each section's share of the whole run, in wall seconds on a 2-core machine (full, quick), as
# measured there with other work beside it (load average 1 to 3; sam build: an older run): the
# estimate of what is left scales these by how fast this machine went so far.
_SECTION_SECONDS: Final = {
    "release latency": (5.0, 3.0),
    "LiveKit calls per tick": (15.0, 2.0),
    "reconcile ticks": (35.0, 3.0),
    "handler imports": (30.0, 5.0),
    "sam build": (90.0, 0.0),
}


def run_bench(options: BenchOptions, report: Report, progress: Report | None = None) -> dict[str, Any]:
    began = time.perf_counter()
    figures: dict[str, Any] = {"machine": machine()}
    quick = options.rooms == QUICK_ROOMS
    # A sam build without the SAM CLI is skipped at once: no share of the estimate.
    builds = options.sam_build and _SAM_CLI.exists()
    sections = [name for name in _SECTION_SECONDS if name != "sam build" or builds]
    nominal = {name: _SECTION_SECONDS[name][1 if quick else 0] for name in sections}
    done: list[str] = []

    def section(name: str) -> None:
        if progress is None:
            return
        elapsed = time.perf_counter() - began
        spent_nominal = sum(nominal[n] for n in done)
        pace = elapsed / spent_nominal if spent_nominal > 0 else 1.0
        left = pace * sum(nominal[n] for n in sections if n not in done)
        progress(f"drainctl bench: [{len(done) + 1}/{len(sections)}] {name} (about {left:.0f} s left)")
        done.append(name)

    # One world for the release latency and the LiveKit calls, each on instances of its own.
    with _calls_world(options) as world:
        fleet = _Fleet(world)
        section("release latency")
        figures["release_latency_seconds"] = release_latency(options, report, fleet)
        section("LiveKit calls per tick")
        figures["livekit_calls_per_tick"] = livekit_calls_per_tick(options, report, fleet)
    section("reconcile ticks")
    figures["reconcile_seconds"], figures["tick_calls"] = reconcile_ticks(options, report)
    section("handler imports")
    figures["import_ratio"], figures["import_seconds"] = import_ratio(options, report)
    if options.sam_build:
        if builds:
            section("sam build")
        figures["artifact_bytes"], figures["artifact_detail"] = artifact_bytes(options, report)
    else:
        report("sam build skipped (--quick or --skip-sam-build)")
        figures["artifact_bytes"], figures["artifact_detail"] = {}, {"skipped": "not asked"}
    figures["monthly_cost"] = _monthly_cost(options, figures["tick_calls"])
    cost = figures["monthly_cost"]
    report(
        f"monthly cost, {cost['workload']['instances']} instances, {cost['workload']['scale_ins_a_day']} "
        f"scale-ins and {cost['workload']['calls_a_day']:,} calls a day: ${cost['usd_total']:.2f} "
        f"(${cost['usd_total_without_xray']:.2f} untraced; webhook path {100 * cost['webhook_share']:.0f} %), "
        f"list prices read {cost['prices_read_on']}: {cost['usd']}"
    )
    figures["wall_seconds"] = round(time.perf_counter() - began, 1)
    return figures


def _monthly_cost(options: BenchOptions, ticks: dict[str, Any]) -> dict[str, Any]:
    """The cost estimate (drainctl/cost.py) with this run's durations and the template's memory
    and alarms. The durations are the local world's (an upper bound for AWS's)."""
    body = load_template(options.template_path).body
    memory = int(body.get("Globals", {}).get("Function", {}).get("MemorySize", 128))
    alarms = sum(1 for r in body.get("Resources", {}).values() if r.get("Type") == "AWS::CloudWatch::Alarm")
    # Each name with the stack's dimensions; DrainCompleted once per outcome; ForcedKills and
    # DroppedSessions again per ECS service (one service).
    outcomes = {o.value for o in DrainOutcome} | {v.value for v in Verdict}
    metrics = len(MetricName) - 1 + len(outcomes) + 2
    smallest = ticks[min(ticks, key=int)]
    return monthly_cost(
        Workload(),
        memory_mb=memory,
        alarms=alarms,
        metrics=metrics,
        tick_seconds=smallest["steady_tick"]["wall_seconds"],
        look_seconds=smallest["heartbeat_tick"]["wall_seconds"],
        webhook_seconds=smallest["steady_tick"]["wall_seconds"],
    )


_DESCRIPTION = (
    "The coordinator's own cost, measured on the local world: release latency, LiveKit calls per "
    "reconcile tick, reconcile wall time, handler import time, sam build artifact sizes. Figures "
    "only: nothing is judged."
)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object with every figure")
    parser.add_argument("--quick", action="store_true", help="small sizes, three import runs, no sam build")
    parser.add_argument("--skip-sam-build", action="store_true", help="leave out the artifact sizes")
    parser.add_argument("--template", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--degraded",
        action="store_true",
        help="only the degraded-AWS table: 10, 100, 1,000 and 2,000 open drains (--quick: 10 and 100) "
        "under AWS latency 0.2:2 s, AWS's rate limits and LiveKit latency 1:4 s",
    )


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `bench` to a `drainctl` command line."""
    parser = subparsers.add_parser(
        "bench", help="the coordinator's own cost, in figures", description=_DESCRIPTION
    )
    _add_arguments(parser)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run `drainctl bench`: progress lines on stderr with --json (stdout holds the object)."""
    out = out or sys.stdout
    if args.template is not None and not args.template.is_file():
        print(f"drainctl bench: --template {args.template}: no such file", file=sys.stderr)
        return 2
    overrides: dict[str, Any] = {"template": args.template, "seed": args.seed}
    if args.skip_sam_build:
        overrides["sam_build"] = False
    options = BenchOptions.quick(**overrides) if args.quick else BenchOptions(**overrides)
    stream = sys.stderr if args.json else out

    def report(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    try:
        if getattr(args, "degraded", False):
            sizes = QUICK_DEGRADED if args.quick else DEGRADED
            rows = run_degraded(sizes, report, _progress)
            wall = round(sum(float(row["wall_seconds"]) for row in rows), 1)
            figures: dict[str, Any] = {"machine": machine(), "degraded": rows, "wall_seconds": wall}
        else:
            figures = run_bench(options, report, progress=_progress)
    except BenchError as exc:
        print(f"drainctl bench: {exc}", file=sys.stderr)
        return 1
    if args.json:
        out.write(json.dumps(figures) + "\n")
    else:
        out.write(f"machine: {figures['machine']}; {figures['wall_seconds']} s in all\n")
    return 0


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="drainctl bench", description=_DESCRIPTION)
    _add_arguments(parser)
    return run(parser.parse_args(argv), out)


if __name__ == "__main__":
    sys.exit(main())
