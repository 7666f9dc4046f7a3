"""Lambda's SQS event source mapping, as the local world runs it: poll, invoke, delete.

What AWS documents and the world does alike
(https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html,
https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html,
https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html):
- Lambda's pollers receive up to `BatchSize` messages at a time and invoke the function
  synchronously with them, at most `ScalingConfig.MaximumConcurrency` invocations at once.
- A received message is hidden for the queue's `VisibilityTimeout`; Lambda deletes it when the
  invocation succeeds. With `ReportBatchItemFailures` only the records the function names in
  `batchItemFailures` stay; an invocation that raises or times out leaves its whole batch, which
  comes back once its visibility timeout runs out, with `ApproximateReceiveCount` one higher.
- Past the redrive policy's `maxReceiveCount` SQS moves the message to the dead-letter queue
  (moto does this on receive, on the world's virtual clock).

The poller is a process on the world's virtual clock (drainctl/world/scheduler.py): it receives,
spawns one process per batch, and sleeps `POLL_SECONDS` while nothing is visible. Long polling
answers as soon as a message arrives; a poll every second is never sooner than that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from drainctl.template import FunctionRoute
from drainctl.world.scheduler import ProcessResult, VirtualTime

POLL_SECONDS: Final = 1.0
# SQS receives at most 10 messages a call
# (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html).
_RECEIVE_MAX: Final = 10
# Lambda's pollers, before the mapping scales up: 5, and MaximumConcurrency is at least 2.
_DEFAULT_CONCURRENCY: Final = 5


@dataclass
class SqsEventSource:
    """One SQS event source mapping of one function."""

    route: FunctionRoute
    queue_url: str
    queue_arn: str
    region: str
    client: Any  # the world's own SQS client (no handler hostility on it)
    invoke: Callable[[FunctionRoute, Mapping[str, Any]], Any]  # returns the function's result
    time: VirtualTime
    in_flight: int = 0
    # The queue may hold messages (visible or not): the world keeps polling it.
    busy: bool = False
    invocations: int = 0
    failed_records: int = 0
    # What the function raised (Lambda reports it as a function error and retries the batch).
    function_errors: list[Exception] = field(default_factory=list)
    _results: list[Any] = field(default_factory=list)

    @property
    def concurrency(self) -> int:
        return self.route.maximum_concurrency or _DEFAULT_CONCURRENCY

    def poll(self) -> int:
        """Receive what free concurrency can take and start an invocation per batch (from a
        process of a concurrent run). Returns how many batches it started."""
        started = 0
        while self.in_flight < self.concurrency:
            answer = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(_RECEIVE_MAX, self.route.batch_size),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = answer.get("Messages", [])
            if not messages:
                break
            self.busy = True
            self.in_flight += 1
            started += 1
            self._results.append(self.time.spawn(partial(self._run_batch, messages)))
        return started

    def raise_errors(self) -> None:
        """The poller's own failures (the world's, not the function's): seen at once."""
        ended = [r for r in self._results if r.ended]
        self._results = [r for r in self._results if not r.ended]
        for result in ended:
            if result.error is not None:
                raise result.error

    def settle(self) -> None:
        """Once nothing is in flight: is anything left in the queue, visible or not?"""
        if self.in_flight:
            return
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        left = int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )
        self.busy = left > 0

    def _run_batch(self, messages: list[dict[str, Any]]) -> None:
        try:
            event = {"Records": [self._record(m) for m in messages]}
            self.invocations += 1
            try:
                result = self.invoke(self.route, event)
            except Exception as exc:  # a function error: Lambda leaves the whole batch queued
                self.function_errors.append(exc)
                result = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            failed = _failed_ids(result, messages)
            self.failed_records += len(failed)
            done = [m for m in messages if m["MessageId"] not in failed]
            if done:
                self.client.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
        finally:
            self.in_flight -= 1

    def _record(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """The record shape Lambda hands the function (AWS's example event for a standard queue)."""
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": dict(message.get("MessageAttributes", {})),
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        }


def _failed_ids(result: Any, messages: list[dict[str, Any]]) -> set[str]:
    """Which messages stay: all of them when the invocation failed, else those it reported."""
    every = {str(m["MessageId"]) for m in messages}
    if not isinstance(result, Mapping) or "errorType" in result:
        return every
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return every  # a malformed response fails the whole batch, as Lambda treats it
    named = {str(f.get("itemIdentifier")) for f in failures if isinstance(f, Mapping)}
    if not named <= every or any(not isinstance(f, Mapping) for f in failures):
        return every
    return named


def run_with_sources(
    time: VirtualTime,
    sources: list[SqsEventSource],
    work: Sequence[Callable[[], object]],
    *,
    step: bool = False,
    in_flight: list[ProcessResult[object]] | None = None,
    until: float | None = None,
) -> None:
    """Run `work` (a tick, event deliveries) as concurrent processes beside the event sources'
    pollers.

    As one step of the world (`step`): every piece of work and every batch the pollers start
    runs on past the step, parked, resumed by the next steps: an invocation outlives the step
    that started it (a tick, an EventBridge delivery, an advance invocation), as in Lambda, so a
    long one never holds back the next tick, the next events or the fleet. The pollers take what
    is visible at each step (every `POLL_SECONDS`: Lambda's long polling takes a message as soon
    as it is sent, whatever else runs). `in_flight` keeps the pieces still running across steps;
    a piece's error is raised by the step in which it ends; `until`: the processes due by then run
    at their own times (the step's end). Otherwise, until every piece of work
    and every batch started has ended, polling every `POLL_SECONDS`.
    """
    state = {"left": len(work)}

    def counted(piece: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                piece()
            finally:
                state["left"] -= 1

        return run

    def poll_once() -> None:
        for source in sources:
            source.poll()

    def pollers() -> None:
        while True:
            poll_once()
            if not state["left"] and not any(s.in_flight for s in sources):
                # Nothing visible was left (the polls above took it): what a failed batch left
                # waits out its visibility timeout, and the world polls for it step by step.
                return
            time.spend(POLL_SECONDS)

    if step:
        running = in_flight if in_flight is not None else []

        def launch() -> None:
            running.extend(time.spawn(piece) for piece in work)

        targets: list[Callable[[], object]] = [launch, poll_once] if sources else [launch]
        for result in time.run(targets, park=True, until=until):
            if result.error is not None:
                raise result.error
        ended = [r for r in running if r.ended]
        running[:] = [r for r in running if not r.ended]
        for result in ended:
            if result.error is not None:
                raise result.error
    else:
        targets = [counted(piece) for piece in work]
        if sources:
            targets.append(pollers)
        for result in time.run(targets):
            if result.error is not None:
                raise result.error
    for source in sources:
        source.raise_errors()
        source.settle()


__all__ = ["POLL_SECONDS", "SqsEventSource", "run_with_sources"]
