"""Pop3Client against the real Dovecot: every mechanism it offers, both TLS modes, CAPA before
and after login, listings, byte-exact RETR, commit semantics, pipelining and the session limit."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
import trustme

from bridge.errors import Pop3AuthError, Pop3InUseError, Pop3TLSError
from bridge.pop3 import Mechanism, Pop3Client, Stat, Timeouts
from tests.dovecot import Dovecot, Pop3User

pytestmark = pytest.mark.dovecot

TIMEOUTS = Timeouts(connect=10, read=10, command=60)

DOTTY = (
    b"From: Alice <alice@example.org>\nSubject: dots\n\n.leading dot\n.\n..\n...three\nlast line\n"
)


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _plain(dovecot: Dovecot, **kwargs: object) -> Pop3Client:
    options: dict[str, object] = {"tls": "none", "timeouts": TIMEOUTS, "mailbox": "dovecot"}
    options.update(kwargs)
    return Pop3Client(dovecot.host, dovecot.port, **options)  # type: ignore[arg-type]


def _starttls(dovecot: Dovecot, **kwargs: object) -> Pop3Client:
    options: dict[str, object] = {"tls": "starttls", "ca_file": dovecot.ca_file}
    options.update(kwargs)
    return _plain(dovecot, **options)


def _implicit(dovecot: Dovecot, **kwargs: object) -> Pop3Client:
    options: dict[str, object] = {"tls": "implicit", "ca_file": dovecot.ca_file}
    options.update(kwargs)
    return Pop3Client(dovecot.host, dovecot.tls_port, timeouts=TIMEOUTS, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["user", "apop", "plain", "login"])
async def test_every_password_mechanism(dovecot: Dovecot, pop3_user: Pop3User, method: str) -> None:
    """USER/PASS, APOP, SASL PLAIN and SASL LOGIN each log in to Dovecot over STLS."""
    pop3_user.deliver(DOTTY)
    async with _starttls(dovecot) as client:
        assert await client.login(pop3_user.name, pop3_user.password, method=method) == method
        assert (await client.stat()).count == 1


@pytest.mark.parametrize("initial", [True, False])
async def test_sasl_plain_both_forms(dovecot: Dovecot, pop3_user: Pop3User, initial: bool) -> None:
    """SASL PLAIN works with the initial response on the AUTH line and in two steps."""
    async with _implicit(dovecot) as client:
        await client.auth("plain", pop3_user.name, pop3_user.password, initial_response=initial)
        assert client.authenticated


async def test_wrong_password_is_an_auth_error(dovecot: Dovecot, pop3_user: Pop3User) -> None:
    """A wrong password gives Pop3AuthError (permanent) without the password in it."""
    async with _implicit(dovecot) as client:
        with pytest.raises(Pop3AuthError) as info:
            await client.login(pop3_user.name, "not-the-password-42")
        assert not info.value.transient
        assert "not-the-password-42" not in str(info.value)


async def test_auto_over_tls_and_plain(dovecot: Dovecot, pop3_user: Pop3User) -> None:
    """auto picks SASL PLAIN over TLS and APOP on the plain port (when allowed)."""
    async with _implicit(dovecot) as client:
        assert await client.login(pop3_user.name, pop3_user.password) is Mechanism.PLAIN
    async with _plain(dovecot) as client:
        used = await client.login(pop3_user.name, pop3_user.password, allow_insecure=True)
        assert used is Mechanism.APOP


async def test_capa_before_and_after_login(dovecot: Dovecot, pop3_user: Pop3User) -> None:
    """CAPA is parsed before login (STLS, USER, SASL) and asked again after STLS and login."""
    client = _plain(dovecot, ca_file=dovecot.ca_file)
    await client.connect()
    try:
        before = client.capabilities
        assert before.stls
        assert before.user
        assert set(before.sasl) >= {"PLAIN", "LOGIN"}
        assert before.pipelining
        assert client.greeting is not None
        assert client.greeting.apop_timestamp is not None
        await client.stls()
        assert client.tls_active
        assert not client.capabilities.stls
        await client.login(pop3_user.name, pop3_user.password)
        after = client.capabilities
        assert after.top
        assert after.uidl
        assert after.pipelining
        assert not after.user
        assert after.sasl == ()
        assert client.pipelining
    finally:
        await client.quit()


async def test_implicit_tls_verified_and_wrong_ca_refused(dovecot: Dovecot, tmp_path: Path) -> None:
    """Implicit TLS verifies Dovecot's certificate against the test CA; another CA fails with
    Pop3TLSError."""
    async with _implicit(dovecot) as client:
        assert client.tls_active
    other = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with pytest.raises(Pop3TLSError):
        await _implicit(dovecot, ca_file=other).connect()
    with pytest.raises(Pop3TLSError):
        await _starttls(dovecot, ca_file=other).connect()


async def test_hostname_is_verified(dovecot: Dovecot) -> None:
    """A certificate valid for localhost/127.0.0.1 is refused for another server name."""
    with pytest.raises(Pop3TLSError):
        await _implicit(dovecot, server_hostname="pop.example.org").connect()


async def test_listings_top_and_byte_exact_retr(dovecot: Dovecot, pop3_user: Pop3User) -> None:
    """UIDL, LIST, TOP and RETR against Dovecot; RETR of lines that start with '.' and a line
    that is only '.' is byte-exact (CRLF)."""
    second = b"Subject: two\n\nbody\n"
    pop3_user.deliver_many([DOTTY, second])
    async with _implicit(dovecot) as client:
        await client.login(pop3_user.name, pop3_user.password)
        assert await client.stat() == Stat(2, len(_crlf(DOTTY)) + len(_crlf(second)))
        listing = await client.list()
        assert [(e.num, e.size) for e in listing] == [
            (1, len(_crlf(DOTTY))),
            (2, len(_crlf(second))),
        ]
        assert (await client.list_one(2)).size == len(_crlf(second))
        uids = await client.uidl()
        assert [e.num for e in uids] == [1, 2]
        assert len({e.uid for e in uids}) == 2
        assert (await client.uidl_one(2)).uid == uids[1].uid
        assert await client.retr(1) == _crlf(DOTTY)
        assert await client.top(1, 2) == _crlf(DOTTY).split(b"\r\n\r\n")[0] + (
            b"\r\n\r\n.leading dot\r\n.\r\n"
        )
        assert await client.top(2, 0) == b"Subject: two\r\n\r\n"


async def test_dele_quit_commits_dropped_connection_does_not(
    dovecot: Dovecot, pop3_user: Pop3User
) -> None:
    """DELE then a dropped connection deletes nothing; DELE then QUIT deletes."""
    pop3_user.deliver_many([b"Subject: a\n\na\n", b"Subject: b\n\nb\n"])
    client = _implicit(dovecot)
    await client.connect()
    await client.login(pop3_user.name, pop3_user.password)
    await client.dele(1)
    client.abort()
    await asyncio.sleep(0.2)
    assert pop3_user.count() == 2
    async with _implicit(dovecot) as client:
        await client.login(pop3_user.name, pop3_user.password)
        await client.dele(1)
    assert pop3_user.count() == 1
    assert pop3_user.messages() == [b"Subject: b\n\nb\n"]


async def test_pipelined_retr_of_1000_messages(dovecot: Dovecot, pop3_user: Pop3User) -> None:
    """1000 messages come back in order and byte-exact over one pipelined session, and
    dele_many + QUIT empties the mailbox."""
    raws = [b"Subject: m%d\n\n.%d\n" % (i, i) + b"x" * (i % 300) + b"\n" for i in range(1000)]
    pop3_user.deliver_many(raws)
    async with _implicit(dovecot) as client:
        await client.login(pop3_user.name, pop3_user.password)
        assert client.pipelining
        got = [raw async for _, raw in client.retr_many(range(1, 1001), window=32)]
        assert got == [_crlf(r) for r in raws]
        assert await client.dele_many(range(1, 1001)) == [None] * 1000
    assert pop3_user.count() == 0


async def test_in_use_past_the_session_limit(dovecot: Dovecot) -> None:
    """Dovecot allows 10 sessions per user and IP; the 11th login gets Pop3InUseError."""
    user = dovecot.new_user()
    clients = [_implicit(dovecot) for _ in range(11)]
    try:
        for client in clients[:10]:
            await client.connect()
            await client.login(user.name, user.password)
        await clients[10].connect()
        with pytest.raises(Pop3InUseError) as info:
            await clients[10].login(user.name, user.password)
        assert info.value.transient
        assert info.value.code == "IN-USE"
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.quit()
