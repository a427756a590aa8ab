"""Client behaviour real servers need, on the fake server: a full pipelining window,
TCP_NODELAY, no command CAPA left out, and `once` pacing (LOGIN-DELAY, [IN-USE])."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from bridge.app import App
from bridge.clock import SystemClock
from bridge.config import Config
from bridge.errors import Pop3AuthError
from bridge.logindelay import LoginPacer
from bridge.pop3 import Pop3Client, Timeouts
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import SECRET, make_message
from tests.receiver import WebhookReceiver

FAST = Timeouts(connect=2, read=2, command=5)


async def _logged_in(server: FakePop3Server) -> Pop3Client:
    client = Pop3Client(server.host, server.port, tls="none", timeouts=FAST)
    await client.connect()
    await client.login(server.user, server.password, method="user", allow_insecure=True)
    return client


async def test_retr_many_refills_the_window_before_waiting(fake_pop3: FakePop3Server) -> None:
    """When the next reply is not there yet (the client would wait for the network), the
    window is refilled first: `window` commands are outstanding whenever the client waits,
    and each refill carries the ACK a server that leaves Nagle on is waiting for (a window
    refilled only at half stalled such a server by one delayed ACK, ~40 ms, per refill)."""
    for i in range(40):
        fake_pop3.add(b"Subject: %d\r\n\r\nbody\r\n" % i)
    fake_pop3.delay_on("RETR", 0.003, times=0)  # every reply comes after the client waits
    client = await _logged_in(fake_pop3)
    conn = client._conn
    assert conn is not None
    seen: list[int] = []
    async for num, _raw in client.retr_many(range(1, 41), window=8):
        remaining = 40 - num
        # right after reply `num` was read: the rest of the window is still in flight
        seen.append(conn.outstanding - min(7, remaining))
    assert seen == [0] * 40
    await client.quit()


async def test_dele_many_keeps_the_window_full(fake_pop3: FakePop3Server) -> None:
    """DELE is refilled one per reply too: every message is marked, the replies pair up."""
    for i in range(30):
        fake_pop3.add(b"Subject: %d\r\n\r\nbody\r\n" % i)
    client = await _logged_in(fake_pop3)
    results = await client.dele_many(range(1, 31), window=4)
    assert results == [None] * 30
    await client.quit()
    assert fake_pop3.messages == []


async def test_client_socket_has_tcp_nodelay(fake_pop3: FakePop3Server) -> None:
    client = await _logged_in(fake_pop3)
    assert client._writer is not None
    sock = client._writer.get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    await client.quit()


async def test_auth_without_sasl_in_capa_is_not_sent() -> None:
    """A server whose CAPA has no SASL line never sees AUTH, whatever `auth` says."""
    server = FakePop3Server(sasl=())
    await server.start()
    try:
        client = Pop3Client(server.host, server.port, tls="none", timeouts=FAST)
        await client.connect()
        with pytest.raises(Pop3AuthError, match="does not offer SASL PLAIN"):
            await client.login(server.user, server.password, method="plain", allow_insecure=True)
        await client.close()
        assert "AUTH" not in server.verbs
    finally:
        await server.stop()


async def test_neither_uidl_nor_top_sends_neither() -> None:
    """Without UIDL and TOP in CAPA the inventory reads the messages with RETR; no TOP or
    UIDL goes out (it used to send TOP and fail)."""
    server = FakePop3Server([make_message(i) for i in range(3)], uidl=False, top=False)
    await server.start()
    try:
        client = await _logged_in(server)
        from bridge.identity import take_inventory

        found = await take_inventory(client, mailbox="m", known={}, max_message_bytes=10**6)
        assert len({m.uid for m in found.messages}) == 3
        assert all(m.uid.startswith("hdr:") for m in found.messages)
        assert found.uidl_missing
        await client.quit()
        assert "TOP" not in server.verbs
        assert "UIDL" not in server.verbs
    finally:
        await server.stop()


def test_login_pacer_counts_from_the_last_login() -> None:
    class Clock(SystemClock):
        now = 100.0

        def monotonic(self) -> float:
            return self.now

    clock = Clock()
    pacer = LoginPacer(clock)
    assert pacer.remaining("a") == 0
    pacer.logged_in("a", 10)
    clock.now = 104.0
    assert pacer.remaining("a") == pytest.approx(6.0)
    clock.now = 111.0
    assert pacer.remaining("a") == 0
    pacer.logged_in("a", None)  # the server stopped announcing it
    assert pacer.announced("a") is None


def _config(server: FakePop3Server, url: str, data_dir: Path, **mailbox: Any) -> Config:
    box = server.mailbox_config("fake", ["main"], **mailbox)
    return Config.from_dict(
        {
            "data_dir": str(data_dir),
            "webhooks": {"main": {"url": url, "secret": SECRET}},
            "mailboxes": [box],
        },
        env={},
    )


async def test_once_retries_in_use_within_its_bound(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """`once` meets [IN-USE] (another client holds the maildrop), waits and tries again."""
    fake_pop3.add(make_message(1))
    fake_pop3.reply_on("PASS", "-ERR [IN-USE] mailbox locked", times=1)
    app = App(_config(fake_pop3, receiver.url, tmp_path, login_backoff_in_use=0, auth="user"))
    try:
        assert await app.once()
    finally:
        await app.close()
    assert len(receiver.requests) == 1
    assert fake_pop3.messages == []
    assert fake_pop3.verbs.count("PASS") == 2


async def test_once_gives_up_on_in_use_past_its_bound(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    fake_pop3.add(make_message(1))
    fake_pop3.reply_on("PASS", "-ERR [IN-USE] mailbox locked", times=0)
    app = App(_config(fake_pop3, receiver.url, tmp_path, login_backoff_in_use=0, auth="user"))
    app.once_max_wait = 2.5
    try:
        assert not await app.once()
    finally:
        await app.close()
    assert 2 <= fake_pop3.verbs.count("PASS") <= 4


async def test_check_reports_a_slow_quit_as_a_warning(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Everything passed but QUIT was slow: ok, with a warning, not FAILED."""
    fake_pop3.add(make_message(1))
    fake_pop3.delay_on("QUIT", 3)
    app = App(_config(fake_pop3, receiver.url, tmp_path))
    app.check_quit_warn = 0.3
    try:
        [row] = await app.check()
    finally:
        await app.close()
    assert row.ok, row.detail
    assert row.warnings == ("QUIT took longer than 0.3 s",)
    assert "identity: UIDL" in row.detail
    assert len(fake_pop3.messages) == 1
    await asyncio.sleep(0)
