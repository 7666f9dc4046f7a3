"""Runs the real handlers in-process the way Lambda would: environment, context, captured output,
and the function's timeout.

An invocation ends at its function's `Timeout` (virtual time), as in Lambda
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html): from its deadline on,
nothing the handler does takes effect. A request it makes after the deadline never leaves its
client (`InvocationTimedOutError`, raised by the world's client-side hooks and by any virtual
time it would spend past the deadline), and what it prints after the deadline (log lines, EMF
metrics) is lost, counted in `Invocation.metrics_lost`. After a timeout Lambda resets the
execution environment (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html):
the next invocation is a cold start, with the Powertools metrics buffer empty.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from drain_coordinator.observability import logger as coordinator_logger
from drain_coordinator.observability import metrics as coordinator_metrics
from drainctl.world.hostile import InvocationClock, InvocationTimedOutError
from drainctl.world.scheduler import VirtualTime

# What Lambda answers for an invocation that ran out of time (the result the caller sees).
TIMED_OUT_ERROR_TYPE = "Sandbox.Timedout"


@dataclass
class _Running:
    """One invocation under way: its deadline and what it printed, kept and lost."""

    clock: InvocationClock
    kept: io.StringIO = field(default_factory=io.StringIO)
    lost: io.StringIO = field(default_factory=io.StringIO)
    # The Powertools metrics this invocation gathered and has not printed yet: its own, as each
    # execution environment has its own (invocations of an event source run side by side here).
    metric_set: dict[str, Any] = field(default_factory=dict)

    def write(self, text: str) -> None:
        late = self.clock.time.clock.now() >= self.clock.deadline
        (self.lost if late else self.kept).write(text)


_local = threading.local()
# The invocation run outside any concurrent process (one at a time): threads the handler starts
# itself (a thread pool) are counted in it.
_sequential: list[_Running] = []


def _running() -> _Running | None:
    found: _Running | None = getattr(_local, "running", None)
    if found is not None:
        return found
    return _sequential[-1] if _sequential else None


def current_invocation() -> InvocationClock | None:
    """The deadline of the invocation the calling thread works for, if any."""
    running = _running()
    return running.clock if running is not None else None


class _InvocationStdout(io.TextIOBase):
    """sys.stdout while invocations run: each thread's writes go to its invocation's output."""

    def __init__(self, fallback: TextIO) -> None:
        self.fallback = fallback

    def write(self, text: str) -> int:
        running = _running()
        if running is None:
            return self.fallback.write(text)
        running.write(text)
        return len(text)

    def flush(self) -> None:
        if _running() is None:
            self.fallback.flush()


class _InvocationMetricSet(MutableMapping[str, Any]):
    """Powertools' metric buffer while invocations run: each invocation's metrics are its own."""

    def __init__(self, fallback: dict[str, Any]) -> None:
        self.fallback = fallback

    def _current(self) -> dict[str, Any]:
        running = _running()
        return running.metric_set if running is not None else self.fallback

    def __getitem__(self, key: str) -> Any:
        return self._current()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._current()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._current()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._current()))

    def __len__(self) -> int:
        return len(self._current())


_stdout_lock = threading.Lock()
_stdout_users = 0


@contextlib.contextmanager
def _invocation_stdout() -> Iterator[None]:
    global _stdout_users
    provider = coordinator_metrics.provider
    with _stdout_lock:
        if _stdout_users == 0:
            sys.stdout = _InvocationStdout(sys.stdout)
            per_invocation = _InvocationMetricSet(provider.metric_set)
            provider.metric_set = coordinator_metrics.metric_set = per_invocation  # type: ignore[assignment]
        _stdout_users += 1
    try:
        yield
    finally:
        with _stdout_lock:
            _stdout_users -= 1
            if _stdout_users == 0 and isinstance(sys.stdout, _InvocationStdout):
                sys.stdout = sys.stdout.fallback
            if _stdout_users == 0 and isinstance(provider.metric_set, _InvocationMetricSet):
                provider.metric_set = coordinator_metrics.metric_set = provider.metric_set.fallback


class CurrentStdout:
    """A stream that writes to whatever sys.stdout is at the time of writing.

    Powertools binds its log handler to the stdout of import time; this lets the local runtime
    (and pytest's capture) collect the handlers' log lines with their EMF metrics.
    """

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


_follow_lock = threading.Lock()
_followers = 0
_unfollowed: list[Any] = []


@contextlib.contextmanager
def coordinator_logs_follow_stdout() -> Iterator[None]:
    """Counted: invocations that overlap (processes) share one setting, restored by the last."""
    global _followers
    handler = coordinator_logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    with _follow_lock:
        if _followers == 0:
            _unfollowed.append(handler.stream)
            handler.stream = CurrentStdout()  # not setStream(): it would flush a stream someone closed
        _followers += 1
    try:
        yield
    finally:
        with _follow_lock:
            _followers -= 1
            if _followers == 0:
                handler.stream = _unfollowed.pop()


@dataclass
class LocalLambdaContext:
    function_name: str
    timeout_seconds: float
    clock: Callable[[], float]
    started_at: float
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/[$LATEST]{self.aws_request_id[:8]}"

    def get_remaining_time_in_millis(self) -> int:
        return int(max(0.0, self.timeout_seconds - (self.clock() - self.started_at)) * 1000)


@dataclass
class Invocation:
    t: float  # virtual time of the invocation
    function: str
    event: Mapping[str, Any]
    result: Any
    output: str  # log lines and EMF metric blobs, one JSON document a line
    # Virtual time left when the handler returned; below zero it ran past its timeout.
    remaining_millis: int | None = None
    # The invocation reached its function's timeout: its result is Lambda's timeout error.
    timed_out: bool = False
    # EMF metric values it printed after its deadline or still held in its buffer: lost.
    metrics_lost: int = 0
    lost_output: str = ""  # what it printed after its deadline (never reaches CloudWatch)
    ended_at: float | None = None


class LocalLambda:
    """Invokes `module.function` handlers with a context and collects what they print.

    `on_timeout` runs after an invocation timed out: the world resets what a new execution
    environment would not have (cached clients, settings, secrets).
    """

    def __init__(
        self,
        clock: Callable[[], float],
        time: VirtualTime | None = None,
        on_timeout: Callable[[], None] | None = None,
    ) -> None:
        self._clock = clock
        self._time = time
        self._on_timeout = on_timeout
        self._lock = threading.Lock()
        self.invocations: list[Invocation] = []

    def invoke(self, function: str, handler: str, event: Mapping[str, Any], timeout_seconds: float) -> Any:
        module_name, _, attribute = handler.rpartition(".")
        entry = getattr(importlib.import_module(module_name), attribute)
        context = LocalLambdaContext(function, timeout_seconds, self._clock, self._clock())
        deadline = context.started_at + timeout_seconds
        if self._time is None:
            return self._invoke_untimed(function, entry, event, context)
        running = _Running(InvocationClock(self._time, deadline))
        in_process = self._time.current() is not None
        if in_process:
            _local.running = running
        else:
            _sequential.append(running)
        timed_out = False
        result: Any = None
        try:
            with _invocation_stdout(), coordinator_logs_follow_stdout():
                try:
                    result = entry(dict(event), context)
                except InvocationTimedOutError:
                    timed_out = True
        finally:
            if in_process:
                _local.running = None
            else:
                _sequential.remove(running)
        now = self._clock()
        timed_out = timed_out or now > deadline
        metrics_lost = 0
        if timed_out:
            result = {
                "errorType": TIMED_OUT_ERROR_TYPE,
                "errorMessage": f"Task timed out after {timeout_seconds:.2f} seconds",
            }
            metrics_lost = _metric_values(running.lost.getvalue()) + _held_metric_values(running.metric_set)
            if self._on_timeout is not None:
                self._on_timeout()
        invocation = Invocation(
            context.started_at,
            function,
            event,
            result,
            running.kept.getvalue(),
            remaining_millis=int((deadline - now) * 1000),
            timed_out=timed_out,
            metrics_lost=metrics_lost,
            lost_output=running.lost.getvalue(),
            ended_at=min(now, deadline),
        )
        with self._lock:
            self.invocations.append(invocation)
        return result

    def _invoke_untimed(
        self, function: str, entry: Callable[..., Any], event: Mapping[str, Any], context: LocalLambdaContext
    ) -> Any:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), coordinator_logs_follow_stdout():
            result = entry(dict(event), context)
        left = int((context.timeout_seconds - (self._clock() - context.started_at)) * 1000)
        with self._lock:
            self.invocations.append(
                Invocation(
                    context.started_at, function, event, result, buffer.getvalue(), remaining_millis=left
                )
            )
        return result

    def count(self, function: str | None = None) -> int:
        return sum(1 for i in self.invocations if function is None or i.function == function)

    def timed_out(self, function: str | None = None) -> list[Invocation]:
        return [i for i in self.invocations if i.timed_out and function in (None, i.function)]


def _metric_values(output: str) -> int:
    """How many metric values the EMF documents in `output` carry."""
    count = 0
    for line in output.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if not isinstance(document, dict) or "_aws" not in document:
            continue
        for directive in document["_aws"].get("CloudWatchMetrics", []):
            for definition in directive.get("Metrics", []):
                value = document.get(definition.get("Name"))
                count += len(value) if isinstance(value, list) else 1
    return count


def _held_metric_values(held: Mapping[str, Any]) -> int:
    """Metric values Powertools still held, never flushed: lost with the environment."""
    return sum(len(v.get("Value", [])) if isinstance(v, Mapping) else 1 for v in held.values())
