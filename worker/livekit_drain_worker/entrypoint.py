"""Find the agent's entrypoint from ``LIVEKIT_AGENT_ENTRYPOINT=module:function``.

The function must be an ``async def`` at module level taking livekit-agents' `JobContext`:
job processes import it again by name, so it cannot be a closure or a lambda.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any


class EntrypointError(Exception):
    """`LIVEKIT_AGENT_ENTRYPOINT` does not name an importable async function."""


def resolve_entrypoint(spec: str) -> Callable[[Any], Awaitable[None]]:
    module_name, sep, attribute = spec.strip().partition(":")
    if not sep or not module_name or not attribute:
        raise EntrypointError(f"agent entrypoint must look like 'module:function', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise EntrypointError(f"cannot import agent module {module_name!r}: {error}") from error

    target: object = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise EntrypointError(f"{module_name!r} has no attribute {attribute!r}") from None
    if not inspect.iscoroutinefunction(target):
        raise EntrypointError(f"agent entrypoint {spec!r} is not an async function")
    entrypoint: Callable[[Any], Awaitable[None]] = target
    return entrypoint
