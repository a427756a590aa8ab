"""The retry policy's pure parts: status verdicts, metric labels, backoff, Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from bridge.webhook.policy import (
    Verdict,
    backoff_delay,
    classify,
    parse_retry_after,
    status_class,
)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.ACKED),
        (202, Verdict.ACKED),
        (204, Verdict.ACKED),
        (299, Verdict.ACKED),
        (408, Verdict.TRANSIENT),
        (425, Verdict.TRANSIENT),
        (429, Verdict.TRANSIENT),
        (500, Verdict.TRANSIENT),
        (502, Verdict.TRANSIENT),
        (503, Verdict.TRANSIENT),
        (599, Verdict.TRANSIENT),
        (413, Verdict.TOO_LARGE),
        (400, Verdict.REJECTED),
        (401, Verdict.REJECTED),
        (403, Verdict.REJECTED),
        (404, Verdict.REJECTED),
        (409, Verdict.REJECTED),
        (422, Verdict.REJECTED),
        (301, Verdict.REJECTED),
        (302, Verdict.REJECTED),
        (307, Verdict.REJECTED),
        (308, Verdict.REJECTED),
        (100, Verdict.REJECTED),
        (600, Verdict.REJECTED),
    ],
)
def test_classify_follows_the_design_contract(status: int, verdict: Verdict) -> None:
    """2xx ack; 408/425/429/5xx transient; 413 too large; other 4xx, 3xx and oddities reject."""
    assert classify(status) is verdict


@pytest.mark.parametrize(
    ("status", "timed_out", "label"),
    [
        (204, False, "2xx"),
        (302, False, "3xx"),
        (404, False, "4xx"),
        (503, False, "5xx"),
        (None, True, "timeout"),
        (None, False, "error"),
        (99, False, "error"),
    ],
)
def test_status_class_labels(status: int | None, timed_out: bool, label: str) -> None:
    """Metric labels come from a small fixed set."""
    assert status_class(status, timed_out=timed_out) == label


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    """Delays stay within [0, min(cap, base*2^(n-1))] and actually spread over that range."""
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 30.0), (500, 30.0)]:
        draws = [backoff_delay(attempt, 0.5, 30.0, rng) for _ in range(400)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.9
        assert min(draws) < ceiling * 0.1
    with pytest.raises(ValueError, match="from 1"):
        backoff_delay(0, 0.5, 30.0, rng)


def test_retry_after_seconds_and_cap() -> None:
    """Delta-seconds are read as they are and capped; junk and absence give None."""
    assert parse_retry_after("120", now=0, cap=3600) == 120.0
    assert parse_retry_after(" 5 ", now=0, cap=3600) == 5.0
    assert parse_retry_after("99999", now=0, cap=3600) == 3600.0
    assert parse_retry_after(None, now=0, cap=3600) is None
    assert parse_retry_after("", now=0, cap=3600) is None
    assert parse_retry_after("soon", now=0, cap=3600) is None
    assert parse_retry_after("-5", now=0, cap=3600) is None
    assert parse_retry_after("1.5", now=0, cap=3600) is None


def test_retry_after_http_date() -> None:
    """An HTTP date counts from the wall clock; a past date means now; it is capped too."""
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2024, 5, 1, 12, 1, 30, tzinfo=UTC), usegmt=True)
    assert later == "Wed, 01 May 2024 12:01:30 GMT"
    assert parse_retry_after(later, now=now, cap=3600) == 90.0
    assert parse_retry_after(later, now=now, cap=60) == 60.0
    past = "Wed, 01 May 2024 11:00:00 GMT"
    assert parse_retry_after(past, now=now, cap=3600) == 0.0
    assert parse_retry_after("Wed, 01 May 2024 12:01:30 -0000", now=now, cap=3600) is None
