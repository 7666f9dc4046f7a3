"""The report of `drainctl check`: a table of verdicts, what was assumed, and the verdict."""

from __future__ import annotations

from collections.abc import Sequence

from drainctl.check.core import Budget, RuleResult
from drainctl.check.load import CheckInputs


def _table(results: Sequence[RuleResult]) -> list[str]:
    width = max(len(result.rule_id) for result in results)
    lines = [f"{'RESULT':<6}  {'RULE':<{width}}  NUMBERS"]
    for result in results:
        detail = result.detail if result.status != "FAIL" else f"{result.detail}. Why: {result.why}"
        lines.append(f"{result.status:<6}  {result.rule_id:<{width}}  {detail}")
    return lines


def _verdict(results: Sequence[RuleResult]) -> str:
    failed = [result.rule_id for result in results if not result.passed]
    skipped = sum(1 for result in results if result.skipped)
    if failed:
        return f"FAIL: {len(failed)} of {len(results)} rules fail: {', '.join(failed)}"
    checked = len(results) - skipped
    return f"PASS: {checked} rules pass, {skipped} not checked (SKIP: the inputs do not show them)"


def _format_report(budget: Budget, results: Sequence[RuleResult], inputs: CheckInputs) -> str:
    config = inputs.samconfig
    with_config = "" if config is None else f" with {config} [{inputs.config_env}]"
    lines = [
        f"drainctl check: {inputs.template}{with_config}; worker numbers from {budget.worker_source}",
        *_table(results),
        *(f"ASSUMED {line}" for line in budget.assumptions()),
        _verdict(results),
    ]
    return "\n".join(lines)
