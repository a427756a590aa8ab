"""When each mailbox polls: a stable phase per mailbox.

Each mailbox gets a *phase*, a fixed offset in ``[0, poll_interval)`` derived from a hash of
its name, and polls on the wall-clock grid ``phase + k * poll_interval``. So mailboxes are
spread evenly over the whole interval, stay spread cycle after cycle, keep their slots
across restarts and across replicas, and return to their own slots after an outage (a
backoff of one interval or more ends on the next slot of the mailbox's grid), instead of all
polling at once.

The very first poll is drawn into a shorter window when there are few mailboxes (at most
:data:`START_RATE` sessions per second, never longer than the interval), so a small
installation does not wait a whole interval for its first poll; from the second poll on,
every mailbox is on its grid. The app (:meth:`bridge.app.App.run`) measures how late each
poll starts against its due time: ``bridge_poll_lag_seconds``.
"""

from __future__ import annotations

import hashlib
import math

__all__ = ["START_RATE", "first_delay", "next_slot", "phase_of"]

START_RATE = 50.0
"""First polls per second at start-up, at most (the window never exceeds the interval)."""

MIN_START_WINDOW = 5.0
"""Seconds over which the first polls are spread at least."""


def phase_of(name: str, interval: float) -> float:
    """The mailbox's stable offset in ``[0, interval)``: a hash of its name, the same everywhere."""
    digest = hashlib.blake2b(name.encode(), digest_size=8, person=b"popbridge-phase").digest()
    return int.from_bytes(digest, "big") / 2**64 * interval


def next_slot(after: float, phase: float, interval: float) -> float:
    """The first time strictly after ``after`` on the grid ``phase + k * interval``."""
    k = math.floor((after - phase) / interval) + 1
    return phase + k * interval


def first_delay(phase: float, interval: float, mailboxes: int) -> float:
    """Seconds until a mailbox's first poll: its phase, scaled into the start-up window."""
    window = min(interval, max(MIN_START_WINDOW, mailboxes / START_RATE))
    return phase / interval * window
