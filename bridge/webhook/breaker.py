"""A per-target circuit breaker with an injectable clock.

States::

    CLOSED --(threshold consecutive failures)--> OPEN
    OPEN --(cool-down elapsed; one caller gets the probe)--> HALF_OPEN
    HALF_OPEN --(probe succeeds)--> CLOSED          (cool-down reset)
    HALF_OPEN --(probe fails)--> OPEN               (cool-down doubled, capped)

While OPEN, and while a HALF_OPEN probe is in flight, :meth:`CircuitBreaker.allow`
says no, so the poller stops downloading mail it cannot deliver.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(enum.Enum):
    """Where a breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive transient failures of one target and decides whether to try it.

    Not thread-safe; meant for one asyncio event loop (no awaits inside).
    ``on_change(state)`` is called after every state change.
    """

    def __init__(
        self,
        *,
        threshold: int,
        cooldown: float,
        cooldown_max: float,
        clock: Callable[[], float],
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        """Create a closed breaker; ``clock`` is monotonic seconds."""
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self._threshold = threshold
        self._base_cooldown = cooldown
        self._cooldown_max = max(cooldown_max, cooldown)
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._cooldown = cooldown
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """The current state; OPEN whose cool-down has elapsed still reads OPEN until a probe."""
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Transient failures since the last success."""
        return self._failures

    @property
    def cooldown(self) -> float:
        """The wait applied the last time the breaker opened (grows after failed probes)."""
        return self._cooldown

    def is_open(self) -> bool:
        """True when a delivery now would be refused (OPEN, or HALF_OPEN with its probe out)."""
        if self._state is BreakerState.OPEN:
            return self.retry_in() > 0
        return self._state is BreakerState.HALF_OPEN and self._probing

    def retry_in(self) -> float:
        """Seconds until a probe is allowed; 0 when a request may go now."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown - self._clock())

    def allow(self) -> bool:
        """Return True if a request may go now; the first caller after a cool-down gets the probe.

        A caller that got True must report :meth:`record_success`,
        :meth:`record_failure` or :meth:`release`.
        """
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if self.retry_in() > 0:
                return False
            self._set(BreakerState.HALF_OPEN)
        if self._probing:
            return False
        self._probing = True
        return True

    def record_success(self) -> None:
        """The target answered (any non-transient response): close and reset."""
        self._failures = 0
        self._probing = False
        self._cooldown = self._base_cooldown
        if self._state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """One transient failure (timeout, connection error, 408/425/429/5xx)."""
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN:
            self._probing = False
            self._cooldown = min(self._cooldown * 2, self._cooldown_max)
            self._open()
        elif self._state is BreakerState.CLOSED and self._failures >= self._threshold:
            self._cooldown = self._base_cooldown
            self._open()

    def release(self) -> None:
        """Give back a probe that ended without a result (e.g. cancelled)."""
        self._probing = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(state)
