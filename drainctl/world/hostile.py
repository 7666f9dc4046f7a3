"""The world as hostile as AWS and LiveKit are: latency with a tail, hangs, rate limits, and
botocore's own retries and backoff, all spent on the virtual clock.

Everything here acts on what the Lambda handlers send, never on the world's own calls:

- `ClientSide` hooks the handlers' boto3 session (`before-send`) and their aiohttp sessions
  (livekit-api's): a request made after its invocation's deadline raises
  `InvocationTimedOutError` before it is sent; otherwise the request waits its dependency's
  latency (a lognormal fitted to P50/P99, seeded) or, for a dependency that hangs, the client's
  read timeout, after which botocore sees `ReadTimeoutError` (and retries it, as it would) and
  livekit-api a `TimeoutError`.
- `virtual_botocore` makes botocore's retry sleeps (botocore/endpoint.py `time.sleep`) and its
  adaptive rate limiter (botocore/retries/bucket.py: `Clock`, and the `Condition` the token bucket
  waits on) spend virtual time. botocore still decides what to retry, how long to back off and
  when to throttle itself.
- `RateLimits` are per-account token buckets the local servers answer with AWS's (or LiveKit's)
  throttling errors; see `AWS_RATE_LIMITS` and `LIVEKIT_RATE_LIMIT` for the figures and their
  sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import os
import random
import threading
import time as real_time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Final
from urllib.parse import parse_qs

import aiohttp
import boto3
import botocore.endpoint
from botocore.exceptions import ReadTimeoutError
from botocore.retries import bucket, standard

from drainctl.check import AUTOSCALING_ACTION_RATE
from drainctl.world.clock import VirtualClock
from drainctl.world.scheduler import VirtualTime
from drainctl.world.virtual_loop import VirtualLoopPolicy, running_virtual_loop

DEPENDENCIES: Final = ("ecs", "autoscaling", "dynamodb", "secretsmanager", "sqs", "livekit")
HANGABLE: Final = ("ecs", "autoscaling", "dynamodb", "livekit")
# What `--aws-latency` slows: every AWS service the handlers call.
AWS_DEPENDENCIES: Final = tuple(d for d in DEPENDENCIES if d != "livekit")
# botocore's hyphenized service ids (the middle of a `before-send.<id>.<Operation>` event name).
_SERVICE_IDS: Final = {
    "ecs": "ecs",
    "auto-scaling": "autoscaling",
    "dynamodb": "dynamodb",
    "secrets-manager": "secretsmanager",
    "sqs": "sqs",
}
_Z99: Final = 2.3263478740408408  # the standard normal's 99th percentile
DEADLINE_HEADER: Final = "X-Local-World-Deadline"  # the invocation's deadline, virtual epoch seconds
CALLER_HEADER: Final = "X-Local-World-Caller"  # "lambda": a handler's request


class InvocationTimedOutError(BaseException):
    """The Lambda invocation ran out of time here: Lambda stops the runtime, nothing after this
    point happens. A BaseException, so that no handler's `except Exception` can swallow it."""


class HostileInputError(ValueError):
    """A latency, throttle or hang setting that cannot be."""


# -- latency ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyTail:
    """A request's latency: lognormal with this median and 99th percentile (seconds)."""

    p50: float
    p99: float

    def __post_init__(self) -> None:
        if self.p50 < 0 or self.p99 < self.p50:
            raise HostileInputError(f"latency needs 0 <= P50 <= P99, not {self.p50}:{self.p99}")

    @classmethod
    def parse(cls, text: str) -> LatencyTail:
        """`P50` or `P50:P99` in seconds; P99 defaults to P50 (no tail)."""
        head, _, tail = text.partition(":")
        try:
            p50 = float(head)
            p99 = float(tail) if tail else p50
        except ValueError as exc:
            raise HostileInputError(f"latency {text!r} is not P50[:P99] in seconds") from exc
        if not (math.isfinite(p50) and math.isfinite(p99)):
            raise HostileInputError(f"latency {text!r} is not finite")
        return cls(p50, p99)

    def sample(self, rng: random.Random) -> float:
        if self.p50 <= 0:
            return 0.0
        sigma = (math.log(self.p99) - math.log(self.p50)) / _Z99
        return rng.lognormvariate(math.log(self.p50), sigma) if sigma > 0 else self.p50


# -- rate limits ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BucketSpec:
    capacity: float  # burst: the most requests in any one second
    refill_per_second: float  # sustained rate


# ECS: "Request throttling for the Amazon ECS API"
# (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html): a token
# bucket per account and Region for each group of actions, answered `ThrottlingException`
# "Rate exceeded" (HTTP 400). The page's worked example gives the cluster read actions a bucket of
# 50 tokens refilled at 20 a second; the per-action table could not be read here, so every ECS
# action the coordinator calls gets that figure (its own bucket per action).
_ECS_BUCKET: Final = BucketSpec(50, 20)
# EC2 Auto Scaling documents no API rate (its quotas page lists resources, not request rates):
# chosen 40 burst, 10 a second per action, an assumption tighter than EC2's documented API rates,
# answered `Throttling` "Rate exceeded" (HTTP 400) as the query protocol does.
_AUTOSCALING_BUCKET: Final = BucketSpec(40, AUTOSCALING_ACTION_RATE)
AWS_RATE_LIMITS: Final[Mapping[str, BucketSpec]] = {"ecs": _ECS_BUCKET, "autoscaling": _AUTOSCALING_BUCKET}
# LiveKit: livekit-server rate-limits no Room Service API call (the Room service API reference,
# https://docs.livekit.io/reference/other/roomservice-api/, names none; LiveKit Cloud's plan quotas
# are not modelled). Chosen 50 burst, 20 a second per API key, answered as Twirp's
# `resource_exhausted` (HTTP 429, https://twitchtv.github.io/twirp/docs/spec_v7.html#error-codes).
LIVEKIT_RATE_LIMIT: Final = BucketSpec(50, 20)


class TokenBucket:
    """Refills continuously on the virtual clock; a request takes one token or is throttled."""

    def __init__(self, spec: BucketSpec, now: float) -> None:
        self.spec = spec
        self._tokens = spec.capacity
        self._at = now
        self.granted = 0
        self.throttled = 0

    def take(self, now: float) -> bool:
        self._tokens = min(self.spec.capacity, self._tokens + (now - self._at) * self.spec.refill_per_second)
        self._at = max(self._at, now)
        if self._tokens >= 1:
            self._tokens -= 1
            self.granted += 1
            return True
        self.throttled += 1
        return False


class RateLimits:
    """One bucket per (dependency, action), created on first use."""

    def __init__(self, clock: VirtualClock, specs: Mapping[str, BucketSpec]) -> None:
        self._clock = clock
        self._specs = dict(specs)
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._lock = threading.Lock()
        self.enabled = False

    def allow(self, dependency: str, action: str) -> bool:
        spec = self._specs.get(dependency)
        if not self.enabled or spec is None:
            return True
        with self._lock:
            key = (dependency, action)
            if key not in self._buckets:
                self._buckets[key] = TokenBucket(spec, self._clock.now())
            return self._buckets[key].take(self._clock.now())

    def throttled(self, dependency: str | None = None) -> int:
        with self._lock:
            return sum(b.throttled for (d, _), b in self._buckets.items() if dependency in (None, d))


# -- the whole hostility ----------------------------------------------------------------------------


@dataclass
class Hostility:
    """What the handlers' dependencies do to them. Off by default: no latency, no limits."""

    seed: int = 7
    latency: dict[str, LatencyTail] = field(default_factory=dict)
    hung: set[str] = field(default_factory=set)
    _rngs: dict[str, random.Random] = field(default_factory=dict, repr=False)

    def set_latency(self, dependencies: tuple[str, ...] | list[str], tail: LatencyTail) -> None:
        for name in dependencies:
            _known(name)
            self.latency[name] = tail

    def hang(self, dependency: str) -> None:
        if dependency not in HANGABLE:
            raise HostileInputError(f"--hang takes one of {', '.join(HANGABLE)}, not {dependency!r}")
        self.hung.add(dependency)

    def delay(self, dependency: str) -> float:
        tail = self.latency.get(dependency)
        if tail is None:
            return 0.0
        rng = self._rngs.get(dependency)
        if rng is None:
            rng = self._rngs[dependency] = random.Random(f"{self.seed}:{dependency}")
        return tail.sample(rng)


def _known(dependency: str) -> None:
    if dependency not in DEPENDENCIES:
        raise HostileInputError(f"unknown dependency {dependency!r} (one of {', '.join(DEPENDENCIES)})")


# -- the invocation a thread runs for ---------------------------------------------------------------


class InvocationClock:
    """Virtual time as one invocation spends it: never past its deadline."""

    def __init__(self, time: VirtualTime, deadline: float) -> None:
        self.time = time
        self.deadline = deadline

    def check(self) -> None:
        if self.time.clock.now() >= self.deadline:
            raise InvocationTimedOutError(f"the invocation's deadline {self.deadline:.3f} has passed")

    def spend(self, seconds: float) -> None:
        now = self.time.clock.now()
        if now + seconds >= self.deadline:
            self.time.spend(max(0.0, self.deadline - now))
            raise InvocationTimedOutError(f"the invocation's deadline {self.deadline:.3f} has passed")
        self.time.spend(seconds)

    def sleep_until(self, t: float) -> None:
        self.spend(max(0.0, t - self.time.clock.now()))


InvocationLookup = Callable[[], InvocationClock | None]


def _spender(time: VirtualTime, invocation: InvocationLookup) -> Callable[[float], None]:
    def spend(seconds: float) -> None:
        running = invocation()
        if running is None:
            time.spend(seconds)
        else:
            running.spend(seconds)

    return spend


# -- botocore on the virtual clock ------------------------------------------------------------------


_MIN_WAIT_SECONDS: Final = 1e-6


class _VirtualCondition:
    """Stands in for the Condition botocore's TokenBucket waits on: a wait spends virtual time
    (its lock released meanwhile), then botocore refills and decides again, as after a real wait."""

    def __init__(self, lock: Any, spend: Callable[[float], None]) -> None:
        self._lock = lock
        self._spend = spend

    def __enter__(self) -> bool:
        return bool(self._lock.acquire())

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        self._lock.release()
        try:
            # At least a microsecond: the clock holds epoch seconds, whose float cannot take a
            # step of 1e-16, and botocore would then wait again for ever.
            self._spend(max(_MIN_WAIT_SECONDS, 0.0 if timeout is None else float(timeout)))
        finally:
            self._lock.acquire()
        return False

    def notify(self, n: int = 1) -> None:
        """Waiters re-check after their own wait: nothing to wake."""

    def notify_all(self) -> None:
        """As notify."""


@dataclass
class BotocoreWaits:
    """The virtual seconds botocore chose to wait: retry backoffs and rate-limiter waits."""

    backoffs: list[float] = field(default_factory=list)
    limiter_waits: list[float] = field(default_factory=list)


@contextlib.contextmanager
def virtual_botocore(
    clock: VirtualClock, time: VirtualTime, invocation: InvocationLookup, seed: int = 7
) -> Iterator[BotocoreWaits]:
    """botocore's retry sleeps and adaptive rate limiter on the virtual clock, while inside; its
    backoff jitter drawn from a generator seeded with the world's (botocore's default is the
    process-wide `random`, which the world's other threads draw from too)."""
    waits = BotocoreWaits()
    jitter = random.Random(f"{seed}:botocore-backoff")
    spend_any = _spender(time, invocation)

    def backoff(seconds: float) -> None:
        waits.backoffs.append(seconds)
        spend_any(seconds)

    def spend(seconds: float) -> None:
        waits.limiter_waits.append(seconds)
        spend_any(seconds)

    endpoint: Any = botocore.endpoint  # typed loosely: its `time` is replaced while inside
    original_time = endpoint.time
    original_init = bucket.TokenBucket.__init__
    original_sleep = bucket.Clock.sleep
    original_now = bucket.Clock.current_time

    original_backoff_init = standard.ExponentialBackoff.__init__

    def backoff_init(self: standard.ExponentialBackoff, *args: Any, **kwargs: Any) -> None:
        original_backoff_init(self, *args, **kwargs)
        self._random = jitter.random  # type: ignore[attr-defined]

    def token_bucket_init(self: bucket.TokenBucket, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        token_bucket: Any = self
        token_bucket._new_fill_rate_condition = _VirtualCondition(token_bucket._lock, spend)

    endpoint.time = SimpleNamespace(
        sleep=backoff, time=clock.now, monotonic=real_time.monotonic, perf_counter=real_time.perf_counter
    )
    bucket.TokenBucket.__init__ = token_bucket_init  # type: ignore[method-assign]
    standard.ExponentialBackoff.__init__ = backoff_init  # type: ignore[method-assign]
    bucket.Clock.sleep = lambda self, amount: spend(amount)  # type: ignore[method-assign]
    bucket.Clock.current_time = lambda self: clock.now()  # type: ignore[method-assign]
    try:
        yield waits
    finally:
        endpoint.time = original_time
        bucket.TokenBucket.__init__ = original_init  # type: ignore[method-assign]
        standard.ExponentialBackoff.__init__ = original_backoff_init  # type: ignore[method-assign]
        bucket.Clock.sleep = original_sleep  # type: ignore[method-assign]
        bucket.Clock.current_time = original_now  # type: ignore[method-assign]


# -- the handlers' clients ------------------------------------------------------------------------


class ClientSide:
    """Latency, hangs and the invocation's deadline, in the handlers' own clients."""

    def __init__(
        self,
        hostility: Hostility,
        invocation: InvocationLookup,
        livekit_url: Callable[[], str],
    ) -> None:
        self.hostility = hostility
        self._invocation = invocation
        self._livekit_url = livekit_url
        self.refused_after_deadline = 0
        # Requests a hung dependency never answered, by dependency.
        self.hung_requests: dict[str, int] = {}

    def _hung(self, dependency: str) -> None:
        self.hung_requests[dependency] = self.hung_requests.get(dependency, 0) + 1

    # botocore ---------------------------------------------------------------------------------

    def before_send(self, request: Any, event_name: str = "", **_: Any) -> None:
        running = self._invocation()
        if running is None:
            return
        if running.time.clock.now() >= running.deadline:
            self.refused_after_deadline += 1
            running.check()
        request.headers[DEADLINE_HEADER] = repr(running.deadline)
        request.headers[CALLER_HEADER] = "lambda"
        service_id = event_name.split(".")[1] if event_name.count(".") >= 2 else ""
        dependency = _SERVICE_IDS.get(service_id)
        if dependency is None:
            return
        if dependency in self.hostility.hung:
            self._hung(dependency)
            timeout = _read_timeout(request)
            running.spend(timeout)
            raise ReadTimeoutError(endpoint_url=str(request.url))
        running.spend(self.hostility.delay(dependency))

    @contextlib.contextmanager
    def installed_on(self, session: Any) -> Iterator[None]:
        session.events.register("before-send", self.before_send)
        try:
            yield
        finally:
            session.events.unregister("before-send", self.before_send)

    # aiohttp (livekit-api) ----------------------------------------------------------------------

    def trace_config(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()
        config.on_request_start.append(self._livekit_start)
        config.on_request_end.append(self._livekit_end)
        config.on_request_exception.append(self._livekit_failed)
        return config

    def _is_livekit(self, url: Any) -> bool:
        base = self._livekit_url()
        return bool(base) and str(url).startswith(base)

    async def _livekit_start(self, session: Any, ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
        running = self._invocation()
        ctx.running = running if self._is_livekit(params.url) else None
        if ctx.running is None:
            return
        if running is not None and running.time.clock.now() >= running.deadline:
            self.refused_after_deadline += 1
            running.check()
        params.headers[DEADLINE_HEADER] = repr(ctx.running.deadline)
        now = ctx.running.time.clock.now()
        ctx.hung = "livekit" in self.hostility.hung
        if ctx.hung:
            self._hung("livekit")
        # A hung LiveKit answers nothing: the coordinator's own bound (LIVEKIT_TIMEOUT_SECONDS,
        # asyncio.timeout around each call) runs out first.
        ctx.due = now + (_livekit_timeout() if ctx.hung else self.hostility.delay("livekit"))
        # On an invocation's virtual event loop the answer waits, parked, for its due time
        # (drainctl/world/virtual_loop.py): answers come in order of latency, timers can cut them.
        ctx.loop = running_virtual_loop()
        ctx.ticket = ctx.loop.request_started(ctx.due) if ctx.loop is not None else None

    async def _livekit_end(self, session: Any, ctx: Any, params: aiohttp.TraceRequestEndParams) -> None:
        running: InvocationClock | None = getattr(ctx, "running", None)
        if running is None:
            return
        if ctx.ticket is not None:
            await ctx.loop.answer(ctx.ticket)
        else:
            running.sleep_until(ctx.due)
        if ctx.hung:
            raise TimeoutError("LiveKit did not answer (the world's hang)")

    async def _livekit_failed(
        self, session: Any, ctx: Any, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        if getattr(ctx, "ticket", None) is not None:
            ctx.loop.request_failed(ctx.ticket)

    @contextlib.contextmanager
    def installed_on_aiohttp(self) -> Iterator[None]:
        original = aiohttp.ClientSession.__init__
        traced = self

        def init(session: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("trace_configs") is None:
                kwargs["trace_configs"] = [traced.trace_config()]
            original(session, *args, **kwargs)

        def virtual() -> tuple[Callable[[], float], Callable[[float], None]] | None:
            running = traced._invocation()
            return None if running is None else (running.time.clock.now, running.sleep_until)

        aiohttp.ClientSession.__init__ = init  # type: ignore[method-assign,assignment]
        policy = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(VirtualLoopPolicy(virtual))
        try:
            yield
        finally:
            asyncio.set_event_loop_policy(policy)
            aiohttp.ClientSession.__init__ = original  # type: ignore[method-assign]


# -- the servers' side ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HandlerRequest:
    """A handler's request as it reached a local server."""

    t: float
    dependency: str
    action: str
    deadline: float | None
    answer: str  # "served", "throttled" or "after_deadline"


_CREDENTIAL_SCOPE_SERVICE = 3  # Credential=KEY/DATE/REGION/SERVICE/aws4_request


class ServerSide:
    """What the local servers do with the handlers' requests before serving them: refuse one
    sent after its invocation's deadline (the client-side guard should have stopped it: a
    backstop, counted), and answer one over its per-account rate with the service's throttling
    error."""

    def __init__(self, clock: VirtualClock, aws: RateLimits, livekit: RateLimits) -> None:
        self._clock = clock
        self.aws_limits = aws
        self.livekit_limits = livekit
        self._lock = threading.Lock()
        self.requests: list[HandlerRequest] = []

    def _record(self, request: HandlerRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def aws_gate(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes] | None:
        if environ.get("HTTP_" + CALLER_HEADER.upper().replace("-", "_")) != "lambda":
            return None
        now = self._clock.now()
        deadline = _float_or_none(environ.get("HTTP_" + DEADLINE_HEADER.upper().replace("-", "_")))
        dependency = _scope_service(str(environ.get("HTTP_AUTHORIZATION", "")))
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        action = target.rpartition(".")[2] if target else _query_action(environ)
        if deadline is not None and now > deadline:
            self._record(HandlerRequest(now, dependency, action, deadline, "after_deadline"))
            return 500, [("Content-Type", "text/plain")], b"request sent after its invocation's deadline"
        if not self.aws_limits.allow(dependency, action):
            self._record(HandlerRequest(now, dependency, action, deadline, "throttled"))
            return _aws_throttling(dependency, target)
        self._record(HandlerRequest(now, dependency, action, deadline, "served"))
        return None

    def livekit_gate(self, path: str, headers: Mapping[str, str]) -> tuple[str, str] | None:
        lowered = {k.lower(): v for k, v in headers.items()}
        now = self._clock.now()
        deadline = _float_or_none(lowered.get(DEADLINE_HEADER.lower()))
        action = path.rpartition("/")[2]
        if deadline is None:
            return None  # not a handler's request
        if now > deadline:
            self._record(HandlerRequest(now, "livekit", action, deadline, "after_deadline"))
            return "unavailable", "request sent after its invocation's deadline"
        if not self.livekit_limits.allow("livekit", "api"):
            self._record(HandlerRequest(now, "livekit", action, deadline, "throttled"))
            return "resource_exhausted", "rate limit exceeded"
        self._record(HandlerRequest(now, "livekit", action, deadline, "served"))
        return None


def _float_or_none(text: object) -> float | None:
    try:
        return float(str(text)) if text not in (None, "") else None
    except ValueError:
        return None


def _scope_service(authorization: str) -> str:
    _, _, credential = authorization.partition("Credential=")
    parts = credential.split(",")[0].split("/")
    return parts[_CREDENTIAL_SCOPE_SERVICE] if len(parts) > _CREDENTIAL_SCOPE_SERVICE else ""


def _query_action(environ: dict[str, Any]) -> str:
    """The `Action` of a query-protocol request (its form body), the body put back for moto."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    found = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])
    return str(found[0])


def _aws_throttling(dependency: str, target: str) -> tuple[int, list[tuple[str, str]], bytes]:
    if target:  # JSON protocol (ECS): {"__type": "ThrottlingException", "message": "Rate exceeded"}
        body = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
        return 400, [("Content-Type", "application/x-amz-json-1.1")], body
    body = (  # query protocol (Auto Scaling)
        b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
        b"<Message>Rate exceeded</Message></Error><RequestId>local-throttle</RequestId></ErrorResponse>"
    )
    return 400, [("Content-Type", "text/xml")], body


def _read_timeout(request: Any) -> float:
    """The client's configured read timeout (botocore's default 60 s when the context lacks it)."""
    config = getattr(request, "context", {}).get("client_config")
    timeout = getattr(config, "read_timeout", None)
    return float(timeout) if timeout is not None else 60.0


def _livekit_timeout() -> float:
    return float(os.environ.get("LIVEKIT_TIMEOUT_SECONDS", "5"))


def handlers_session() -> Any:
    """boto3's default session: the handlers build their clients from it (`boto3.client`)."""
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    return boto3.DEFAULT_SESSION


__all__ = [
    "AWS_DEPENDENCIES",
    "AWS_RATE_LIMITS",
    "DEPENDENCIES",
    "HANGABLE",
    "LIVEKIT_RATE_LIMIT",
    "BotocoreWaits",
    "BucketSpec",
    "ClientSide",
    "HandlerRequest",
    "HostileInputError",
    "Hostility",
    "InvocationClock",
    "InvocationTimedOutError",
    "LatencyTail",
    "RateLimits",
    "ServerSide",
    "TokenBucket",
    "handlers_session",
    "virtual_botocore",
]
