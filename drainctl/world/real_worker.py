"""The packaged worker (``worker/livekit_drain_worker``) run for real, against the local world.

`RealWorker` starts ``python -m livekit_drain_worker start`` as a subprocess, the argv of the
image's exec-form ``ENTRYPOINT`` + ``CMD`` (`IMAGE_ARGV`), with the environment the template's
worker task definition gives the container (`task_environment`), plus what ECS adds at run time:
the two secrets, ``ECS_CONTAINER_METADATA_URI_V4`` and ``ECS_AGENT_URI`` (here a
`LocalEcsEndpoints` stand-in). Its ``LIVEKIT_URL`` is the local agent server's.

In the task, ``initProcessEnabled`` makes a small init PID 1; it forwards SIGTERM to the worker
process only (not to its job processes), which is what `signal` does here. The worker runs in a
session of its own so that nothing sent to the test's process group reaches it; `close` ends
that session (the worker and the job processes it started) if it is still there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from drainctl.template import load_template
from drainctl.world.agent_server import LocalAgentServer, WorkerSnapshot
from drainctl.world.call_agent import ENTRYPOINT

# The image's ENTRYPOINT + CMD (worker/Dockerfile); a test holds them equal.
IMAGE_ARGV: tuple[str, ...] = ("python", "-m", "livekit_drain_worker", "start")
# ENV lines of worker/Dockerfile that shape how the worker runs; a test holds them equal.
IMAGE_ENVIRONMENT: Mapping[str, str] = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "LIVEKIT_HEALTH_PORT": "8081",
}
WORKER_TASK_DEFINITION = "WorkerTaskDefinition"
WORKER_CONTAINER = "worker"

_REPO = Path(__file__).resolve().parents[2]


class RealWorkerError(Exception):
    """The real worker did not do what it was started for (never registered, did not exit)."""


def task_environment(
    template_path: Path | None = None, params: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The worker container's ``Environment`` in the template's task definition, resolved."""
    template = load_template(template_path or _REPO / "template.yaml")
    values = template.parameters(
        {
            "ClusterName": "livekit-agents",
            "AutoScalingGroupName": "livekit-agents-asg",
            "LiveKitUrl": "wss://livekit.example.com",
            "LiveKitSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:livekit-AbCdEf",
            "WorkerImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/livekit-drain-worker:1",
            "WorkerSubnetIds": "subnet-0123456789abcdef0",
            **(params or {}),
        }
    )
    raw = template.body["Resources"][WORKER_TASK_DEFINITION]["Properties"]["ContainerDefinitions"]
    container = next(c for c in raw if c.get("Name") == WORKER_CONTAINER)
    resolved = template.resolve(container["Environment"], values)
    return {str(entry["Name"]): str(entry["Value"]) for entry in resolved}


def _worker_pythonpath() -> str:
    # /app in the image holds livekit_drain_worker; the repository root holds the call agent.
    return os.pathsep.join([str(_REPO / "worker"), str(_REPO)])


class RealWorker:
    """One packaged worker process, registered with `agent_server`."""

    def __init__(
        self,
        agent_server: LocalAgentServer,
        *,
        drain_timeout_seconds: int,
        max_jobs: int = 2,
        health_port: int = 0,
        ecs_environ: Mapping[str, str] | None = None,
        task_protection: bool = False,
        extra_environ: Mapping[str, str] | None = None,
    ) -> None:
        self.agent_server = agent_server
        self.drain_timeout_seconds = drain_timeout_seconds
        self.health_port = health_port or _free_port()
        stop_timeout = drain_timeout_seconds + 60
        # The task definition's variables, with this run's values: the template keeps its
        # parameters in production ranges (drain >= 60 s), the tests want seconds.
        environ = task_environment()
        environ.update(
            {
                "LIVEKIT_DRAIN_TIMEOUT_SECONDS": str(drain_timeout_seconds),
                "ECS_CONTAINER_STOP_TIMEOUT_SECONDS": str(stop_timeout),
                "LIVEKIT_MAX_JOBS": str(max_jobs),
                "LIVEKIT_DRAIN_TASK_PROTECTION": "true" if task_protection else "false",
            }
        )
        livekit = agent_server.livekit
        environ.update(IMAGE_ENVIRONMENT)
        environ.update(
            {
                "LIVEKIT_URL": agent_server.url,
                # ECS injects these from Secrets Manager (the task definition's `secrets`).
                "LIVEKIT_API_KEY": livekit.api_key,
                "LIVEKIT_API_SECRET": livekit.api_secret,
                "LIVEKIT_HEALTH_PORT": str(self.health_port),
                "LIVEKIT_AGENT_ENTRYPOINT": ENTRYPOINT,
                "PYTHONPATH": _worker_pythonpath(),
                "PATH": os.environ.get("PATH", ""),
                "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 - only where HOME is unset
            }
        )
        environ.update(ecs_environ or {})
        environ.update(extra_environ or {})
        self.environ = environ
        self.process: subprocess.Popen[bytes] | None = None
        self.worker_id: str | None = None
        self.started_at: float | None = None
        self.signalled_at: list[float] = []
        self.exited_at: float | None = None
        self._log: IO[bytes] | None = None

    @property
    def argv(self) -> list[str]:
        # `python` in the image is the interpreter that has livekit-agents: here, this one.
        return [sys.executable, *IMAGE_ARGV[1:]]

    def start(self, *, register_timeout_seconds: float = 60.0) -> WorkerSnapshot:
        """Start the process and wait until it registers; returns the registration."""
        known = {w.worker_id for w in self.agent_server.workers()}
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv
            self.argv,
            env=self.environ,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(_REPO),
        )

        def registered(server: LocalAgentServer) -> bool:
            return any(w.worker_id not in known for w in server.workers()) or self.process_exited()

        self.agent_server.wait_for(registered, register_timeout_seconds)
        fresh = [w for w in self.agent_server.workers() if w.worker_id not in known]
        if not fresh:
            raise RealWorkerError(f"the worker did not register; its output:\n{self.output()}")
        self.worker_id = fresh[0].worker_id
        return fresh[0]

    def snapshot(self) -> WorkerSnapshot:
        worker_id = self.worker_id
        found = next((w for w in self.agent_server.workers() if w.worker_id == worker_id), None)
        if found is None:
            raise RealWorkerError("the worker is not registered")
        return found

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """What the init process does with the SIGTERM ECS sends: pass it to the worker."""
        assert self.process is not None
        self.signalled_at.append(time.monotonic())
        self.process.send_signal(signum)

    def process_exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def wait(self, timeout_seconds: float) -> int:
        """The exit code; ends the jobs' agents in their rooms, as their connections drop."""
        assert self.process is not None
        try:
            code = self.process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired as error:
            raise RealWorkerError(f"the worker did not exit in {timeout_seconds} s") from error
        if self.exited_at is None:
            self.exited_at = time.monotonic()
            if self.worker_id is not None:
                self.agent_server.end_jobs_of(self.worker_id)
        return code

    def output(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def close(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        if process is not None:
            # Job processes outlive a worker killed at once; they are in its session.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> RealWorker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
