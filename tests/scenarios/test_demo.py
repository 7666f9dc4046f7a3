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
    assert (
        "\nOK: no call dropped where the timers agree; every call the misconfigured service dropped was judged and alarmed.\n"
        in out
    )


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
        r"livekit-agents\s+calls on the old workers at the deploy\s+(\d+), dropped\s+(\d+); verdicts (.*)",
        text,
    )
    wrong = re.search(
        r"misconfigured-agents\s+calls on the old workers at the deploy\s+(\d+), dropped\s+(\d+); verdicts (.*)",
        text,
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


def test_the_deploy_summary_counts_the_calls_the_deploy_line_announced(demo_output: tuple[int, str]) -> None:
    # GIVEN the deploy's first line ("holding N calls (service) + M calls (service)")
    _, out = demo_output
    text = "\n".join(act(out, 2))
    announced = re.search(
        r"holding (\d+) calls \(livekit-agents\) \+ (\d+) calls \(misconfigured-agents\)", text
    )
    assert announced is not None
    # THEN the summary counts the same calls, service by service
    counted = re.findall(r"(\S+-agents)\s+calls on the old workers at the deploy\s+(\d+)", text)
    assert dict(counted) == {"livekit-agents": announced.group(1), "misconfigured-agents": announced.group(2)}


def test_alarm_advice_is_wrapped_whole_not_cut(demo_output: tuple[int, str]) -> None:
    from drainctl.world.alarms import alarm_specs
    from drainctl.world.world import World

    # GIVEN the template's own description of the forced-kills alarm
    with World() as world:
        (spec,) = [a for a in alarm_specs(world.template) if a.name.endswith("-forced-kills")]
    _, out = demo_output
    # THEN the demo prints all of it, on lines no wider than 100 columns
    block = out.split(f"alarm {spec.name}: ", 1)[1].split("\n    alarm ", 1)[0].split("\n\n", 1)[0]
    assert " ".join(block.split()) == " ".join(spec.description.split())
    assert all(len(line) <= 100 for line in block.splitlines())


def test_demo_ends_with_the_next_steps(demo_output: tuple[int, str]) -> None:
    _, out = demo_output
    steps = out.split("Next steps", 1)[1]
    assert "drainctl check" in steps
    assert "docs/deploy.md" in steps


def test_demo_streams_its_timeline_while_it_runs() -> None:
    from drainctl import demo

    # GIVEN an output that notes how much had been written at each flush
    class Recording:
        def __init__(self) -> None:
            self.text = ""
            self.flushed_at: list[int] = []

        def write(self, text: str) -> int:
            self.text += text
            return len(text)

        def flush(self) -> None:
            self.flushed_at.append(len(self.text))

    out = Recording()
    # WHEN the demo runs
    demo.run(instances=2, workers_per_instance=1, seed=3, out=out)  # type: ignore[arg-type]
    # THEN the timeline was flushed line by line as it happened, not once at the end of an act
    act_one_end = out.text.index("  summary")
    flushes_in_act_one = [n for n in out.flushed_at if out.text.index("Act 1:") < n <= act_one_end]
    assert len(flushes_in_act_one) >= 3
    assert out.flushed_at[0] < out.text.index("Act 1:")
