"""A local stand-in for the ECS agent's task metadata (v4) and task protection endpoints.

Real HTTP on 127.0.0.1 (an ephemeral port), served from a thread, so the worker's own clients
are exercised as they are on ECS:

    with LocalEcsEndpoints(task_arn=...) as ecs:
        read_task_metadata(ecs.environ())       # GET  {ECS_CONTAINER_METADATA_URI_V4}/task
        TaskProtectionClient(ecs.agent_uri)     # PUT  {ECS_AGENT_URI}/task-protection/v1/state

Answers follow the ECS agent's shapes; failures can be queued to test the error paths.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from livekit_drain_worker.protection import AGENT_URI_ENV, PROTECTION_PATH
from livekit_drain_worker.task_identity import METADATA_URI_ENV

EXAMPLE_TASK_ARN = "arn:aws:ecs:eu-west-1:123456789012:task/voice/0f9c2b7d4e1a4c3b8a6d5e4f3a2b1c0d"
CONTAINER_ID = "0f9c2b7d4e1a4c3b8a6d5e4f3a2b1c0d-1234567890"


@dataclass(frozen=True)
class CannedAnswer:
    status: int
    body: dict[str, Any]


@dataclass
class _State:
    task_arn: str
    launch_type: str
    container_name: str
    metadata_failures: deque[CannedAnswer] = field(default_factory=deque)
    protection_failures: deque[CannedAnswer] = field(default_factory=deque)
    protection_requests: list[dict[str, Any]] = field(default_factory=list)
    metadata_requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def task_document(task_arn: str, launch_type: str, container_name: str) -> dict[str, Any]:
    """A ``/task`` answer shaped like the ECS agent's, for a one-container task."""
    cluster = task_arn.split(":task/")[0] + ":cluster/" + task_arn.split("/")[-2]
    return {
        "Cluster": cluster,
        "TaskARN": task_arn,
        "Family": "voice-worker",
        "Revision": "7",
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "LaunchType": launch_type,
        "AvailabilityZone": "eu-west-1a",
        "Containers": [
            {
                "DockerId": CONTAINER_ID,
                "Name": container_name,
                "DockerName": f"ecs-voice-worker-7-{container_name}-a1b2c3d4e5f6",
                "Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/livekit-drain-worker:1",
                "Labels": {
                    "com.amazonaws.ecs.cluster": cluster,
                    "com.amazonaws.ecs.container-name": container_name,
                    "com.amazonaws.ecs.task-arn": task_arn,
                    "com.amazonaws.ecs.task-definition-family": "voice-worker",
                    "com.amazonaws.ecs.task-definition-version": "7",
                },
                "DesiredStatus": "RUNNING",
                "KnownStatus": "RUNNING",
                "Limits": {"CPU": 1024, "Memory": 2048},
                "Type": "NORMAL",
            }
        ],
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        if self.path.rstrip("/") != f"/v4/{CONTAINER_ID}/task":
            self._answer(404, {"error": f"no route {self.path}"})
            return
        with state.lock:
            state.metadata_requests += 1
            canned = state.metadata_failures.popleft() if state.metadata_failures else None
        if canned is not None:
            self._answer(canned.status, canned.body)
            return
        self._answer(200, task_document(state.task_arn, state.launch_type, state.container_name))

    def do_PUT(self) -> None:
        state = self.server.state
        if self.path != f"/api/{CONTAINER_ID}{PROTECTION_PATH}":
            self._answer(404, {"error": f"no route {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        with state.lock:
            state.protection_requests.append(request)
            canned = state.protection_failures.popleft() if state.protection_failures else None
        if canned is not None:
            self._answer(canned.status, canned.body)
            return
        enabled = bool(request.get("ProtectionEnabled"))
        protection: dict[str, Any] = {"ProtectionEnabled": enabled, "TaskArn": state.task_arn}
        if enabled:
            minutes = int(request.get("ExpiresInMinutes") or 120)  # ECS's default is 2 hours
            protection["ExpirationDate"] = (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()
        self._answer(200, {"protection": protection})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests read the recorded requests instead


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: _State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class LocalEcsEndpoints:
    def __init__(
        self,
        *,
        task_arn: str = EXAMPLE_TASK_ARN,
        launch_type: str = "EC2",
        container_name: str = "worker",
    ) -> None:
        self._state = _State(task_arn, launch_type, container_name)
        self._server = _Server(self._state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LocalEcsEndpoints:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def metadata_uri(self) -> str:
        return f"{self.base_url}/v4/{CONTAINER_ID}"

    @property
    def agent_uri(self) -> str:
        return f"{self.base_url}/api/{CONTAINER_ID}"

    def environ(self) -> dict[str, str]:
        """The variables the ECS agent sets in the container."""
        return {METADATA_URI_ENV: self.metadata_uri, AGENT_URI_ENV: self.agent_uri}

    @property
    def task_arn(self) -> str:
        return self._state.task_arn

    @property
    def protection_requests(self) -> list[dict[str, Any]]:
        with self._state.lock:
            return list(self._state.protection_requests)

    @property
    def metadata_requests(self) -> int:
        with self._state.lock:
            return self._state.metadata_requests

    def fail_metadata(self, status: int = 500, times: int = 1) -> None:
        with self._state.lock:
            for _ in range(times):
                self._state.metadata_failures.append(
                    CannedAnswer(status, {"error": "metadata temporarily unavailable"})
                )

    def fail_protection(self, answer: CannedAnswer) -> None:
        with self._state.lock:
            self._state.protection_failures.append(answer)


def protection_error(status: int, code: str, message: str) -> CannedAnswer:
    """An error answer of the agent's protection endpoint (ECS or the agent said no)."""
    return CannedAnswer(
        status,
        {
            "requestID": "8b1f5c2e-0000-4000-8000-000000000000",
            "error": {"Arn": EXAMPLE_TASK_ARN, "Code": code, "Message": message},
        },
    )


def protection_failure(reason: str) -> CannedAnswer:
    """ECS answering for the task with a failure: HTTP 200 and no protection."""
    return CannedAnswer(200, {"failure": {"Arn": EXAMPLE_TASK_ARN, "Detail": None, "Reason": reason}})
