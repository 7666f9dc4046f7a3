"""One validated settings object, read once at cold start from the function's environment."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drain_coordinator.domain.decide import DrainPolicy
from drain_coordinator.domain.rescue import RescuePolicy

# The worker needs this much time after its drain for its last job to shut down before SIGKILL.
STOP_MARGIN_SECONDS = 60
# AWS Auto Scaling: a lifecycle action waits at most min(48 h, 100 x HeartbeatTimeout).
HOOK_GLOBAL_TIMEOUT_CAP_SECONDS = 48 * 3600
HOOK_GLOBAL_TIMEOUT_FACTOR = 100


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names the variable and the rule."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    table_name: str = Field(alias="DRAIN_TABLE_NAME", min_length=3, max_length=255)
    # The stack's name: the `Stack` dimension of every metric (observability.stack_name()).
    stack_name: str = Field(
        alias="STACK_NAME", default="livekit-drain", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,127}$"
    )
    cluster: str = Field(alias="ECS_CLUSTER_NAME", min_length=1, max_length=255)
    asg_name: str = Field(alias="ASG_NAME", min_length=1, max_length=255)
    hook_name: str = Field(alias="LIFECYCLE_HOOK_NAME", min_length=1, max_length=255)
    # The stack's launch hook, on a group whose warm pool takes scaled-in instances back
    # (ReuseOnScaleIn): its actions are completed, and an instance back from the pool is set
    # ACTIVE again first. Empty: no launch hook, launch actions are skipped.
    launch_hook_name: str = Field(alias="LAUNCH_LIFECYCLE_HOOK_NAME", default="", max_length=255)
    livekit_url: str = Field(alias="LIVEKIT_URL", pattern=r"^(https?|wss?)://[^\s/]+")
    livekit_secret_arn: str = Field(alias="LIVEKIT_SECRET_ARN", min_length=1)
    worker_drain_timeout: int = Field(alias="WORKER_DRAIN_TIMEOUT_SECONDS", default=600, ge=1)
    worker_stop_timeout: int = Field(alias="WORKER_STOP_TIMEOUT_SECONDS", default=900, ge=1)
    heartbeat_timeout: int = Field(alias="HOOK_HEARTBEAT_TIMEOUT_SECONDS", default=300, ge=30, le=7200)
    drain_deadline: int = Field(alias="DRAIN_DEADLINE_SECONDS", default=1200, ge=60)
    reconcile_period: int = Field(alias="RECONCILE_PERIOD_SECONDS", default=60, ge=10, le=3600)
    worker_task_family: str = Field(alias="WORKER_TASK_FAMILY", default="", max_length=255)
    # The worker's container in its task definition: a stop is judged on this container's exit,
    # never on a sidecar's (FireLens, X-Ray, envoy). The packaged worker's is "worker".
    worker_container_name: str = Field(
        alias="WORKER_CONTAINER_NAME", default="worker", min_length=1, max_length=255
    )
    # The hosts' ECS_CONTAINER_STOP_TIMEOUT: ECS uses it for a container with no stopTimeout of
    # its own (the agent's default is 30 s). https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-agent-config.html
    host_stop_timeout: int = Field(alias="HOST_STOP_TIMEOUT_SECONDS", default=30, ge=1, le=86400 * 2)
    livekit_timeout: float = Field(alias="LIVEKIT_TIMEOUT_SECONDS", default=5.0, gt=0, le=60)
    record_ttl_days: int = Field(alias="DRAIN_RECORD_TTL_DAYS", default=30, ge=1, le=3650)
    # A stopping task with calls still up this close to its SIGKILL is logged as at risk.
    at_risk_seconds: int = Field(alias="AT_RISK_SECONDS", default=120, ge=0, le=86400)
    # An EC2 rebalance recommendation starts a normal drain early (the instance is terminated
    # in its group, a replacement launched, and the hook drains it). Off unless opted in.
    rebalance_drain: bool = Field(alias="REBALANCE_DRAIN", default=False)
    # The work queue a tick sends what it cannot cover itself to, `SHARD_SIZE` units a message
    # (empty: no fan-out, a tick does what fits and defers the rest).
    work_queue_url: str = Field(alias="WORK_QUEUE_URL", default="", max_length=2048)
    shard_size: int = Field(alias="SHARD_SIZE", default=20, ge=1, le=500)
    # The work queue's MaximumConcurrency: a tick sends no more shards than run at once, so none
    # waits behind another (domain/schedule.py, rule 5). Lambda's SQS scaling takes 2-1000.
    advance_concurrency: int = Field(alias="ADVANCE_CONCURRENCY", default=10, ge=2, le=1000)
    # Heartbeats a second the tick spreads the hooks' renewals under (domain/schedule.py, rule 6):
    # a share of Auto Scaling's request rate, which AWS does not document (assumed 10 a second,
    # as `drainctl check` and the local world assume), leaving room for retries and other callers.
    heartbeat_rate: float = Field(alias="HEARTBEAT_RATE", default=8.0, gt=0, le=1000)
    # Call rescue (services/rescue.py): a doomed call is handed to a healthy worker by a rescue job in its
    # room, dispatched to the agent name the workers register with. Opt-in: the workers then
    # checkpoint transcripts. With RESCUE_ON_DEPLOY a deploy's stop dooms its calls too.
    call_rescue: bool = Field(alias="CALL_RESCUE", default=False)
    rescue_on_deploy: bool = Field(alias="RESCUE_ON_DEPLOY", default=False)
    rescue_agent_name: str = Field(alias="RESCUE_AGENT_NAME", default="", max_length=255)

    @model_validator(mode="after")
    def _timers_agree(self) -> Settings:
        cap = min(HOOK_GLOBAL_TIMEOUT_CAP_SECONDS, HOOK_GLOBAL_TIMEOUT_FACTOR * self.heartbeat_timeout)
        if self.drain_deadline > cap:
            raise ValueError(
                f"DRAIN_DEADLINE_SECONDS={self.drain_deadline} exceeds the lifecycle hook's own "
                f"limit min(48 h, 100 x HOOK_HEARTBEAT_TIMEOUT_SECONDS)={cap}"
            )
        if self.worker_stop_timeout < self.worker_drain_timeout + STOP_MARGIN_SECONDS:
            raise ValueError(
                f"WORKER_STOP_TIMEOUT_SECONDS={self.worker_stop_timeout} is shorter than "
                f"WORKER_DRAIN_TIMEOUT_SECONDS={self.worker_drain_timeout} + {STOP_MARGIN_SECONDS}: ECS "
                "would SIGKILL workers still finishing their calls"
            )
        # The deadline completes at the last look before it, up to one period early: it must
        # still come after ECS has stopped (or killed) every worker.
        if self.drain_deadline < self.worker_stop_timeout + self.reconcile_period:
            raise ValueError(
                f"DRAIN_DEADLINE_SECONDS={self.drain_deadline} is shorter than "
                f"WORKER_STOP_TIMEOUT_SECONDS={self.worker_stop_timeout} + RECONCILE_PERIOD_SECONDS="
                f"{self.reconcile_period}: the instance would be terminated under tasks still draining"
            )
        if self.heartbeat_timeout < 3 * self.reconcile_period:
            raise ValueError(
                f"HOOK_HEARTBEAT_TIMEOUT_SECONDS={self.heartbeat_timeout} must be at least 3 x "
                f"RECONCILE_PERIOD_SECONDS={self.reconcile_period}, so one late tick cannot let "
                "the hook expire"
            )
        return self

    @property
    def policy(self) -> DrainPolicy:
        return DrainPolicy(reconcile_period_seconds=self.reconcile_period)

    @property
    def rescue_policy(self) -> RescuePolicy:
        return RescuePolicy(
            reconcile_period_seconds=self.reconcile_period, rescue_on_deploy=self.rescue_on_deploy
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        try:
            return cls.model_validate(dict(env))
        except ValidationError as exc:
            problems = "; ".join(_describe(err) for err in exc.errors())
            raise SettingsError(f"invalid livekit-drain settings: {problems}") from exc


def _describe(err: object) -> str:
    assert isinstance(err, dict)
    loc = ".".join(str(p) for p in err.get("loc", ())) or "settings"
    return f"{loc}: {err.get('msg', 'invalid')}"
