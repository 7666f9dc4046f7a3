from __future__ import annotations

import pytest

from drainctl.cli import main


def test_demo_scales_in_with_calls_in_flight_and_drops_none(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["demo"])
    out = capsys.readouterr().out
    assert status == 0
    assert "calls dropped (whole fleet)   0" in out
    assert "enters Terminating:Wait with" in out
    # the instance is terminated after the completion, never before
    timeline = [line for line in out.splitlines() if line.startswith("  +")]
    complete = next(i for i, line in enumerate(timeline) if "complete (drained)" in line)
    terminated = next(i for i, line in enumerate(timeline) if "terminated (CONTINUE)" in line)
    hung_up = [i for i, line in enumerate(timeline) if "hung up" in line]
    assert hung_up
    assert complete < terminated
    assert max(hung_up) < complete
