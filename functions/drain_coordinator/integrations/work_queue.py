"""SQS: the work queue a tick fans its shards out over (the advance function consumes it, as many
invocations at once as its event source mapping's MaximumConcurrency allows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from drain_coordinator.domain.schedule import Shard
from drain_coordinator.integrations.aws_clients import describe_error

_BATCH = 10  # SendMessageBatch takes at most 10 messages (and 256 KiB in all)


class WorkQueueError(Exception):
    """SQS refused or failed a send after retries."""


class WorkQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(self, shards: Sequence[Shard]) -> int:
        """Send every shard; returns how many SQS took. Raises only if it took none."""
        sent = 0
        failures: list[str] = []
        for start in range(0, len(shards), _BATCH):
            batch = shards[start : start + _BATCH]
            entries = [{"Id": str(i), "MessageBody": s.to_body()} for i, s in enumerate(batch)]
            try:
                answer = self._client.send_message_batch(QueueUrl=self._url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                failures.append(describe_error(exc, "send shards to the work queue"))
                continue
            sent += len(answer.get("Successful", []))
            failures += [str(f.get("Message", f.get("Code", "failed"))) for f in answer.get("Failed", [])]
        if failures and not sent:
            raise WorkQueueError(failures[0])
        return sent
