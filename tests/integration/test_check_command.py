"""`drainctl check` end to end: templates, samconfigs and task definitions read from disk, the report
printed, the exit status returned."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from drainctl import check
from drainctl.check import CheckInputError, CheckInputs, load_budget

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
FIXTURES = ROOT / "tests" / "fixtures" / "check"
STACK = FIXTURES / "stack.yaml"
MISCONFIGURED = FIXTURES / "samconfig-misconfigured.toml"
TD_EC2 = FIXTURES / "task-definition-ec2.json"
TD_FARGATE = FIXTURES / "task-definition-fargate.json"
TD_SHELL = FIXTURES / "task-definition-shell-form.json"
WORKER_IN_STACK = ["--template", str(STACK), "--params", "CreateWorkerService=true"]


def run_check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = check.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def rows(out: str, status: str) -> dict[str, str]:
    """The report's rows with this status: rule id -> the rest of the line."""
    found: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) == 3 and parts[0] == status:
            found[parts[1]] = parts[2]
    return found


def json_report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    status, out, _ = run_check(capsys, *argv, "--json")
    report: dict[str, Any] = json.loads(out)
    return status, report


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {rule["rule"]: rule["status"] for rule in report["rules"]}


# -- the done-when of the issue -----------------------------------------------------------------


def test_the_projects_own_template_with_its_samconfig_passes(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN template.yaml and samconfig.toml as committed
    # WHEN checked
    status, out, err = run_check(capsys, "--template", str(TEMPLATE), "--config", str(SAMCONFIG))
    # THEN every rule it can judge passes, and the verdict says so
    assert status == 0, out
    assert rows(out, "FAIL") == {}
    assert out.splitlines()[-1].startswith("PASS: ")
    assert err == ""


def test_a_misconfigured_user_stack_is_refused_with_one_line_per_problem(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the project's template deployed with a user's samconfig (heartbeat timeout 30 s,
    # stopTimeout 120 s for a 600 s drain) and the user's own Fargate task definition
    # WHEN checked
    status, out, _ = run_check(
        capsys,
        "--template",
        str(TEMPLATE),
        "--config",
        str(MISCONFIGURED),
        "--task-definition",
        str(TD_FARGATE),
    )
    # THEN it is refused, one line per problem, each with its numbers
    assert status == 1
    failed = rows(out, "FAIL")
    assert set(failed) == {
        "launch-type-ec2",
        "stop-timeout-covers-drain",
        "heartbeat-cadence",
        "parameters-accepted",
    }
    assert 'requiresCompatibilities ["FARGATE"]' in failed["launch-type-ec2"]
    assert "Fargate caps stopTimeout at 120 s" in failed["launch-type-ec2"]
    assert (
        "stopTimeout 120 s < drain_timeout 600 s + margin 60 s = 660 s" in failed["stop-timeout-covers-drain"]
    )
    assert "every 60 s > HeartbeatTimeout 30 s / 3 = 10 s" in failed["heartbeat-cadence"]
    # AND the template's own guard is the fourth line: sam deploy would refuse the 30 s too
    assert "HookHeartbeatTimeout=30 is below MinValue 180" in failed["parameters-accepted"]
    assert sum(1 for line in out.splitlines() if line.startswith("FAIL ")) == 4
    assert out.splitlines()[-1] == (
        "FAIL: 4 of 18 rules fail: launch-type-ec2, stop-timeout-covers-drain, heartbeat-cadence, "
        "parameters-accepted"
    )


def test_the_same_mistakes_in_a_stack_whose_worker_service_is_in_the_template_give_three_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a stack with its worker service in the template, on Fargate, with the same timers
    # WHEN checked
    status, out, _ = run_check(
        capsys,
        *WORKER_IN_STACK,
        "WorkerLaunchType=FARGATE",
        "WorkerStopTimeout=120",
        "HookHeartbeatTimeout=30",
    )
    # THEN exactly the three problems are refused
    assert status == 1
    failed = rows(out, "FAIL")
    assert set(failed) == {"launch-type-ec2", "stop-timeout-covers-drain", "heartbeat-cadence"}
    assert "service WorkerService LaunchType FARGATE" in failed["launch-type-ec2"]


# -- the worker service in the template ---------------------------------------------------------


def test_a_task_definition_behind_a_false_condition_is_not_the_worker(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the stack with CreateWorkerService false
    status, report = json_report(capsys, "--template", str(STACK))
    # THEN the worker's own rules are skipped and the coordinator's numbers are used
    assert status == 0
    assert statuses(report)["launch-type-ec2"] == "SKIP"
    assert statuses(report)["sigterm-reaches-worker"] == "SKIP"
    assert statuses(report)["host-stop-timeout-agrees"] == "SKIP"


def test_the_worker_service_in_the_template_is_checked_with_no_change(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the stack with its worker service created (image from a GetAtt, an environment with
    # a parameter that has no value: neither is a number the check needs)
    status, out, err = run_check(capsys, *WORKER_IN_STACK)
    # THEN the container, its service and its hosts are judged, and pass
    assert status == 0, out + err
    assert "worker numbers from task definition WorkerTaskDefinition, container 'agent'" in out
    passed = rows(out, "PASS")
    assert passed["sigterm-reaches-worker"] == "linuxParameters.initProcessEnabled true"
    assert passed["host-stop-timeout-agrees"] == "launch template WorkerHosts sets 900s = 900 s >= 900 s"
    assert passed["launch-type-ec2"].startswith("EC2")


@pytest.mark.parametrize(
    ("params", "fargate"),
    [
        (["WorkerLaunchType=FARGATE"], "service WorkerService LaunchType FARGATE"),
        (
            ["WorkerLaunchType=", "WorkerCapacityProvider=FARGATE_SPOT"],
            "service WorkerService capacity provider FARGATE_SPOT",
        ),
        (
            ["WorkerLaunchType=", "ClusterDefaultCapacityProvider=FARGATE"],
            "service WorkerService uses the default capacity provider FARGATE of WorkerCluster",
        ),
    ],
)
def test_a_worker_service_put_on_fargate_any_way_is_refused(
    capsys: pytest.CaptureFixture[str], params: list[str], fargate: str
) -> None:
    # GIVEN the worker service on Fargate by launch type, capacity provider or cluster default
    status, out, _ = run_check(capsys, *WORKER_IN_STACK, *params)
    # THEN the launch type rule names the setting, and stopTimeout is judged at Fargate's 120 s
    failed = rows(out, "FAIL")
    assert status == 1
    assert failed["launch-type-ec2"].startswith(f"Fargate: {fargate}")
    assert (
        "stopTimeout 120 s (stopTimeout 900 s, capped at 120 s on Fargate)"
        in failed["stop-timeout-covers-drain"]
    )
    assert set(failed) == {"launch-type-ec2", "stop-timeout-covers-drain"}


def test_a_worker_service_on_an_ec2_capacity_provider_passes(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_check(
        capsys, *WORKER_IN_STACK, "WorkerLaunchType=", "WorkerCapacityProvider=agents-ec2"
    )
    assert status == 0
    assert rows(out, "PASS")["launch-type-ec2"].startswith("EC2")


@pytest.mark.parametrize(
    ("large", "container", "stop", "drain"),
    [("true", "agent-large", 1800, 1200), ("false", "agent", 900, 600)],
)
def test_a_worker_container_written_as_fn_if_is_the_branch_its_condition_picks(
    large: str, container: str, stop: int, drain: int
) -> None:
    # GIVEN a task definition whose only container is !If [LargeWorker, {...}, {...}]
    inputs = CheckInputs(
        template=FIXTURES / "stack-conditional-container.yaml", params={"LargeWorker": large}
    )
    # WHEN read
    budget = load_budget(inputs)
    # THEN the chosen branch's numbers are the worker's
    assert budget.worker_source == f"task definition WorkerTaskDefinition, container {container!r}"
    assert (budget.stop_timeout, budget.drain_timeout, budget.init_process_enabled) == (stop, drain, True)


@pytest.mark.parametrize(
    ("setting", "verdict", "fragment"),
    [
        ("15m", "PASS", "sets 15m = 900 s >= 900 s"),
        ("600s", "FAIL", "sets 600s = 600 s < 900 s"),
        ("900", "FAIL", "sets '900', which the ECS agent cannot read"),
    ],
)
def test_the_hosts_stop_timeout_is_read_out_of_base64_user_data(
    capsys: pytest.CaptureFixture[str], setting: str, verdict: str, fragment: str
) -> None:
    # GIVEN hosts whose launch template writes ECS_CONTAINER_STOP_TIMEOUT=<setting>
    status, out, _ = run_check(capsys, *WORKER_IN_STACK, f"HostStopTimeout={setting}")
    # THEN the rule reads it as the ECS agent would
    assert fragment in rows(out, verdict)["host-stop-timeout-agrees"]
    assert status == (0 if verdict == "PASS" else 1)


def test_init_process_off_in_the_template_with_no_command_fails(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_check(capsys, *WORKER_IN_STACK, "WorkerInitProcess=false")
    assert status == 1
    assert "no entryPoint/command" in rows(out, "FAIL")["sigterm-reaches-worker"]


def test_a_schedule_longer_than_the_reconcile_timeout_allows_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a reconcile scheduled every 5 minutes while the coordinator believes 60 s
    status, report = json_report(
        capsys, "--template", str(STACK), "--params", "ReconcileSchedule=rate(5 minutes)"
    )
    # THEN the cadence and the disagreement are both refused
    assert status == 1
    found = statuses(report)
    assert (found["heartbeat-cadence"], found["numbers-agree"]) == ("FAIL", "FAIL")
    assert found["reconcile-fits-period"] == "PASS"


# -- the user's own task definition -------------------------------------------------------------


def test_a_describe_task_definition_output_picks_the_worker_container(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN `aws ecs describe-task-definition` output with a log router and the worker
    budget = load_budget(CheckInputs(template=TEMPLATE, config=SAMCONFIG, task_definition=TD_EC2))
    # THEN the container that sets LIVEKIT_DRAIN_TIMEOUT_SECONDS is the worker
    assert budget.worker_source == "task definition task-definition-ec2.json, container 'agent'"
    assert (budget.stop_timeout, budget.drain_timeout, budget.declared_stop_timeout) == (900, 600, 900)
    assert budget.init_process_enabled is True
    assert budget.argv == ("python", "-m", "livekit_drain_worker", "start")
    assert budget.fargate_settings == ()
    # AND the whole check passes
    status, _, _ = run_check(capsys, "--task-definition", str(TD_EC2), "--template", str(TEMPLATE))
    assert status == 0


def test_a_task_definition_that_runs_the_worker_under_a_shell_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = run_check(capsys, "--template", str(TEMPLATE), "--task-definition", str(TD_SHELL))
    assert status == 1
    assert set(rows(out, "FAIL")) == {"sigterm-reaches-worker"}
    assert '["sh", "-c", ' in rows(out, "FAIL")["sigterm-reaches-worker"]


def test_the_task_definition_wins_over_the_coordinators_parameters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a task definition whose stopTimeout (900) is not the coordinator's (WorkerStopTimeout=1000)
    status, report = json_report(
        capsys,
        "--template",
        str(TEMPLATE),
        "--task-definition",
        str(TD_EC2),
        "--params",
        "WorkerStopTimeout=1000",
    )
    # THEN the disagreement is refused
    assert status == 1
    rules = {rule["rule"]: rule for rule in report["rules"]}
    assert rules["numbers-agree"]["status"] == "FAIL"
    assert "WORKER_STOP_TIMEOUT_SECONDS 1000 != stopTimeout 900" in rules["numbers-agree"]["detail"]


# -- options ------------------------------------------------------------------------------------


def test_config_env_selects_the_samconfig_environment(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_check(
        capsys,
        "--template",
        str(TEMPLATE),
        "--config",
        str(MISCONFIGURED),
        "--config-env",
        "staging",
        "--task-definition",
        str(TD_EC2),
    )
    assert status == 0, out
    assert f"with {MISCONFIGURED} [staging]" in out.splitlines()[0]


def test_params_override_samconfig(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, _ = run_check(
        capsys,
        "--template",
        str(TEMPLATE),
        "--config",
        str(MISCONFIGURED),
        "--params",
        "WorkerStopTimeout=900",
        "HookHeartbeatTimeout=300",
    )
    assert status == 0


@pytest.mark.parametrize(("p99", "expected"), [("480", "PASS"), ("700", "FAIL")])
def test_p99_call_seconds_is_judged_against_the_drain_timeout(
    capsys: pytest.CaptureFixture[str], p99: str, expected: str
) -> None:
    status, report = json_report(capsys, "--template", str(TEMPLATE), "--p99-call-seconds", p99)
    assert statuses(report)["p99-call-fits-drain"] == expected
    assert status == (0 if expected == "PASS" else 1)


def test_a_larger_margin_makes_the_default_stop_timeout_too_short(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_check(capsys, "--template", str(TEMPLATE), "--margin", "400")
    assert status == 1
    assert (
        "stopTimeout 900 s < drain_timeout 600 s + margin 400 s = 1000 s"
        in rows(out, "FAIL")["stop-timeout-covers-drain"]
    )


def test_json_prints_one_object_with_the_verdict_and_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_check(capsys, "--template", str(TEMPLATE), "--json")
    report = json.loads(out)
    assert status == 0
    assert set(report) == {"passed", "rules", "assumed"}
    assert report["assumed"] and all(isinstance(line, str) for line in report["assumed"])
    assert report["passed"] is True
    assert len(report["rules"]) == len(check.RULES)
    assert set(report["rules"][0]) == {"rule", "title", "status", "passed", "detail", "why"}


# -- unreadable input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--template", "no-such-template.yaml"], "cannot read template no-such-template.yaml"),
        (["--config", "no-such-samconfig.toml"], "cannot read samconfig no-such-samconfig.toml"),
        (["--task-definition", "no-such-task-definition.json"], "cannot read task definition"),
        (["--params", "NoSuchParameter=1"], "unknown parameter(s) NoSuchParameter"),
        (["--params", "WorkerStopTimeout"], "--params takes NAME=VALUE"),
        (["--params", "WorkerStopTimeout=soon"], "'soon' is not a number of seconds"),
        (["--margin", "-1"], "--margin cannot be negative"),
        (["--p99-call-seconds", "0"], "--p99-call-seconds must be a positive number"),
    ],
)
def test_unreadable_input_exits_2_with_the_reason_on_stderr(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    # GIVEN the project's template, unless the case names another
    base = ["--template", str(TEMPLATE)] if "--template" not in argv else []
    # WHEN checked
    status, out, err = run_check(capsys, *base, *argv)
    # THEN nothing is judged and stderr says why
    assert status == 2
    assert out == ""
    assert err.startswith("drainctl check: ")
    assert message in err


def test_bad_yaml_and_bad_json_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken_template = tmp_path / "template.yaml"
    broken_template.write_text("Resources: [unclosed\n")
    status, _, err = run_check(capsys, "--template", str(broken_template))
    assert (status, "is not valid template YAML" in err) == (2, True)

    broken_json = tmp_path / "td.json"
    broken_json.write_text('{"containerDefinitions": [')
    status, _, err = run_check(capsys, "--template", str(TEMPLATE), "--task-definition", str(broken_json))
    assert (status, "not JSON" in err) == (2, True)

    not_a_task_definition = tmp_path / "service.json"
    not_a_task_definition.write_text('{"services": []}')
    status, _, err = run_check(
        capsys, "--template", str(TEMPLATE), "--task-definition", str(not_a_task_definition)
    )
    assert (status, "not a task definition" in err) == (2, True)


def test_a_template_without_the_coordinator_is_unreadable_input(tmp_path: Path) -> None:
    # GIVEN a template with no drain coordinator function
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n")
    # WHEN read, THEN it is refused as input, naming what is missing
    with pytest.raises(
        CheckInputError, match=r"no function with Handler drain_coordinator\.handlers\.lifecycle"
    ):
        load_budget(CheckInputs(template=template))


# -- the command's entry points -----------------------------------------------------------------


def test_run_takes_the_namespace_the_drainctl_parser_builds(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a drainctl-like parser with `check` added as a subcommand
    parser = argparse.ArgumentParser(prog="drainctl")
    check.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["check", "--template", str(TEMPLATE), "--task-definition", str(TD_FARGATE)])
    # WHEN run with that namespace
    status = check.run(args)
    # THEN it reports as the standalone command does
    out = capsys.readouterr().out
    assert args.command == "check"
    assert status == 1
    assert "launch-type-ec2" in rows(out, "FAIL")


def test_run_with_a_hand_built_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(
        template=TEMPLATE,
        config=SAMCONFIG,
        config_env="default",
        params=[],
        task_definition=None,
        p99_call_seconds=None,
        margin=60,
        json=True,
    )
    assert check.run(args) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True


def test_the_module_runs_as_a_program_with_its_exit_status() -> None:
    # GIVEN a real process, as CI would run it
    result = subprocess.run(
        [sys.executable, "-m", "drainctl.check", "--template", "no-such-template.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    # THEN the status and the message are the command's
    assert result.returncode == 2
    assert "drainctl check: cannot read template no-such-template.yaml" in result.stderr


WARM_POOL = """\
  WorkerWarmPool:
    Type: AWS::AutoScaling::WarmPool
    Properties:
      AutoScalingGroupName: !Ref AutoScalingGroupName
      PoolState: Stopped
      InstanceReusePolicy:
        ReuseOnScaleIn: true
"""


def with_a_warm_pool(source: Path, tmp_path: Path) -> Path:
    """`source` with a warm pool that takes scaled-in instances back, beside its own resources."""
    text = source.read_text()
    written = tmp_path / source.name
    written.write_text(text.replace("\nResources:\n", "\nResources:\n" + WARM_POOL, 1))
    return written


def test_a_warm_pool_reusing_instances_needs_the_coordinators_launch_hook(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN the project's template beside a warm pool with ReuseOnScaleIn
    template = with_a_warm_pool(TEMPLATE, tmp_path)

    # WHEN it is checked without, then with WarmPoolReuse
    _, without = json_report(capsys, "--template", str(template), "--config", str(SAMCONFIG))
    _, with_hook = json_report(
        capsys, "--template", str(template), "--config", str(SAMCONFIG), "--params", "WarmPoolReuse=true"
    )

    # THEN the first is refused (the instance would come back DRAINING), the second passes
    assert statuses(without)["warm-pool-reuse"] == "FAIL"
    assert statuses(with_hook)["warm-pool-reuse"] == "PASS"
    (rule,) = [r for r in with_hook["rules"] if r["rule"] == "warm-pool-reuse"]
    assert "LaunchLifecycleHook" in rule["detail"]
    # AND with no launch template in the stack, whether the hosts wait for the pool is unknown
    assert statuses(with_hook)["warm-pool-agent-check"] == "SKIP"


def test_the_hosts_of_a_warm_pool_must_set_the_agents_warm_pool_check(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN a warm pool beside the packaged worker's hosts, and beside a user's hosts whose
    # ecs.config does not set ECS_WARM_POOLS_CHECK
    (tmp_path / "packaged").mkdir()
    (tmp_path / "users").mkdir()
    packaged = with_a_warm_pool(TEMPLATE, tmp_path / "packaged")
    users = with_a_warm_pool(STACK, tmp_path / "users")
    worker = [
        "WorkerImageUri=123456789012.dkr.ecr.us-east-1.amazonaws.com/w:1",
        "WorkerSubnetIds=subnet-0a1b2c3d",
    ]

    # WHEN both are checked
    _, ours = json_report(
        capsys, "--template", str(packaged), "--config", str(SAMCONFIG), "--params", *worker
    )
    _, theirs = json_report(capsys, "--template", str(users), *WORKER_IN_STACK[2:])

    # THEN the packaged worker's hosts wait for the pool; the user's are refused, and said unset
    assert statuses(ours)["warm-pool-agent-check"] == "PASS"
    assert statuses(theirs)["warm-pool-agent-check"] == "FAIL"
    assert any("ECS_WARM_POOLS_CHECK" in line for line in theirs["assumed"])
