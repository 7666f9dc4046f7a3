"""The timeout budget's rules, each judged on a small Budget: one passing and one failing case at least."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drain_coordinator.settings import Settings, SettingsError
from drainctl.check import (
    RULES,
    Budget,
    CoordinatorNumbers,
    HostStopTimeout,
    LookCost,
    RuleResult,
    ecs_duration_seconds,
    evaluate,
    host_stop_timeout_setting,
    rule_deadline_outlasts_stop,
    rule_deadline_within_hook_cap,
    rule_fleet_fits_period,
    rule_heartbeat_cadence,
    rule_heartbeat_rate,
    rule_heartbeat_timeout_in_range,
    rule_host_stop_timeout_agrees,
    rule_launch_type_ec2,
    rule_lifecycle_timeout_fits_look,
    rule_numbers_agree,
    rule_p99_call_fits_drain,
    rule_parameters_accepted,
    rule_reconcile_fits_period,
    rule_sigterm_reaches_worker,
    rule_stop_timeout_covers_drain,
    schedule_period_seconds,
)

COORDINATOR = CoordinatorNumbers(
    drain_timeout=600,
    stop_timeout=900,
    heartbeat_timeout=300,
    drain_deadline=1200,
    reconcile_period=60,
    livekit_timeout=5.0,
)
HOSTS = (HostStopTimeout(source="launch template WorkerHosts", raw="900s", seconds=900.0),)


def a_budget(**changes: Any) -> Budget:
    """The project's defaults with the worker's task definition seen: every rule passes."""
    budget = Budget(
        worker_source="task definition livekit-agents.json, container 'agent'",
        drain_timeout=600,
        stop_timeout=900,
        coordinator=COORDINATOR,
        heartbeat_timeout=300,
        heartbeat_source="TerminateLifecycleHook",
        schedule_expression="rate(1 minute)",
        schedule_period=60,
        reconcile_timeout=55,
        lifecycle_timeout=30,
        has_task_definition=True,
        init_process_enabled=True,
        argv=("python", "-m", "livekit_drain_worker", "start"),
        declared_stop_timeout=900,
        hosts=HOSTS,
        warm_pools=(("warm pool WorkerWarmPool", False),),
        warm_pool_checks=(("launch template WorkerHosts", "true"),),
        managed_draining=(("capacity provider WorkerCapacityProvider", "DISABLED"),),
    )
    return replace(budget, **changes)


def with_coordinator(**changes: Any) -> Budget:
    return a_budget(coordinator=replace(COORDINATOR, **changes))


def assert_fails(result: RuleResult, *fragments: str) -> None:
    assert (result.status, result.passed) == ("FAIL", False), result
    for fragment in fragments:
        assert fragment in result.detail, result.detail


# -- the whole set ------------------------------------------------------------------------------


def test_evaluate_passes_every_rule_on_the_projects_defaults() -> None:
    # GIVEN the defaults of template.yaml and a worker task definition that matches them
    # WHEN every rule judges them
    results = evaluate(a_budget(p99_call_seconds=480, cost=LookCost(open_drains=100)))
    # THEN nothing fails and nothing is skipped
    assert [r.status for r in results] == ["PASS"] * len(RULES)


def test_evaluate_returns_one_result_per_rule_with_distinct_ids_in_rule_order() -> None:
    results = evaluate(a_budget())
    ids = [r.rule_id for r in results]
    assert len(ids) == len(set(ids)) == len(RULES)
    assert ids[0] == "launch-type-ec2"
    assert all(r.title and r.why for r in results)


def test_rule_result_as_dict_carries_status_numbers_and_why() -> None:
    result = rule_stop_timeout_covers_drain(a_budget(stop_timeout=120))
    assert result.as_dict() == {
        "rule": "stop-timeout-covers-drain",
        "title": "container stopTimeout >= drain_timeout + margin",
        "status": "FAIL",
        "passed": False,
        "detail": "stopTimeout 120 s < drain_timeout 600 s + margin 60 s = 660 s",
        "why": result.why,
    }


# -- launch type --------------------------------------------------------------------------------


def test_launch_type_passes_on_ec2() -> None:
    assert rule_launch_type_ec2(a_budget()).status == "PASS"


def test_launch_type_refuses_fargate_naming_the_setting_and_the_120_s_cap() -> None:
    # GIVEN a task definition that requires Fargate
    budget = a_budget(fargate_settings=('requiresCompatibilities ["FARGATE"]',))
    # WHEN judged
    result = rule_launch_type_ec2(budget)
    # THEN it fails, says where Fargate comes from and why that cuts calls
    assert_fails(result, 'requiresCompatibilities ["FARGATE"]')
    assert "Fargate caps stopTimeout at 120 s" in result.why


def test_launch_type_is_skipped_without_a_task_definition() -> None:
    result = rule_launch_type_ec2(a_budget(has_task_definition=False))
    assert (result.status, result.passed) == ("SKIP", True)
    assert "--task-definition" in result.detail


# -- stopTimeout vs drain_timeout ---------------------------------------------------------------


def test_stop_timeout_passes_when_it_covers_the_drain_and_the_margin() -> None:
    result = rule_stop_timeout_covers_drain(a_budget())
    assert result.status == "PASS"
    assert result.detail == "stopTimeout 900 s >= drain_timeout 600 s + margin 60 s = 660 s"


def test_stop_timeout_of_120_s_for_a_600_s_drain_fails_with_the_numbers() -> None:
    assert_fails(
        rule_stop_timeout_covers_drain(a_budget(stop_timeout=120)),
        "stopTimeout 120 s < drain_timeout 600 s + margin 60 s = 660 s",
    )


def test_stop_timeout_equal_to_drain_plus_margin_passes_and_a_larger_margin_fails() -> None:
    assert rule_stop_timeout_covers_drain(a_budget(stop_timeout=660)).status == "PASS"
    assert_fails(rule_stop_timeout_covers_drain(a_budget(margin=301)), "margin 301 s = 901 s")


def test_stop_timeout_unset_on_the_container_falls_back_to_the_hosts_value() -> None:
    # GIVEN a container with no stopTimeout on hosts that set 15m
    hosts = (HostStopTimeout("launch template WorkerHosts", "15m", 900.0),)
    # WHEN judged, the host's 900 s is what ECS uses
    result = rule_stop_timeout_covers_drain(a_budget(stop_timeout=None, hosts=hosts))
    assert result.status == "PASS"
    assert "the hosts' 900 s applies" in result.detail


def test_stop_timeout_unset_everywhere_is_ecs_default_of_30_s() -> None:
    result = rule_stop_timeout_covers_drain(a_budget(stop_timeout=None, hosts=()))
    assert_fails(result, "stopTimeout 30 s", "< drain_timeout 600 s")


def test_stop_timeout_unset_without_hosts_in_the_template_is_the_host_stop_timeout_the_coordinator_is_told() -> (
    None
):
    # GIVEN a container with no stopTimeout, hosts outside the template, HostStopTimeout 900
    budget = a_budget(stop_timeout=None, hosts=(), coordinator=replace(COORDINATOR, host_stop_timeout=900))
    # WHEN judged
    result = rule_stop_timeout_covers_drain(budget)
    # THEN the assumed hosts' 900 s covers the drain, and the check says what it assumed
    assert result.status == "PASS", result.detail
    assert "HostStopTimeout" in result.detail
    assert "900 s" in result.detail


def test_the_coordinators_host_stop_timeout_must_equal_the_hosts_when_the_container_sets_none() -> None:
    # GIVEN hosts at 900 s, a container without stopTimeout, and the coordinator told 30 s
    budget = a_budget(stop_timeout=None, coordinator=replace(COORDINATOR, host_stop_timeout=30))
    # WHEN the numbers are compared
    result = rule_numbers_agree(budget)
    # THEN the disagreement is named
    assert_fails(result, "HOST_STOP_TIMEOUT_SECONDS 30 != hosts' ECS_CONTAINER_STOP_TIMEOUT 900")


def test_stop_timeout_on_fargate_is_capped_at_120_s() -> None:
    budget = a_budget(fargate_settings=("service WorkerService LaunchType FARGATE",))
    assert_fails(rule_stop_timeout_covers_drain(budget), "stopTimeout 120 s", "capped at 120 s on Fargate")


# -- the hosts' ECS_CONTAINER_STOP_TIMEOUT ------------------------------------------------------


def test_host_stop_timeout_passes_when_at_least_the_containers() -> None:
    result = rule_host_stop_timeout_agrees(a_budget())
    assert result.status == "PASS"
    assert "launch template WorkerHosts sets 900s = 900 s >= 900 s" in result.detail


def test_host_stop_timeout_shorter_than_the_container_fails() -> None:
    hosts = (HostStopTimeout("launch template WorkerHosts", "10m", 600.0),)
    assert_fails(rule_host_stop_timeout_agrees(a_budget(hosts=hosts)), "sets 10m = 600 s < 900 s")


def test_host_stop_timeout_without_a_unit_fails_because_the_agent_ignores_it() -> None:
    hosts = (HostStopTimeout("launch template WorkerHosts", "900", None),)
    assert_fails(rule_host_stop_timeout_agrees(a_budget(hosts=hosts)), "cannot read", "uses 30 s")


def test_host_stop_timeout_missing_from_user_data_fails() -> None:
    hosts = (HostStopTimeout("launch template WorkerHosts", None, None),)
    assert_fails(rule_host_stop_timeout_agrees(a_budget(hosts=hosts)), "does not set it (ECS uses 30 s)")


def test_host_stop_timeout_is_skipped_without_hosts_and_says_what_to_set() -> None:
    result = rule_host_stop_timeout_agrees(a_budget(hosts=()))
    assert result.status == "SKIP"
    assert "ECS_CONTAINER_STOP_TIMEOUT=900s" in result.detail


def test_host_stop_timeout_without_container_value_must_cover_the_drain() -> None:
    # GIVEN no container stopTimeout: the host's value is the one ECS uses
    hosts = (HostStopTimeout("launch template WorkerHosts", "600s", 600.0),)
    assert_fails(rule_host_stop_timeout_agrees(a_budget(stop_timeout=None, hosts=hosts)), "600 s < 660 s")


# -- SIGTERM reaches the worker -----------------------------------------------------------------


def test_sigterm_passes_with_init_process_enabled_even_under_a_shell() -> None:
    budget = a_budget(init_process_enabled=True, argv=("sh", "-c", "python agent.py start"))
    assert rule_sigterm_reaches_worker(budget).status == "PASS"


@pytest.mark.parametrize(
    "argv",
    [
        ("python", "-m", "livekit_drain_worker", "start"),
        ("/bin/sh", "-c", "exec python agent.py start"),
        ("tini", "--", "python", "agent.py", "start"),
    ],
)
def test_sigterm_passes_with_an_exec_form_command(argv: tuple[str, ...]) -> None:
    result = rule_sigterm_reaches_worker(a_budget(init_process_enabled=False, argv=argv))
    assert result.status == "PASS"
    assert "exec-form" in result.detail


@pytest.mark.parametrize(
    "argv",
    [
        ("sh", "-c", "python agent.py start"),
        ("/bin/bash", "-lc", "python agent.py start"),
        ("bash", "start.sh"),
    ],
)
def test_sigterm_fails_when_a_shell_runs_the_worker(argv: tuple[str, ...]) -> None:
    result = rule_sigterm_reaches_worker(a_budget(init_process_enabled=False, argv=argv))
    assert_fails(result, "a shell runs the worker")
    assert "initProcessEnabled" in result.why


def test_sigterm_fails_when_neither_init_nor_a_command_is_visible() -> None:
    result = rule_sigterm_reaches_worker(a_budget(init_process_enabled=False, argv=None))
    assert_fails(result, "no entryPoint/command")


def test_sigterm_is_skipped_without_a_task_definition() -> None:
    assert rule_sigterm_reaches_worker(a_budget(has_task_definition=False)).status == "SKIP"


# -- the hook's heartbeat -----------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [30, 300, 7200])
def test_heartbeat_timeout_within_30_to_7200_passes(timeout: int) -> None:
    assert rule_heartbeat_timeout_in_range(a_budget(heartbeat_timeout=timeout)).status == "PASS"


@pytest.mark.parametrize("timeout", [29, 7201])
def test_heartbeat_timeout_outside_30_to_7200_fails(timeout: int) -> None:
    assert_fails(rule_heartbeat_timeout_in_range(a_budget(heartbeat_timeout=timeout)), f"{timeout} s")


def test_heartbeat_cadence_passes_with_three_ticks_per_timeout() -> None:
    result = rule_heartbeat_cadence(a_budget(heartbeat_timeout=180))
    assert result.status == "PASS"
    assert result.detail == "rate(1 minute): every 60 s <= HeartbeatTimeout 180 s / 3 = 60 s"


def test_heartbeat_timeout_30_under_a_60_s_schedule_fails_with_the_numbers() -> None:
    assert_fails(
        rule_heartbeat_cadence(a_budget(heartbeat_timeout=30)),
        "every 60 s > HeartbeatTimeout 30 s / 3 = 10 s",
    )


def test_heartbeat_cadence_counts_the_flexible_time_window() -> None:
    # GIVEN a 60 s schedule that may fire up to 1 minute late
    result = rule_heartbeat_cadence(a_budget(heartbeat_timeout=300, schedule_window=60))
    # THEN the worst gap of 120 s is over 100 s
    assert_fails(result, "+ flexible window 60 s >", "= 100 s")


def test_heartbeat_cadence_fails_without_a_schedule() -> None:
    result = rule_heartbeat_cadence(a_budget(schedule_expression=None, schedule_period=None))
    assert_fails(result, "no schedule")


def test_heartbeat_cadence_fails_on_a_schedule_with_no_fixed_period() -> None:
    budget = a_budget(schedule_expression="cron(0 12 * * ? *)", schedule_period=None)
    assert_fails(rule_heartbeat_cadence(budget), "cron(0 12 * * ? *) has no fixed period")


# -- the drain deadline -------------------------------------------------------------------------


def test_deadline_at_least_stop_timeout_and_a_period_passes() -> None:
    result = rule_deadline_outlasts_stop(with_coordinator(drain_deadline=960))
    assert result.status == "PASS"
    assert result.detail == "DrainDeadline 960 s >= stopTimeout 900 s + period 60 s = 960 s"


def test_deadline_within_a_period_of_the_stop_timeout_fails() -> None:
    assert_fails(rule_deadline_outlasts_stop(with_coordinator(drain_deadline=930)), "930 s <", "= 960 s")


def test_deadline_shorter_than_stop_timeout_fails() -> None:
    assert_fails(
        rule_deadline_outlasts_stop(with_coordinator(drain_deadline=600)),
        "DrainDeadline 600 s < stopTimeout 900 s",
    )


def test_deadline_within_100_heartbeats_passes() -> None:
    result = rule_deadline_within_hook_cap(with_coordinator(drain_deadline=30000))
    assert result.status == "PASS"
    assert "min(172800, 100 x 300) = 30000 s" in result.detail


def test_deadline_beyond_100_heartbeats_fails() -> None:
    assert_fails(
        rule_deadline_within_hook_cap(with_coordinator(drain_deadline=30001)),
        "DrainDeadline 30001 s > min(172800, 100 x 300) = 30000 s",
    )


def test_deadline_beyond_48_hours_fails_even_with_a_long_heartbeat() -> None:
    budget = replace(with_coordinator(drain_deadline=172801), heartbeat_timeout=7200)
    assert_fails(rule_deadline_within_hook_cap(budget), "= 172800 s")


# -- the Lambda timeouts ------------------------------------------------------------------------


def test_reconcile_timeout_between_one_look_and_the_period_passes() -> None:
    result = rule_reconcile_fits_period(a_budget())
    assert result.status == "PASS"
    assert result.detail == "one look 1.5 s <= Timeout 55 s < period 60 s"


def test_reconcile_timeout_as_long_as_the_period_fails() -> None:
    assert_fails(rule_reconcile_fits_period(a_budget(reconcile_timeout=60)), "Timeout 60 s >= period 60 s")


def test_a_look_costs_what_its_calls_cost_at_the_given_latencies() -> None:
    # GIVEN AWS answering in 2 s (p50 = p99) and LiveKit in 4 s, an instance holding 40 calls
    slow = LookCost(aws_latency=(2.0, 2.0), livekit_latency=(4.0, 4.0), rooms_per_drain=40)
    # THEN one look is 5 AWS calls and 1 + ceil(40 / 16) LiveKit rounds, each at its latency
    budget = a_budget(cost=slow)
    assert budget.look_seconds == 5 * 2.0 + 4 * 4.0
    assert_fails(
        rule_reconcile_fits_period(replace(budget, reconcile_timeout=15)), "Timeout 15 s < one look 26 s"
    )


def test_reconcile_timeout_is_skipped_without_a_period() -> None:
    budget = a_budget(schedule_expression="cron(0 12 * * ? *)", schedule_period=None)
    assert rule_reconcile_fits_period(budget).status == "SKIP"


def test_lifecycle_timeout_of_one_look_passes() -> None:
    result = rule_lifecycle_timeout_fits_look(a_budget(lifecycle_timeout=20))
    assert result.status == "PASS"
    assert result.detail.startswith("Timeout 20 s >= one look 1.5 s (5 AWS calls x 0.16 s + 2 LiveKit rounds")


def test_lifecycle_timeout_shorter_than_one_look_fails() -> None:
    slow = LookCost(aws_latency=(2.0, 2.0), livekit_latency=(4.0, 4.0))
    assert_fails(
        rule_lifecycle_timeout_fits_look(a_budget(lifecycle_timeout=15, cost=slow)),
        "Timeout 15 s < one look 18 s",
    )


def test_lifecycle_timeout_fails_when_livekit_calls_may_take_longer() -> None:
    # a LiveKit slower than its timeout costs the timeout: the call is given up then
    slow = LookCost(livekit_latency=(30.0, 30.0))
    assert_fails(
        rule_lifecycle_timeout_fits_look(
            a_budget(lifecycle_timeout=15, cost=slow, coordinator=replace(COORDINATOR, livekit_timeout=12.5))
        ),
        "2 LiveKit rounds x 12.50 s",
    )


def test_fleet_rule_is_skipped_unless_the_fleet_is_given() -> None:
    assert rule_fleet_fits_period(a_budget()).status == "SKIP"


def test_fleet_within_what_the_shards_cover_passes() -> None:
    result = rule_fleet_fits_period(a_budget(cost=LookCost(open_drains=200)))
    assert result.status == "PASS", result.detail
    assert "200 drains renew 67 hooks a period" in result.detail
    assert "10 look shards + 1 at once do 220 a period, beside 0 heartbeat shards" in result.detail


def test_fleet_whose_renewals_fit_but_not_its_looks_fails_with_hooks_safe() -> None:
    # GIVEN 1,000 drains at the degraded latencies (drainctl bench --degraded: no hook expires)
    cost = LookCost(open_drains=1000, aws_latency=(0.2, 2.0), livekit_latency=(1.0, 4.0))
    # THEN the looks fall behind, but the renewals fit in what runs at once
    assert_fails(
        rule_fleet_fits_period(a_budget(cost=cost)),
        "renew 334 hooks",
        "3 look shards + 1 at once do 40 a period, beside 7 heartbeat shards",
        "hooks safe",
    )


def test_fleet_beyond_the_shards_fails_and_says_how_many_to_run_at_once() -> None:
    # GIVEN 2,000 drains at the degraded latencies of the scale test
    cost = LookCost(open_drains=2000, aws_latency=(0.2, 2.0), livekit_latency=(1.0, 4.0))
    # THEN ten shards at once cannot even hold the renewals of a period, and hooks are at risk
    result = rule_fleet_fits_period(a_budget(cost=cost))
    assert_fails(
        result, "2000 drains renew 667 hooks a period", "hooks at risk", "raise AdvanceConcurrency to 199"
    )
    raise_to = int(result.detail.rsplit("raise AdvanceConcurrency to ", 1)[1].split()[0])
    # AND with that many at once, it passes
    assert rule_fleet_fits_period(a_budget(cost=replace(cost, advance_concurrency=raise_to))).status == "PASS"
    assert (
        rule_fleet_fits_period(a_budget(cost=replace(cost, advance_concurrency=raise_to - 1))).status
        == "FAIL"
    )


# -- the stated p99 call length -----------------------------------------------------------------


def test_p99_call_inside_drain_timeout_passes_with_the_spare_seconds() -> None:
    result = rule_p99_call_fits_drain(a_budget(p99_call_seconds=480))
    assert result.status == "PASS"
    assert result.detail == "p99 call 480 s <= drain_timeout 600 s (120 s spare)"


def test_p99_call_longer_than_drain_timeout_fails() -> None:
    assert_fails(
        rule_p99_call_fits_drain(a_budget(p99_call_seconds=900)),
        "p99 call 900 s > drain_timeout 600 s by 300 s",
    )


def test_p99_call_is_skipped_when_not_stated() -> None:
    assert rule_p99_call_fits_drain(a_budget()).status == "SKIP"


# -- the copies of the numbers ------------------------------------------------------------------


def test_numbers_agree_when_every_copy_matches() -> None:
    result = rule_numbers_agree(a_budget())
    assert result.status == "PASS"
    assert "WORKER_STOP_TIMEOUT_SECONDS 900 = stopTimeout" in result.detail


def test_numbers_disagree_when_the_container_stop_timeout_differs_from_the_coordinators() -> None:
    result = rule_numbers_agree(a_budget(stop_timeout=1800, declared_stop_timeout=1800))
    assert_fails(result, "WORKER_STOP_TIMEOUT_SECONDS 900 != stopTimeout 1800")


def test_numbers_disagree_when_the_worker_declares_another_stop_timeout() -> None:
    result = rule_numbers_agree(a_budget(declared_stop_timeout=600))
    assert_fails(result, "worker ECS_CONTAINER_STOP_TIMEOUT_SECONDS 600 != stopTimeout 900")


def test_numbers_disagree_when_the_hook_and_the_coordinator_differ() -> None:
    result = rule_numbers_agree(a_budget(heartbeat_timeout=600))
    assert_fails(result, "HOOK_HEARTBEAT_TIMEOUT_SECONDS 300 != hook HeartbeatTimeout 600")


def test_numbers_disagree_when_the_schedule_and_the_reconcile_period_differ() -> None:
    budget = a_budget(schedule_expression="rate(2 minutes)", schedule_period=120)
    assert_fails(rule_numbers_agree(budget), "RECONCILE_PERIOD_SECONDS 60 != schedule period 120")


def test_parameters_accepted_passes_without_a_problem_and_fails_with_cloudformations_reason() -> None:
    assert rule_parameters_accepted(a_budget()).status == "PASS"
    problem = "parameter HookHeartbeatTimeout=30 is below MinValue 180"
    assert_fails(rule_parameters_accepted(a_budget(parameter_problem=problem)), problem)


# -- the coordinator refuses what the check refuses ---------------------------------------------

COORDINATOR_ENV = {
    "DRAIN_TABLE_NAME": "livekit-drain",
    "ECS_CLUSTER_NAME": "agents",
    "ASG_NAME": "livekit-agents-asg",
    "LIFECYCLE_HOOK_NAME": "livekit-drain-terminate",
    "LIVEKIT_URL": "https://livekit.example.com",
    "LIVEKIT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:livekit-AbCdEf",
}
TIMER_RULES = (
    rule_stop_timeout_covers_drain,
    rule_heartbeat_timeout_in_range,
    rule_heartbeat_cadence,
    rule_heartbeat_rate,
    rule_deadline_outlasts_stop,
    rule_deadline_within_hook_cap,
)


@settings(deadline=None, max_examples=200)
@given(
    heartbeat=st.integers(30, 7200),
    period=st.sampled_from([10, 30, 60, 120, 300, 600, 3600]),
    stop=st.integers(1, 200_000),
    deadline=st.integers(60, 200_000),
)
def test_check_passes_the_timers_exactly_when_the_coordinator_accepts_them(
    heartbeat: int, period: int, stop: int, deadline: int
) -> None:
    # GIVEN timers as the coordinator reads them, and the same as the check's budget
    env = {
        **COORDINATOR_ENV,
        "HOOK_HEARTBEAT_TIMEOUT_SECONDS": str(heartbeat),
        "RECONCILE_PERIOD_SECONDS": str(period),
        "WORKER_STOP_TIMEOUT_SECONDS": str(stop),
        "DRAIN_DEADLINE_SECONDS": str(deadline),
    }
    budget = replace(
        with_coordinator(stop_timeout=stop, drain_deadline=deadline, heartbeat_timeout=heartbeat),
        has_task_definition=False,
        stop_timeout=stop,
        heartbeat_timeout=heartbeat,
        schedule_expression=f"rate({period // 60 or 1} minutes)",
        schedule_period=period,
    )
    # WHEN both judge them
    try:
        Settings.from_env(env)
        coordinator_accepts = True
    except SettingsError:
        coordinator_accepts = False
    check_passes = all(rule(budget).passed for rule in TIMER_RULES)
    # THEN they agree
    assert check_passes == coordinator_accepts


# -- reading durations, user data and schedules -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("900s", 900.0),
        ("15m", 900.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("2m30s", 150.0),
        ("500ms", 0.5),
        (" 900s ", 900.0),
        ("0", 0.0),
    ],
)
def test_ecs_duration_reads_what_the_agent_reads(text: str, seconds: float) -> None:
    assert ecs_duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["900", "", "15 m", "15min", "abc", "s"])
def test_ecs_duration_refuses_what_the_agent_refuses(text: str) -> None:
    assert ecs_duration_seconds(text) is None


@pytest.mark.parametrize(
    ("setting", "effective"),
    [(None, 30.0), ("900", 30.0), ("0", 30.0), ("500ms", 1.0), ("15m", 900.0)],
)
def test_host_effective_stop_timeout_is_what_the_agent_uses(setting: str | None, effective: float) -> None:
    seconds = None if setting is None else ecs_duration_seconds(setting)
    assert HostStopTimeout("launch template H", setting, seconds).effective_seconds == effective


def test_host_setting_is_read_out_of_ecs_config_lines() -> None:
    user_data = (
        "#!/bin/bash\n"
        "echo ECS_CLUSTER=agents >> /etc/ecs/ecs.config\n"
        'echo "ECS_CONTAINER_STOP_TIMEOUT=10m" >> /etc/ecs/ecs.config\n'
        "echo ECS_CONTAINER_STOP_TIMEOUT_SECONDS=1 >> /etc/environment\n"
        "echo 'ECS_CONTAINER_STOP_TIMEOUT=900s' >> /etc/ecs/ecs.config\n"
    )
    # The last line ECS reads wins; the worker's own *_SECONDS variable is not the host's.
    assert host_stop_timeout_setting(user_data) == "900s"


def test_host_setting_is_none_when_user_data_does_not_set_it() -> None:
    assert host_stop_timeout_setting("echo ECS_CLUSTER=agents >> /etc/ecs/ecs.config\n") is None


@pytest.mark.parametrize(
    ("expression", "period"),
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(2 hours)", 7200),
        ("rate(1 day)", 86400),
        ("cron(* * * * ? *)", 60),
        ("cron(0/5 * * * ? *)", 300),
        ("cron(*/15 * * * ? *)", 900),
    ],
)
def test_schedule_period_of_a_fixed_rate(expression: str, period: int) -> None:
    assert schedule_period_seconds(expression) == period


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 12 * * ? *)",
        "cron(*/7 * * * ? *)",
        "cron(* 9-17 * * ? *)",
        "at(2026-01-01T00:00:00)",
        "rate(soon)",
    ],
)
def test_schedule_period_is_none_without_a_fixed_gap(expression: str) -> None:
    assert schedule_period_seconds(expression) is None


# -- warm pools, ECS managed draining, and what the report assumed ---------------------------------

from drainctl.check import (  # noqa: E402
    rule_managed_draining_beside_hook,
    rule_warm_pool_agent_check,
    rule_warm_pool_reuse,
)


def test_a_warm_pool_that_reuses_scaled_in_instances_fails_without_the_launch_hook() -> None:
    # GIVEN a warm pool with ReuseOnScaleIn true, and a coordinator deployed without WarmPoolReuse
    budget = a_budget(warm_pools=(("warm pool WorkerWarmPool", True),), launch_hook="")
    # WHEN / THEN the rule fails, says what to set and why
    result = rule_warm_pool_reuse(budget)
    assert result.status == "FAIL"
    assert "WorkerWarmPool" in result.detail and "WarmPoolReuse=true" in result.detail
    assert "DRAINING" in result.why


def test_a_warm_pool_that_reuses_scaled_in_instances_passes_with_the_launch_hook() -> None:
    # GIVEN the same warm pool, and the coordinator's launch hook on the group
    budget = a_budget(warm_pools=(("warm pool WorkerWarmPool", True),), launch_hook="livekit-drain-launch")
    # WHEN / THEN the rule passes and names the hook that sets returning instances ACTIVE
    result = rule_warm_pool_reuse(budget)
    assert result.status == "PASS"
    assert "livekit-drain-launch" in result.detail and "ACTIVE" in result.detail


def test_hosts_of_a_warm_pool_must_set_the_agents_warm_pool_check() -> None:
    # GIVEN a warm pool and hosts whose ecs.config sets ECS_WARM_POOLS_CHECK, or does not
    pools = (("warm pool WorkerWarmPool", True),)
    checked = a_budget(warm_pools=pools, warm_pool_checks=(("launch template WorkerHosts", "true"),))
    unchecked = a_budget(warm_pools=pools, warm_pool_checks=(("launch template WorkerHosts", None),))
    # WHEN / THEN the first passes; the second fails and the report says it read AWS's default
    assert rule_warm_pool_agent_check(checked).status == "PASS"
    result = rule_warm_pool_agent_check(unchecked)
    assert result.status == "FAIL" and "WorkerHosts: unset" in result.detail
    assert any("ECS_WARM_POOLS_CHECK: the agent's false" in line for line in unchecked.assumptions())
    # AND without a warm pool, or without a launch template to read, it cannot judge
    assert rule_warm_pool_agent_check(a_budget(warm_pools=())).status == "SKIP"
    assert rule_warm_pool_agent_check(a_budget(warm_pools=pools, warm_pool_checks=())).status == "SKIP"


def test_a_warm_pool_without_reuse_passes_and_its_default_is_said() -> None:
    budget = a_budget(warm_pools=(("warm pool WorkerWarmPool", None),))
    assert rule_warm_pool_reuse(budget).status == "PASS"
    assert any("ReuseOnScaleIn false (AWS's default)" in line for line in budget.assumptions())
    assert rule_warm_pool_reuse(a_budget(warm_pools=())).status == "SKIP"


def test_managed_draining_unset_is_taken_as_enabled_and_said_plainly() -> None:
    # GIVEN a capacity provider that does not set ManagedDraining
    budget = a_budget(managed_draining=(("capacity provider Workers", None),))
    # WHEN the rule judges it
    result = rule_managed_draining_beside_hook(budget)
    # THEN it reads AWS's default (ENABLED): two hooks, and the report says it assumed so
    assert result.status == "PASS"
    assert "two terminate hooks" in result.detail
    assert any("ENABLED (AWS's default" in line for line in budget.assumptions())


def test_a_container_without_stop_timeout_says_which_value_was_assumed() -> None:
    budget = a_budget(stop_timeout=None)
    assert any("sets no stopTimeout" in line and "900 s" in line for line in budget.assumptions())
    assert a_budget().assumptions() == []


# -- the heartbeats' request rate -------------------------------------------------------------


def test_heartbeat_rate_is_skipped_unless_the_fleet_is_given() -> None:
    assert rule_heartbeat_rate(a_budget()).status == "SKIP"


def test_heartbeats_under_auto_scalings_rate_pass() -> None:
    # GIVEN 1,000 drains, each heartbeating every 300 s less two periods (180 s): 5.6 a second
    result = rule_heartbeat_rate(a_budget(cost=LookCost(open_drains=1000)))
    assert result.status == "PASS", result.detail


def test_heartbeats_over_auto_scalings_rate_fail_and_say_which_heartbeat_timeout_fits() -> None:
    # GIVEN 2,000 drains heartbeating every 180 s: 11.1 a second, over the 6.4 the coordinator keeps room for (80 % of its 8)
    # THEN it fails, says the rate is assumed, and how long a HeartbeatTimeout keeps under it
    assert_fails(
        rule_heartbeat_rate(a_budget(cost=LookCost(open_drains=2000))),
        "11.1 a second",
        "assumed",
        "raise HookHeartbeatTimeout to 433 s",
    )


def test_heartbeats_at_the_whole_renewal_budget_fail_for_want_of_room_to_retry_the_throttled_ones() -> None:
    # GIVEN 2,000 drains with a 370 s HeartbeatTimeout: 8 renewals a second, all of the
    # coordinator's budget (under Auto Scaling's 10, so the rule used to pass; measured with
    # `drainctl bench --degraded`, 40 hooks expired); at 433 s the renewals leave a fifth spare
    at_budget = replace(a_budget(cost=LookCost(open_drains=2000)), heartbeat_timeout=370)
    assert_fails(rule_heartbeat_rate(at_budget), "8 a second", "raise HookHeartbeatTimeout to 433 s")
    sized = replace(a_budget(cost=LookCost(open_drains=2000)), heartbeat_timeout=433)
    assert rule_heartbeat_rate(sized).status == "PASS"
