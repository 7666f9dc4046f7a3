"""Spot interruptions in the local world: the events EC2 sends, and the reclaim that follows.

EC2 warns two minutes before it reclaims a Spot Instance ("EC2 Spot Instance Interruption
Warning") and nothing delays the reclaim: no lifecycle hook, no heartbeat. It may recommend a
rebalance earlier ("EC2 Instance Rebalance Recommendation"). Events have the shape of
events/ec2-spot-interruption-warning.json and events/ec2-rebalance-recommendation.json.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

SPOT_WARNING: Final = "EC2 Spot Instance Interruption Warning"
REBALANCE_RECOMMENDATION: Final = "EC2 Instance Rebalance Recommendation"
RECLAIM_AFTER_SECONDS: Final = 120.0

EventSink = Callable[[dict[str, Any]], None]


class SpotInterruptions:
    def __init__(
        self,
        clock: Callable[[], float],
        emit: EventSink,
        new_id: Callable[[], str],
        *,
        region: str,
        account: str,
    ) -> None:
        self._clock = clock
        self._emit = emit
        self._new_id = new_id
        self._region = region
        self._account = account
        self._lock = threading.Lock()
        self._due: dict[str, float] = {}  # instance id -> reclaim time
        self.reclaimed: set[str] = set()
        # Called with the instance id on each rebalance recommendation (the group's own Capacity
        # Rebalancing answers it, when turned on).
        self.on_rebalance: Callable[[str], None] | None = None

    def interrupt(self, instance_id: str, *, instance_action: str = "terminate") -> float:
        """EC2 sends the two-minute warning now; returns when it reclaims the instance."""
        now = self._clock()
        reclaim_at = now + RECLAIM_AFTER_SECONDS
        with self._lock:
            self._due.setdefault(instance_id, reclaim_at)
        self._emit(
            self._event(
                SPOT_WARNING,
                now,
                f"arn:aws:ec2:{self._region}a:instance/{instance_id}",
                {"instance-id": instance_id, "instance-action": instance_action},
            )
        )
        return reclaim_at

    def recommend_rebalance(self, instance_id: str) -> None:
        now = self._clock()
        self._emit(
            self._event(
                REBALANCE_RECOMMENDATION,
                now,
                f"arn:aws:ec2:{self._region}:{self._account}:instance/{instance_id}",
                {"instance-id": instance_id},
            )
        )
        if self.on_rebalance is not None:
            self.on_rebalance(instance_id)

    def reclaim_due(self, now: float) -> list[str]:
        """Instances whose reclaim time has come: they are gone from now on."""
        with self._lock:
            due = sorted(i for i, at in self._due.items() if at <= now)
            for instance_id in due:
                del self._due[instance_id]
            self.reclaimed.update(due)
        return due

    def _event(self, detail_type: str, now: float, resource: str, detail: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": "0",
            "id": self._new_id(),
            "detail-type": detail_type,
            "source": "aws.ec2",
            "account": self._account,
            "time": datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self._region,
            "resources": [resource],
            "detail": detail,
        }
