"""sigterm-reaches-worker: SIGTERM reaches the worker process, so it drains.

A shell as PID 1 does not forward SIGTERM (AWS: ECS task definition linuxParameters
initProcessEnabled; Docker: exec form of ENTRYPOINT/CMD); the LiveKit agent then never drains.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from drainctl.check.core import Budget, RuleResult, _skip

_SHELLS: Final = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh"})


def _is_shell_form(argv: Sequence[str]) -> bool:
    """A shell runs the worker (`sh -c "..."`, `bash start.sh`), unless its script `exec`s it."""
    if not argv or Path(argv[0]).name not in _SHELLS:
        return False
    options = [arg for arg in argv[1:] if arg.startswith("-") and not arg.startswith("--")]
    if any("c" in option for option in options):
        script = next((arg for arg in argv[1:] if not arg.startswith("-")), "")
        return not script.lstrip().startswith("exec ")
    return True


def rule_sigterm_reaches_worker(budget: Budget) -> RuleResult:
    rule_id, title = "sigterm-reaches-worker", "SIGTERM reaches the worker process"
    why = (
        "a shell as PID 1 does not pass SIGTERM on: the worker never drains and is killed at "
        "stopTimeout with its calls; set linuxParameters.initProcessEnabled true or an exec-form "
        "entryPoint/command"
    )
    if not budget.has_task_definition:
        return _skip(
            rule_id,
            title,
            why,
            "no worker task definition in the template: give --task-definition to check it",
        )
    if budget.init_process_enabled:
        return RuleResult(rule_id, title, True, "linuxParameters.initProcessEnabled true", why)
    if budget.argv is None:
        return RuleResult(
            rule_id,
            title,
            False,
            "initProcessEnabled not set and no entryPoint/command in the task definition "
            "(the image's own is not visible here)",
            why,
        )
    shown = json.dumps(list(budget.argv))
    if _is_shell_form(budget.argv):
        return RuleResult(
            rule_id, title, False, f"initProcessEnabled not set and a shell runs the worker: {shown}", why
        )
    return RuleResult(rule_id, title, True, f"exec-form entryPoint/command {shown}", why)
