"""parameters-accepted: CloudFormation accepts the parameters (constraints and Rules)."""

from __future__ import annotations

from drainctl.check.core import Budget, RuleResult, _result


def rule_parameters_accepted(budget: Budget) -> RuleResult:
    result = _result(
        "parameters-accepted",
        "CloudFormation accepts the parameters",
        "the template's constraints and Rules refuse these values: sam deploy would fail before "
        "it creates anything",
    )
    if budget.parameter_problem is not None:
        return result(False, budget.parameter_problem)
    return result(True, "every value within its constraints; the template's Rules hold")
