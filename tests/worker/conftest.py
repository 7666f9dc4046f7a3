"""Fixtures for the worker package: a local ECS endpoint stand-in, and the package on sys.path."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

WORKER_DIR = Path(__file__).resolve().parents[2] / "worker"
# The worker ships as its own image, not as part of the project's package: make it importable.
if str(WORKER_DIR) not in sys.path:
    sys.path.insert(0, str(WORKER_DIR))

from livekit_drain_worker.testing import LocalEcsEndpoints  # noqa: E402


@pytest.fixture
def ecs() -> Iterator[LocalEcsEndpoints]:
    with LocalEcsEndpoints() as endpoints:
        yield endpoints


@pytest.fixture
def worker_dir() -> Path:
    return WORKER_DIR


@pytest.fixture
def agent_server_for_env() -> Iterator[object]:
    """A started local agent server, for tests that only build a real worker's environment."""
    from drainctl.world.agent_server import LocalAgentServer
    from drainctl.world.livekit_server import LocalLiveKit

    with LocalLiveKit() as livekit, LocalAgentServer(livekit) as server:
        yield server
