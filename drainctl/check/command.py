"""The command line of `drainctl check`: its flags, its exit status (0 every rule passes, 1 any
fails, 2 an input cannot be read), the text report or one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from drainctl.check.core import (
    DEFAULT_AWS_LATENCY,
    DEFAULT_LIVEKIT_LATENCY,
    DEFAULT_MARGIN_SECONDS,
    DEFAULT_ROOMS_PER_DRAIN,
    CheckInputError,
)
from drainctl.check.load import CheckInputs, load_budget
from drainctl.check.report import _format_report
from drainctl.check.rules import evaluate


def _params_dict(items: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CheckInputError(f"--params takes NAME=VALUE, not {item!r}")
        values[name] = value
    return values


def _inputs(args: argparse.Namespace) -> CheckInputs:
    margin = int(args.margin)
    if margin < 0:
        raise CheckInputError(f"--margin cannot be negative, got {margin}")
    p99 = None if args.p99_call_seconds is None else float(args.p99_call_seconds)
    if p99 is not None and not (math.isfinite(p99) and p99 > 0):
        raise CheckInputError(f"--p99-call-seconds must be a positive number, got {args.p99_call_seconds}")
    return CheckInputs(
        template=Path(args.template),
        config=None if args.config is None else Path(args.config),
        config_env=str(args.config_env),
        params=_params_dict(list(args.params or [])),
        task_definition=None if args.task_definition is None else Path(args.task_definition),
        p99_call_seconds=p99,
        margin=margin,
        # (getattr: a caller's own Namespace may predate these options)
        open_drains=_positive_int(getattr(args, "open_drains", None), "--open-drains"),
        aws_latency=_latency(getattr(args, "aws_latency", None), "--aws-latency", DEFAULT_AWS_LATENCY),
        livekit_latency=_latency(
            getattr(args, "livekit_latency", None), "--livekit-latency", DEFAULT_LIVEKIT_LATENCY
        ),
        rooms_per_drain=_positive_int(getattr(args, "rooms_per_drain", None), "--rooms-per-drain")
        or DEFAULT_ROOMS_PER_DRAIN,
    )


def _positive_int(raw: object, flag: str) -> int | None:
    if raw is None:
        return None
    try:
        value = int(str(raw))
    except ValueError as exc:
        raise CheckInputError(f"{flag} takes a whole number, got {raw!r}") from exc
    if value < 1:
        raise CheckInputError(f"{flag} must be at least 1, got {value}")
    return value


def _latency(raw: object, flag: str, default: tuple[float, float]) -> tuple[float, float]:
    """P50[:P99] in seconds; P99 defaults to 5 x P50."""
    if raw is None:
        return default
    text = str(raw)
    p50_text, _, p99_text = text.partition(":")
    try:
        p50 = float(p50_text)
        p99 = float(p99_text) if p99_text else 5 * p50
    except ValueError as exc:
        raise CheckInputError(f"{flag} takes P50[:P99] in seconds, got {text!r}") from exc
    if not (math.isfinite(p50) and math.isfinite(p99) and 0 < p50 <= p99):
        raise CheckInputError(f"{flag} needs 0 < P50 <= P99, got {text!r}")
    return p50, p99


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template", type=Path, default=Path("template.yaml"), help="default: template.yaml")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="samconfig file whose parameter_overrides apply (default: samconfig.toml next to the template)",
    )
    parser.add_argument("--config-env", default="default", help="samconfig environment (default: default)")
    parser.add_argument(
        "--params",
        "--param",
        dest="params",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME=VALUE",
        help="template parameter values, over samconfig's",
    )
    parser.add_argument(
        "--task-definition",
        type=Path,
        default=None,
        metavar="FILE",
        help="the worker's task definition, as `aws ecs describe-task-definition` prints it",
    )
    parser.add_argument(
        "--p99-call-seconds", type=float, default=None, metavar="N", help="your p99 call length, in seconds"
    )
    fleet = parser.add_argument_group("the cost of a look (rule fleet-fits-period)")
    fleet.add_argument(
        "--open-drains", default=None, metavar="N", help="drains open at once at your biggest scale-in"
    )
    fleet.add_argument(
        "--aws-latency", default=None, metavar="P50[:P99]", help="one AWS call (default 0.1:1)"
    )
    fleet.add_argument(
        "--livekit-latency", default=None, metavar="P50[:P99]", help="one LiveKit call (default 0.2:2)"
    )
    fleet.add_argument(
        "--rooms-per-drain",
        default=None,
        metavar="N",
        help=f"calls an instance holds when it drains (default {DEFAULT_ROOMS_PER_DRAIN})",
    )
    parser.add_argument(
        "--margin",
        type=int,
        default=DEFAULT_MARGIN_SECONDS,
        metavar="S",
        help=f"seconds stopTimeout must exceed drain_timeout by (default {DEFAULT_MARGIN_SECONDS})",
    )
    parser.add_argument(
        "--json", action="store_true", help='print one JSON object {"passed": ..., "rules": [...]}'
    )


_DESCRIPTION: Final = (
    "Check the timeout budget before deploying: stopTimeout vs drain_timeout, the hosts' "
    "ECS_CONTAINER_STOP_TIMEOUT, the hook's heartbeat and deadline, the Lambda timeouts, Fargate "
    "refused. Exit 0 when every rule passes, 1 when any fails, 2 when an input cannot be read."
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `check` to a `drainctl` command line."""
    parser = subparsers.add_parser(
        "check", help="the timeout budget, checked before deploy", description=_DESCRIPTION
    )
    _add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run `drainctl check` with parsed arguments; prints the report, returns the exit status."""
    try:
        inputs = _inputs(args)
        budget = load_budget(inputs)
    except CheckInputError as exc:
        print(f"drainctl check: {exc}", file=sys.stderr)
        return 2
    results = evaluate(budget)
    passed = all(result.passed for result in results)
    if args.json:
        print(
            json.dumps(
                {
                    "passed": passed,
                    "rules": [result.as_dict() for result in results],
                    "assumed": budget.assumptions(),
                }
            )
        )
    else:
        print(_format_report(budget, results, inputs))
    return 0 if passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="drainctl check", description=_DESCRIPTION)
    _add_arguments(parser)
    return run(parser.parse_args(argv))
