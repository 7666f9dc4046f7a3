from __future__ import annotations

import pytest

from livekit_drain_worker.entrypoint import EntrypointError, resolve_entrypoint
from livekit_drain_worker.example_agent import entrypoint as example_entrypoint
from livekit_drain_worker.settings import DEFAULT_AGENT_ENTRYPOINT


def test_default_entrypoint_is_the_example_agent() -> None:
    # GIVEN no LIVEKIT_AGENT_ENTRYPOINT
    # WHEN the default is resolved
    entrypoint = resolve_entrypoint(DEFAULT_AGENT_ENTRYPOINT)

    # THEN it is the example agent's async entrypoint
    assert entrypoint is example_entrypoint


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("livekit_drain_worker.example_agent", "module:function"),
        ("livekit_drain_worker.example_agent:no_such_function", "no attribute"),
        ("livekit_drain_worker.example_agent:GREETING", "not an async function"),
        ("livekit_drain_worker.settings:load_settings", "not an async function"),
    ],
)
def test_entrypoint_that_is_not_an_async_function_is_refused(spec: str, reason: str) -> None:
    # GIVEN an entrypoint spec that names no async function
    # WHEN it is resolved
    # THEN it is an EntrypointError saying why
    with pytest.raises(EntrypointError, match=reason):
        resolve_entrypoint(spec)
