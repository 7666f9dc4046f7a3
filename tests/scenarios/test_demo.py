from __future__ import annotations

import re

import pytest

from drainctl.cli import main


@pytest.fixture(scope="module")
def demo_output() -> tuple[int, str]:
    import io

    from drainctl import demo

    out = io.StringIO()
    status = demo.run(out=out)
    return status, out.getvalue()


def act(output: str, number: int) -> list[str]:
    text = output.split(f"Act {number}:", 1)[1].split("\nAct ", 1)[0]
    return text.splitlines()


def test_demo_exits_zero_and_says_why(demo_output: tuple[int, str]) -> None:
    status, out = demo_output
    assert status == 0
    assert out.rstrip().endswith("every call the misconfigured service dropped was judged and alarmed.")


def test_scale_in_terminates_the_instance_only_after_its_last_call(demo_output: tuple[int, str]) -> None:
    _, out = demo_output
    lines = [line for line in act(out, 1) if line.startswith("    +")]
    complete = next(i for i, line in enumerate(lines) if "complete (drained)" in line)
    terminated = next(i for i, line in enumerate(lines) if "terminated (CONTINUE)" in line)
    hung_up = [i for i, line in enumerate(lines) if "hung up" in line]
    assert hung_up
    assert max(hung_up) < complete <= terminated
    assert "calls dropped                 0" in "\n".join(act(out, 1))
    assert not any("DROPPED" in line for line in lines)


def test_deploy_shows_the_misconfigured_service_killed_and_alarmed_beside_a_clean_one(
    demo_output: tuple[int, str],
) -> None:
    _, out = demo_output
    text = "\n".join(act(out, 2))
    right = re.search(
        r"livekit-agents\s+calls on the old workers\s+(\d+), dropped\s+(\d+); verdicts (.*)", text
    )
    wrong = re.search(
        r"misconfigured-agents\s+calls on the old workers\s+(\d+), dropped\s+(\d+); verdicts (.*)", text
    )
    assert right is not None
    assert wrong is not None
    assert right.group(2) == "0"
    assert "forced_kill" not in right.group(3)
    assert int(wrong.group(2)) > 0
    assert "'forced_kill'" in wrong.group(3)
    assert "ALARM livekit-drain-forced-kills" in text
    assert "ALARM livekit-drain-dropped-sessions" in text


def test_demo_runs_from_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--instances", "2", "--workers-per-instance", "1", "--seed", "3"]) == 0
    assert "Act 2:" in capsys.readouterr().out
