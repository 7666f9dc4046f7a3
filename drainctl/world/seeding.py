"""Many drains open at once, seeded straight into the world (a fleet-wide scale-in, without
replaying its events): for the scale tests and the degraded-AWS benchmark.

Each instance holds one worker with one call; its lifecycle action is open in the world's Auto
Scaling (its timers run: it can expire) and its drain record is in the table with its room
known. No event is delivered: the lifecycle function plays no part, the reconcile ticks do all.
"""

from __future__ import annotations

import uuid

from drain_coordinator.domain.records import DrainRecord, LifecycleRef
from drain_coordinator.integrations import aws_clients
from drain_coordinator.integrations.store import DrainStore
from drainctl.world.lifecycle_actions import TERMINATING
from drainctl.world.world import World


def drain_store(world: World) -> DrainStore:
    # The functions' own adapter, on the world's table (the world set AWS_ENDPOINT_URL).
    return DrainStore(aws_clients.resource("dynamodb").Table(world.table_name))


def open_drains(
    world: World, count: int, *, call_seconds: float = 3000.0, heartbeat_left: float | None = None
) -> list[str]:
    """`count` instances, each draining with one call up and `heartbeat_left` seconds on its hook's
    timer: by default one period, so a heartbeat is due at the next look; the whole
    HeartbeatTimeout for hooks that have just started (a fleet-wide scale-in this moment)."""
    left = world.period if heartbeat_left is None else heartbeat_left
    instances = world.create_fleet(count)
    store = drain_store(world)
    now = world.clock.now()
    for instance_id in instances:
        (worker,) = world.workers_on(instance_id)
        call = world.fleet.start_call(worker, now, call_seconds)
        action = world.aws.lifecycle.start(
            token=str(uuid.UUID(int=world.rng.getrandbits(128))),
            group_name=world.config.group_name,
            hook_name=world.hook_name,
            instance_id=instance_id,
            transition=TERMINATING,
            heartbeat_timeout=world.hook_heartbeat_timeout,
            default_result="CONTINUE",
            now=now,
        )
        store.open_drain(
            DrainRecord(
                lifecycle=LifecycleRef(world.config.group_name, world.hook_name, instance_id, action.token),
                cluster=world.config.cluster,
                container_instance_arn=worker.container_instance_arn,
                hook_started_at=now,
                deadline_at=now + float(world.params["DrainDeadline"]),
                heartbeat_timeout=world.hook_heartbeat_timeout,
                last_heartbeat_at=now - world.hook_heartbeat_timeout + left,
                opened_at=now,
                watched_rooms={call.room: worker.task_arn},
                rooms_final=True,
            )
        )
    return instances


__all__ = ["drain_store", "open_drains"]
