"""Timeouts bound a slow server in total, and a slow but steady transfer still gets through.

Before: `connect_timeout: 5` let a greeting trickled at 1 byte/s run 301 s, a greeting sent
after 35 s was accepted, and a RETR trickled at 2 bytes/s ran 305 s (a hidden 300 s bound per
command that also cut off large messages on slow links in every session). The fake server
trickles; the bounds asserted are loose (the machine is shared) yet far below the old ones.
"""

from __future__ import annotations

import time

import pytest

from bridge.errors import Pop3TimeoutError
from bridge.pop3 import Pop3Client, Timeouts
from tests.fakes.pop3server import FakePop3Server


def _client(server: FakePop3Server, timeouts: Timeouts) -> Pop3Client:
    return Pop3Client(server.host, server.port, tls="none", timeouts=timeouts, mailbox="slow")


async def _logged_in(server: FakePop3Server, timeouts: Timeouts) -> Pop3Client:
    client = _client(server, timeouts)
    await client.connect()
    await client.login(server.user, server.password, method="user", allow_insecure=True)
    return client


async def test_connect_timeout_bounds_a_trickled_greeting(fake_pop3: FakePop3Server) -> None:
    """A greeting trickled at 4 octets/s (bytes keep coming, so no idle timeout fires) fails
    within connect_timeout, and the error says it was the greeting."""
    fake_pop3.trickle_on("GREETING", 4)
    client = _client(fake_pop3, Timeouts(connect=1, read=5, command=5))
    began = time.monotonic()
    with pytest.raises(Pop3TimeoutError, match="greeting") as caught:
        await client.connect()
    assert time.monotonic() - began < 4
    assert "connect_timeout" in str(caught.value)
    assert not client.connected


async def test_connect_timeout_bounds_a_late_greeting(fake_pop3: FakePop3Server) -> None:
    """A greeting sent after connect_timeout is not waited for (the idle timeout is longer)."""
    fake_pop3.delay_on("GREETING", 3)
    client = _client(fake_pop3, Timeouts(connect=0.5, read=10, command=10))
    began = time.monotonic()
    with pytest.raises(Pop3TimeoutError, match="greeting"):
        await client.connect()
    assert time.monotonic() - began < 2.5


async def test_command_timeout_bounds_a_single_line_reply_in_total(
    fake_pop3: FakePop3Server,
) -> None:
    """STAT trickled at 2 octets/s ends after command_timeout, not after the idle timeout per
    read (which a trickle always satisfies)."""
    fake_pop3.add(b"Subject: x\r\n\r\nbody\r\n")
    client = await _logged_in(fake_pop3, Timeouts(connect=2, read=5, command=1))
    fake_pop3.trickle_on("STAT", 2)
    began = time.monotonic()
    with pytest.raises(Pop3TimeoutError):
        await client.stat()
    assert time.monotonic() - began < 4
    assert not client.connected  # a late reply can never pair with the next command


async def test_min_rate_ends_a_trickled_retr(fake_pop3: FakePop3Server) -> None:
    """A RETR trickled at 200 octets/s fails once read_timeout has passed and its average is
    below min_rate; the error names the key to change."""
    fake_pop3.add(b"Subject: big\r\n\r\n" + b"y" * 70 * 400 + b"\r\n")
    client = await _logged_in(fake_pop3, Timeouts(connect=2, read=1, command=1, min_rate=2048))
    fake_pop3.trickle_on("RETR", 200)
    began = time.monotonic()
    with pytest.raises(Pop3TimeoutError, match="min_transfer_rate"):
        await client.retr(1)
    assert time.monotonic() - began < 5


async def test_slow_but_steady_retr_outlasts_command_timeout(fake_pop3: FakePop3Server) -> None:
    """A 300 KB message at ~100 KB/s takes ~3 s, longer than command_timeout (1 s): it is
    retrieved whole, because it keeps above min_rate."""
    body = (b"z" * 98 + b"\r\n") * 3000
    raw = b"Subject: steady\r\n\r\n" + body
    fake_pop3.add(raw)
    client = await _logged_in(fake_pop3, Timeouts(connect=2, read=1, command=1, min_rate=2048))
    fake_pop3.trickle_on("RETR", 100_000)
    began = time.monotonic()
    assert await client.retr(1) == raw
    assert time.monotonic() - began > 1  # it really outlasted command_timeout
    await client.quit()
