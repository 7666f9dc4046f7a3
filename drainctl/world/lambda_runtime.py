"""Runs the real handlers in-process the way Lambda would: environment, context, captured output."""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from drain_coordinator.observability import logger as coordinator_logger


class CurrentStdout:
    """A stream that writes to whatever sys.stdout is at the time of writing.

    Powertools binds its log handler to the stdout of import time; this lets the local runtime
    (and pytest's capture) collect the handlers' log lines with their EMF metrics.
    """

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@contextlib.contextmanager
def coordinator_logs_follow_stdout() -> Iterator[None]:
    handler = coordinator_logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.stream
    handler.stream = CurrentStdout()  # not setStream(): it would flush a stream someone closed
    try:
        yield
    finally:
        handler.stream = previous


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


class LocalLambda:
    """Invokes `module.function` handlers with a context and collects what they print."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.invocations: list[Invocation] = []

    def invoke(self, function: str, handler: str, event: Mapping[str, Any], timeout_seconds: float) -> Any:
        module_name, _, attribute = handler.rpartition(".")
        entry = getattr(importlib.import_module(module_name), attribute)
        context = LocalLambdaContext(function, timeout_seconds, self._clock, self._clock())
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), coordinator_logs_follow_stdout():
            result = entry(dict(event), context)
        left = int((timeout_seconds - (self._clock() - context.started_at)) * 1000)
        self.invocations.append(
            Invocation(context.started_at, function, event, result, buffer.getvalue(), remaining_millis=left)
        )
        return result

    def count(self, function: str | None = None) -> int:
        return sum(1 for i in self.invocations if function is None or i.function == function)
