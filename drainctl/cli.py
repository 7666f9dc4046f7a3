"""drainctl: the operator CLI of livekit-drain."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

# Subcommands that live in their own module (`add_parser(subparsers)` and `run(args)`), imported
# only when chosen: `drainctl --help` and `drainctl check` must not pay for moto and boto3.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("drainctl.check", "the timeout budget, checked before deploy"),
    "simulate": ("drainctl.simulate", "fleet scenarios under Fargate, EC2 and EC2 with the coordinator"),
    "bench": ("drainctl.bench", "the coordinator's own cost, in figures"),
    "status": ("drainctl.status", "open drains, task stops, alarms and dead letters of a deployed stack"),
    "alarms": ("drainctl.alarms", "fire a test notification through each alarm of a deployed stack"),
}
DEBUG_ENV = "DRAINCTL_DEBUG"  # set to 1 to see the traceback of an unexpected error


class CliInputError(ValueError):
    """A command-line argument or input file cannot be used (exit 2, the reason on stderr)."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line (exit 2, as argparse itself exits)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _params(values: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not name.isidentifier():
            raise CliInputError(f"--param takes NAME=VALUE, not {item[:80]!r}")
        out[name] = value
    return out


def _bounded_int(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not within {low}-{high}")
        return value

    return parse


def _template_file(path: Path | None) -> None:
    """A --template that names a readable CloudFormation template, or a one-line reason."""
    if path is None:
        return
    from drainctl.template import TemplateError, load_template

    if path.is_dir():
        raise CliInputError(f"--template {path}: is a directory, not a template file")
    if not path.is_file():
        raise CliInputError(f"--template {path}: no such file")
    try:
        template = load_template(path)
    except TemplateError as exc:
        raise CliInputError(f"--template {exc}") from exc
    missing = [r for r in ("TerminateLifecycleHook", "DrainTable") if r not in template.logical_ids()]
    if missing:
        raise CliInputError(f"--template {path}: not livekit-drain's template (no {', '.join(missing)})")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("livekit-drain")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The command line; only the chosen subcommand's module is imported to add its arguments."""
    parser = _Parser(prog="drainctl", description=__doc__)
    parser.add_argument("--version", action="version", version=f"drainctl {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help="a fleet with live calls scales in; the coordinator drains it")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--instances", type=_bounded_int(2, 50), default=3, help="2-50 (default 3)")
    demo.add_argument("--workers-per-instance", type=_bounded_int(1, 20), default=2, help="1-20 (default 2)")
    demo.add_argument("--template", type=Path, default=None)
    demo.add_argument(
        "--real-worker",
        action="store_true",
        help="also run one worker task as the real packaged livekit-agents worker (about a minute)",
    )

    rep = sub.add_parser("replay", help="replay one event file against a local world built to match it")
    rep.add_argument("event", type=Path)
    rep.add_argument(
        "--sessions",
        type=_bounded_int(0, 1000),
        default=3,
        help="calls the instance's worker holds (default 3)",
    )
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
    rep.add_argument(
        "--format",
        choices=("json", "text"),
        default="json",
        help="json: one JSON line per action (default); text: a timeline like the demo's",
    )
    for name, (module, help_text) in LAZY_COMMANDS.items():
        if name == chosen:
            importlib.import_module(module).add_parser(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _chosen(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = _chosen(argv)
    try:
        args = build_parser(chosen).parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    # Warnings of the local world itself go to stderr; the handlers' own logs are captured by the
    # local Lambda runtime and never mix with the JSON lines on stdout.
    world_log = logging.getLogger("drainctl")
    if not world_log.handlers:
        world_log.addHandler(logging.StreamHandler(sys.stderr))
        world_log.setLevel(logging.WARNING)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print(f"drainctl {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if _is_input_error(exc):
            print(f"drainctl {args.command}: {_one_line(exc)}", file=sys.stderr)
            return 2
        if os.environ.get(DEBUG_ENV):
            raise
        print(
            f"drainctl {args.command}: unexpected error {type(exc).__name__}: {_one_line(exc)} "
            f"(set {DEBUG_ENV}=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command in ("simulate", "bench"):
        _template_file(args.template)  # before any progress line: a bad template is all it says
    if args.command in LAZY_COMMANDS:
        module = importlib.import_module(LAZY_COMMANDS[args.command][0])
        return int(module.run(args))
    if args.command == "replay":
        from drainctl import replay as replay_command

        _template_file(args.template)
        options = replay_command.ReplayOptions(
            sessions=args.sessions,
            call_seconds=replay_command.parse_call_seconds(args.call_seconds or "180-480"),
            call_seconds_given=args.call_seconds is not None,
            seed=args.seed,
            template=args.template,
            params=_params(args.param),
            format=args.format,
        )
        return replay_command.replay(replay_command.load_event(args.event), options)
    if args.command == "demo":
        _template_file(args.template)
        print(
            "drainctl demo: starting the local world (moto, a LiveKit server, the coordinator) ...",
            flush=True,
        )
        from drainctl import demo

        return demo.run(
            seed=args.seed,
            instances=args.instances,
            workers_per_instance=args.workers_per_instance,
            template=args.template,
            real_worker=args.real_worker,
        )
    return 1


def _is_input_error(exc: Exception) -> bool:
    """The errors that mean "this input cannot be used": each module's own, and the template's."""
    names = {"CliInputError", "ReplayInputError", "SimulateInputError", "CheckInputError", "TemplateError"}
    return any(cls.__name__ in names or cls.__name__.endswith("InputError") for cls in type(exc).__mro__)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


if __name__ == "__main__":
    sys.exit(main())
