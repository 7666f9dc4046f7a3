"""What a drain sees when it looks: worker tasks still on the instance, sessions they hold."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class WorkerTask:
    arn: str
    last_status: str  # PENDING | RUNNING | DEACTIVATING | STOPPING | DEPROVISIONING | ...
    desired_status: str  # RUNNING | STOPPED
    # ECS's task group: "service:<name>" for a service's task, "family:<name>" for a standalone one.
    group: str = ""
    # A task of a DAEMON service. ECS stops daemon tasks on a DRAINING instance only after every
    # other task has stopped, and a daemon (a log router, an agent) takes no call.
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/container-instance-draining.html
    daemon: bool = False

    @property
    def told_to_stop(self) -> bool:
        """ECS has sent (or will send) SIGTERM: a LiveKit worker then takes no new job."""
        return self.desired_status == "STOPPED"

    @property
    def stopped_by_draining(self) -> bool:
        """ECS stops a service's tasks on a DRAINING instance (once their replacements are healthy,
        with minimumHealthyPercent 100); a standalone task (RunTask, StartTask) it never stops.
        https://docs.aws.amazon.com/AmazonECS/latest/developerguide/container-instance-draining.html
        A task whose group is unknown counts as a service's: waiting for it is the safe side."""
        return not self.group.startswith("family:")


def discovery_final(tasks: tuple[WorkerTask, ...]) -> bool:
    """Whether the instance's rooms are all known: every worker task on it has been told to stop
    (a stopping LiveKit worker takes no new job). Daemon tasks are stopped last and hold no call:
    waiting for them would keep every look a full LiveKit scan until the end of the drain."""
    return all(t.told_to_stop for t in tasks if not t.daemon)


@dataclass(frozen=True, slots=True)
class Probe:
    """One look at an instance. `error` set means the look failed and proves nothing."""

    tasks: tuple[WorkerTask, ...] = ()
    # room -> task ARN of the agent participant still holding it
    sessions: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    # A failed look that still saw the watched rooms (LiveKit answered, ECS did not): the calls
    # are known though the tasks are not. It proves nothing about the drain being over.
    sessions_seen: dict[str, str] | None = None

    @classmethod
    def failed(cls, error: str, sessions_seen: dict[str, str] | None = None) -> Probe:
        return cls(error=error, sessions_seen=sessions_seen)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def session_count(self) -> int:
        return len(self.sessions)

    @property
    def task_count(self) -> int:
        return len(self.tasks)

    @property
    def empty(self) -> bool:
        return self.ok and not self.tasks and not self.sessions
