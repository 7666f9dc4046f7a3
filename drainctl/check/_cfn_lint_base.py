"""The base of the cfn-lint rules in `drainctl.check.cfn_lint`, kept out of that module: cfn-lint
loads every CloudFormationLintRule subclass a rules module holds, this base included.

A rule reads the template cfn-lint lints from its file (cfn-lint hands rules the template after
the SAM transform; `drainctl check` reads it before), with its parameters' defaults, and calls
the same rule function `drainctl check` calls.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch

from drainctl.check.core import Budget, CheckInputError, NotADrainTemplateError, Rule
from drainctl.check.load import CheckInputs, budget_of
from drainctl.template import TemplateError, load_template


class DrainctlRule(CloudFormationLintRule):  # type: ignore[misc]  # cfn-lint ships no types
    """One `drainctl check` rule as a cfn-lint rule: a FAIL is a match, PASS and SKIP are none."""

    judge: ClassVar[Rule]
    tags: ClassVar[list[str]] = ["livekit-drain", "drainctl-check"]

    def match(self, cfn: Any) -> list[Any]:
        budget = _budget(cfn.filename)
        if not isinstance(budget, Budget):
            return []
        result = type(self).judge(budget)
        if result.passed:
            return []
        return [RuleMatch([], f"{result.rule_id}: {result.detail}. Why: {result.why}")]


class UnreadableRule(CloudFormationLintRule):  # type: ignore[misc]  # cfn-lint ships no types
    """A livekit-drain template whose budget cannot be read: the other rules cannot judge it."""

    tags: ClassVar[list[str]] = ["livekit-drain", "drainctl-check"]

    def match(self, cfn: Any) -> list[Any]:
        problem = _budget(cfn.filename)
        if isinstance(problem, str):
            return [RuleMatch([], f"drainctl check cannot read the budget: {problem}")]
        return []


def _budget(filename: str | None) -> Budget | str | None:
    """The template's Budget on its parameters' defaults; the reason when it cannot be read;
    None when it is no livekit-drain template (or no file: cfn-lint reading standard input)."""
    if not filename or not os.path.isfile(filename):
        return None
    path = Path(filename)
    return _budget_of_file(path.resolve(), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _budget_of_file(path: Path, mtime_ns: int) -> Budget | str | None:
    """(mtime_ns: a template changed on disk is read again.)"""
    try:
        template = load_template(path)
        return budget_of(template, CheckInputs(template=path), samconfig=None)
    except NotADrainTemplateError:
        return None
    except (CheckInputError, TemplateError) as exc:
        return str(exc)
