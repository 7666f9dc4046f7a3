"""drainctl: the operator CLI of livekit-drain."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from drainctl import bench as bench_command
from drainctl import check as check_command
from drainctl import replay as replay_command
from drainctl import simulate as simulate_command


def _params(values: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise replay_command.ReplayInputError(f"--param takes NAME=VALUE, not {item!r}")
        out[name] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drainctl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="a fleet with live calls scales in; the coordinator drains it")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--instances", type=int, default=3)
    demo.add_argument("--workers-per-instance", type=int, default=2)
    demo.add_argument("--template", type=Path, default=None)
    demo.add_argument(
        "--real-worker",
        action="store_true",
        help="also run one worker task as the real packaged livekit-agents worker (about a minute)",
    )

    rep = sub.add_parser("replay", help="replay one event file against a local world built to match it")
    rep.add_argument("event", type=Path)
    rep.add_argument("--sessions", type=int, default=3, help="calls the instance's worker holds (default 3)")
    rep.add_argument(
        "--call-seconds",
        default=None,
        help="call lengths, uniform in A-B seconds (default 180-480; a recorded task stop "
        "picks lengths that end before a clean exit and outlast a kill)",
    )
    rep.add_argument("--seed", type=int, default=7)
    rep.add_argument("--template", type=Path, default=None)
    rep.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a template parameter (repeatable)",
    )
    check_command.add_parser(sub)
    simulate_command.add_parser(sub)
    bench_command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Warnings of the local world itself go to stderr; the handlers' own logs are captured by the
    # local Lambda runtime and never mix with the JSON lines on stdout.
    world_log = logging.getLogger("drainctl")
    if not world_log.handlers:
        world_log.addHandler(logging.StreamHandler(sys.stderr))
        world_log.setLevel(logging.WARNING)
    try:
        if args.command == "check":
            return check_command.run(args)
        if args.command == "simulate":
            return simulate_command.run(args)
        if args.command == "bench":
            return bench_command.run(args)
        if args.command == "replay":
            if args.sessions < 0:
                raise replay_command.ReplayInputError("--sessions cannot be negative")
            options = replay_command.ReplayOptions(
                sessions=args.sessions,
                call_seconds=replay_command.parse_call_seconds(args.call_seconds or "180-480"),
                call_seconds_given=args.call_seconds is not None,
                seed=args.seed,
                template=args.template,
                params=_params(args.param),
            )
            return replay_command.replay(replay_command.load_event(args.event), options)
        if args.command == "demo":
            from drainctl import demo

            return demo.run(
                seed=args.seed,
                instances=args.instances,
                workers_per_instance=args.workers_per_instance,
                template=args.template,
                real_worker=args.real_worker,
            )
    except replay_command.ReplayInputError as exc:
        print(f"drainctl: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
