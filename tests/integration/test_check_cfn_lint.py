"""`drainctl check`'s template-only rules under cfn-lint: `cfn-lint --append-rules
drainctl.check.cfn_lint`, the same rule functions on the template's parameter defaults."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from drainctl import check
from drainctl.check import cfn_lint

ROOT = Path(__file__).resolve().parents[2]
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
OUR_RULES = "drainctl.check.cfn_lint"


def run_cfn_lint(template: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - a fixed command line
        [str(CFN_LINT), "--append-rules", OUR_RULES, "--", str(template)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_template_only_rule_is_one_cfn_lint_rule_calling_the_same_function() -> None:
    # GIVEN the cfn-lint rules of the module cfn-lint loads
    classes = [
        c for _, c in inspect.getmembers(cfn_lint, inspect.isclass) if c.__module__ == cfn_lint.__name__
    ]
    judges = [c.judge for c in classes if hasattr(c, "judge")]
    # THEN each template-only rule of drainctl check is judged by exactly one of them
    assert sorted(j.__name__ for j in judges) == sorted(r.__name__ for r in check.TEMPLATE_ONLY)
    ids = [c.id for c in classes]
    assert len(ids) == len(set(ids)) and all(i.startswith("E91") for i in ids)


@pytest.mark.slow
def test_the_shipped_template_gives_no_finding_from_our_rules() -> None:
    # WHEN cfn-lint lints template.yaml with our rules appended
    result = run_cfn_lint(ROOT / "template.yaml")
    # THEN none of ours (nor any other) matches
    assert "E91" not in result.stdout, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_a_deadline_shorter_than_the_stop_timeout_is_our_finding(tmp_path: Path) -> None:
    # GIVEN a copy of template.yaml whose DrainDeadline default (1200 s) is under stopTimeout
    # 900 s + one period, yet within the parameter's own MinValue
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    marker = "  DrainDeadline:\n    Type: Number\n    Default: 1200\n"
    assert marker in text
    broken = tmp_path / "template.yaml"
    broken.write_text(text.replace(marker, marker.replace("1200", "600")), encoding="utf-8")
    # WHEN cfn-lint lints it with our rules appended
    result = run_cfn_lint(broken)
    # THEN our deadline rule matches, with the numbers drainctl check gives, and cfn-lint fails
    assert "E9107 deadline-outlasts-stop: DrainDeadline 600 s < stopTimeout 900 s" in result.stdout
    assert result.returncode != 0


def test_a_template_that_is_not_livekit_drains_gives_no_finding_from_our_rules(tmp_path: Path) -> None:
    # GIVEN a template with no coordinator function
    other = tmp_path / "other.yaml"
    other.write_text("Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n", encoding="utf-8")
    # WHEN / THEN our rules say nothing of it
    result = run_cfn_lint(other)
    assert "E91" not in result.stdout, result.stdout
