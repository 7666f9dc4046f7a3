"""Durations and settings read the way AWS reads them: the ECS agent's Go durations, the
settings a launch template's user data writes into ecs.config, a schedule's fixed period.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

_GO_DURATION: Final = re.compile(r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_GO_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT_SECONDS: Final[Mapping[str, float]] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def ecs_duration_seconds(text: str) -> float | None:
    """A duration as the ECS agent reads it (Go's time.ParseDuration): `900s`, `15m`, `1h30m`.

    None when the agent cannot read it: a bare number other than 0 has no unit and is refused.
    """
    text = text.strip()
    if text in ("0", "+0", "-0"):
        return 0.0
    if not _GO_DURATION.fullmatch(text):
        return None
    seconds = sum(float(number) * _GO_UNIT_SECONDS[unit] for number, unit in _GO_DURATION_PART.findall(text))
    return -seconds if text.startswith("-") else seconds


_STOP_TIMEOUT_SETTING: Final = re.compile(r"\bECS_CONTAINER_STOP_TIMEOUT=['\"]?([^\s'\"]*)")


_WARM_POOLS_CHECK_SETTING: Final = re.compile(r"\bECS_WARM_POOLS_CHECK=['\"]?([^\s'\"]*)")


def _last_setting(pattern: re.Pattern[str], user_data: str) -> str | None:
    """The value user data writes for a setting (the last one wins), or None."""
    found = pattern.findall(user_data)
    return str(found[-1]) if found else None


def host_stop_timeout_setting(user_data: str) -> str | None:
    """The value user data writes for ECS_CONTAINER_STOP_TIMEOUT (the last one wins), or None."""
    found = _STOP_TIMEOUT_SETTING.findall(user_data)
    return found[-1] if found else None


_RATE: Final = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_RATE_UNIT_SECONDS: Final[Mapping[str, int]] = {
    "minute": 60,
    "minutes": 60,
    "hour": 3600,
    "hours": 3600,
    "day": 86400,
    "days": 86400,
}
_CRON: Final = re.compile(r"cron\(\s*(\S+)\s+(\S+)\s+\S+\s+\S+\s+\S+(?:\s+\S+)?\s*\)")
_CRON_EVERY_N_MINUTES: Final = re.compile(r"(?:\*|0)/(\d+)")


def schedule_period_seconds(expression: str) -> int | None:
    """The fixed period of `rate(...)` or of an every-N-minutes `cron(...)`; None otherwise."""
    expression = expression.strip()
    rate = _RATE.fullmatch(expression)
    if rate is not None:
        return int(rate.group(1)) * _RATE_UNIT_SECONDS[rate.group(2)]
    cron = _CRON.fullmatch(expression)
    if cron is None or cron.group(2) != "*":
        return None
    minutes = cron.group(1)
    if minutes == "*":
        return 60
    every = _CRON_EVERY_N_MINUTES.fullmatch(minutes)
    # Only an N that divides the hour gives the same gap at every tick.
    if every is not None and 0 < int(every.group(1)) <= 60 and 60 % int(every.group(1)) == 0:
        return int(every.group(1)) * 60
    return None
