"""Time as a port: the scheduler and the poller take a :class:`Clock`, so tests need not sleep."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    """Wall time for records, monotonic time for intervals, and a way to wait."""

    def time(self) -> float:
        """Seconds since the epoch (for the ledger, logs and timestamp metrics)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for budgets and intervals)."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def sleep_unless(stop: asyncio.Event, seconds: float, clock: Clock) -> bool:
    """Sleep ``seconds`` on ``clock`` unless ``stop`` is set first; True when stopped."""
    if seconds <= 0:
        return stop.is_set()
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut in (sleeper, stopper):
            fut.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fut
    return stop.is_set()
