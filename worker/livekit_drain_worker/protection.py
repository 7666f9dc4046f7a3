"""Optional ECS task scale-in protection while the worker holds calls.

With protection on, a service scale-in picks idle workers and leaves the ones holding calls
alone. The worker asks the ECS agent (``PUT $ECS_AGENT_URI/task-protection/v1/state``) to
protect its task when its first call starts, renews the protection at half its lifetime while
calls go on, and releases it once idle. Errors are logged and retried on the next sync: a
failure here costs the protection, never a call.

The trade-off: ECS does not stop a protected task in a deployment either; it waits for the
protection to be released or to expire
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html).
Renewed for as long as calls go on, steady traffic would hold a deploy forever, so one spell of
protection is capped (`max_hold_seconds`, the worker's drain timeout + stop timeout): its
expiry never lies further than the cap from the spell's start, it is released when a renewal
would pass the cap, and a new spell starts only after the worker was idle. A deploy, whenever
it starts, waits at most the cap for this task. Off by default; turn it on with
``LIVEKIT_DRAIN_TASK_PROTECTION=true``. The task role needs ``ecs:UpdateTaskProtection``.
ECS scopes protection to service auto scaling and deployments; an instance's termination is the
drain coordinator's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Protocol

AGENT_URI_ENV = "ECS_AGENT_URI"
PROTECTION_PATH = "/task-protection/v1/state"

logger = logging.getLogger(__name__)


class TaskProtectionError(Exception):
    """The ECS agent did not set the task's protection as asked."""


class ProtectionClient(Protocol):
    def set_protection(self, enabled: bool, expires_in_minutes: int | None = None) -> None: ...


class TaskProtectionClient:
    """The ECS agent's task protection endpoint, over plain HTTP.

    A successful answer is ``{"protection": {"ProtectionEnabled": true, "ExpirationDate": ...,
    "TaskArn": ...}}``. ECS refusing the task comes back as HTTP 200 with
    ``{"failure": {"Arn": ..., "Reason": ...}}``; an error as 4xx/5xx with
    ``{"error": {"Code": ..., "Message": ...}}``. Both raise `TaskProtectionError`.
    """

    def __init__(self, agent_uri: str, *, timeout_seconds: float = 5.0) -> None:
        if not agent_uri.startswith(("http://", "https://")):
            raise ValueError(f"{AGENT_URI_ENV} is not an http URL: {agent_uri!r}")
        self.url = agent_uri.rstrip("/") + PROTECTION_PATH
        self.timeout_seconds = timeout_seconds

    def set_protection(self, enabled: bool, expires_in_minutes: int | None = None) -> None:
        body: dict[str, Any] = {"ProtectionEnabled": enabled}
        if enabled and expires_in_minutes is not None:
            body["ExpiresInMinutes"] = expires_in_minutes
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self.url,
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:  # noqa: S310
                answer = _json_object(response.read())
        except urllib.error.HTTPError as error:
            detail = _json_object(error.read()).get("error") or {}
            raise TaskProtectionError(
                f"HTTP {error.code} {detail.get('Code', '')}: {detail.get('Message', error.reason)}"
            ) from error
        except OSError as error:
            raise TaskProtectionError(f"ECS agent unreachable: {error}") from error

        if "failure" in answer:
            failure = answer["failure"] or {}
            raise TaskProtectionError(f"ECS refused: {failure.get('Reason', failure)}")
        protection = answer.get("protection")
        if not isinstance(protection, Mapping) or protection.get("ProtectionEnabled") != enabled:
            raise TaskProtectionError(f"unexpected answer: {answer}")


class ScaleInProtection:
    """Decides when to protect, renew and release; called with the active job count.

    `sync` never raises: an error is logged and the same step is tried again on the next sync.
    """

    def __init__(
        self,
        client: ProtectionClient,
        *,
        expires_in_minutes: int,
        renew_after_seconds: float | None = None,
        max_hold_seconds: float | None = None,
    ) -> None:
        self.client = client
        self.expires_in_minutes = expires_in_minutes
        # None: no cap (each spell is renewed while calls go on)
        self.max_hold_seconds = max_hold_seconds
        self.spell_started_at: float | None = None
        self.spent = False  # this spell reached its cap: no protection until the worker is idle
        # Renew at half the lifetime: a missed sync or two still leaves time before expiry.
        self.renew_after_seconds = (
            expires_in_minutes * 60 / 2 if renew_after_seconds is None else renew_after_seconds
        )
        self.protected = False
        self.renew_at: float | None = None

    def sync(self, active_jobs: int, now: float) -> None:
        if active_jobs == 0:
            self.spent = False
            self.spell_started_at = None
            if self.protected:
                self._set(False, active_jobs, now)
            return
        if self.spent or (self.protected and (self.renew_at is None or now < self.renew_at)):
            return
        minutes = self._minutes_left(now)
        if minutes < 1:
            # The spell's cap is reached: let a deploy have this task.
            self.spent = True
            if self.protected:
                self._set(False, active_jobs, now)
            logger.info(
                "task protection held as long as allowed: released until the worker is idle",
                extra={"active_jobs": active_jobs, "max_hold_seconds": self.max_hold_seconds},
            )
            return
        self._set(True, active_jobs, now, minutes)

    def _minutes_left(self, now: float) -> int:
        """The protection's lifetime to ask for now: never past the spell's cap."""
        if self.max_hold_seconds is None:
            return self.expires_in_minutes
        started = self.spell_started_at if self.spell_started_at is not None else now
        return min(self.expires_in_minutes, int((started + self.max_hold_seconds - now) // 60))

    def _set(self, enabled: bool, active_jobs: int, now: float, minutes: int | None = None) -> None:
        renewing = enabled and self.protected
        minutes = self.expires_in_minutes if minutes is None else minutes
        try:
            self.client.set_protection(enabled, minutes if enabled else None)
        except TaskProtectionError as error:
            logger.warning(
                "task protection update failed",
                extra={"enable": enabled, "active_jobs": active_jobs, "error": str(error)},
            )
            return
        self.protected = enabled
        if enabled and self.spell_started_at is None:
            self.spell_started_at = now
        self.renew_at = now + min(self.renew_after_seconds, minutes * 60 / 2) if enabled else None
        logger.info(
            "task protection renewed"
            if renewing
            else ("task protection enabled" if enabled else "task protection released"),
            extra={
                "active_jobs": active_jobs,
                "expires_in_minutes": minutes if enabled else None,
            },
        )


async def keep_protection(
    protection: ScaleInProtection,
    active_jobs: Callable[[], int],
    *,
    interval_seconds: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
    stop: asyncio.Event | None = None,
) -> None:
    """Sync `protection` with the active job count every `interval_seconds` until `stop`.

    The HTTP call runs in a thread so the worker's event loop never waits on the ECS agent.
    """
    stop = stop or asyncio.Event()
    while not stop.is_set():
        await asyncio.to_thread(protection.sync, active_jobs(), clock())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_seconds)


def _json_object(raw: bytes) -> Mapping[str, Any]:
    try:
        document = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
