"""The degraded-AWS table's arithmetic: heartbeat lateness and its p99, and the concurrency sized
to the open drains."""

from __future__ import annotations

from drainctl.degraded import _lateness, _p99, sized_concurrency, template_defaults


def test_a_heartbeat_is_late_by_what_passed_after_two_periods_were_left_on_its_timer() -> None:
    # GIVEN a hook of 300 s started at 0, a 60 s period: each heartbeat is due 180 s after the last
    # WHEN heartbeats come at 150 (early), 350 (20 s after due at 330) and 600 (70 s after 530)
    late = _lateness(0.0, [150.0, 350.0, 600.0], timeout=300, period=60)
    # THEN an early one is not late, the others by what passed after they fell due
    assert late == [0.0, 20.0, 70.0]


def test_p99_is_the_value_under_which_ninety_nine_in_a_hundred_fall() -> None:
    assert _p99([]) == 0.0
    assert _p99([float(n) for n in range(1, 101)]) == 99.0
    assert _p99([5.0]) == 5.0


def test_concurrency_is_sized_for_every_shard_at_once_never_under_the_default() -> None:
    default, shard_size = template_defaults()
    assert sized_concurrency(10) == default
    assert sized_concurrency(2000) == 2000 // shard_size - 1
