from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from livekit_drain_worker.preflight import PreflightError, preflight
from livekit_drain_worker.settings import (
    EX_CONFIG,
    EX_UNAVAILABLE,
    SettingsError,
    StopTimeoutSource,
    StopTimeoutTooShortError,
    check_stop_timeout,
    load_settings,
)
from livekit_drain_worker.task_identity import TaskMetadata, read_task_metadata
from livekit_drain_worker.testing import EXAMPLE_TASK_ARN, LocalEcsEndpoints

ON_EC2 = TaskMetadata(task_arn=EXAMPLE_TASK_ARN, cluster="voice", launch_type="EC2")
ON_FARGATE = TaskMetadata(task_arn=EXAMPLE_TASK_ARN, cluster="voice", launch_type="FARGATE")


def test_settings_default_to_a_ten_minute_drain_and_no_protection() -> None:
    # GIVEN an empty environment
    # WHEN the settings are read
    settings = load_settings({})

    # THEN the defaults apply
    assert settings.drain_timeout_seconds == 600
    assert settings.stop_margin_seconds == 60
    assert settings.required_stop_timeout_seconds == 660
    assert settings.stop_timeout_seconds is None
    assert settings.max_jobs == 8
    assert settings.task_protection is False
    assert settings.health_port == 8081
    assert settings.agent_entrypoint == "livekit_drain_worker.example_agent:entrypoint"


def test_settings_are_read_from_the_environment() -> None:
    # GIVEN every setting in the environment
    environ = {
        "LIVEKIT_DRAIN_TIMEOUT_SECONDS": "900",
        "LIVEKIT_DRAIN_STOP_MARGIN_SECONDS": "30",
        "ECS_CONTAINER_STOP_TIMEOUT_SECONDS": "930",
        "LIVEKIT_MAX_JOBS": "4",
        "LIVEKIT_DRAIN_TASK_PROTECTION": "TRUE",
        "LIVEKIT_DRAIN_TASK_PROTECTION_MINUTES": "30",
        "LIVEKIT_HEALTH_PORT": "9000",
        "LIVEKIT_AGENT_ENTRYPOINT": "my_agent:entrypoint",
    }

    # WHEN the settings are read
    settings = load_settings(environ)

    # THEN each one is taken
    assert (settings.drain_timeout_seconds, settings.stop_margin_seconds) == (900, 30)
    assert settings.stop_timeout_seconds == 930
    assert settings.max_jobs == 4
    assert settings.task_protection is True
    assert settings.task_protection_minutes == 30
    assert settings.health_port == 9000
    assert settings.agent_entrypoint == "my_agent:entrypoint"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LIVEKIT_DRAIN_TIMEOUT_SECONDS", "ten minutes"),
        ("LIVEKIT_DRAIN_TIMEOUT_SECONDS", "0"),
        ("LIVEKIT_MAX_JOBS", "-1"),
        ("LIVEKIT_DRAIN_TASK_PROTECTION", "maybe"),
        ("LIVEKIT_DRAIN_TASK_PROTECTION_MINUTES", "2881"),
        ("ECS_CONTAINER_STOP_TIMEOUT_SECONDS", "660s"),
    ],
)
def test_invalid_setting_is_settings_error_naming_the_variable(name: str, value: str) -> None:
    # GIVEN one variable with a value the worker cannot use
    environ = {name: value}

    # WHEN the settings are read
    # THEN the error names the variable
    with pytest.raises(SettingsError, match=name):
        load_settings(environ)


def test_stop_timeout_equal_to_drain_plus_margin_passes() -> None:
    # GIVEN a stop timeout of exactly drain timeout + margin
    settings = load_settings({"ECS_CONTAINER_STOP_TIMEOUT_SECONDS": "660"})

    # WHEN it is checked on ECS
    budget = check_stop_timeout(settings, ON_EC2)

    # THEN the worker may start
    assert budget.stop_timeout_seconds == 660
    assert budget.required_seconds == 660
    assert budget.source is StopTimeoutSource.TASK_DEFINITION


def test_stop_timeout_shorter_than_drain_plus_margin_names_both_numbers() -> None:
    # GIVEN a stop timeout one second short of drain timeout 600 + margin 60
    settings = load_settings({"ECS_CONTAINER_STOP_TIMEOUT_SECONDS": "659"})

    # WHEN it is checked
    # THEN the worker refuses, naming the stop timeout, the drain timeout and the sum
    with pytest.raises(StopTimeoutTooShortError) as raised:
        check_stop_timeout(settings, ON_EC2)
    message = str(raised.value)
    assert "stop timeout 659 s" in message
    assert "drain timeout 600 s" in message
    assert "= 660 s" in message


def test_undeclared_stop_timeout_on_ecs_is_taken_as_ecs_default() -> None:
    # GIVEN a worker on ECS whose task definition does not pass its stop timeout
    settings = load_settings({})

    # WHEN it is checked
    # THEN ECS's 30 s default is assumed, and refused
    with pytest.raises(StopTimeoutTooShortError, match="stop timeout 30 s") as raised:
        check_stop_timeout(settings, ON_EC2)
    assert "ECS_CONTAINER_STOP_TIMEOUT_SECONDS is not set" in str(raised.value)


def test_undeclared_stop_timeout_off_ecs_warns_and_passes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a worker run locally, with no stop timeout declared
    settings = load_settings({})

    # WHEN it is checked
    with caplog.at_level(logging.WARNING, logger="livekit_drain_worker"):
        budget = check_stop_timeout(settings, None)

    # THEN the check is skipped, and says so
    assert budget.source is StopTimeoutSource.UNCHECKED
    assert any("check skipped" in record.getMessage() for record in caplog.records)


def test_declared_stop_timeout_off_ecs_is_still_checked() -> None:
    # GIVEN a local run that declares a stop timeout too short for the drain
    settings = load_settings(
        {"ECS_CONTAINER_STOP_TIMEOUT_SECONDS": "120", "LIVEKIT_DRAIN_TIMEOUT_SECONDS": "300"}
    )

    # WHEN it is checked
    # THEN it is refused like on ECS
    with pytest.raises(StopTimeoutTooShortError, match="drain timeout 300 s"):
        check_stop_timeout(settings, None)


def test_fargate_caps_the_declared_stop_timeout_at_120_seconds() -> None:
    # GIVEN a task definition declaring 660 s, on Fargate
    settings = load_settings({"ECS_CONTAINER_STOP_TIMEOUT_SECONDS": "660"})

    # WHEN it is checked
    # THEN Fargate's 120 s cap is what counts
    with pytest.raises(StopTimeoutTooShortError, match="stop timeout 120 s"):
        check_stop_timeout(settings, ON_FARGATE)


def test_preflight_on_ecs_returns_the_task_arn_and_the_checked_budget(
    ecs: LocalEcsEndpoints,
) -> None:
    # GIVEN a worker on ECS with a stop timeout that covers its drain
    environ = {**ecs.environ(), "ECS_CONTAINER_STOP_TIMEOUT_SECONDS": "660"}

    # WHEN the preflight checks run
    checked = preflight(environ)

    # THEN the worker knows its task and its budget
    assert checked.task_arn == ecs.task_arn
    assert checked.stop_budget.stop_timeout_seconds == 660
    assert checked.agent_uri == ecs.agent_uri


def test_preflight_refuses_a_short_stop_timeout_with_ex_config(ecs: LocalEcsEndpoints) -> None:
    # GIVEN a worker on ECS whose stop timeout is shorter than its drain
    environ = {**ecs.environ(), "ECS_CONTAINER_STOP_TIMEOUT_SECONDS": "120"}

    # WHEN the preflight checks run
    # THEN it must not start, with exit code 78
    with pytest.raises(PreflightError) as raised:
        preflight(environ)
    assert raised.value.exit_code == EX_CONFIG == 78
    assert "stop timeout 120 s" in str(raised.value)


def test_preflight_refuses_unreachable_metadata_with_ex_unavailable(
    ecs: LocalEcsEndpoints,
) -> None:
    # GIVEN a metadata endpoint that keeps failing
    ecs.fail_metadata(status=500, times=10)
    environ = {**ecs.environ(), "ECS_CONTAINER_STOP_TIMEOUT_SECONDS": "660"}

    def read_without_waiting(env: Mapping[str, str]) -> TaskMetadata | None:
        return read_task_metadata(env, retry_delays=(0.0,), sleep=lambda _: None)

    # WHEN the preflight checks run
    # THEN it must not start untagged: exit code 69
    with pytest.raises(PreflightError) as raised:
        preflight(environ, read_metadata=read_without_waiting)
    assert raised.value.exit_code == EX_UNAVAILABLE


def test_preflight_refuses_an_unknown_entrypoint_with_ex_config() -> None:
    # GIVEN an entrypoint that names no module
    environ = {"LIVEKIT_AGENT_ENTRYPOINT": "no_such_agent_module:entrypoint"}

    # WHEN the preflight checks run
    # THEN it must not start
    with pytest.raises(PreflightError, match="no_such_agent_module") as raised:
        preflight(environ)
    assert raised.value.exit_code == EX_CONFIG


def test_worker_process_exits_78_when_stop_timeout_is_too_short(worker_dir: Path) -> None:
    # GIVEN the worker's command line, with a stop timeout shorter than the drain
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("ECS_", "LIVEKIT_"))}
    environ |= {
        "PYTHONPATH": str(worker_dir),
        "ECS_CONTAINER_STOP_TIMEOUT_SECONDS": "300",
        "LIVEKIT_DRAIN_TIMEOUT_SECONDS": "600",
    }

    # WHEN it starts
    result = subprocess.run(
        [sys.executable, "-m", "livekit_drain_worker", "start"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # THEN it exits with EX_CONFIG and a log line naming both numbers
    assert result.returncode == 78, result.stderr
    assert "stop timeout 300 s" in result.stderr
    assert "drain timeout 600 s" in result.stderr
