"""Pop3Client against the scriptable fake server: every command, auth flow and fault."""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from pathlib import Path

import pytest
import trustme

from bridge.errors import (
    Pop3AuthError,
    Pop3CommandArgumentError,
    Pop3ConnectionError,
    Pop3InsecureAuthError,
    Pop3InUseError,
    Pop3LineTooLongError,
    Pop3LoginDelayError,
    Pop3MessageTooLargeError,
    Pop3ProtocolError,
    Pop3ResponseError,
    Pop3SysPermError,
    Pop3SysTempError,
    Pop3TimeoutError,
    Pop3TLSError,
)
from bridge.pop3 import ListEntry, Mechanism, Pop3Client, Stat, Timeouts, UidlEntry
from tests.fakes.pop3server import FakePop3Server

MSG = b"Subject: one\r\n\r\n.dot first\r\n.\r\nbody\r\n"
FAST = Timeouts(connect=2, read=2, command=5)


def _client(server: FakePop3Server, **kwargs: object) -> Pop3Client:
    options: dict[str, object] = {"tls": "none", "timeouts": FAST, "mailbox": "test-box"}
    options.update(kwargs)
    return Pop3Client(server.host, server.port, **options)  # type: ignore[arg-type]


async def _logged_in(server: FakePop3Server, **kwargs: object) -> Pop3Client:
    client = _client(server, **kwargs)
    await client.connect()
    await client.login(server.user, server.password, method="user", allow_insecure=True)
    return client


def _messages(n: int) -> list[bytes]:
    return [b"Subject: m%d\r\n\r\n..%d\r\n" % (i, i) + b"x" * (i % 50) + b"\r\n" for i in range(n)]


# ---------------------------------------------------------------------------- session


async def test_connect_reads_greeting_and_capabilities(fake_pop3: FakePop3Server) -> None:
    """connect() parses the APOP timestamp and the CAPA answer into typed fields."""
    client = _client(fake_pop3)
    greeting = await client.connect()
    try:
        assert greeting.apop_timestamp is not None
        assert greeting.apop_timestamp.endswith("@popbridge.fake>")
        caps = client.capabilities
        assert caps.known
        assert caps.user
        assert caps.pipelining
        assert caps.uidl
        assert caps.sasl == ("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER")
        assert caps.expire == "NEVER"
        assert caps.implementation == "popbridge-fake"
        assert not client.pipelining  # not before login
    finally:
        await client.quit()


async def test_credentials_refused_over_plain_text(fake_pop3: FakePop3Server) -> None:
    """Without TLS and without allow_insecure, login raises Pop3InsecureAuthError before
    anything about the credentials is sent."""
    client = _client(fake_pop3)
    await client.connect()
    for method in ("auto", "user", "apop", "plain", "xoauth2"):
        with pytest.raises(Pop3InsecureAuthError):
            await client.login("alice", "secret", token="t", method=method)
    await client.quit()
    assert fake_pop3.verbs == ["CAPA", "QUIT"]


async def test_user_pass_then_every_read_command(fake_pop3: FakePop3Server) -> None:
    """After USER/PASS (CAPA asked again), STAT, LIST, UIDL, their one-message forms, RETR and
    TOP return typed, byte-exact results."""
    fake_pop3.add(MSG, uid="uid-a")
    two = b"Subject: two\r\n\r\nl1\r\nl2\r\n"
    fake_pop3.add(two, uid="uid-b")
    client = await _logged_in(fake_pop3)
    try:
        assert fake_pop3.verbs[:4] == ["CAPA", "USER", "PASS", "CAPA"]
        assert client.authenticated
        assert client.pipelining
        assert not client.capabilities.user  # the after-login CAPA replaced the first
        assert await client.stat() == Stat(2, len(MSG) + len(two))
        assert await client.list() == [ListEntry(1, len(MSG)), ListEntry(2, len(two))]
        assert await client.list_one(2) == ListEntry(2, len(two))
        assert await client.uidl() == [UidlEntry(1, "uid-a"), UidlEntry(2, "uid-b")]
        assert await client.uidl_one(1) == UidlEntry(1, "uid-a")
        assert await client.retr(1) == MSG
        assert await client.top(2, 1) == b"Subject: two\r\n\r\nl1\r\n"
        assert await client.top(2, 0) == b"Subject: two\r\n\r\n"
        assert (await client.noop()).ok
        with pytest.raises(Pop3ResponseError) as info:
            await client.retr(9)
        assert info.value.command == "RETR"
        assert info.value.mailbox == "test-box"
        assert await client.stat() == Stat(
            2, len(MSG) + len(two)
        )  # an -ERR leaves the session usable
    finally:
        await client.quit()


async def test_auto_login_prefers_apop_on_plain_text(fake_pop3: FakePop3Server) -> None:
    """auto on an unencrypted (explicitly allowed) connection picks APOP: the password does not
    cross the wire."""
    client = _client(fake_pop3)
    await client.connect()
    used = await client.login("alice", "secret", allow_insecure=True)
    await client.quit()
    assert used is Mechanism.APOP
    assert not any("secret" in line for line in fake_pop3.commands)


@pytest.mark.parametrize(
    ("method", "initial", "expected_lines"),
    [
        ("plain", None, 1),
        ("plain", False, 2),
        ("login", None, 3),
        ("xoauth2", None, 1),
        ("xoauth2", False, 2),
        ("oauthbearer", None, 1),
    ],
)
async def test_sasl_mechanisms(
    fake_pop3: FakePop3Server, method: str, initial: bool | None, expected_lines: int
) -> None:
    """SASL PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER log in, in the initial-response form and the
    two-step form (AUTH line, '+' challenge, then the response)."""
    client = _client(fake_pop3)
    await client.connect()
    secret = fake_pop3.token if "oauth" in method else fake_pop3.password
    kwargs = {"token": secret} if "oauth" in method else {"password": secret}
    await client.auth(method, "alice", initial_response=initial, allow_insecure=True, **kwargs)  # type: ignore[arg-type]
    assert client.authenticated
    await client.quit()
    auth_at = fake_pop3.verbs.index("AUTH")
    sent = fake_pop3.commands[auth_at : auth_at + expected_lines]
    assert sent[0].upper().startswith(f"AUTH {method.upper()}")
    assert fake_pop3.verbs[auth_at + expected_lines] == "CAPA"


async def test_xoauth2_failure_acknowledges_the_error_challenge(fake_pop3: FakePop3Server) -> None:
    """A refused XOAUTH2 token: the server's error challenge is answered with an empty line and
    Pop3AuthError is raised without the token in it."""
    client = _client(fake_pop3)
    await client.connect()
    with pytest.raises(Pop3AuthError) as info:
        await client.login("alice", token="wrong-token-123", method="xoauth2", allow_insecure=True)
    assert "wrong-token-123" not in str(info.value)
    assert fake_pop3.commands[-1] == ""
    assert not client.authenticated
    await client.quit()


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("-ERR [IN-USE] locked by another session", Pop3InUseError),
        ("-ERR [LOGIN-DELAY] too soon", Pop3LoginDelayError),
        ("-ERR [SYS/TEMP] try later", Pop3SysTempError),
        ("-ERR [SYS/PERM] mailbox broken", Pop3SysPermError),
        ("-ERR [AUTH] bad password", Pop3AuthError),
        ("-ERR no", Pop3AuthError),
    ],
)
async def test_login_refusals_become_typed_errors(
    fake_pop3: FakePop3Server, line: str, error: type[Pop3ResponseError]
) -> None:
    """RFC 2449 response codes on a refused login map to the typed errors (transient where it
    makes sense), and the password never shows in the error."""
    fake_pop3.refuse_login(line)
    client = _client(fake_pop3)
    await client.connect()
    with pytest.raises(error) as info:
        await client.login("alice", "secret", method="user", allow_insecure=True)
    assert type(info.value) is error
    assert "secret" not in str(info.value)
    assert info.value.command == "PASS"
    await client.quit()


async def test_in_use_from_a_real_lock(fake_pop3: FakePop3Server) -> None:
    """A second session on a locked maildrop gets Pop3InUseError, which is transient."""
    first = await _logged_in(fake_pop3)
    second = _client(fake_pop3)
    await second.connect()
    with pytest.raises(Pop3InUseError) as info:
        await second.login("alice", "secret", method="user", allow_insecure=True)
    assert info.value.transient
    await second.quit()
    await first.quit()


async def test_login_delay_carries_the_capa_delay(fake_pop3: FakePop3Server) -> None:
    """[LOGIN-DELAY] takes its delay from CAPA's LOGIN-DELAY when announced."""
    fake_pop3.refuse_login("-ERR [LOGIN-DELAY] wait")
    client = _client(fake_pop3)
    await client.connect()
    client.capabilities = type(client.capabilities).parse(["USER", "LOGIN-DELAY 900"])
    with pytest.raises(Pop3LoginDelayError) as info:
        await client.login("alice", "secret", method="user", allow_insecure=True)
    assert info.value.delay == 900
    await client.quit()


async def test_greeting_error(fake_pop3: FakePop3Server) -> None:
    """A -ERR greeting with [SYS/TEMP] raises Pop3SysTempError from connect and closes."""
    fake_pop3.reply_on("GREETING", "-ERR [SYS/TEMP] too many connections")
    client = _client(fake_pop3)
    with pytest.raises(Pop3SysTempError):
        await client.connect()
    assert not client.connected


async def test_no_capa_server_falls_back_to_user(fake_pop3: FakePop3Server) -> None:
    """An RFC 1939-only server (CAPA -ERR) gives capabilities with known=False; auto login uses
    USER/PASS over TLS-less allowed connections without APOP, and RETR is lock-step."""
    fake_pop3.capa = False
    fake_pop3.apop = False
    fake_pop3.add(MSG)
    client = _client(fake_pop3)
    await client.connect()
    assert not client.capabilities.known
    assert await client.login("alice", "secret", allow_insecure=True) is Mechanism.USER
    assert not client.pipelining
    assert [item async for item in client.retr_many([1])] == [(1, MSG)]
    await client.quit()


async def test_no_uidl_mode(fake_pop3: FakePop3Server) -> None:
    """Without UIDL the capability is absent and uidl() raises Pop3ResponseError."""
    fake_pop3.uidl = False
    fake_pop3.add(MSG)
    client = await _logged_in(fake_pop3)
    assert not client.capabilities.uidl
    with pytest.raises(Pop3ResponseError):
        await client.uidl()
    await client.quit()


async def test_arguments_with_line_breaks_are_refused(fake_pop3: FakePop3Server) -> None:
    """A CR/LF/NUL in an argument raises Pop3CommandArgumentError and sends nothing."""
    client = _client(fake_pop3)
    await client.connect()
    with pytest.raises(Pop3CommandArgumentError):
        await client.user("alice\r\nDELE 1", allow_insecure=True)
    with pytest.raises(Pop3CommandArgumentError):
        await client.login("alice", "pw\0x", method="plain", allow_insecure=True)
    await client.quit()
    assert fake_pop3.verbs == ["CAPA", "QUIT"]


async def test_no_secret_in_debug_logs(
    fake_pop3: FakePop3Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Debug logging names command verbs only: no password, token or SASL payload."""
    caplog.set_level(logging.DEBUG, logger="bridge.pop3")
    client = _client(fake_pop3)
    await client.connect()
    await client.login("alice", "secret", method="plain", allow_insecure=True)
    await client.quit()
    payload = base64.b64encode(b"\0alice\0secret").decode()
    assert "AUTH" in caplog.text
    assert "secret" not in caplog.text
    assert payload not in caplog.text


# ---------------------------------------------------------------------------- deletion


async def test_dele_quit_commits_and_abort_does_not(fake_pop3: FakePop3Server) -> None:
    """DELE then abort (no QUIT) deletes nothing; DELE then QUIT deletes; RSET unmarks."""
    fake_pop3.add(MSG, uid="a")
    fake_pop3.add(MSG, uid="b")
    client = await _logged_in(fake_pop3)
    await client.dele(1)
    client.abort()
    await asyncio.sleep(0.05)
    assert fake_pop3.committed == []
    client = await _logged_in(fake_pop3)
    await client.dele(1)
    await client.rset()
    await client.dele(2)
    await client.quit()
    assert fake_pop3.committed == ["b"]


async def test_context_manager_commits_only_on_success(fake_pop3: FakePop3Server) -> None:
    """Leaving the context normally sends QUIT; leaving it with an exception does not."""
    fake_pop3.add(MSG, uid="a")

    async def dele_then_fail() -> None:
        async with _client(fake_pop3) as client:
            await client.login("alice", "secret", method="user", allow_insecure=True)
            await client.dele(1)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await dele_then_fail()
    await asyncio.sleep(0.05)
    assert fake_pop3.committed == []
    async with _client(fake_pop3) as client:
        await client.login("alice", "secret", method="user", allow_insecure=True)
        await client.dele(1)
    assert fake_pop3.committed == ["a"]


async def test_dele_and_quit_errors(fake_pop3: FakePop3Server) -> None:
    """-ERR [SYS/TEMP] to DELE is a typed error and the session goes on; -ERR to QUIT raises and
    nothing is committed."""
    fake_pop3.add(MSG)
    fake_pop3.reply_on("DELE", "-ERR [SYS/TEMP] cannot")
    fake_pop3.reply_on("QUIT", "-ERR [SYS/PERM] cannot commit")
    client = await _logged_in(fake_pop3)
    with pytest.raises(Pop3SysTempError):
        await client.dele(1)
    await client.dele(1)
    with pytest.raises(Pop3SysPermError):
        await client.quit()
    assert not client.connected
    assert fake_pop3.committed == []


async def test_dele_many_pipelined(fake_pop3: FakePop3Server) -> None:
    """dele_many marks many messages in pipelined batches; QUIT commits all of them."""
    for raw in _messages(150):
        fake_pop3.add(raw)
    client = await _logged_in(fake_pop3)
    assert await client.dele_many(range(1, 151), window=64) == [None] * 150
    await client.quit()
    assert len(fake_pop3.committed) == 150


# ---------------------------------------------------------------------------- pipelining


async def test_retr_many_pipelined_in_order(fake_pop3: FakePop3Server) -> None:
    """retr_many yields every message, in order and byte-exact, with DELE interleaved."""
    raws = _messages(200)
    for raw in raws:
        fake_pop3.add(raw)
    client = await _logged_in(fake_pop3)
    got = []
    async for num, raw in client.retr_many(range(1, 201), window=16):
        got.append(raw)
        await client.dele(num)
    await client.quit()
    assert got == raws
    assert len(fake_pop3.committed) == 200


async def test_retr_many_stopped_early_keeps_the_session(fake_pop3: FakePop3Server) -> None:
    """Breaking out of retr_many leaves replies outstanding; the next commands still get their
    own replies (the leftovers are read and dropped) and QUIT commits."""
    for raw in _messages(40):
        fake_pop3.add(raw, uid=None)
    client = await _logged_in(fake_pop3)
    stream = client.retr_many(range(1, 41), window=16)
    async for num, _raw in stream:
        await client.dele(num)
        if num == 3:
            break
    await stream.aclose()
    assert await client.stat() == Stat(37, sum(len(m) for m in _messages(40)[3:]))
    assert await client.retr(4) == _messages(40)[3]
    await client.quit()
    assert len(fake_pop3.committed) == 3


async def test_retr_many_failure_closes_the_connection(fake_pop3: FakePop3Server) -> None:
    """A drop in the middle of the third RETR answer: the two good messages arrive, then the
    error reaches the consumer, the connection is closed, nothing is committed."""
    for raw in _messages(30):
        fake_pop3.add(raw)
    fake_pop3.drop_mid_response_on("RETR", nth=3)
    client = await _logged_in(fake_pop3)
    seen = []

    async def consume() -> None:
        async for num, _raw in client.retr_many(range(1, 31), window=8):
            seen.append(num)

    with pytest.raises(Pop3ConnectionError):
        await consume()
    assert seen == [1, 2]
    assert not client.connected
    with pytest.raises(Pop3ConnectionError):
        await client.noop()
    assert fake_pop3.committed == []


async def test_retr_many_err_mid_pipeline_raises_and_keeps_the_session(
    fake_pop3: FakePop3Server,
) -> None:
    """-ERR to one pipelined RETR raises from retr_many; a -ERR is a complete reply, so the
    outstanding replies are read and dropped and the session goes on."""
    raws = _messages(10)
    for raw in raws:
        fake_pop3.add(raw)
    fake_pop3.reply_on("RETR", "-ERR [SYS/TEMP] read failed", nth=2)
    client = await _logged_in(fake_pop3)
    with pytest.raises(Pop3SysTempError):
        async for _ in client.retr_many(range(1, 11), window=4):
            pass
    assert client.connected
    assert await client.retr(5) == raws[4]
    await client.quit()


async def test_retr_each_skips_a_refused_message(fake_pop3: FakePop3Server) -> None:
    """retr_each yields a -ERR (a message gone since LIST) as an error and goes on with the rest,
    pipelined and in lock-step alike."""
    for pipelining in (True, False):
        fake_pop3.pipelining = pipelining
        fake_pop3.messages.clear()
        raws = _messages(6)
        for raw in raws:
            fake_pop3.add(raw)
        fake_pop3.reply_on("RETR", "-ERR Can't open the message file - it's gone!", nth=3)
        client = await _logged_in(fake_pop3)
        items = [item async for item in client.retr_each(range(1, 7), window=4)]
        assert [n for n, _ in items] == [1, 2, 3, 4, 5, 6]
        assert isinstance(items[2][1], Pop3ResponseError)
        assert [d for _, d in items if isinstance(d, bytes)] == raws[:2] + raws[3:]
        await client.quit()


async def test_retr_many_lockstep_without_pipelining(fake_pop3: FakePop3Server) -> None:
    """A server without PIPELINING gets one RETR at a time, and the results are the same."""
    fake_pop3.pipelining = False
    raws = _messages(20)
    for raw in raws:
        fake_pop3.add(raw)
    client = await _logged_in(fake_pop3)
    assert not client.pipelining
    assert [raw async for _, raw in client.retr_many(range(1, 21))] == raws
    await client.quit()


# ---------------------------------------------------------------------------- faults


async def test_drop_before_answer(fake_pop3: FakePop3Server) -> None:
    """The server closing instead of answering gives Pop3ConnectionError (transient)."""
    fake_pop3.add(MSG)
    fake_pop3.drop_on("RETR")
    client = await _logged_in(fake_pop3)
    with pytest.raises(Pop3ConnectionError) as info:
        await client.retr(1)
    assert info.value.transient
    assert not client.connected


async def test_drop_mid_multiline(fake_pop3: FakePop3Server) -> None:
    """A drop in the middle of a multi-line answer gives Pop3ConnectionError."""
    fake_pop3.add(MSG * 100)
    fake_pop3.drop_mid_response_on("RETR")
    client = await _logged_in(fake_pop3)
    with pytest.raises(Pop3ConnectionError):
        await client.retr(1)


async def test_garbage_answer(fake_pop3: FakePop3Server) -> None:
    """A line that is not POP3 gives Pop3ProtocolError and closes the connection."""
    fake_pop3.garbage_on("STAT")
    client = await _logged_in(fake_pop3)
    with pytest.raises(Pop3ProtocolError) as info:
        await client.stat()
    assert info.value.command == "STAT"
    assert not client.connected


async def test_slow_answer_times_out_and_is_never_misread(fake_pop3: FakePop3Server) -> None:
    """A reply later than the read timeout raises Pop3TimeoutError and closes the connection,
    so the late reply cannot be taken as the next command's."""
    fake_pop3.delay_on("NOOP", 0.5)
    client = await _logged_in(fake_pop3, timeouts=Timeouts(connect=2, read=0.1, command=5))
    with pytest.raises(Pop3TimeoutError):
        await client.noop()
    assert not client.connected
    with pytest.raises(Pop3ConnectionError):
        await client.stat()


async def test_command_timeout_bounds_a_trickle(fake_pop3: FakePop3Server) -> None:
    """Timeouts.command bounds the whole command even when reads alone would wait longer."""
    fake_pop3.delay_on("STAT", 1.0)
    client = await _logged_in(fake_pop3, timeouts=Timeouts(connect=2, read=5, command=0.2))
    with pytest.raises(Pop3TimeoutError):
        await client.stat()
    assert not client.connected


async def test_session_deadline(fake_pop3: FakePop3Server) -> None:
    """Timeouts.session ends a session that runs too long."""
    fake_pop3.delay_on("NOOP", 1.0)
    client = await _logged_in(fake_pop3, timeouts=Timeouts(connect=2, read=5, session=0.3))
    with pytest.raises(Pop3TimeoutError):
        await client.noop()


async def test_missing_terminator_times_out(fake_pop3: FakePop3Server) -> None:
    """A body without its '.' line gives Pop3TimeoutError, not a hang."""
    fake_pop3.add(MSG)
    fake_pop3.no_terminator_on("RETR")
    client = await _logged_in(fake_pop3, timeouts=Timeouts(connect=2, read=0.2, command=5))
    with pytest.raises(Pop3TimeoutError):
        await client.retr(1)


async def test_endless_status_line(fake_pop3: FakePop3Server) -> None:
    """An endless status line gives Pop3LineTooLongError, with memory bounded."""
    fake_pop3.endless_line_on("STAT")
    client = await _logged_in(fake_pop3, max_line_length=4096)
    with pytest.raises(Pop3LineTooLongError):
        await client.stat()
    assert not client.connected


async def test_message_too_large(fake_pop3: FakePop3Server) -> None:
    """RETR past max_bytes raises Pop3MessageTooLargeError (permanent); the body was read and
    dropped, so the session goes on."""
    fake_pop3.add(b"x" * 5000 + b"\r\n")
    fake_pop3.add(MSG)
    client = await _logged_in(fake_pop3)
    with pytest.raises(Pop3MessageTooLargeError) as info:
        await client.retr(1, max_bytes=1000)
    assert not info.value.transient
    assert info.value.connection_kept
    assert client.connected
    assert await client.retr(2) == MSG
    await client.quit()


async def test_bare_lf_server_gives_crlf(fake_pop3: FakePop3Server) -> None:
    """A server sending bare LF bodies still yields CRLF messages."""
    fake_pop3.line_end = b"\n"
    fake_pop3.add(MSG)
    client = await _logged_in(fake_pop3)
    assert await client.retr(1) == MSG
    await client.quit()


# ---------------------------------------------------------------------------- TLS


@pytest.fixture
def tls_pair(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 from a throwaway CA, and the CA file for the client."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server_ctx, ca_file


async def test_stls_required_but_not_offered(fake_pop3: FakePop3Server) -> None:
    """tls=starttls against a server without STLS fails with Pop3TLSError: no downgrade."""
    client = _client(fake_pop3, tls="starttls")
    with pytest.raises(Pop3TLSError):
        await client.connect()
    assert not client.connected
    assert "STLS" not in fake_pop3.verbs


async def test_stls_upgrade_discards_injected_plaintext(
    fake_pop3: FakePop3Server, tls_pair: tuple[ssl.SSLContext, Path]
) -> None:
    """STLS upgrades with verification, CAPA is asked again over TLS, plaintext the server
    injected after its +OK is discarded, and login then works without allow_insecure."""
    fake_pop3.stls_context = tls_pair[0]
    fake_pop3.reply_on("STLS", b"+OK begin TLS\r\n-ERR injected\r\n")
    fake_pop3.add(MSG)
    client = _client(fake_pop3, tls="starttls", ca_file=tls_pair[1], server_hostname="127.0.0.1")
    await client.connect()
    assert client.tls_active
    assert not client.capabilities.stls
    assert fake_pop3.verbs == ["CAPA", "STLS", "CAPA"]
    await client.login("alice", "secret")
    assert await client.retr(1) == MSG
    await client.quit()


async def test_stls_with_wrong_ca(
    fake_pop3: FakePop3Server, tls_pair: tuple[ssl.SSLContext, Path], tmp_path: Path
) -> None:
    """A certificate from an unknown CA fails verification: Pop3TLSError, connection closed."""
    fake_pop3.stls_context = tls_pair[0]
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    client = _client(fake_pop3, tls="starttls", ca_file=other)
    with pytest.raises(Pop3TLSError):
        await client.connect()
    assert not client.connected


@pytest.mark.parametrize("pipelining", [True, False])
async def test_dele_many_reports_each_err_and_goes_on(
    fake_pop3: FakePop3Server, pipelining: bool
) -> None:
    """-ERR to one of several DELEs (pipelined or not) is that message's typed error; the
    others are marked, the session stays usable and QUIT commits exactly those."""
    for raw in _messages(10):
        fake_pop3.add(raw)
    fake_pop3.pipelining = pipelining
    fake_pop3.reply_on("DELE", "-ERR [SYS/TEMP] cannot", nth=3)
    client = await _logged_in(fake_pop3)
    results = await client.dele_many(range(1, 11), window=4)
    assert isinstance(results[2], Pop3SysTempError)
    assert results[:2] + results[3:] == [None] * 9
    assert client.connected
    await client.quit()
    assert len(fake_pop3.committed) == 9


async def test_stls_refused_by_the_server(
    fake_pop3: FakePop3Server, tls_pair: tuple[ssl.SSLContext, Path]
) -> None:
    """A server that offers STLS but answers -ERR to it gives Pop3TLSError and a closed
    connection, never a plain-text session."""
    fake_pop3.stls_context = tls_pair[0]
    fake_pop3.reply_on("STLS", "-ERR not now")
    client = _client(fake_pop3, tls="starttls", ca_file=tls_pair[1])
    with pytest.raises(Pop3TLSError):
        await client.connect()
    assert not client.connected


async def test_connection_refused() -> None:
    """Nobody listening gives Pop3ConnectionError (transient) naming host and port."""
    server = FakePop3Server()
    await server.start()
    port = server.port
    await server.stop()
    client = Pop3Client("127.0.0.1", port, tls="none", timeouts=FAST)
    with pytest.raises(Pop3ConnectionError) as info:
        await client.connect()
    assert info.value.transient
    assert f"127.0.0.1:{port}" in str(info.value)


async def test_implicit_tls_to_a_plain_server(fake_pop3: FakePop3Server) -> None:
    """Implicit TLS against a server that speaks plain POP3 fails with Pop3TLSError."""
    client = _client(fake_pop3, tls="implicit")
    with pytest.raises(Pop3TLSError):
        await client.connect()
