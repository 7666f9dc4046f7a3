"""LiveKit's agent service as the local world serves it: the worker protocol over a WebSocket.

A LiveKit Agents worker (livekit-agents' `AgentServer`) dials ``$LIVEKIT_URL/agent`` and speaks
protobuf messages from livekit-protocol (``livekit.protocol.agent``): ``WorkerMessage`` up,
``ServerMessage`` down. This server answers as livekit-server does (livekit/livekit
``pkg/service/agentservice.go`` and ``pkg/agent/worker.go``):

- A request that is not a WebSocket upgrade is answered 404. The token (``Authorization:
  Bearer`` or ``?access_token=``) is checked like every LiveKit API call (`verify_access_token`:
  a bad, expired or foreign token is a plain-text 401); a valid token without the video grant
  ``agent: true`` is refused 401 too (``rtc.ErrPermissionDenied``).
- The worker's first message must be ``register`` (within 10 s, ``RegisterTimeout``); the answer
  is ``RegisterWorkerResponse{worker_id, server_info}``. ``ping`` is answered with ``pong`` at any
  time.
- ``update_worker`` sets the worker's status (``WS_AVAILABLE``/``WS_FULL``, kept when absent)
  and load. A worker is available from registration on until it says otherwise (the enum's
  zero value).
- A job request (`dispatch`) picks, among the registered workers of the job's agent name that
  report ``WS_AVAILABLE``, the one with running jobs and the highest load, else the first
  (bin-packing, ``AgentHandler.JobRequest``); sends it ``AvailabilityRequest{job}`` and waits up
  to 10 s (``AssignJobTimeout``). ``available: false`` moves on to the next worker; ``terminate``
  ends the job there. Accepted: the agent's join token is built from the answer's participant
  identity, name, metadata and attributes (plus ``lk.agent_name``) and sent in
  ``JobAssignment{job, token}``.
- ``update_job`` with ``JS_SUCCESS``/``JS_FAILED`` ends the job. A room that closes terminates
  its jobs (``JobTermination{job_id}``, the job counted ``JS_SUCCESS``, as ``TerminateJob`` does).

What the local world adds, having no media server: the agent's participant. A real job process
joins the room over WebRTC with the assignment's token; here the participant appears in the
local RoomService (`LocalLiveKit`) when the worker reports the job running (``update_job``
``JS_RUNNING``, sent once the job process has started it), as an AGENT carrying the identity,
name and attributes the worker gave in its availability answer, and leaves when the job ends.
A worker whose WebSocket closes keeps its jobs' participants, as WebRTC connections outlive the
worker's signalling connection: `end_jobs_of` ends them when the worker's process is known to
be gone.

Explicit dispatch is `dispatch` (Python) or AgentDispatchService ``CreateDispatch`` (Twirp, on
this server's HTTP port, room-admin grant for the room); both go through the same job request.
Not modelled: namespaces, publisher jobs, ``simulate_job``, ``migrate_job``, automatic dispatch
on room creation (the caller of `dispatch` decides), restart policies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import WSMsgType, web
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from livekit import api
from livekit.protocol import agent, agent_dispatch, models

from drainctl.world.livekit_server import (
    AccessTokenRejectedError,
    DispatchRequest,
    LocalLiveKit,
    verify_access_token,
)

logger = logging.getLogger(__name__)

AGENT_PATH: Final = "/agent"
DISPATCH_SERVICE_PATH: Final = "/twirp/livekit.AgentDispatchService/"
# livekit/livekit pkg/agent/worker.go
REGISTER_TIMEOUT_SECONDS: Final = 10.0
ASSIGN_JOB_TIMEOUT_SECONDS: Final = 10.0
AGENT_NAME_ATTRIBUTE: Final = "lk.agent_name"
SERVER_VERSION: Final = "local-world"

AgentEventHook = Callable[[str, dict[str, Any]], None]


class NoWorkerAvailableError(Exception):
    """No registered worker of that agent name took the job (livekit-server: "no workers available")."""


class AgentServerError(Exception):
    """The agent server could not do what was asked (not started, timed out)."""


@dataclass(frozen=True)
class WorkerSnapshot:
    """A registered worker as the server sees it, for assertions."""

    worker_id: str
    agent_name: str
    version: str
    status: str  # WorkerStatus name: WS_AVAILABLE, WS_FULL
    load: float
    job_count: int  # as the worker last reported it
    running_jobs: tuple[str, ...]  # job ids the server counts as running
    connected: bool
    registered_at: float
    disconnected_at: float | None


@dataclass(frozen=True)
class JobSnapshot:
    job_id: str
    dispatch_id: str
    room: str
    worker_id: str
    status: str  # JobStatus name
    participant_identity: str
    attributes: Mapping[str, str]
    metadata: str
    assigned_at: float
    ended_at: float | None
    error: str


@dataclass
class _Job:
    job: agent.Job
    worker_id: str
    identity: str
    name: str
    attributes: dict[str, str]
    assigned_at: float
    status: int = agent.JS_PENDING
    joined: bool = False
    ended_at: float | None = None
    error: str = ""

    @property
    def ended(self) -> bool:
        return self.status in (agent.JS_SUCCESS, agent.JS_FAILED)


@dataclass
class _Worker:
    worker_id: str
    ws: web.WebSocketResponse
    api_key: str
    registered_at: float
    agent_name: str = ""
    version: str = ""
    job_type: int = agent.JT_ROOM
    status: int = agent.WS_AVAILABLE
    load: float = 0.0
    job_count: int = 0
    connected: bool = True
    disconnected_at: float | None = None
    availability: dict[str, asyncio.Future[agent.AvailabilityResponse]] = field(default_factory=dict)
    jobs: dict[str, _Job] = field(default_factory=dict)

    def snapshot(self) -> WorkerSnapshot:
        return WorkerSnapshot(
            worker_id=self.worker_id,
            agent_name=self.agent_name,
            version=self.version,
            status=agent.WorkerStatus.Name(self.status),
            load=self.load,
            job_count=self.job_count,
            running_jobs=tuple(j.job.id for j in self.jobs.values() if not j.ended),
            connected=self.connected,
            registered_at=self.registered_at,
            disconnected_at=self.disconnected_at,
        )


class LocalAgentServer:
    """LiveKit's agent service on 127.0.0.1, putting its jobs' agents in `livekit`'s rooms.

    Runs its own event loop in a thread; every public method is thread-safe and blocking.
    `on_event(what, detail)` is called (from the server's thread) on ``worker_registered``,
    ``worker_status`` (a change of status), ``job_assigned``, ``job_running``, ``job_ended`` and
    ``worker_disconnected``.
    """

    def __init__(self, livekit: LocalLiveKit, *, clock: Callable[[], float] = time.time) -> None:
        self.livekit = livekit
        self.on_event: AgentEventHook | None = None
        self._clock = clock
        self._workers: dict[str, _Worker] = {}
        self._jobs: dict[str, _Job] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._lock = threading.Lock()
        # Job requests CreateDispatch runs in the background; only touched on the server's loop.
        self._background: set[asyncio.Task[None]] = set()
        livekit.room_listeners.append(self._on_room_event)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        ready: Future[None] = Future()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as error:
                ready.set_exception(error)
                return
            ready.set_result(None)
            loop.run_forever()
            loop.run_until_complete(self._stop_site())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name="local-agent-server", daemon=True)
        self._thread.start()
        ready.result(timeout=10)
        logger.info("local agent server started", extra={"url": self.url})

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = None
        self._thread = None
        if self._on_room_event in self.livekit.room_listeners:
            self.livekit.room_listeners.remove(self._on_room_event)

    def __enter__(self) -> LocalAgentServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """What a worker's ``LIVEKIT_URL`` is set to (it dials ``<url>/agent``)."""
        if self._thread is None:
            raise AgentServerError("the local agent server is not started")
        return f"ws://127.0.0.1:{self._port}"

    @property
    def http_url(self) -> str:
        """Where livekit-api reaches this server's AgentDispatchService."""
        return self.url.replace("ws://", "http://", 1)

    async def _start_site(self) -> None:
        app = web.Application()
        app.router.add_get(AGENT_PATH, self._agent_socket)
        app.router.add_post(DISPATCH_SERVICE_PATH + "{method}", self._dispatch_rpc)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self._port = int(sockets[0].getsockname()[1])

    async def _stop_site(self) -> None:
        for worker in list(self._workers.values()):
            if worker.connected:
                await worker.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- the world's side --------------------------------------------------------------------

    def workers(self) -> list[WorkerSnapshot]:
        with self._lock:
            return [w.snapshot() for w in self._workers.values()]

    def jobs(self) -> list[JobSnapshot]:
        with self._lock:
            return [self._job_snapshot(j) for j in self._jobs.values()]

    def dispatch(
        self,
        room: str,
        *,
        agent_name: str = "",
        metadata: str = "",
        timeout_seconds: float = 30.0,
    ) -> JobSnapshot:
        """An explicit dispatch of an agent into `room` (opened if needed): the job request runs
        as livekit-server runs it, and this returns the assigned job.

        Raises NoWorkerAvailableError when no worker took it.
        """
        self.livekit.create_room(room)
        job = self._new_job(room, agent_name, metadata, dispatch_id=_guid("AD_"))
        assigned: JobSnapshot = self._call(self._job_request(job), timeout_seconds)
        return assigned

    def take_dispatches(self) -> None:
        """Run the job requests of the local LiveKit's own AgentDispatchService (CreateDispatch on
        the LiveKit URL, as livekit-server hands them to its agent service): the coordinator's
        rescue dispatches then land on the real workers registered here."""
        self.livekit.dispatcher = self._from_livekit

    def _from_livekit(self, request: DispatchRequest) -> None:
        loop = self._loop
        if loop is None:
            return
        job = self._new_job(
            request.room, request.agent_name, request.metadata, dispatch_id=request.dispatch_id
        )
        asyncio.run_coroutine_threadsafe(self._livekit_request(job), loop)

    async def _livekit_request(self, job: agent.Job) -> None:
        try:
            assigned = await self._job_request(job)
        except NoWorkerAvailableError:
            logger.warning("dispatch found no worker", extra={"room": job.room.name})
            return
        self.livekit.dispatch_job(
            job.room.name,
            job.dispatch_id,
            job_id=assigned.job_id,
            worker_id=assigned.worker_id,
            status=assigned.status,
            identity=assigned.participant_identity,
        )

    def terminate(self, job_id: str) -> None:
        """End a job from the server side (``JobTermination``), as a room closing does."""
        self._call(self._terminate(job_id), 15.0)

    def end_jobs_of(self, worker_id: str, error: str = "worker process exited") -> None:
        """The worker's process is gone: its jobs' agents drop out of their rooms (JS_FAILED)."""
        self._call(self._end_jobs_of(worker_id, error), 15.0)

    def wait_for(self, predicate: Callable[[LocalAgentServer], bool], timeout_seconds: float) -> bool:
        """Poll `predicate` (real time) until it holds or the timeout passes."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)

    def _call(self, coro: Any, timeout_seconds: float) -> Any:
        loop = self._loop
        if loop is None:
            coro.close()
            raise AgentServerError("the local agent server is not started")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout=timeout_seconds)
        except TimeoutError as error:
            future.cancel()
            raise AgentServerError(f"no answer in {timeout_seconds} s") from error

    # --- jobs --------------------------------------------------------------------------------

    def _new_job(self, room: str, agent_name: str, metadata: str, *, dispatch_id: str) -> agent.Job:
        room_info = models.Room(name=room, sid=self._room_sid(room))
        return agent.Job(
            id=_guid("AJ_"),
            dispatch_id=dispatch_id,
            type=agent.JT_ROOM,
            room=room_info,
            agent_name=agent_name,
            metadata=metadata,
        )

    def _room_sid(self, room: str) -> str:
        return self.livekit.room_sid(room) or ""

    async def _job_request(self, job: agent.Job) -> JobSnapshot:
        attempted: set[str] = set()
        while True:
            selected = self._select_worker(job, attempted)
            if selected is None:
                raise NoWorkerAvailableError(f"no workers available for agent {job.agent_name!r}")
            attempted.add(selected.worker_id)
            assigned = await self._assign(selected, job)
            if assigned is not None:
                return assigned

    def _select_worker(self, job: agent.Job, attempted: set[str]) -> _Worker | None:
        # livekit/livekit pkg/service/agentservice.go JobRequest: among available workers, the
        # one with running jobs and the highest load, else the first.
        selected: _Worker | None = None
        max_load = 0.0
        with self._lock:
            for worker in self._workers.values():
                if (
                    worker.worker_id in attempted
                    or not worker.connected
                    or worker.agent_name != job.agent_name
                    or worker.job_type != job.type
                    or worker.status != agent.WS_AVAILABLE
                ):
                    continue
                running = any(not j.ended for j in worker.jobs.values())
                if running and worker.load > max_load:
                    max_load = worker.load
                    selected = worker
                elif selected is None:
                    selected = worker
        return selected

    async def _assign(self, worker: _Worker, job: agent.Job) -> JobSnapshot | None:
        """None when the worker is not available for it."""
        loop = asyncio.get_running_loop()
        answer_future: asyncio.Future[agent.AvailabilityResponse] = loop.create_future()
        worker.availability[job.id] = answer_future
        now_ns = int(self._clock() * 1e9)
        job.state.CopyFrom(
            agent.JobState(
                worker_id=worker.worker_id,
                status=agent.JS_RUNNING,
                started_at=now_ns,
                updated_at=now_ns,
            )
        )
        try:
            await self._send(worker, agent.ServerMessage(availability=agent.AvailabilityRequest(job=job)))
            answer = await asyncio.wait_for(answer_future, ASSIGN_JOB_TIMEOUT_SECONDS)
        except (TimeoutError, ConnectionError):
            logger.warning("agent worker availability timeout", extra={"worker_id": worker.worker_id})
            return None
        finally:
            worker.availability.pop(job.id, None)
        if answer.terminate:
            record = _Job(job, worker.worker_id, "", "", {}, self._clock(), status=agent.JS_SUCCESS)
            record.ended_at = record.assigned_at
            return self._job_snapshot(record)
        if not answer.available:
            return None

        attributes = dict(answer.participant_attributes)
        attributes[AGENT_NAME_ATTRIBUTE] = worker.agent_name
        token = (
            api.AccessToken(worker.api_key, self.livekit.api_secret)
            .with_identity(answer.participant_identity)
            .with_name(answer.participant_name)
            .with_metadata(answer.participant_metadata)
            .with_attributes(attributes)
            .with_kind("agent")
            .with_grants(api.VideoGrants(room_join=True, room=job.room.name, agent=True))
            .to_jwt()
        )
        record = _Job(
            job=job,
            worker_id=worker.worker_id,
            identity=answer.participant_identity,
            name=answer.participant_name,
            attributes=attributes,
            assigned_at=self._clock(),
            status=agent.JS_RUNNING,
        )
        await self._send(worker, agent.ServerMessage(assignment=agent.JobAssignment(job=job, token=token)))
        with self._lock:
            worker.jobs[job.id] = record
            self._jobs[job.id] = record
        self._emit(
            "job_assigned",
            job_id=job.id,
            worker_id=worker.worker_id,
            room=job.room.name,
            identity=record.identity,
            attributes=dict(attributes),
        )
        return self._job_snapshot(record)

    def _update_job(self, worker: _Worker, update: agent.UpdateJobStatus) -> None:
        with self._lock:
            record = worker.jobs.get(update.job_id)
        if record is None or record.ended:
            # livekit-server: "received job update for unknown job", a debug line.
            return
        if update.status == agent.JS_RUNNING and not record.joined:
            self._join(record)
        elif update.status in (agent.JS_SUCCESS, agent.JS_FAILED):
            self._end(record, update.status, update.error)

    def _join(self, record: _Job) -> None:
        room = record.job.room.name
        if self.livekit.room_sid(room) is None:
            return  # the room closed before the agent could join it
        record.joined = True
        self.livekit.join(room, record.identity, kind="AGENT", attributes=record.attributes, name=record.name)
        self._emit("job_running", job_id=record.job.id, worker_id=record.worker_id, room=room)

    def _end(self, record: _Job, status: int, error: str) -> None:
        with self._lock:
            if record.ended:
                return
            record.status = status
            record.error = error
            record.ended_at = self._clock()
        room = record.job.room.name
        if record.joined:
            # LookupError: the room closed first, taking the agent with it.
            with contextlib.suppress(LookupError):
                self.livekit.leave(room, record.identity)
        self._emit(
            "job_ended",
            job_id=record.job.id,
            worker_id=record.worker_id,
            room=room,
            status=agent.JobStatus.Name(status),
            error=error,
        )

    async def _terminate(self, job_id: str) -> None:
        with self._lock:
            record = self._jobs.get(job_id)
            worker = None if record is None else self._workers.get(record.worker_id)
        if record is None or record.ended:
            return
        if worker is not None and worker.connected:
            with contextlib.suppress(ConnectionError):
                await self._send(worker, agent.ServerMessage(termination=agent.JobTermination(job_id=job_id)))
        self._end(record, agent.JS_SUCCESS, "")

    async def _end_jobs_of(self, worker_id: str, error: str) -> None:
        with self._lock:
            worker = self._workers.get(worker_id)
            records = [] if worker is None else [j for j in worker.jobs.values() if not j.ended]
        for record in records:
            self._end(record, agent.JS_FAILED, error)

    def _on_room_event(self, event: str, info: dict[str, Any]) -> None:
        # Called on whatever thread changed the room; a closed room terminates its jobs.
        if event != "room_finished" or self._loop is None:
            return
        room = str(info.get("room", {}).get("name", ""))
        with self._lock:
            doomed = [j.job.id for j in self._jobs.values() if j.job.room.name == room and not j.ended]
        for job_id in doomed:
            asyncio.run_coroutine_threadsafe(self._terminate(job_id), self._loop)

    # --- the worker socket -------------------------------------------------------------------

    async def _agent_socket(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(status=404)
        try:
            claims = self._claims(request)
        except AccessTokenRejectedError as error:
            return web.Response(status=401, text=str(error))
        video = claims.get("video") or {}
        if video.get("agent") is not True:
            return web.Response(status=401, text="permissions denied")

        ws = web.WebSocketResponse()
        await ws.prepare(request)
        worker = _Worker(
            worker_id=_guid("AW_"), ws=ws, api_key=str(claims["iss"]), registered_at=self._clock()
        )
        try:
            if await self._register(worker):
                await self._serve_worker(worker)
        finally:
            await self._disconnected(worker)
        return ws

    def _claims(self, request: web.Request) -> dict[str, Any]:
        authorization = request.headers.get("Authorization", "")
        if authorization:
            if not authorization.startswith("Bearer "):
                raise AccessTokenRejectedError("invalid authorization header. Must start with Bearer ")
            token = authorization[len("Bearer ") :]
        else:
            token = request.query.get("access_token", "")
        if not token:
            raise AccessTokenRejectedError("permissions denied")
        return verify_access_token(token, {self.livekit.api_key: self.livekit.api_secret}, time.time())

    async def _register(self, worker: _Worker) -> bool:
        deadline = asyncio.get_running_loop().time() + REGISTER_TIMEOUT_SECONDS
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            try:
                message = await asyncio.wait_for(self._receive(worker), remaining)
            except TimeoutError:
                return False
            if message is None:
                return False
            which = message.WhichOneof("message")
            if which == "ping":
                await self._pong(worker, message.ping)
                continue
            if which != "register":
                continue
            register = message.register
            worker.agent_name = register.agent_name
            worker.version = register.version
            worker.job_type = register.type
            with self._lock:
                self._workers[worker.worker_id] = worker
            await self._send(
                worker,
                agent.ServerMessage(
                    register=agent.RegisterWorkerResponse(
                        worker_id=worker.worker_id,
                        server_info=models.ServerInfo(
                            edition=models.ServerInfo.Standard,
                            version=SERVER_VERSION,
                            protocol=16,
                            agent_protocol=1,
                            region="local",
                            node_id="local-node",
                        ),
                    )
                ),
            )
            self._emit(
                "worker_registered",
                worker_id=worker.worker_id,
                agent_name=worker.agent_name,
                version=worker.version,
            )
            return True

    async def _serve_worker(self, worker: _Worker) -> None:
        while True:
            message = await self._receive(worker)
            if message is None:
                return
            which = message.WhichOneof("message")
            if which == "ping":
                await self._pong(worker, message.ping)
            elif which == "availability":
                future = worker.availability.get(message.availability.job_id)
                if future is not None and not future.done():
                    future.set_result(message.availability)
            elif which == "update_worker":
                self._update_worker(worker, message.update_worker)
            elif which == "update_job":
                self._update_job(worker, message.update_job)
            # register again, simulate_job, migrate_job: not modelled (livekit-server's OSS
            # build does nothing with migrate_job either).

    def _update_worker(self, worker: _Worker, update: agent.UpdateWorkerStatus) -> None:
        changed = False
        with self._lock:
            if update.HasField("status") and update.status != worker.status:
                worker.status = update.status
                changed = True
            worker.load = update.load
            worker.job_count = update.job_count
        if changed:
            self._emit(
                "worker_status",
                worker_id=worker.worker_id,
                status=agent.WorkerStatus.Name(worker.status),
                load=worker.load,
                job_count=worker.job_count,
            )

    async def _receive(self, worker: _Worker) -> agent.WorkerMessage | None:
        while True:
            raw = await worker.ws.receive()
            if raw.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return None
            if raw.type is not WSMsgType.BINARY:
                continue
            message = agent.WorkerMessage()
            try:
                message.ParseFromString(raw.data)
            except DecodeError:
                logger.warning("undecodable worker message", extra={"worker_id": worker.worker_id})
                continue
            return message

    async def _send(self, worker: _Worker, message: agent.ServerMessage) -> None:
        if worker.ws.closed:
            raise ConnectionError("worker connection closed")
        await worker.ws.send_bytes(message.SerializeToString())

    async def _pong(self, worker: _Worker, ping: agent.WorkerPing) -> None:
        await self._send(
            worker,
            agent.ServerMessage(
                pong=agent.WorkerPong(last_timestamp=ping.timestamp, timestamp=int(time.time() * 1000))
            ),
        )

    async def _disconnected(self, worker: _Worker) -> None:
        with self._lock:
            known = worker.worker_id in self._workers
            worker.connected = False
            worker.disconnected_at = self._clock()
        for future in worker.availability.values():
            if not future.done():
                future.set_exception(ConnectionError("worker closed"))
        if known:
            self._emit("worker_disconnected", worker_id=worker.worker_id)

    # --- AgentDispatchService ----------------------------------------------------------------

    async def _dispatch_rpc(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if method != "CreateDispatch":
            return _twirp_error("bad_route", f'no handler for path "{request.path}"', 404)
        try:
            claims = verify_access_token(
                request.headers.get("Authorization", "").removeprefix("Bearer "),
                {self.livekit.api_key: self.livekit.api_secret},
                time.time(),
            )
        except AccessTokenRejectedError as error:
            return web.Response(status=401, text=str(error))
        body = await request.read()
        create = agent_dispatch.CreateAgentDispatchRequest()
        protobuf = request.content_type == "application/protobuf"
        try:
            if protobuf:
                create.ParseFromString(body)
            else:
                json_format.Parse(body, create, ignore_unknown_fields=True)
        except (DecodeError, json_format.ParseError):
            return _twirp_error("malformed", "the request could not be decoded", 400)
        video = claims.get("video") or {}
        # livekit-server's AgentDispatchService needs room admin on the dispatch's room.
        if video.get("roomAdmin") is not True or video.get("room") != create.room:
            return _twirp_error("unauthenticated", "permissions denied", 401)
        dispatch_id = _guid("AD_")
        self.livekit.create_room(create.room)
        job = self._new_job(create.room, create.agent_name, create.metadata, dispatch_id=dispatch_id)
        # livekit-server answers at once and runs the job request in the background.
        task = asyncio.get_running_loop().create_task(self._background_request(job))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        reply = agent_dispatch.AgentDispatch(
            id=dispatch_id, agent_name=create.agent_name, room=create.room, metadata=create.metadata
        )
        if protobuf:
            return web.Response(body=reply.SerializeToString(), content_type="application/protobuf")
        return web.json_response(json_format.MessageToDict(reply, preserving_proto_field_name=True))

    async def _background_request(self, job: agent.Job) -> None:
        try:
            await self._job_request(job)
        except NoWorkerAvailableError:
            logger.warning("dispatch found no worker", extra={"room": job.room.name})

    # --- helpers -----------------------------------------------------------------------------

    def _job_snapshot(self, record: _Job) -> JobSnapshot:
        return JobSnapshot(
            job_id=record.job.id,
            dispatch_id=record.job.dispatch_id,
            room=record.job.room.name,
            worker_id=record.worker_id,
            status=agent.JobStatus.Name(record.status),
            participant_identity=record.identity,
            attributes=dict(record.attributes),
            metadata=record.job.metadata,
            assigned_at=record.assigned_at,
            ended_at=record.ended_at,
            error=record.error,
        )

    def _emit(self, what: str, **detail: Any) -> None:
        logger.debug("agent server event", extra={"event": what, **detail})
        hook = self.on_event
        if hook is not None:
            hook(what, detail)


def _twirp_error(code: str, msg: str, status: int) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def _guid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:12]


__all__ = [
    "AGENT_PATH",
    "AgentServerError",
    "JobSnapshot",
    "LocalAgentServer",
    "NoWorkerAvailableError",
    "WorkerSnapshot",
]
