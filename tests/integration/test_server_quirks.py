"""Servers that lack what Dovecot has, played by a proxy in front of the real Dovecot:
no UIDL, no TOP, LOGIN-DELAY announced and enforced; and connection errors that name the fix."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bridge.app import App
from bridge.config import Config
from bridge.errors import Pop3InsecureAuthError, Pop3TimeoutError, Pop3TLSError
from bridge.pop3 import Pop3Client, Timeouts
from tests.dovecot import Dovecot, Pop3User
from tests.fakes.capaproxy import CapaProxy
from tests.integration.kit import config_dict, make_message
from tests.receiver import Reply, WebhookReceiver

pytestmark = pytest.mark.dovecot


@pytest_asyncio.fixture
async def proxy_factory(dovecot: Dovecot) -> AsyncIterator[Any]:
    started: list[CapaProxy] = []

    async def make(**kwargs: Any) -> CapaProxy:
        proxy = await CapaProxy((dovecot.host, dovecot.port), **kwargs).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        await proxy.stop()


def _config(
    dovecot: Dovecot, user: Pop3User, url: str, data_dir: Path, proxy: CapaProxy, **box: Any
) -> Config:
    box.setdefault("include_raw", True)
    return Config.from_dict(
        config_dict(dovecot, user, url, data_dir, port=proxy.port, tls="none", mailbox=box)
    )


async def _once(config: Config, **attrs: Any) -> bool:
    app = App(config)
    for name, value in attrs.items():
        setattr(app, name, value)
    try:
        return await app.once()
    finally:
        await app.close()


async def _check(config: Config) -> Any:
    app = App(config)
    try:
        [row] = await app.check()
    finally:
        await app.close()
    return row


async def test_server_without_uidl_and_top_is_drained_from_the_messages_themselves(
    dovecot: Dovecot,
    pop3_user: Pop3User,
    receiver: WebhookReceiver,
    tmp_path: Path,
    proxy_factory: Any,
) -> None:
    """With neither UIDL nor TOP in CAPA, neither is ever sent: `check` reads the first
    message with RETR and says so, `once` drains the mailbox exactly once, and a message
    left after a failed delivery keeps its identity (same webhook-id) in the next session."""
    proxy = await proxy_factory(strip=frozenset({"UIDL", "TOP"}))
    pop3_user.deliver_many([make_message(i) for i in range(4)])
    config = _config(dovecot, pop3_user, receiver.url, tmp_path, proxy)

    row = await _check(config)
    assert row.ok, row.detail
    assert "header hash from RETR" in row.detail

    receiver.decide(lambda r: Reply(500) if r.json()["subject"] == "message 2" else Reply(200))
    assert not await _once(config)
    first_try = {r.json()["subject"]: r.webhook_id for r in receiver.requests}
    assert pop3_user.count() == 1
    receiver.decide(None)
    receiver.clear()
    assert await _once(config)
    [retry] = receiver.requests
    assert retry.json()["subject"] == "message 2"
    assert retry.webhook_id == first_try["message 2"]
    assert pop3_user.count() == 0
    assert "UIDL" not in proxy.verbs()
    assert "TOP" not in proxy.verbs()


async def test_server_without_uidl_uses_top_when_offered(
    dovecot: Dovecot,
    pop3_user: Pop3User,
    receiver: WebhookReceiver,
    tmp_path: Path,
    proxy_factory: Any,
) -> None:
    """No UIDL in CAPA: UIDL is not sent, the header identity comes from TOP n 0."""
    proxy = await proxy_factory(strip=frozenset({"UIDL"}))
    pop3_user.deliver_many([make_message(i) for i in range(3)])
    config = _config(dovecot, pop3_user, receiver.url, tmp_path, proxy)
    row = await _check(config)
    assert row.ok, row.detail
    assert "header hash from TOP" in row.detail
    assert await _once(config)
    assert len(receiver.distinct_webhook_ids()) == 3 == len(receiver.requests)
    assert "UIDL" not in proxy.verbs()
    assert "TOP" in proxy.verbs()


async def test_once_keeps_to_login_delay_between_sessions_and_after_check(
    dovecot: Dovecot,
    pop3_user: Pop3User,
    receiver: WebhookReceiver,
    tmp_path: Path,
    proxy_factory: Any,
) -> None:
    """LOGIN-DELAY announced in CAPA and enforced: `once` with a backlog of three sessions waits
    the delay before each login instead of being refused; after `check` (another process's
    login) it is refused once, waits, and goes on. Everything is delivered."""
    proxy = await proxy_factory(login_delay=1)
    pop3_user.deliver_many([make_message(i) for i in range(3)])
    config = _config(dovecot, pop3_user, receiver.url, tmp_path, proxy, session_max_messages=1)
    assert await _once(config)
    assert len(receiver.requests) == 3
    assert proxy.refused_logins == 0
    assert pop3_user.count() == 0

    pop3_user.deliver(make_message(9))
    await asyncio.sleep(1.2)  # check is another process: it does not know the last login
    row = await _check(config)
    assert row.ok, row.detail
    assert "LOGIN-DELAY 1 s" in row.detail
    assert await _once(config)
    assert proxy.refused_logins == 1
    assert len(receiver.requests) == 4
    assert pop3_user.count() == 0


async def test_once_gives_up_on_a_login_delay_over_its_bound(
    dovecot: Dovecot,
    pop3_user: Pop3User,
    receiver: WebhookReceiver,
    tmp_path: Path,
    proxy_factory: Any,
) -> None:
    """A LOGIN-DELAY longer than `once` may wait: it delivers one session's worth, leaves the
    rest on the server and reports failure (exit 3), without a refused login."""
    proxy = await proxy_factory(login_delay=600)
    pop3_user.deliver_many([make_message(i) for i in range(2)])
    config = _config(dovecot, pop3_user, receiver.url, tmp_path, proxy, session_max_messages=1)
    assert not await _once(config)
    assert len(receiver.requests) == 1
    assert pop3_user.count() == 1
    assert proxy.refused_logins == 0


async def test_run_waits_for_login_delay_instead_of_being_refused(
    dovecot: Dovecot,
    pop3_user: Pop3User,
    receiver: WebhookReceiver,
    tmp_path: Path,
    proxy_factory: Any,
) -> None:
    """`run` with poll_interval shorter than the announced LOGIN-DELAY never logs in early
    (it used to be refused once per cycle, forever)."""
    proxy = await proxy_factory(login_delay=2)
    pop3_user.deliver(make_message(1))
    app = App(_config(dovecot, pop3_user, receiver.url, tmp_path, proxy, poll_interval=1))
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        await receiver.wait_for(1, within=10)
        await asyncio.sleep(3.5)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await app.close()
    assert proxy.refused_logins == 0
    assert sum(proxy.verbs().count(v) for v in ("PASS", "APOP", "AUTH")) >= 1


# ---------------------------------------------------------------------- error wording


async def test_implicit_tls_on_a_plain_port_says_use_starttls(dovecot: Dovecot) -> None:
    """tls: implicit against the plain port: the error says the server answered in plain text
    and what to use instead."""
    client = Pop3Client(dovecot.host, dovecot.port, tls="implicit", ca_file=dovecot.ca_file)
    with pytest.raises(Pop3TLSError) as info:
        await client.connect()
    assert "the server answered in plain text: use tls: starttls" in str(info.value)
    assert "(995)" in str(info.value)


async def test_starttls_on_an_implicit_port_says_try_implicit(dovecot: Dovecot) -> None:
    """tls: starttls against the implicit-TLS port: no greeting comes, and the error asks
    whether this is an implicit-TLS port."""
    client = Pop3Client(
        dovecot.host,
        dovecot.tls_port,
        tls="starttls",
        ca_file=dovecot.ca_file,
        timeouts=Timeouts(connect=5, read=1, command=1),
    )
    with pytest.raises(Pop3TimeoutError) as info:
        await client.connect()
    assert "is this an implicit-TLS port? try tls: implicit" in str(info.value)


async def test_private_ca_without_ca_file_suggests_ca_file(dovecot: Dovecot) -> None:
    """A certificate from a CA the system does not know: the error suggests ca_file, for
    implicit TLS and for STLS alike."""
    for port, tls in ((dovecot.tls_port, "implicit"), (dovecot.port, "starttls")):
        client = Pop3Client(dovecot.host, port, tls=tls)
        with pytest.raises(Pop3TLSError) as info:
            await client.connect()
        assert "set ca_file" in str(info.value), tls


async def test_plain_connection_refusal_mentions_that_the_server_offers_stls(
    dovecot: Dovecot, pop3_user: Pop3User
) -> None:
    """tls: none without allow_insecure_auth: the refusal says the server offers STLS."""
    client = Pop3Client(dovecot.host, dovecot.port, tls="none")
    await client.connect()
    try:
        with pytest.raises(Pop3InsecureAuthError) as info:
            await client.login(pop3_user.name, pop3_user.password)
    finally:
        await client.close()
    assert "the server offers STLS: use tls: starttls" in str(info.value)
