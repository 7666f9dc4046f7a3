"""The worker service in template.yaml: its timers come from one parameter each, and agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drainctl import check

ROOT = Path(__file__).resolve().parents[2]
WORKER_ON = [
    "WorkerImageUri=123456789012.dkr.ecr.us-east-1.amazonaws.com/livekit-drain-worker:1",
    "WorkerSubnetIds=subnet-0123456789abcdef0",
    "LiveKitUrl=wss://livekit.example.com",
    "LiveKitSecretArn=arn:aws:secretsmanager:us-east-1:123456789012:secret:livekit-AbCdEf",
]


def run_check(capsys: pytest.CaptureFixture[str], *params: str) -> tuple[int, dict[str, dict[str, object]]]:
    status = check.main(["--template", str(ROOT / "template.yaml"), "--json", "--params", *params])
    report = json.loads(capsys.readouterr().out)
    return status, {rule["rule"]: rule for rule in report["rules"]}


def test_the_packaged_worker_service_passes_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    status, rules = run_check(capsys, *WORKER_ON)
    assert status == 0
    for rule_id in (
        "launch-type-ec2",
        "stop-timeout-covers-drain",
        "host-stop-timeout-agrees",
        "sigterm-reaches-worker",
        "numbers-agree",
    ):
        assert rules[rule_id]["status"] == "PASS", rules[rule_id]


def test_one_parameter_moves_the_container_the_host_and_the_worker_together(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a longer drain and stop, set once each
    status, rules = run_check(
        capsys, *WORKER_ON, "WorkerDrainTimeout=1800", "WorkerStopTimeout=1900", "DrainDeadline=2400"
    )
    # THEN the container, the hosts and the worker's own copy all follow
    assert status == 0
    assert "1900" in str(rules["host-stop-timeout-agrees"]["detail"])
    assert "ECS_CONTAINER_STOP_TIMEOUT_SECONDS 1900" in str(rules["numbers-agree"]["detail"])


def test_a_stop_timeout_shorter_than_the_drain_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    status, rules = run_check(capsys, *WORKER_ON, "WorkerStopTimeout=610")
    assert status == 1
    assert rules["stop-timeout-covers-drain"]["status"] == "FAIL"
    assert "610" in str(rules["stop-timeout-covers-drain"]["detail"])
