"""The monthly cost estimate: its arithmetic, from the published prices it names."""

from __future__ import annotations

from dataclasses import replace

import pytest

from drainctl.cost import PRICES, Workload, monthly_cost

ARGS = {
    "memory_mb": 256,
    "alarms": 10,
    "metrics": 20,
    "tick_seconds": 0.1,
    "look_seconds": 0.4,
    "webhook_seconds": 0.1,
}


def test_the_total_is_the_sum_of_its_lines_and_each_price_names_its_page() -> None:
    cost = monthly_cost(Workload(), **ARGS)
    # Each line is rounded to the cent, the total before rounding: they differ by that at most.
    assert cost["usd_total"] == pytest.approx(sum(cost["usd"].values()), abs=0.005 * len(cost["usd"]))
    assert all(p["source"].startswith("https://aws.amazon.com/") for p in cost["prices"].values())


def test_a_reconcile_tick_a_minute_is_43_thousand_scheduled_invocations_a_month() -> None:
    cost = monthly_cost(Workload(), **ARGS)
    assert cost["invocations"]["reconcile"] == round(24 * 60 * 30.4)
    assert cost["usd"]["scheduler"] == pytest.approx(43_776 * PRICES["scheduler_invocation"].usd, abs=0.01)


def test_untraced_functions_cost_no_x_ray() -> None:
    traced = monthly_cost(Workload(), **ARGS)
    untraced = monthly_cost(Workload(), **ARGS, traced=False)
    assert traced["usd"]["xray"] > 0
    assert untraced["usd"]["xray"] == 0
    assert untraced["usd_total"] == traced["usd_total_without_xray"]


def test_twice_the_calls_cost_twice_the_webhook_requests() -> None:
    base = monthly_cost(Workload(), **ARGS)
    double = monthly_cost(replace(Workload(), calls_a_day=20_000), **ARGS)
    assert double["invocations"]["webhook"] == 2 * base["invocations"]["webhook"]
    assert double["usd"]["lambda_requests"] > base["usd"]["lambda_requests"]


def test_more_workers_an_instance_write_no_more_each_tick_of_a_drain() -> None:
    # A task stop's sample writes only when its calls changed: what grows with the workers is
    # their stops' opening and closing, not the drain's ticks.
    one, four = (
        monthly_cost(replace(Workload(), workers_per_instance=workers), **ARGS) for workers in (1, 4)
    )
    stops = 2 * 2 * 3 * Workload().scale_ins_a_day * 30.4  # 3 more workers, 2 events, 2 writes
    assert four["dynamodb_writes"] - one["dynamodb_writes"] == pytest.approx(stops, abs=1)
