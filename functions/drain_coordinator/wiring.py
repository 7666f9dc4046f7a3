"""Builds the coordinator once per cold start from the settings; the local world can swap parts."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from drain_coordinator.integrations import aws_clients

if TYPE_CHECKING:
    # Imported where they are built, not with every handler: a handler's module is imported at
    # cold start, before its first event says what it needs (a skipped event builds nothing);
    # the lifecycle function never builds a webhook service, the webhook function no scheduler...
    # Settings are pydantic: imported at the first invocation, when they are read.
    from drain_coordinator.integrations.ecs import EcsCluster
    from drain_coordinator.integrations.livekit import LiveKitSessions
    from drain_coordinator.services.drains import Coordinator
    from drain_coordinator.services.rescue import Rescuer
    from drain_coordinator.services.schedule import Scheduler
    from drain_coordinator.services.task_stops import TaskStopTracker
    from drain_coordinator.services.webhooks import WebhookService
    from drain_coordinator.settings import Settings

_settings: Settings | None = None
_coordinator: Coordinator | None = None
_task_tracker: TaskStopTracker | None = None
_webhook_service: WebhookService | None = None
_scheduler: Scheduler | None = None
_clock: Callable[[], float] = time.time


def settings() -> Settings:
    global _settings
    if _settings is None:
        from drain_coordinator.settings import Settings

        _settings = Settings.from_env(os.environ)
    return _settings


def coordinator() -> Coordinator:
    global _coordinator
    if _coordinator is None:
        _coordinator = build(settings())
    return _coordinator


def task_tracker() -> TaskStopTracker:
    global _task_tracker
    if _task_tracker is None:
        _task_tracker = build_task_tracker(settings(), coordinator())
    return _task_tracker


def scheduler() -> Scheduler:
    global _scheduler
    if _scheduler is None:
        _scheduler = build_scheduler(settings(), coordinator(), task_tracker())
    return _scheduler


def build_scheduler(
    config: Settings, drains: Coordinator, stops: TaskStopTracker, clock: Callable[[], float] | None = None
) -> Scheduler:
    from drain_coordinator.domain.schedule import renewal_budget
    from drain_coordinator.integrations.work_queue import WorkQueue
    from drain_coordinator.services.schedule import Scheduler

    queue = WorkQueue(aws_clients.client("sqs"), config.work_queue_url) if config.work_queue_url else None
    return Scheduler(
        drains=drains,
        task_stops=stops,
        asg_name=config.asg_name,
        hook_name=config.hook_name,
        clock=clock or drains.clock,
        queue=queue,
        shard_size=config.shard_size,
        concurrency=config.advance_concurrency if queue is not None else None,
        heartbeat_budget=renewal_budget(
            config.heartbeat_rate, config.reconcile_period, config.advance_concurrency if queue else None
        ),
    )


def webhook_service() -> WebhookService:
    global _webhook_service
    if _webhook_service is None:
        _webhook_service = build_webhook_service(settings(), coordinator())
    return _webhook_service


def build_webhook_service(
    config: Settings, drains: Coordinator, clock: Callable[[], float] | None = None
) -> WebhookService:
    from drain_coordinator.integrations.room_index import RoomIndex, WebhookLedger
    from drain_coordinator.integrations.secrets import livekit_credentials
    from drain_coordinator.services.webhooks import WebhookService

    table = aws_clients.resource("dynamodb").Table(config.table_name)
    now = clock or _clock
    return WebhookService(
        credentials=partial(livekit_credentials, config.livekit_secret_arn),
        drains=drains,
        index=RoomIndex(table, clock=now),
        ledger=WebhookLedger(table, clock=now),
        clock=now,
    )


def build_task_tracker(
    config: Settings, drains: Coordinator, clock: Callable[[], float] | None = None
) -> TaskStopTracker:
    from drain_coordinator.integrations.room_index import RoomIndex
    from drain_coordinator.integrations.store import TaskStopStore
    from drain_coordinator.services.task_stops import TaskStopTracker

    table = aws_clients.resource("dynamodb").Table(config.table_name)
    now = clock or _clock
    return TaskStopTracker(
        store=TaskStopStore(table, ttl_days=config.record_ttl_days),
        ecs=_ecs(config),
        sessions=_sessions(config),
        drains=drains,
        clock=now,
        cluster=config.cluster,
        at_risk_seconds=config.at_risk_seconds,
        worker_container=config.worker_container_name,
        host_stop_timeout=config.host_stop_timeout,
        room_index=RoomIndex(table, clock=now),
        rescuer=drains.rescuer,
        worker_drain_timeout=config.worker_drain_timeout,
    )


def _ecs(config: Settings) -> EcsCluster:
    from drain_coordinator.integrations.ecs import EcsCluster

    return EcsCluster(
        aws_clients.client("ecs"),
        config.cluster,
        config.worker_task_family,
        host_stop_timeout=config.host_stop_timeout,
        worker_container=config.worker_container_name,
    )


def _sessions(config: Settings) -> LiveKitSessions:
    from drain_coordinator.integrations.livekit import LiveKitSessions
    from drain_coordinator.integrations.secrets import livekit_credentials

    return LiveKitSessions(
        config.livekit_url,
        partial(livekit_credentials, config.livekit_secret_arn),
        timeout_seconds=config.livekit_timeout,
    )


def _rescuer(config: Settings, clock: Callable[[], float]) -> Rescuer | None:
    if not config.call_rescue:
        return None
    from drain_coordinator.integrations.livekit import LiveKitRescues
    from drain_coordinator.integrations.rescues import RescueStore
    from drain_coordinator.integrations.secrets import livekit_credentials
    from drain_coordinator.services.rescue import Rescuer

    return Rescuer(
        store=RescueStore(aws_clients.resource("dynamodb").Table(config.table_name)),
        livekit=LiveKitRescues(
            config.livekit_url,
            partial(livekit_credentials, config.livekit_secret_arn),
            timeout_seconds=config.livekit_timeout,
        ),
        policy=config.rescue_policy,
        clock=clock,
        agent_name=config.rescue_agent_name,
    )


def build(config: Settings, clock: Callable[[], float] | None = None) -> Coordinator:
    from drain_coordinator.integrations.autoscaling import LifecycleActions
    from drain_coordinator.integrations.room_index import RoomIndex
    from drain_coordinator.integrations.store import DrainStore, TaskStopStore
    from drain_coordinator.services.drains import Coordinator

    now = clock or _clock
    return Coordinator(
        policy=config.policy,
        cluster=config.cluster,
        drain_deadline_seconds=config.drain_deadline,
        heartbeat_timeout_seconds=config.heartbeat_timeout,
        store=DrainStore(
            aws_clients.resource("dynamodb").Table(config.table_name),
            ttl_days=config.record_ttl_days,
        ),
        lifecycle=LifecycleActions(aws_clients.client("autoscaling")),
        ecs=_ecs(config),
        sessions=_sessions(config),
        clock=now,
        task_stops=TaskStopStore(
            aws_clients.resource("dynamodb").Table(config.table_name), ttl_days=config.record_ttl_days
        ),
        worker_stop_timeout_seconds=config.worker_stop_timeout,
        rescuer=_rescuer(config, clock or _clock),
        room_index=RoomIndex(aws_clients.resource("dynamodb").Table(config.table_name), clock=now),
    )


def reset(clock: Callable[[], float] | None = None) -> None:
    """Forget the cached settings and coordinator (a new cold start); optionally use another clock."""
    global _settings, _coordinator, _task_tracker, _webhook_service, _scheduler, _clock
    _settings = None
    _coordinator = None
    _task_tracker = None
    _webhook_service = None
    _scheduler = None
    _clock = clock or time.time


def install(
    config: Settings,
    built: Coordinator,
    tracker: TaskStopTracker | None = None,
    webhooks: WebhookService | None = None,
) -> None:
    """Use these settings and this coordinator from now on (the local world and tests)."""
    global _settings, _coordinator, _task_tracker, _webhook_service, _scheduler
    _settings = config
    _coordinator = built
    _task_tracker = tracker
    _webhook_service = webhooks
    _scheduler = None


@dataclass(frozen=True)
class Built:
    """What one execution environment has built since its cold start (None: not yet)."""

    settings: Settings | None = None
    coordinator: Coordinator | None = None
    task_tracker: TaskStopTracker | None = None
    webhook_service: WebhookService | None = None
    scheduler: Scheduler | None = None
    clock: Callable[[], float] = time.time


def current() -> Built:
    """This process's execution environment, to be put back with `restore` (the local world
    runs the functions of several stacks in one process, each in an environment of its own)."""
    return Built(_settings, _coordinator, _task_tracker, _webhook_service, _scheduler, _clock)


def restore(built: Built) -> None:
    global _settings, _coordinator, _task_tracker, _webhook_service, _scheduler, _clock
    _settings = built.settings
    _coordinator = built.coordinator
    _task_tracker = built.task_tracker
    _webhook_service = built.webhook_service
    _scheduler = built.scheduler
    _clock = built.clock
