from __future__ import annotations

import pytest

from drain_coordinator.settings import Settings, SettingsError

BASE = {
    "DRAIN_TABLE_NAME": "livekit-drain",
    "ECS_CLUSTER_NAME": "agents",
    "ASG_NAME": "livekit-agents-asg",
    "LIFECYCLE_HOOK_NAME": "livekit-drain-terminate",
    "LIVEKIT_URL": "https://livekit.example.com",
    "LIVEKIT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:livekit-AbCdEf",
}


def test_defaults_are_the_safe_ones() -> None:
    settings = Settings.from_env(BASE)
    assert (settings.worker_drain_timeout, settings.worker_stop_timeout) == (600, 900)
    assert (settings.heartbeat_timeout, settings.drain_deadline, settings.reconcile_period) == (300, 1200, 60)


def test_missing_variable_is_named() -> None:
    env = {k: v for k, v in BASE.items() if k != "ASG_NAME"}
    with pytest.raises(SettingsError, match="ASG_NAME"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"HOOK_HEARTBEAT_TIMEOUT_SECONDS": "20"}, "HOOK_HEARTBEAT_TIMEOUT_SECONDS"),
        ({"HOOK_HEARTBEAT_TIMEOUT_SECONDS": "8000"}, "HOOK_HEARTBEAT_TIMEOUT_SECONDS"),
        ({"DRAIN_DEADLINE_SECONDS": "40000", "HOOK_HEARTBEAT_TIMEOUT_SECONDS": "300"}, r"min\(48 h"),
        (
            {"DRAIN_DEADLINE_SECONDS": "930"},
            r"WORKER_STOP_TIMEOUT_SECONDS=900 \+ RECONCILE_PERIOD_SECONDS=60",
        ),
        ({"WORKER_STOP_TIMEOUT_SECONDS": "620"}, r"WORKER_DRAIN_TIMEOUT_SECONDS=600 \+ 60"),
        ({"HOOK_HEARTBEAT_TIMEOUT_SECONDS": "120"}, "3 x"),
        ({"LIVEKIT_URL": "livekit.example.com"}, "LIVEKIT_URL"),
        ({"WORKER_STOP_TIMEOUT_SECONDS": "soon"}, "WORKER_STOP_TIMEOUT_SECONDS"),
    ],
)
def test_bad_values_are_refused_with_the_rule_and_numbers(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({**BASE, **overrides})


def test_rebalance_drain_is_off_unless_opted_in() -> None:
    assert Settings.from_env(BASE).rebalance_drain is False
    assert Settings.from_env({**BASE, "REBALANCE_DRAIN": "true"}).rebalance_drain is True
    assert Settings.from_env({**BASE, "REBALANCE_DRAIN": "false"}).rebalance_drain is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"REBALANCE_DRAIN": "sometimes"}, "REBALANCE_DRAIN"),
        ({"SHARD_SIZE": "0"}, "SHARD_SIZE"),
        ({"SHARD_SIZE": "501"}, "SHARD_SIZE"),
    ],
)
def test_bad_fault_handling_settings_are_refused(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({**BASE, **overrides})
