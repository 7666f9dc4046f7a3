"""`drainctl simulate` and `drainctl bench` on the local world: the four strategies side by side,
the call-length distributions, the refusals, and the benchmark figures' shape."""

from __future__ import annotations

import io
import json
import random
import re
import statistics
from pathlib import Path
from typing import Any

import pytest

from drainctl import bench, simulate
from drainctl.simulate import (
    EC2_COORDINATOR,
    EC2_COORDINATOR_RESCUE,
    EC2_NO_COORDINATOR,
    FARGATE,
    STRATEGIES,
    Scenario,
    SimulationResult,
    parse_lengths,
)

OUTCOME_KEYS = {
    "calls_in_flight",
    "calls_dropped",
    "dropped_in_flight",
    "dropped_pct",
    "finish_seconds",
    "draining_instance_minutes",
    "heartbeats",
    "lambda_invocations",
    "lambda_invocations_by_function",
    "calls_kept_off_by_quiesce",
    "hooks_expired",
    "drains_deferred",
    "metrics_lost",
    "max_seconds_without_heartbeat_decision",
    "alarms_fired",
    "calls_counted_dropped",
    "rescued",
    "rescue_failed",
    "rescue_gap_seconds",
    "unsaved_reasons",
}


def run_cli(
    module: Any, argv: list[str], capsys: pytest.CaptureFixture[str] | None = None
) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `drainctl simulate|bench ARGV`; argparse's refusals too."""
    out = io.StringIO()
    try:
        status = module.main(argv, out)
    except SystemExit as exc:
        status = int(exc.code or 0)
    err = capsys.readouterr().err if capsys is not None else ""
    return status, out.getvalue(), err


@pytest.fixture(scope="module")
def small_fleet() -> SimulationResult:
    # GIVEN three instances of one worker, about six calls of 3-8 minutes in flight, a deploy,
    # a scale-in of one instance and a Spot reclaim of another, under the four strategies
    scenario = Scenario(
        instances=3,
        workers_per_instance=1,
        lengths=parse_lengths("uniform:180-480"),
        concurrency=6,
        deploy=True,
        scale_in=1,
        spot_reclaim=1,
        warm_up_seconds=480,
        seed=3,
    )
    # WHEN it is simulated
    return simulate.simulate(scenario)


def test_every_event_starts_with_the_same_calls_in_flight_under_each_strategy(
    small_fleet: SimulationResult,
) -> None:
    # THEN each column is the same fleet at the same moment: only the way of stopping differs
    for event in small_fleet.events:
        assert set(event.outcomes) == set(STRATEGIES)
        in_flight = {o.calls_in_flight for o in event.outcomes.values()}
        assert len(in_flight) == 1
        assert in_flight.pop() > 0


def test_the_coordinator_drops_no_call_and_fargate_drops_calls_longer_than_its_cap(
    small_fleet: SimulationResult,
) -> None:
    deploy, scale_in, _ = small_fleet.events
    # THEN with the coordinator no call is dropped, by the deploy or the scale-in
    assert deploy.outcomes[EC2_COORDINATOR].calls_dropped == 0
    assert scale_in.outcomes[EC2_COORDINATOR].calls_dropped == 0
    # AND Fargate's 120 s cap drops calls of 3-8 minutes in both
    assert deploy.outcomes[FARGATE].calls_dropped > 0
    assert scale_in.outcomes[FARGATE].calls_dropped > 0
    # AND on EC2 a deploy within stopTimeout drops nothing, coordinator or not
    assert deploy.outcomes[EC2_NO_COORDINATOR].calls_dropped == 0
    # AND no strategy drops fewer calls than the coordinator
    for event in (deploy, scale_in):
        least = event.outcomes[EC2_COORDINATOR].calls_dropped
        assert all(o.calls_dropped >= least for o in event.outcomes.values())


def test_only_the_coordinator_runs_functions_and_heartbeats(small_fleet: SimulationResult) -> None:
    _, scale_in, _ = small_fleet.events
    # THEN the coordinator's functions ran and kept the instance's hook alive or released it
    coordinated = scale_in.outcomes[EC2_COORDINATOR]
    assert coordinated.lambda_invocations > 0
    assert coordinated.invocations_by_function.get("LifecycleFunction") == 1
    assert coordinated.finish_seconds is not None
    # AND without it nothing ran, and the unanswered hook held the instance its whole timeout
    assert scale_in.outcomes[FARGATE].lambda_invocations == 0
    assert scale_in.outcomes[EC2_NO_COORDINATOR].lambda_invocations == 0
    assert scale_in.outcomes[EC2_NO_COORDINATOR].heartbeats == 0
    assert scale_in.outcomes[EC2_NO_COORDINATOR].finish_seconds == small_fleet.hook_heartbeat_timeout


def test_only_rescue_saves_the_calls_a_spot_reclaim_cuts(small_fleet: SimulationResult) -> None:
    spot = small_fleet.events[2]
    outcomes = spot.outcomes
    without_rescue = [o for name, o in outcomes.items() if name != EC2_COORDINATOR_RESCUE]
    # THEN every strategy without rescue loses the same calls in flight (those with more than
    # 120 s left), at 120 s
    assert len({o.dropped_in_flight for o in without_rescue}) == 1
    assert without_rescue[0].dropped_in_flight > 0
    assert all(o.finish_seconds == 120.0 for o in outcomes.values())
    # AND rescue hands them to healthy workers: none is lost, each rescued call's gap is short
    rescue = outcomes[EC2_COORDINATOR_RESCUE]
    assert rescue.dropped_in_flight == 0
    assert rescue.rescued >= without_rescue[0].dropped_in_flight
    p95 = rescue.gap_percentile(0.95)
    assert p95 is not None and p95 <= 3
    # AND the coordinator heard the warning and kept new calls off the instance
    assert outcomes[EC2_COORDINATOR].invocations_by_function.get("LifecycleFunction") == 1
    assert outcomes[EC2_COORDINATOR].calls_dropped == outcomes[EC2_COORDINATOR].dropped_in_flight
    assert outcomes[EC2_NO_COORDINATOR].calls_dropped >= outcomes[EC2_COORDINATOR].calls_dropped


def test_the_table_shows_every_event_and_strategy(small_fleet: SimulationResult) -> None:
    # WHEN the result is printed as the default table
    table = simulate.render_table(small_fleet)
    # THEN each event has a block, headed by the three strategies, with each measure a row
    assert "rolling deploy (every worker replaced)" in table
    assert "scale-in of 1 instance" in table
    assert "Spot reclaim of 1 instance (2-minute warning)" in table
    headers = [line for line in table.splitlines() if line.split() == list(STRATEGIES)]
    assert len(headers) == 3
    for row in (
        "calls in flight at the start",
        "calls dropped, all",
        "of those in flight",
        "time to finish (mm:ss)",
        "instance-minutes draining",
        "heartbeats",
        "Lambda invocations",
    ):
        assert sum(1 for line in table.splitlines() if line.strip().startswith(row)) == 3, row
    assert "expected 63.6 %" in table


def test_json_has_one_entry_per_event_and_strategy(small_fleet: SimulationResult) -> None:
    # WHEN the result is given as JSON
    document = json.loads(json.dumps(small_fleet.as_dict()))
    # THEN it holds the scenario, the length-biased expectation and every outcome's measures
    assert document["scenario"]["instances"] == 3
    assert document["scenario"]["lengths"] == "uniform:180-480"
    assert document["expected_fargate_dropped_pct"] == 63.6
    assert [e["event"] for e in document["events"]] == ["deploy", "scale-in", "spot-reclaim"]
    for event in document["events"]:
        assert set(event["strategies"]) == set(STRATEGIES)
        for outcome in event["strategies"].values():
            assert set(outcome) == OUTCOME_KEYS
    assert set(document["totals"]) == set(STRATEGIES)


def test_bad_latency_knob_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN --aws-latency is not P50[:P99]
    code = simulate.main(["--aws-latency", "2:1"])
    # THEN exit 2 and one line on stderr
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("drainctl simulate: --aws-latency:")
    assert len(err.splitlines()) == 1


def test_cli_prints_json_and_draws_the_plot(tmp_path: Path) -> None:
    picture = tmp_path / "sessions.png"
    # GIVEN the smallest run: one strategy, one deploy
    argv = ["--instances", "2", "--workers-per-instance", "1", "--concurrency", "3", "--deploy"]
    argv += ["--strategies", "fargate", "--warm-up", "300", "--json", "--plot", str(picture)]
    # WHEN drainctl simulate runs
    status, out, _ = run_cli(simulate, argv)
    # THEN it prints one JSON object and writes a PNG
    assert status == 0
    document = json.loads(out)
    assert list(document["events"][0]["strategies"]) == [FARGATE]
    assert picture.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_csv_lengths_are_drawn_from_the_file(tmp_path: Path) -> None:
    # GIVEN a file of call lengths with a header line and a comment
    lengths_file = tmp_path / "lengths.csv"
    lengths_file.write_text("seconds\n200\n# a note\n300\n400\n", encoding="utf-8")
    # WHEN it is read
    lengths = parse_lengths(f"csv:{lengths_file}")
    # THEN every sample is one of its lengths, and the expectation is the file's own
    rng = random.Random(1)
    assert {lengths.sample(rng) for _ in range(200)} == {200.0, 300.0, 400.0}
    assert lengths.mean() == 300.0
    assert lengths.dropped_fraction(120) == pytest.approx((80 + 180 + 280) / 3 / 300)


def test_cli_simulates_with_csv_lengths(tmp_path: Path) -> None:
    # GIVEN a file of three call lengths, no header
    lengths_file = tmp_path / "lengths.csv"
    lengths_file.write_text("200\n300\n400\n", encoding="utf-8")
    argv = ["--instances", "2", "--workers-per-instance", "1", "--concurrency", "3", "--deploy"]
    argv += ["--strategies", "fargate", "--warm-up", "300", "--json", "--lengths", f"csv:{lengths_file}"]
    # WHEN drainctl simulate runs on those lengths
    status, out, _ = run_cli(simulate, argv)
    document = json.loads(out)
    # THEN the scenario names the file's lengths and expects 60 % dropped under a 120 s cap
    assert status == 0
    assert document["scenario"]["lengths"] == f"csv:{lengths_file}"
    assert document["scenario"]["mean_length_seconds"] == 300.0
    assert document["expected_fargate_dropped_pct"] == 60.0


def test_length_biased_expectation_is_the_design_figure_for_calls_of_3_to_8_minutes() -> None:
    # GIVEN calls uniform in 3-8 minutes, WHEN a 120 s cap cuts the calls in flight, THEN E[(L-120)+]/E[L] for L uniform in 180-480 s is 210/330
    assert parse_lengths("uniform:180-480").dropped_fraction(120) == pytest.approx(210 / 330)


def test_lognormal_expectation_matches_its_samples() -> None:
    # GIVEN lognormal lengths with a median of 200 s
    lengths = parse_lengths("lognormal:5.3,0.6")
    rng = random.Random(5)
    samples = [lengths.sample(rng) for _ in range(100_000)]
    # THEN the closed forms agree with the samples' mean and mean excess over 120 s
    assert lengths.mean() == pytest.approx(statistics.fmean(samples), rel=0.02)
    excess = statistics.fmean(max(0.0, s - 120) for s in samples)
    assert lengths.excess_mean(120) == pytest.approx(excess, rel=0.02)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lengths", "gamma:1,2"], "unknown distribution"),
        (["--lengths", "uniform:480-180"], "0 < A < B"),
        (["--lengths", "lognormal:5"], "two numbers"),
        (["--lengths", "csv:/no/such/lengths.csv"], "cannot read"),
        (["--instances", "3", "--scale-in", "3"], "leave no instance"),
        (["--spot-reclaim", "-1"], "cannot be negative"),
        (["--strategies", "fargate,kubernetes"], "--strategies"),
        (["--concurrency", "0"], "--concurrency"),
        (["--workers-per-instance", "0"], "--workers-per-instance"),
        (["--concurrency", "5", "--rate", "3"], "not allowed with"),
        (["--instances", "many"], "invalid int value"),
        (["--minimum-healthy-percent", "150"], "--minimum-healthy-percent"),
        (["--health-delay", "-1"], "--health-delay"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN drainctl simulate is given a scenario it cannot run
    status, out, err = run_cli(simulate, argv, capsys)
    # THEN it exits 2 before building any world, and says why
    assert status == 2
    assert out == ""
    assert message in err


def test_a_lengths_file_with_a_bad_line_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a lengths file whose third line is no number
    lengths_file = tmp_path / "lengths.csv"
    lengths_file.write_text("seconds\n200\nabout five minutes\n", encoding="utf-8")
    # WHEN drainctl simulate is pointed at it
    status, _, err = run_cli(simulate, ["--lengths", f"csv:{lengths_file}"], capsys)
    # THEN it refuses, naming the line
    assert status == 2
    assert "line 3" in err


def test_bench_quick_prints_every_figure_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN the quick benchmark runs with --json
    status, out, err = run_cli(bench, ["--quick", "--json"], capsys)
    figures = json.loads(out)
    # THEN one object holds every figure, keyed as documented, progress going to stderr
    assert status == 0
    assert {
        "livekit_calls_per_tick",
        "release_latency_seconds",
        "reconcile_seconds",
        "import_ratio",
        "artifact_bytes",
        "tick_calls",
        "monthly_cost",
    } <= set(figures)
    assert set(figures["livekit_calls_per_tick"]) == {"100"}
    assert set(figures["livekit_calls_per_tick"]["100"]) >= {
        "draining_rooms",
        "discovery_calls",
        "per_tick",
        "whole_drain_calls",
    }
    assert set(figures["reconcile_seconds"]) == {"1", "10"}
    # AND each tick's AWS requests, by service, beside its wall time
    assert set(figures["tick_calls"]["10"]["steady_tick"]) >= {
        "wall_seconds",
        "ecs",
        "autoscaling",
        "dynamodb_reads",
        "dynamodb_writes",
        "livekit",
    }
    # AND a monthly cost, service by service, from prices whose date of reading is given
    cost = figures["monthly_cost"]
    assert cost["usd_total"] == pytest.approx(sum(cost["usd"].values()), abs=0.05)
    assert cost["prices_read_on"]
    handlers = set(bench.handler_modules(bench.BenchOptions().template_path).values())
    assert set(figures["import_ratio"]) == handlers
    assert figures["release_latency_seconds"]["samples"]
    assert figures["artifact_bytes"] == {}
    assert "sam build skipped" in err
    # AND a progress line with an estimate came before each of its four sections
    progress = [line for line in err.splitlines() if line.startswith("drainctl bench: [")]
    assert [line.split("]")[0] for line in progress] == [f"drainctl bench: [{k}/4" for k in range(1, 5)]
    assert all(re.search(r"\(about \d+ s left\)$", line) for line in progress)


def test_simulate_prints_a_progress_line_with_an_estimate_before_each_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the smallest run: two strategies, one deploy
    argv = ["--instances", "2", "--workers-per-instance", "1", "--concurrency", "2", "--deploy"]
    argv += ["--strategies", "fargate,ec2-coordinator", "--warm-up", "120"]
    # WHEN drainctl simulate runs
    status, out, err = run_cli(simulate, argv, capsys)
    # THEN stderr says which run of how many comes next, and from the second on, how long is left
    assert status == 0
    progress = [line for line in err.splitlines() if line.startswith("drainctl simulate: [")]
    assert len(progress) == 2
    assert progress[0].startswith("drainctl simulate: [1/2] ") and progress[0].endswith("(estimating)")
    assert re.search(r"^drainctl simulate: \[2/2\] .*ec2-coordinator \(about \d+ s left\)$", progress[1])
    assert "drainctl simulate: [" not in out


def test_a_deploy_and_a_scale_in_behind_a_slow_healthy_replacement_drop_no_call_with_the_coordinator() -> (
    None
):
    # GIVEN the template's service (minimum healthy 100 %, maximum 200 %), replacements that take
    # 3 minutes to become healthy (old workers keep taking calls until then), the packaged worker
    scenario = Scenario(
        instances=3,
        workers_per_instance=2,
        lengths=parse_lengths("uniform:180-480"),
        concurrency=12,
        deploy=True,
        scale_in=1,
        warm_up_seconds=480,
        seed=5,
        strategies=(EC2_COORDINATOR,),
        minimum_healthy_percent=100,
        health_delay_seconds=180,
    )
    # WHEN it is simulated
    result = simulate.simulate(scenario)
    deploy, scale_in = (e.outcomes[EC2_COORDINATOR] for e in result.events)

    # THEN the coordinator dropped no call in either event, each finished, and the quiesce kept
    # calls off the scaled-in instance's workers while their replacements became healthy
    assert (deploy.calls_dropped, scale_in.calls_dropped) == (0, 0)
    assert deploy.finish_seconds is not None and deploy.finish_seconds >= 180
    assert scale_in.finish_seconds is not None
    assert scale_in.calls_kept_off_by_quiesce > 0
    assert deploy.calls_kept_off_by_quiesce == 0  # a deploy drains no instance


def test_without_the_quiesce_the_scaled_in_workers_keep_taking_calls_until_their_sigterm(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the same scale-in, workers that do not quiesce
    status, out, _ = run_cli(
        simulate,
        [
            "--instances", "3", "--workers-per-instance", "2", "--concurrency", "12",
            "--scale-in", "1", "--warm-up", "480", "--seed", "5", "--strategies", "ec2-coordinator",
            "--minimum-healthy-percent", "100", "--health-delay", "180", "--no-quiesce", "--json",
        ],
        capsys,
    )  # fmt: skip
    # THEN nothing was kept off, and still no call was dropped: the deadline waited for them
    assert status == 0
    (event,) = json.loads(out)["events"]
    outcome = event["strategies"][EC2_COORDINATOR]
    assert outcome["calls_kept_off_by_quiesce"] == 0
    assert outcome["calls_dropped"] == 0
    assert json.loads(out)["scenario"]["quiesce"] is False
