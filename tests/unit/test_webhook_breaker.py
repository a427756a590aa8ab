"""The circuit breaker's state machine, driven by a hand-moved clock."""

from __future__ import annotations

from bridge.webhook.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock, changes: list[BreakerState] | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        threshold=3,
        cooldown=10.0,
        cooldown_max=35.0,
        clock=clock,
        on_change=None if changes is None else changes.append,
    )


def test_opens_after_threshold_consecutive_failures_only() -> None:
    """Failures interrupted by a success do not add up; N in a row open the breaker."""
    clock = Clock()
    breaker = make(clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.is_open()
    assert not breaker.allow()
    assert breaker.retry_in() == 10.0


def test_half_open_allows_exactly_one_probe_and_success_closes() -> None:
    """After the cool-down one caller gets the probe, others wait; a success closes it."""
    clock = Clock()
    changes: list[BreakerState] = []
    breaker = make(clock, changes)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.1
    assert not breaker.is_open()  # a probe may go now
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.is_open()  # the probe is out: nobody else goes
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.allow()
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_failed_probes_double_the_cool_down_up_to_the_cap() -> None:
    """Each failed probe reopens with twice the wait (10, 20, 35 capped); success resets it."""
    clock = Clock()
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure()
    waits = []
    for _ in range(4):
        waits.append(breaker.retry_in())
        clock.now += breaker.retry_in()
        assert breaker.allow()
        breaker.record_failure()
        assert breaker.state is BreakerState.OPEN
    assert waits == [10.0, 20.0, 35.0, 35.0]
    clock.now += breaker.retry_in()
    assert breaker.allow()
    breaker.record_success()
    for _ in range(3):
        breaker.record_failure()
    assert breaker.retry_in() == 10.0


def test_released_probe_lets_the_next_caller_probe() -> None:
    """A probe that ended without a result (cancelled) does not block the breaker forever."""
    clock = Clock()
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    assert not breaker.allow()
    breaker.release()
    assert breaker.allow()
