"""What a response means and how long to wait: the webhook retry policy, as pure functions.

* :func:`classify` maps an HTTP status to a :class:`Verdict` (acked, transient,
  too large, rejected) exactly as DESIGN.md's webhook contract says;
* :func:`status_class` gives the small fixed label used for metrics;
* :func:`backoff_delay` is exponential backoff with full jitter;
* :func:`parse_retry_after` reads ``Retry-After`` in seconds or as an HTTP date.
"""

from __future__ import annotations

import enum
import math
import random
from email.utils import parsedate_to_datetime

__all__ = [
    "TRANSIENT_STATUSES",
    "Verdict",
    "backoff_delay",
    "classify",
    "parse_retry_after",
    "status_class",
]

TRANSIENT_STATUSES = frozenset({408, 425, 429})
"""4xx statuses that mean "try again later"; every 5xx is transient too."""


class Verdict(enum.Enum):
    """What one HTTP response means for the delivery."""

    ACKED = "acked"
    """2xx: the receiver has the message."""
    TRANSIENT = "transient"
    """408, 425, 429, 5xx (and timeouts, connection errors): retry later."""
    TOO_LARGE = "too_large"
    """413: resend once in reference mode, else rejected."""
    REJECTED = "rejected"
    """Other 4xx, 3xx (redirects are not followed), and anything else. 410 Gone is a
    rejection too, and the client then stops sending to that target (Standard Webhooks)."""


def classify(status: int) -> Verdict:
    """Return the :class:`Verdict` for an HTTP status code."""
    if 200 <= status <= 299:
        return Verdict.ACKED
    if status in TRANSIENT_STATUSES or 500 <= status <= 599:
        return Verdict.TRANSIENT
    if status == 413:
        return Verdict.TOO_LARGE
    return Verdict.REJECTED


def status_class(status: int | None, *, timed_out: bool = False) -> str:
    """Return the metric label for one attempt.

    ``"2xx"``, ``"3xx"``, ``"4xx"``, ``"5xx"`` for a response; ``"timeout"`` when
    it timed out; ``"error"`` for a connection error or a status outside 200-599.
    """
    if timed_out:
        return "timeout"
    if status is None or not 200 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Return the wait before retry number ``attempt`` (1 = the first retry).

    Full jitter: uniform in ``[0, min(cap, base * 2 ** (attempt - 1))]``.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 62))
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: float, cap: float) -> float | None:
    """Return the ``Retry-After`` delay in seconds, capped at ``cap``, or None.

    Accepts delta-seconds (``"120"``) or an HTTP date (``"Wed, 21 Oct 2015
    07:28:00 GMT"``) relative to the wall-clock time ``now``; a date in the past
    gives 0. Anything unparsable gives None.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return min(float(text), cap)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result means "-0000"
        return None
    delay = when.timestamp() - now
    if math.isnan(delay):
        return None
    return min(max(delay, 0.0), cap)
