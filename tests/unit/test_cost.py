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
    assert cost["usd_total"] == pytest.approx(sum(cost["usd"].values()), abs=0.01)
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
