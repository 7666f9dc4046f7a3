"""No input makes any subcommand print a traceback: a one-line reason on stderr, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from drainctl.cli import main

ROOT = Path(__file__).resolve().parents[2]
EVENT = str(ROOT / "events" / "asg-terminate-lifecycle-action.json")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    here = tmp_path_factory.mktemp("hostile")
    made = {
        "binary": bytes(range(256)) * 4,
        "latin1": "caf\xe9: {}\n".encode("latin-1"),
        "empty": b"",
        "huge": b'{"a": "' + b"x" * (3 * 1024 * 1024) + b'"}',
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "list": b"[1, 2, 3]",
        "yaml_not_ours": b"Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n",
    }
    paths = {}
    for name, content in made.items():
        path = here / name
        path.write_bytes(content)
        paths[name] = str(path)
    paths["directory"] = str(here)
    paths["missing"] = str(here / "no-such-file.json")
    paths["event"] = EVENT  # valid JSON, but the wrong kind of file where a template is asked for
    return paths


FILE_KINDS = ["binary", "latin1", "empty", "huge", "deep", "list", "yaml_not_ours", "directory", "missing"]
TEMPLATE_KINDS = [
    "binary",
    "latin1",
    "empty",
    "huge",
    "list",
    "yaml_not_ours",
    "directory",
    "missing",
    "event",
]


def _cases() -> list[tuple[str, list[str]]]:
    cases: list[tuple[str, list[str]]] = []
    cases += [(f"replay {k}", ["replay", f"<{k}>"]) for k in FILE_KINDS]
    cases += [(f"replay --template {k}", ["replay", EVENT, "--template", f"<{k}>"]) for k in TEMPLATE_KINDS]
    cases += [(f"demo --template {k}", ["demo", "--template", f"<{k}>"]) for k in TEMPLATE_KINDS]
    cases += [(f"simulate --template {k}", ["simulate", "--template", f"<{k}>"]) for k in TEMPLATE_KINDS]
    cases += [(f"bench --template {k}", ["bench", "--quick", "--template", f"<{k}>"]) for k in TEMPLATE_KINDS]
    cases += [(f"check --template {k}", ["check", "--template", f"<{k}>"]) for k in TEMPLATE_KINDS]
    cases += [
        (
            f"check --task-definition {k}",
            ["check", "--template", str(ROOT / "template.yaml"), "--task-definition", f"<{k}>"],
        )
        for k in FILE_KINDS
    ]
    cases += [
        (f"check --config {k}", ["check", "--template", str(ROOT / "template.yaml"), "--config", f"<{k}>"])
        for k in FILE_KINDS
        if k != "empty"  # an empty samconfig is valid TOML: no overrides
    ]
    cases += [(f"simulate --lengths csv:{k}", ["simulate", "--lengths", f"csv:<{k}>"]) for k in FILE_KINDS]
    cases += [
        ("replay --param without =", ["replay", EVENT, "--param", "DrainDeadline"]),
        ("replay --param without a name", ["replay", EVENT, "--param", "=5"]),
        ("replay --param of no such parameter", ["replay", EVENT, "--param", "NoSuchParameter=5"]),
        ("replay --param out of range", ["replay", EVENT, "--param", "DrainDeadline=-5"]),
        ("replay --sessions huge", ["replay", EVENT, "--sessions", "100000000"]),
        ("replay --call-seconds inf", ["replay", EVENT, "--call-seconds", "1-inf"]),
        ("replay --format yaml", ["replay", EVENT, "--format", "yaml"]),
        ("demo --instances 0", ["demo", "--instances", "0"]),
        ("demo --instances -1", ["demo", "--instances", "-1"]),
        ("demo --workers-per-instance 0", ["demo", "--workers-per-instance", "0"]),
        ("demo --instances x", ["demo", "--instances", "x"]),
        ("simulate --instances 0", ["simulate", "--instances", "0"]),
        ("simulate --lengths nonsense", ["simulate", "--lengths", "nonsense"]),
        ("check --params bad", ["check", "--template", str(ROOT / "template.yaml"), "--params", "nonsense"]),
        ("status --region bad", ["status", "--region", "not a region!"]),
        ("status --profile missing", ["status", "--profile", "no-such-profile-anywhere"]),
        ("no subcommand", []),
        ("unknown subcommand", ["frobnicate"]),
    ]
    return cases


CASES = _cases()


@pytest.mark.parametrize(("name", "argv"), CASES, ids=[name for name, _ in CASES])
def test_hostile_input_gets_one_line_on_stderr_and_exit_2(
    name: str,
    argv: list[str],
    files: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN an argument or a file no subcommand can use
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    args = [_fill(arg, files) for arg in argv]
    # WHEN the subcommand is run with it
    status = main(args)
    err = capsys.readouterr().err
    # THEN exit 2, one line on stderr saying why, and no traceback
    assert status == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("drainctl"), err


def _fill(arg: str, files: dict[str, str]) -> str:
    for kind, path in files.items():
        arg = arg.replace(f"<{kind}>", path)
    return arg
