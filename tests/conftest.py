"""Every test starts with an empty Powertools metrics buffer, as every Lambda invocation does: a
test that calls a service directly (no handler to flush it) leaves none for the next one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drain_coordinator.observability import metrics


@pytest.fixture(autouse=True)
def _no_metrics_left_by_another_test() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()
