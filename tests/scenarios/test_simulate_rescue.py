"""`drainctl simulate`'s rescue strategy: what it saves, the reason for each call it cannot, the
headroom it needs, RescueOnDeploy."""

from __future__ import annotations

import json

import pytest

from drainctl import simulate
from drainctl.simulate import (
    DEFAULT_HEADROOM_PCT,
    EC2_COORDINATOR,
    EC2_COORDINATOR_RESCUE,
    Scenario,
    parse_lengths,
)
from tests.scenarios.test_simulate import run_cli


def spot(headroom_pct: float, reclaimed: int = 1) -> Scenario:
    # Four instances of two workers, about 24 calls, the busiest instances reclaimed.
    return Scenario(
        instances=4,
        workers_per_instance=2,
        lengths=parse_lengths("uniform:180-480"),
        concurrency=24,
        deploy=False,
        scale_in=0,
        spot_reclaim=reclaimed,
        warm_up_seconds=480,
        seed=11,
        strategies=(EC2_COORDINATOR, EC2_COORDINATOR_RESCUE),
        headroom_pct=headroom_pct,
    )


def test_with_no_headroom_the_calls_rescue_cannot_place_are_dropped_each_with_its_reason() -> None:
    # GIVEN workers with no spare call slot (the fleet's mean load is their limit), and half the
    # fleet reclaimed at once
    result = simulate.simulate(spot(headroom_pct=0, reclaimed=2))
    (event,) = result.events
    rescue = event.outcomes[EC2_COORDINATOR_RESCUE]
    # THEN rescue saves fewer than with room, and every call it lost has a reason
    assert rescue.dropped_in_flight > 0
    assert sum(rescue.unsaved_reasons.values()) == rescue.rescue_failed == rescue.dropped_in_flight
    assert "no_capacity" in rescue.unsaved_reasons


def test_with_the_readmes_headroom_a_spot_reclaim_drops_no_call() -> None:
    # GIVEN the default headroom
    assert Scenario().headroom_pct == DEFAULT_HEADROOM_PCT
    result = simulate.simulate(spot(headroom_pct=DEFAULT_HEADROOM_PCT))
    (event,) = result.events
    plain, rescue = event.outcomes[EC2_COORDINATOR], event.outcomes[EC2_COORDINATOR_RESCUE]
    # THEN without rescue the reclaim drops calls; with it none, each call in flight carried on
    assert plain.dropped_in_flight > 0
    assert rescue.dropped_in_flight == 0 and rescue.unsaved_reasons == {}
    assert rescue.rescued > 0
    assert len(rescue.rescue_gaps) >= rescue.rescued


def test_rescue_on_deploy_finishes_a_rolling_deploy_in_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a small fleet's rolling deploy, RescueOnDeploy on
    argv = ["--instances", "2", "--workers-per-instance", "2", "--concurrency", "12", "--deploy"]
    argv += ["--strategies", "ec2-coordinator,ec2-coordinator-rescue", "--rescue-on-deploy"]
    argv += ["--warm-up", "480", "--seed", "5", "--json"]
    # WHEN simulated
    status, out, _ = run_cli(simulate, argv, capsys)
    # THEN the deploy waits for its longest call without rescue, finishes within 2 minutes with
    # it, and drops no call either way
    assert status == 0
    (event,) = json.loads(out)["events"]
    plain, rescue = event["strategies"][EC2_COORDINATOR], event["strategies"][EC2_COORDINATOR_RESCUE]
    assert plain["finish_seconds"] > 120
    assert rescue["finish_seconds"] < 120
    assert plain["calls_dropped"] == rescue["calls_dropped"] == 0
    assert rescue["rescued"] > 0
    assert rescue["rescue_gap_seconds"]["p95"] <= 3


def test_a_bad_headroom_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN --headroom is out of range
    code = simulate.main(["--headroom", "95"])
    # THEN exit 2 and one line on stderr
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("drainctl simulate: --headroom")
    assert len(err.splitlines()) == 1
