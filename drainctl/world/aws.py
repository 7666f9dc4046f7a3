"""The local AWS of the world: moto in server mode, reached over real HTTP by boto3.

moto 5 has no `CompleteLifecycleAction` nor `RecordLifecycleActionHeartbeat`, and terminates an
instance at once even when a terminate lifecycle hook should hold it. `LocalAws` adds both
actions and the `Terminating:Wait` state to moto's Auto Scaling while it runs, with AWS's rules:
a fresh token per action, heartbeat and global timeouts on the virtual clock, the hook's
DefaultResult on a timeout, and `ValidationError` once an action is gone. It hands the
EventBridge event AWS would send to the world's `on_event` callback.

moto keeps a warm pool's configuration only. Here a group whose warm pool has
`InstanceReusePolicy.ReuseOnScaleIn` sends a scaled-in instance back to the pool (its terminate
hook waits in `Warmed:Pending:Wait`, the action's `Destination` is `WarmPool`; once every hook
has ended the instance is stopped and rests in `Warmed:<PoolState>`), and a scale-out takes
instances from the pool first (`Origin: WarmPool`), the same instance ids, before launching new
ones. A launch hook holds every launch in `Pending:Wait` with a launch action of its own.
https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-warm-pools.html
https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html
Not modelled: the pool's own pre-launched instances (MinSize, MaxGroupPreparedCapacity): it
holds only what scale-ins gave back.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import socket
import threading
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final, Self

import boto3
import moto.ec2.models.instances as ec2_instances
import moto.sqs.models as sqs_models
from botocore.config import Config
from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import (
    AutoScalingBackend,
    FakeAutoScalingGroup,
    InstanceState,
    LifecycleHook,
    TerminateInstanceActivity,
    autoscaling_backends,
)
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult, EmptyResult
from moto.ec2.exceptions import InvalidInstanceIdError
from moto.ec2.utils import random_instance_id as moto_random_instance_id
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import ThreadedWSGIServer

from drainctl.world import moto_speed
from drainctl.world.clock import VirtualClock

# Alarms in moto's CloudFormation (drainctl status and alarms test read stacks through it). Its
# parser needs moto's server extras, which the demo's lean install (the `demo` extra) leaves out;
# the demo creates no stack.
with contextlib.suppress(ImportError):
    from drainctl.world import cloudformation_alarms  # noqa: F401
from drainctl.world.lifecycle_actions import (
    EC2,
    GROUP,
    IN_SERVICE,
    LAUNCHING,
    PENDING_PROCEED,
    PENDING_WAIT,
    PROCEED,
    TERMINATED,
    TERMINATING,
    WAIT,
    WARM_POOL,
    WARMED_PENDING_PROCEED,
    WARMED_PENDING_WAIT,
    LifecycleAction,
    LifecycleActionEnd,
    LifecycleActionLog,
    LifecycleActionResult,
    NoActiveLifecycleActionError,
    global_timeout_for,
    warmed,
)

logger = logging.getLogger(__name__)

REGION: Final = "us-east-1"
ACCOUNT_ID: Final = "123456789012"  # moto's default account, reached with any dummy key
_DUMMY_KEY: Final = "testing"
_MOTO_ACCOUNT_ENV: Final = "MOTO_ACCOUNT_ID"  # moto.core.responses.BaseResponse.get_current_account

_INSTANCE_ID = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
_IN_SERVICE: Final = "InService"
_TERMINABLE_STATES: Final = (_IN_SERVICE, "Standby")

EventSink = Callable[[dict[str, Any]], None]
# An EC2 instance of a group stopped (False: into a warm pool) or started again (True: out of it).
HostSink = Callable[[str, bool], None]
_DETAIL_TYPES: Final = {
    TERMINATING: "EC2 Instance-terminate Lifecycle Action",
    LAUNCHING: "EC2 Instance-launch Lifecycle Action",
}
# Wraps the serving of each request (the world's virtual latency); None: served as is.
# Answers a request before moto sees it (the world's rate limits): (status, headers, body), or None.
RequestGate = Callable[[dict[str, Any]], tuple[int, list[tuple[str, str]], bytes] | None]


class LocalAwsError(Exception):
    """The local AWS could not start, stop or build what was asked."""


@dataclass(frozen=True)
class TerminateHook:
    """An `autoscaling:EC2_INSTANCE_TERMINATING` hook, as `create_group_with_instances` puts it."""

    name: str = "livekit-drain-terminate"
    heartbeat_timeout: int = 300
    default_result: LifecycleActionResult = "CONTINUE"
    notification_metadata: str = ""


def _iso8601(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_result(value: str) -> LifecycleActionResult:
    if value == "CONTINUE":
        return "CONTINUE"
    if value == "ABANDON":
        return "ABANDON"
    raise ValidationError(f"Lifecycle action result {value} must be CONTINUE or ABANDON")


def _log_keys(action: LifecycleAction) -> dict[str, str]:
    return {
        "asgName": action.group_name,
        "lifecycleHookName": action.hook_name,
        "lifecycleActionToken": action.token,
        "instanceID": action.instance_id,
    }


class _Patch:
    """Attributes set on moto's classes and modules, and how to put the originals back."""

    _MISSING: Final = object()

    def __init__(self) -> None:
        self._saved: list[tuple[object, str, object]] = []

    def set(self, owner: object, name: str, value: object) -> None:
        # vars(), not getattr(): restore exactly what the owner itself held.
        self._saved.append((owner, name, vars(owner).get(name, self._MISSING)))
        setattr(owner, name, value)

    def undo(self) -> None:
        while self._saved:
            owner, name, original = self._saved.pop()
            if original is self._MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


class _RequestHandler(MotoRequestHandler):
    """moto's handler on kept-alive connections, with one debug line per request instead of
    werkzeug's stderr line.

    werkzeug's development server answers every request with `Connection: close` (it cannot
    drain an unread body before the next request line), so each request of boto3 would open a
    TCP connection and a server thread of its own, and wait for the server's read-out of the
    closed socket. Here the request's body is read whole before the app sees it and the answer
    goes out whole with its `Content-Length` (one write, Nagle off): the connection stays open
    for the client's next request, as AWS's endpoints keep theirs."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024  # status line, headers and body in one send

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("local aws request", extra={"request": self.requestline, "status": code})

    def setup(self) -> None:
        super().setup()
        _open_connections(self.server).add(self.connection)

    def finish(self) -> None:
        _open_connections(self.server).discard(self.connection)
        super().finish()

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
        environ = self.make_environ()
        # The whole body now (dechunked if need be): nothing of it is left for the next request.
        if environ.get("wsgi.input_terminated"):
            body = environ["wsgi.input"].read()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("wsgi.input_terminated", None)
        answer: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer[:] = [status, headers]
            return chunks.append

        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            logger.exception("local aws request failed", extra={"request": self.requestline})
            answer[:] = ["500 Internal Server Error", [("Content-Type", "text/plain")]]
            chunks[:] = [b"Internal Server Error"]
        status, headers = answer
        payload = b"".join(chunks)
        code, _, phrase = str(status).partition(" ")
        self.send_response(int(code), phrase)
        head = self.command == "HEAD"
        for key, value in headers:
            if key.lower() in _HOP_BY_HOP or (key.lower() == "content-length" and not head):
                continue
            self.send_header(key, value)
        if not head:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and not head:
            self.wfile.write(payload)


_HOP_BY_HOP: Final = frozenset({"connection", "keep-alive", "transfer-encoding"})


def _open_connections(server: Any) -> set[Any]:
    connections: set[Any] = server.open_connections
    return connections


class _MotoHttpServer:
    """moto's server app on 127.0.0.1, an ephemeral port, in a daemon thread.

    What moto's ThreadedMotoServer does, with a short poll interval (its stop() waits up to
    half a second, and tests start a world each) and connections kept alive (`_RequestHandler`):
    a thread per connection, not per request.
    """

    _POLL_SECONDS: Final = 0.05

    def __init__(
        self,
        request_gate: Callable[[], RequestGate | None] = lambda: None,
    ) -> None:
        moto_app = DomainDispatcherApplication(create_backend_app)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            gate = request_gate()
            if gate is not None:
                answer = gate(environ)
                if answer is not None:
                    status, headers, body = answer
                    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
                    return [body]
            return moto_app(environ, start_response)

        self._server = ThreadedWSGIServer("127.0.0.1", 0, app, handler=_RequestHandler)
        self._server.open_connections = set()  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": self._POLL_SECONDS},
            name="local-aws",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        # The connections clients keep open: their threads wait for a next request that will
        # not come.
        for connection in list(_open_connections(self._server)):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


_session_lock = threading.Lock()
_session: Any = None  # boto3's Session, typed loosely: services here are plain strings


def _new_client(service: str, endpoint_url: str, region: str) -> Any:
    # One session for the process: loading botocore's service models is the slow part.
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session(
                aws_access_key_id=_DUMMY_KEY, aws_secret_access_key=_DUMMY_KEY, region_name=REGION
            )
        # One attempt: a local error is a bug to see at once, not a blip to retry.
        config = Config(retries={"mode": "standard", "total_max_attempts": 1})
        return _session.client(service, endpoint_url=endpoint_url, region_name=region, config=config)


# moto's backends are process-wide, so one extension at a time.
_install_lock = threading.Lock()
_installed: _LifecycleExtension | None = None


class _LifecycleExtension:
    """Lifecycle actions inside moto's Auto Scaling, for as long as it is installed."""

    def __init__(self, clock: VirtualClock, log: LifecycleActionLog, sink: EventSink) -> None:
        self._clock = clock
        self._log = log
        self._sink = sink
        # One Auto Scaling request, or one expiry sweep, at a time: the server is threaded.
        self._lock = threading.RLock()
        self._backends: dict[str, AutoScalingBackend] = {}
        self._outbox: deque[dict[str, Any]] = deque()
        self._force_deleting: set[str] = set()
        self._chosen_ids: deque[str] = deque()
        self._chosen_tokens: deque[str] = deque()
        self._ids_lock = threading.Lock()
        self._patch = _Patch()
        # group name -> instance ids resting in its warm pool, oldest first
        self.pools: dict[str, list[str]] = {}
        self.on_host: HostSink | None = None

    # -- install / uninstall ----------------------------------------------------------------------

    def install(self) -> None:
        global _installed
        with _install_lock:
            if _installed is not None:
                raise LocalAwsError("another local AWS is running in this process; stop it first")
            _installed = self
        self._patch_responses()
        self._patch_models()
        moto_speed.install(self._patch.set)

    def uninstall(self) -> None:
        global _installed
        self._patch.undo()
        with _install_lock:
            if _installed is self:
                _installed = None

    def _patch_responses(self) -> None:
        ext = self
        original_call_action = AutoScalingResponse.call_action
        original_put_hook = AutoScalingResponse.put_lifecycle_hook
        original_delete_hook = AutoScalingResponse.delete_lifecycle_hook
        original_describe_warm_pool = AutoScalingResponse.describe_warm_pool

        def call_action(response: AutoScalingResponse) -> Any:
            with ext._lock:
                ext._expire(ext._clock.now())
                result = original_call_action(response)
            ext._deliver()
            return result

        def complete_lifecycle_action(response: AutoScalingResponse) -> ActionResult:
            return ext._complete(response)

        def record_lifecycle_action_heartbeat(response: AutoScalingResponse) -> ActionResult:
            return ext._heartbeat(response)

        def put_lifecycle_hook(response: AutoScalingResponse) -> ActionResult:
            return ext._put_hook(response, original_put_hook)

        def delete_lifecycle_hook(response: AutoScalingResponse) -> ActionResult:
            return ext._delete_hook(response, original_delete_hook)

        def describe_warm_pool(response: AutoScalingResponse) -> ActionResult:
            return ext._describe_warm_pool(response, original_describe_warm_pool)

        # moto finds an action by the plain functions of the response class.
        for function in (
            call_action,
            complete_lifecycle_action,
            record_lifecycle_action_heartbeat,
            put_lifecycle_hook,
            delete_lifecycle_hook,
            describe_warm_pool,
        ):
            self._patch.set(AutoScalingResponse, function.__name__, function)

    def _patch_models(self) -> None:
        ext = self
        original_set_desired = FakeAutoScalingGroup.set_desired_capacity
        original_terminate = AutoScalingBackend.terminate_instance
        original_delete_group = AutoScalingBackend.delete_auto_scaling_group

        def set_desired_capacity(group: FakeAutoScalingGroup, new_capacity: int | None) -> None:
            ext._set_desired_capacity(group, new_capacity, original_set_desired)

        def terminate_instance(
            backend: AutoScalingBackend, instance_id: str, should_decrement: bool
        ) -> TerminateInstanceActivity:
            return ext._terminate_instance(backend, instance_id, should_decrement, original_terminate)

        def delete_auto_scaling_group(backend: AutoScalingBackend, group_name: str) -> None:
            ext._delete_group(backend, group_name, original_delete_group)

        def random_instance_id() -> str:
            with ext._ids_lock:
                if ext._chosen_ids:
                    return ext._chosen_ids.popleft()
            return moto_random_instance_id()

        self._patch.set(FakeAutoScalingGroup, "set_desired_capacity", set_desired_capacity)
        self._patch.set(AutoScalingBackend, "terminate_instance", terminate_instance)
        self._patch.set(AutoScalingBackend, "delete_auto_scaling_group", delete_auto_scaling_group)
        self._patch.set(ec2_instances, "random_instance_id", random_instance_id)
        # SQS's timers (visibility timeout, delays, retention, long polling) on the virtual clock:
        # a message a timed-out invocation held comes back when the world's clock says so.
        self._patch.set(sqs_models, "unix_time", lambda *_: ext._clock.now())
        self._patch.set(sqs_models, "unix_time_millis", lambda *_: ext._clock.now() * 1000.0)

    # -- chosen instance ids -----------------------------------------------------------------------

    @contextlib.contextmanager
    def chosen_instance_ids(self, instance_ids: Sequence[str]) -> Iterator[None]:
        """The next instances moto creates take these ids, in this order."""
        with self._ids_lock:
            self._chosen_ids.extend(instance_ids)
        try:
            yield
        finally:
            with self._ids_lock:
                unused = list(self._chosen_ids)
                self._chosen_ids.clear()
        if unused:
            raise LocalAwsError(f"instances were not launched for the ids {unused}")

    @contextlib.contextmanager
    def chosen_tokens(self, tokens: Sequence[str]) -> Iterator[None]:
        """The next lifecycle actions take these tokens (a replayed event's), in this order."""
        with self._ids_lock:
            self._chosen_tokens.extend(tokens)
        try:
            yield
        finally:
            with self._ids_lock:
                unused = list(self._chosen_tokens)
                self._chosen_tokens.clear()
        if unused:
            raise LocalAwsError(f"no lifecycle action was opened for the tokens {unused}")

    def _next_token(self) -> str:
        with self._ids_lock:
            if self._chosen_tokens:
                return self._chosen_tokens.popleft()
        return str(uuid.uuid4())

    # -- expiry and events ------------------------------------------------------------------------

    def expire_due(self) -> list[LifecycleAction]:
        with self._lock:
            ended = self._expire(self._clock.now())
        self._deliver()
        return ended

    def _expire(self, now: float) -> list[LifecycleAction]:
        ended = []
        for action in self._log.due(now):
            ended_by, at = action.expiry()
            ended.append(self._proceed(action, ended_by, action.default_result, at))
        return ended

    def _deliver(self) -> None:
        # Outside the lock: the callback may call the local AWS again, from any thread.
        while True:
            try:
                event = self._outbox.popleft()
            except IndexError:
                return
            try:
                self._sink(event)
            except Exception:
                # EventBridge delivery never fails the API call that caused the event.
                logger.exception("event delivery failed", extra={"detailType": event["detail-type"]})

    # -- the lifecycle of a held instance --------------------------------------------------------

    def _terminate_hook(self, backend: AutoScalingBackend, group_name: str) -> LifecycleHook | None:
        hooks = self._terminate_hooks(backend, group_name)
        return hooks[0] if hooks else None

    def _terminate_hooks(self, backend: AutoScalingBackend, group_name: str) -> list[LifecycleHook]:
        """Every terminate hook of the group, in the order they were put (ours, and e.g. ECS
        managed draining's `ecs-managed-draining-termination-hook`)."""
        return self._hooks(backend, group_name, TERMINATING)

    def _hooks(self, backend: AutoScalingBackend, group_name: str, transition: str) -> list[LifecycleHook]:
        return [
            hook
            for hook in backend.lifecycle_hooks.values()
            if hook.auto_scaling_group_name == group_name and hook.lifecycle_transition == transition
        ]

    @staticmethod
    def _reuses_on_scale_in(group: FakeAutoScalingGroup) -> bool:
        """The group's warm pool takes scaled-in instances back (InstanceReusePolicy)."""
        pool = group.warm_pool
        policy = (pool.instance_reuse_policy if pool is not None else None) or {}
        return str(policy.get("ReuseOnScaleIn", "false")).lower() == "true"

    def _hold_all(
        self, backend: AutoScalingBackend, group: FakeAutoScalingGroup, state: InstanceState
    ) -> None:
        """One lifecycle action per terminate hook, each with its own token and event: the
        instance stays in Terminating:Wait until every one of them has ended, in any order.
        https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks-overview.html
        Going back to a warm pool (ReuseOnScaleIn) it waits in Warmed:Pending:Wait instead, and
        the actions' Destination is WarmPool."""
        to_pool = self._reuses_on_scale_in(group)
        for hook in self._terminate_hooks(backend, group.name):
            self._hold(
                backend,
                group,
                hook,
                state,
                destination=WARM_POOL if to_pool else EC2,
                wait_state=WARMED_PENDING_WAIT if to_pool else WAIT,
            )

    def _hold(
        self,
        backend: AutoScalingBackend,
        group: FakeAutoScalingGroup,
        hook: LifecycleHook,
        state: InstanceState,
        *,
        origin: str = GROUP,
        destination: str = EC2,
        wait_state: str = WAIT,
    ) -> LifecycleAction:
        """Put an instance in the hook's wait state, open its action and queue the event."""
        now = self._clock.now()
        token = self._next_token()
        transition = str(hook.lifecycle_transition)
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": _DETAIL_TYPES[transition],
            "source": "aws.autoscaling",
            "account": backend.account_id,
            "time": _iso8601(now),
            "region": backend.region_name,
            "resources": [group.arn],
            "detail": {
                "LifecycleActionToken": token,
                "AutoScalingGroupName": group.name,
                "LifecycleHookName": hook.name,
                "EC2InstanceId": state.instance.id,
                "LifecycleTransition": transition,
                "NotificationMetadata": getattr(hook, "notification_metadata", None) or "",
                "Origin": origin,
                "Destination": destination,
            },
        }
        state.lifecycle_state = wait_state
        action = self._log.start(
            token=token,
            group_name=group.name,
            hook_name=hook.name,
            instance_id=state.instance.id,
            transition=transition,
            heartbeat_timeout=int(hook.heartbeat_timeout),
            default_result=_as_result(hook.default_result),
            now=now,
            event=event,
            origin=origin,
            destination=destination,
            wait_state=wait_state,
        )
        self._backends[token] = backend
        self._outbox.append(event)
        logger.info("lifecycle action started", extra=_log_keys(action))
        return action

    def _proceed(
        self,
        action: LifecycleAction,
        ended_by: LifecycleActionEnd,
        result: LifecycleActionResult | None,
        at: float,
    ) -> LifecycleAction:
        """End the action; for a terminate hook every result terminates the instance, once the
        instance's actions under the group's other terminate hooks have ended too."""
        ended = self._log.end(action.token, ended_by=ended_by, at=at, result=result)
        # An action opened in the log directly (a test's scale helper) has no backend recorded:
        # it belongs to the one account and Region the local world runs.
        backend = self._backends.pop(action.token, None) or autoscaling_backends[ACCOUNT_ID][REGION]
        if any(
            a.instance_id == action.instance_id and a.transition == action.transition
            for a in self._log.open_actions()
        ):
            logger.info(
                "lifecycle action ended; another hook still holds the instance",
                extra={**_log_keys(ended), "endedBy": ended_by, "result": result},
            )
            return ended
        group = backend.autoscaling_groups.get(action.group_name)
        if action.transition == LAUNCHING:
            self._launched(backend, group, ended)
            return ended
        if action.destination == WARM_POOL and group is not None:
            self._to_warm_pool(backend, group, ended)
            return ended
        self._log.set_state(action.instance_id, PROCEED)
        if group is not None:
            for state in group.instance_states:
                if state.instance.id == action.instance_id:
                    state.lifecycle_state = PROCEED
            group.instance_states = [s for s in group.instance_states if s.instance.id != action.instance_id]
        with contextlib.suppress(InvalidInstanceIdError):  # already gone from EC2
            backend.ec2_backend.terminate_instances([action.instance_id])
        self._log.set_state(action.instance_id, TERMINATED)
        if group is not None:
            backend.update_attached_elbs(group.name)
        logger.info(
            "lifecycle action ended",
            extra={**_log_keys(ended), "endedBy": ended_by, "result": result},
        )
        return ended

    # -- warm pools and launches -------------------------------------------------------------------

    def _to_warm_pool(
        self, backend: AutoScalingBackend, group: FakeAutoScalingGroup, action: LifecycleAction
    ) -> None:
        """Every terminate hook has ended: Warmed:Pending:Proceed, then the instance is stopped
        (PoolState Stopped; Running stays running) and rests in the pool, out of the group.
        Whatever the result: the reuse policy, not CONTINUE or ABANDON, decides where it goes."""
        instance_id = action.instance_id
        self._log.set_state(instance_id, WARMED_PENDING_PROCEED)
        group.instance_states = [s for s in group.instance_states if s.instance.id != instance_id]
        pool_state = group.warm_pool.pool_state if group.warm_pool is not None else "Stopped"
        if pool_state != "Running":
            with contextlib.suppress(InvalidInstanceIdError):
                backend.ec2_backend.stop_instances([instance_id])
            self._host_changed(instance_id, running=False)
        self.pools.setdefault(group.name, []).append(instance_id)
        self._log.set_state(instance_id, warmed(pool_state))
        backend.update_attached_elbs(group.name)
        logger.info(
            "lifecycle action ended; instance back in the warm pool",
            extra={**_log_keys(action), "endedBy": action.ended_by, "poolState": pool_state},
        )

    def _from_warm_pool(
        self, backend: AutoScalingBackend, group: FakeAutoScalingGroup, instance_id: str
    ) -> None:
        """Scale-out from the pool: the same instance, started, back in the group (Origin
        WarmPool, Destination AutoScalingGroup), held in Pending:Wait by any launch hook."""
        self.pools[group.name].remove(instance_id)
        instance = backend.ec2_backend.get_instance(instance_id)
        with contextlib.suppress(InvalidInstanceIdError):
            backend.ec2_backend.start_instances([instance_id])
        self._host_changed(instance_id, running=True)
        state = InstanceState(instance, autoscaling_group=group)
        group.instance_states.append(state)
        self._admit(backend, group, state, origin=WARM_POOL)

    def _admit(
        self, backend: AutoScalingBackend, group: FakeAutoScalingGroup, state: InstanceState, *, origin: str
    ) -> None:
        """A launch into the group: Pending:Wait under each launch hook, else InService at once."""
        hooks = self._hooks(backend, group.name, LAUNCHING)
        if not hooks:
            state.lifecycle_state = IN_SERVICE
            self._log.set_state(state.instance.id, IN_SERVICE)
            return
        for hook in hooks:
            self._hold(backend, group, hook, state, origin=origin, destination=GROUP, wait_state=PENDING_WAIT)

    def _launched(
        self, backend: AutoScalingBackend, group: FakeAutoScalingGroup | None, action: LifecycleAction
    ) -> None:
        """Every launch hook has ended: CONTINUE puts the instance in service; ABANDON
        terminates it (https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks-overview.html)."""
        instance_id = action.instance_id
        states = [s for s in (group.instance_states if group else []) if s.instance.id == instance_id]
        if action.result == "ABANDON" or group is None:
            if group is not None:
                group.instance_states = [s for s in group.instance_states if s.instance.id != instance_id]
            with contextlib.suppress(InvalidInstanceIdError):
                backend.ec2_backend.terminate_instances([instance_id])
            self._log.set_state(instance_id, TERMINATED)
        else:
            self._log.set_state(instance_id, PENDING_PROCEED)
            for state in states:
                state.lifecycle_state = IN_SERVICE
            self._log.set_state(instance_id, IN_SERVICE)
        logger.info(
            "launch lifecycle action ended",
            extra={**_log_keys(action), "endedBy": action.ended_by, "result": action.result},
        )

    def _host_changed(self, instance_id: str, *, running: bool) -> None:
        if self.on_host is not None:
            self.on_host(instance_id, running)

    # -- moto behaviours replaced ------------------------------------------------------------------

    def _set_desired_capacity(
        self,
        group: FakeAutoScalingGroup,
        new_capacity: int | None,
        original: Callable[[FakeAutoScalingGroup, int | None], None],
    ) -> None:
        backend = group.autoscaling_backend
        hook = self._terminate_hook(backend, group.name)
        weighted = bool(
            group.mixed_instances_policy
            and group.mixed_instances_policy.get("LaunchTemplate", {}).get("Overrides")
        )
        if hook is None or weighted or group.name in self._force_deleting:
            # Weighted mixed-instance groups keep moto's capacity arithmetic (and no hook).
            original(group, new_capacity)
            return
        group.desired_capacity = group.min_size if new_capacity is None else new_capacity
        # InService instances count, and those launching (Pending:Wait under a launch hook):
        # one held in Terminating:Wait is already leaving.
        in_service = group.active_instances()
        launching = [s for s in group.instance_states if s.lifecycle_state in (PENDING_WAIT, PENDING_PROCEED)]
        missing = (group.desired_capacity or 0) - len(in_service) - len(launching)
        if missing > 0:
            # A warm pool is drawn on first, oldest instance first; then new instances.
            for instance_id in list(self.pools.get(group.name, []))[:missing]:
                self._from_warm_pool(backend, group, instance_id)
                missing -= 1
        if missing > 0:
            before = {s.instance.id for s in group.instance_states}
            group.replace_autoscaling_group_instances(missing, group.get_propagated_tags())
            for state in [s for s in group.instance_states if s.instance.id not in before]:
                self._admit(backend, group, state, origin=EC2)
        elif missing < 0:
            leaving = [s for s in in_service if not s.protected_from_scale_in][:-missing]
            for state in leaving:
                self._hold_all(backend, group, state)
        if group.name in backend.autoscaling_groups:
            backend.update_attached_elbs(group.name)
            backend.update_attached_target_groups(group.name)

    def _terminate_instance(
        self,
        backend: AutoScalingBackend,
        instance_id: str,
        should_decrement: bool,
        original: Callable[[AutoScalingBackend, str, bool], TerminateInstanceActivity],
    ) -> TerminateInstanceActivity:
        found = [
            (group, state)
            for group in backend.autoscaling_groups.values()
            for state in group.instance_states
            if state.instance.id == instance_id
        ]
        if not found:
            raise ValidationError(
                f"Instance Id not found - No managed instance found for instance ID: {instance_id}"
            )
        group, state = found[0]
        hook = self._terminate_hook(backend, group.name)
        if hook is None:
            return original(backend, instance_id, should_decrement)
        if state.lifecycle_state not in _TERMINABLE_STATES:
            raise ValidationError(
                f"The instance {instance_id} is in state {state.lifecycle_state} and cannot be terminated"
            )
        original_size = group.desired_capacity
        if should_decrement:
            if (original_size or 0) <= (group.min_size or 0):
                raise ValidationError(
                    f"Currently, desiredSize equals minSize ({group.min_size}). Terminating"
                    " instance without replacement will violate group's min size constraint."
                    " Either set shouldDecrementDesiredCapacity flag to false or lower"
                    " group's min size."
                )
            group.desired_capacity = (original_size or 0) - 1
        self._hold_all(backend, group, state)
        # Launches the replacement when the capacity was not decremented.
        group.set_desired_capacity(group.desired_capacity)
        return TerminateInstanceActivity(state.instance, original_size or 0)

    def _delete_group(
        self,
        backend: AutoScalingBackend,
        group_name: str,
        original: Callable[[AutoScalingBackend, str], None],
    ) -> None:
        # Deleting a group ends its hooks' waits: the instances go with it.
        now = self._clock.now()
        for action in self._log.open_actions():
            if action.group_name == group_name and self._backends.get(action.token) is backend:
                self._proceed(action, "group_deleted", None, now)
        self._force_deleting.add(group_name)
        try:
            original(backend, group_name)
        finally:
            self._force_deleting.discard(group_name)

    # -- the two actions moto lacks ----------------------------------------------------------------

    def _find_open(self, response: AutoScalingResponse) -> LifecycleAction:
        try:
            return self._log.find_open(
                group_name=response._get_param("AutoScalingGroupName"),
                hook_name=response._get_param("LifecycleHookName"),
                token=response._get_param("LifecycleActionToken"),
                instance_id=response._get_param("InstanceId"),
            )
        except NoActiveLifecycleActionError as error:
            raise ValidationError(str(error)) from error

    def _complete(self, response: AutoScalingResponse) -> ActionResult:
        result = _as_result(str(response._get_param("LifecycleActionResult")))
        action = self._find_open(response)
        self._proceed(action, result, result, self._clock.now())
        return EmptyResult()

    def _heartbeat(self, response: AutoScalingResponse) -> ActionResult:
        action = self._find_open(response)
        updated = self._log.record_heartbeat(action.token, self._clock.now())
        logger.info(
            "lifecycle action heartbeat",
            extra={**_log_keys(updated), "heartbeatDeadline": updated.heartbeat_deadline},
        )
        return EmptyResult()

    def _put_hook(
        self,
        response: AutoScalingResponse,
        original: Callable[[AutoScalingResponse], ActionResult],
    ) -> ActionResult:
        timeout = response._get_int_param("HeartbeatTimeout")
        if timeout is not None and not 30 <= timeout <= 7200:
            raise ValidationError(
                f"Heartbeat timeout {timeout} is out of range: it must be between 30 and 7200"
            )
        default_result = response._get_param("DefaultResult")
        if default_result is not None:
            _as_result(default_result)
        answer = original(response)
        group_name = response._get_param("AutoScalingGroupName")
        hook_name = response._get_param("LifecycleHookName")
        hook = response.autoscaling_backend.lifecycle_hooks[f"{group_name}_{hook_name}"]
        # moto keeps neither the metadata nor the real targets, and a fixed 48 h global timeout.
        hook.notification_metadata = response._get_param("NotificationMetadata")  # type: ignore[attr-defined]
        hook.notification_target_arn = response._get_param("NotificationTargetARN")
        hook.role_arn = response._get_param("RoleARN")
        hook.global_timeout = global_timeout_for(int(hook.heartbeat_timeout))
        return answer

    def _describe_warm_pool(
        self,
        response: AutoScalingResponse,
        original: Callable[[AutoScalingResponse], ActionResult],
    ) -> ActionResult:
        """moto lists no instance in a warm pool: these are the ones resting in it."""
        group_name = response._get_param("AutoScalingGroupName")
        pool = response.autoscaling_backend.describe_warm_pool(group_name=group_name)
        if pool is None:
            return original(response)
        ec2 = response.autoscaling_backend.ec2_backend
        instances = []
        for instance_id in self.pools.get(group_name, []):
            instance = ec2.get_instance(instance_id)
            instances.append(
                {
                    "InstanceId": instance_id,
                    "InstanceType": instance.instance_type,
                    "AvailabilityZone": instance.placement.zone,
                    "LifecycleState": self._log.state_of(instance_id),
                    "HealthStatus": "Healthy",
                }
            )
        return ActionResult({"WarmPoolConfiguration": pool, "Instances": instances})

    def _delete_hook(
        self,
        response: AutoScalingResponse,
        original: Callable[[AutoScalingResponse], ActionResult],
    ) -> ActionResult:
        # AWS first completes the hook's open actions, with CONTINUE for a terminate hook.
        group_name = response._get_param("AutoScalingGroupName")
        hook_name = response._get_param("LifecycleHookName")
        now = self._clock.now()
        for action in self._log.open_actions():
            if action.group_name == group_name and action.hook_name == hook_name:
                self._proceed(action, "CONTINUE", "CONTINUE", now)
        return original(response)


class LocalAws:
    """moto on 127.0.0.1 (ephemeral port) with lifecycle actions; one running per process.

    `region` and `account` are where the world's resources live (moto serves any): the region its
    clients sign for, the account moto answers as (`MOTO_ACCOUNT_ID`, read by moto's server on
    every request, set while this one runs).
    """

    def __init__(
        self,
        clock: VirtualClock,
        on_event: EventSink | None = None,
        *,
        region: str = REGION,
        account: str = ACCOUNT_ID,
    ) -> None:
        self.clock = clock
        self.region = region
        self.account = account
        self._saved_account: str | None = None
        self.lifecycle = LifecycleActionLog()
        self._on_event = on_event
        self._extension = _LifecycleExtension(clock, self.lifecycle, self._emit)
        self._server: _MotoHttpServer | None = None
        self._endpoint_url: str | None = None
        self._clients: dict[str, Any] = {}
        self.request_gate: RequestGate | None = None

    # -- lifetime --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            raise LocalAwsError("the local AWS is already running")
        self._extension.install()
        self._saved_account = os.environ.get(_MOTO_ACCOUNT_ENV)
        os.environ[_MOTO_ACCOUNT_ENV] = self.account
        try:
            self._server = _MotoHttpServer(lambda: self.request_gate)
            self._endpoint_url = self._server.url
            # Another world may have run in this process before: start from nothing.
            self._reset_moto()
        except BaseException:
            self._shut_down()
            raise
        logger.info("local aws started", extra={"endpointUrl": self._endpoint_url})

    def stop(self) -> None:
        if self._server is None:
            return
        # moto's state stays until the next start resets it: resetting costs a tenth of a second.
        self._shut_down()
        logger.info("local aws stopped")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _shut_down(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None
        self._endpoint_url = None
        self._clients.clear()
        if self._saved_account is None:
            os.environ.pop(_MOTO_ACCOUNT_ENV, None)
        else:
            os.environ[_MOTO_ACCOUNT_ENV] = self._saved_account
        self._saved_account = None
        self._extension.uninstall()

    def _reset_moto(self) -> None:
        url = f"{self.endpoint_url}/moto-api/reset"
        request = urllib.request.Request(url, method="POST")  # noqa: S310 - always local http
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            if answer.status != 200:
                raise LocalAwsError(f"moto reset answered {answer.status}")

    # -- access ----------------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        if self._endpoint_url is None:
            raise LocalAwsError("the local AWS is not running")
        return self._endpoint_url

    def client(self, service: str) -> Any:
        """A boto3 client of the local AWS (dummy credentials, its region); one per service."""
        endpoint_url = self.endpoint_url
        if service not in self._clients:
            self._clients[service] = _new_client(service, endpoint_url, self.region)
        return self._clients[service]

    @property
    def on_host(self) -> HostSink | None:
        """Told when an instance of a group stops (into a warm pool) or starts (out of it)."""
        return self._extension.on_host

    @on_host.setter
    def on_host(self, sink: HostSink | None) -> None:
        self._extension.on_host = sink

    def warm_pool_instances(self, group_name: str) -> list[str]:
        """The instances resting in the group's warm pool, oldest first."""
        return list(self._extension.pools.get(group_name, []))

    def put_warm_pool(
        self, group_name: str, *, reuse_on_scale_in: bool = True, pool_state: str = "Stopped"
    ) -> None:
        """`PutWarmPool` over HTTP, with `InstanceReusePolicy.ReuseOnScaleIn` as given."""
        self.client("autoscaling").put_warm_pool(
            AutoScalingGroupName=group_name,
            PoolState=pool_state,
            InstanceReusePolicy={"ReuseOnScaleIn": reuse_on_scale_in},
        )

    def expire_due_actions(self) -> list[LifecycleAction]:
        """Apply every heartbeat or global timeout that has run out at the clock's now."""
        self._require_running()
        return self._extension.expire_due()

    # -- building a fleet ------------------------------------------------------------------------

    def create_group_with_instances(
        self,
        group_name: str,
        instance_ids: Sequence[str] | int,
        *,
        terminate_hook: TerminateHook | None = None,
        min_size: int = 0,
        max_size: int | None = None,
        image_id: str = "ami-0abcdef1234567890",
        instance_type: str = "c6i.xlarge",
        availability_zone: str | None = None,  # None: the region's first zone
        tags: Mapping[str, str] | None = None,
    ) -> list[str]:
        """A launch template and a group whose instances have exactly `instance_ids`.

        With a count instead of ids, moto picks the ids. Returns the ids in launch order.
        """
        self._require_running()
        chosen = None if isinstance(instance_ids, int) else list(instance_ids)
        count = instance_ids if isinstance(instance_ids, int) else len(instance_ids)
        if chosen is not None:
            self._check_new_instance_ids(chosen)
        if count < 0 or min_size > count:
            raise LocalAwsError(f"cannot launch {count} instances with a minimum of {min_size}")
        ec2 = self.client("ec2")
        autoscaling = self.client("autoscaling")
        template_name = f"{group_name}-template"
        ec2.create_launch_template(
            LaunchTemplateName=template_name,
            LaunchTemplateData={"ImageId": image_id, "InstanceType": instance_type},
        )
        group_tags = [
            {"Key": key, "Value": value, "PropagateAtLaunch": True} for key, value in (tags or {}).items()
        ]
        with self._extension.chosen_instance_ids(chosen or []):
            autoscaling.create_auto_scaling_group(
                AutoScalingGroupName=group_name,
                LaunchTemplate={"LaunchTemplateName": template_name},
                MinSize=min_size,
                MaxSize=max(count, max_size or 0),
                DesiredCapacity=count,
                AvailabilityZones=[availability_zone or f"{self.region}a"],
                Tags=group_tags,
            )
        if terminate_hook is not None:
            metadata = terminate_hook.notification_metadata
            autoscaling.put_lifecycle_hook(
                LifecycleHookName=terminate_hook.name,
                AutoScalingGroupName=group_name,
                LifecycleTransition=TERMINATING,
                HeartbeatTimeout=terminate_hook.heartbeat_timeout,
                DefaultResult=terminate_hook.default_result,
                # AWS refuses empty metadata; without any, events carry "".
                **({"NotificationMetadata": metadata} if metadata else {}),
            )
        groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])
        launched = [i["InstanceId"] for i in groups["AutoScalingGroups"][0]["Instances"]]
        if chosen is None:
            return launched
        if sorted(launched) != sorted(chosen):
            raise LocalAwsError(f"the group holds {launched}, not the chosen {chosen}")
        return chosen

    def terminate_instance(
        self,
        instance_id: str,
        *,
        should_decrement_desired_capacity: bool = True,
        lifecycle_action_token: str | None = None,
    ) -> LifecycleAction | None:
        """`TerminateInstanceInAutoScalingGroup` over HTTP, as a scale-in would.

        Returns the lifecycle action holding the instance, or None when its group has no
        terminate hook and it went at once. `lifecycle_action_token` gives the action a known
        token, so a replayed event's heartbeats and completion find it.
        """
        chosen = [] if lifecycle_action_token is None else [lifecycle_action_token]
        with self._extension.chosen_tokens(chosen):
            self.client("autoscaling").terminate_instance_in_auto_scaling_group(
                InstanceId=instance_id,
                ShouldDecrementDesiredCapacity=should_decrement_desired_capacity,
            )
        action = self.lifecycle.action_for(instance_id)
        return action if action is not None and action.is_open else None

    def _check_new_instance_ids(self, instance_ids: list[str]) -> None:
        malformed = [i for i in instance_ids if not _INSTANCE_ID.match(i)]
        if malformed:
            raise LocalAwsError(f"not EC2 instance ids: {malformed}")
        if len(set(instance_ids)) != len(instance_ids):
            raise LocalAwsError(f"instance ids repeat: {instance_ids}")
        reservations = self.client("ec2").describe_instances()["Reservations"]
        existing = {i["InstanceId"] for r in reservations for i in r["Instances"]}
        taken = sorted(existing.intersection(instance_ids))
        if taken:
            raise LocalAwsError(f"instance ids already in use: {taken}")

    # -- internals -------------------------------------------------------------------------------

    def _require_running(self) -> None:
        if self._server is None:
            raise LocalAwsError("the local AWS is not running")

    def _emit(self, event: dict[str, Any]) -> None:
        if self._on_event is not None:
            self._on_event(event)
