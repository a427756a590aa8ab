"""The fake POP3 server, checked with the standard library's poplib before other tests trust it.

poplib is blocking, so each conversation runs in a thread (``asyncio.to_thread``) while the
server runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import poplib
import socket

import pytest

from tests.fakes.pop3server import FakePop3Server, stuff

DOTTED = b"Subject: dots\r\n\r\n.starts with a dot\r\n.\r\n..two\r\nend\r\n"
PLAIN = b"From: a@example.org\r\nSubject: plain\r\n\r\nline one\r\nline two\r\nline three\r\n"


def _login(server: FakePop3Server, timeout: float = 5.0) -> poplib.POP3:
    pop = poplib.POP3(server.host, server.port, timeout=timeout)
    try:
        pop.user(server.user)
        pop.pass_(server.password)
    except BaseException:
        pop.close()
        raise
    return pop


async def test_stuff_makes_the_wire_form() -> None:
    """stuff() dot-stuffs lines starting with '.', normalises to CRLF and appends the '.' line."""
    assert stuff(b".a\n..b\nc") == b"..a\r\n...b\r\nc\r\n.\r\n"
    assert stuff(b"") == b".\r\n"


async def test_poplib_reads_messages_byte_exact(fake_pop3: FakePop3Server) -> None:
    """USER/PASS, STAT, LIST, UIDL and RETR work for poplib, and RETR is byte-exact after
    poplib's own unstuffing (dot lines included)."""
    fake_pop3.add(DOTTED, uid="u-1")
    fake_pop3.add(PLAIN, uid="u-2")

    def talk() -> tuple[tuple[int, int], list[bytes], list[bytes], list[bytes]]:
        pop = _login(fake_pop3)
        try:
            stat = pop.stat()
            listing = pop.list()[1]
            uidl = pop.uidl()[1]
            lines = pop.retr(1)[1]
            return stat, listing, uidl, lines
        finally:
            pop.quit()

    stat, listing, uidl, lines = await asyncio.to_thread(talk)
    assert stat == (2, len(DOTTED) + len(PLAIN))
    assert listing == [b"1 %d" % len(DOTTED), b"2 %d" % len(PLAIN)]
    assert uidl == [b"1 u-1", b"2 u-2"]
    assert b"\r\n".join(lines) + b"\r\n" == DOTTED


async def test_poplib_apop_capa_and_top(fake_pop3: FakePop3Server) -> None:
    """APOP with the greeting's timestamp logs in; CAPA lists the capabilities; TOP n 1 gives the
    header, the blank line and one body line."""
    fake_pop3.add(PLAIN)

    def talk() -> tuple[bytes, dict[str, list[str]], list[bytes]]:
        pop = poplib.POP3(fake_pop3.host, fake_pop3.port, timeout=5)
        try:
            welcome = pop.getwelcome()
            caps_before = pop.capa()
            pop.apop(fake_pop3.user, fake_pop3.password)
            return welcome, caps_before, pop.top(1, 1)[1]
        finally:
            pop.quit()

    welcome, caps, top = await asyncio.to_thread(talk)
    assert welcome.split()[-1].startswith(b"<")
    assert welcome.endswith(b"@popbridge.fake>")
    assert {"TOP", "UIDL", "USER", "PIPELINING", "RESP-CODES", "SASL"} <= set(caps)
    assert caps["SASL"] == ["PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"]
    assert top == [b"From: a@example.org", b"Subject: plain", b"", b"line one"]
    apop_line = next(c for c in fake_pop3.commands if c.startswith("APOP"))
    timestamp = welcome.decode().split()[-1]
    digest = hashlib.md5((timestamp + fake_pop3.password).encode()).hexdigest()
    assert apop_line == f"APOP alice {digest}"


async def test_dele_commits_only_on_quit(fake_pop3: FakePop3Server) -> None:
    """DELE + QUIT removes the message; DELE + a dropped connection removes nothing."""
    first = fake_pop3.add(PLAIN, uid="keep-or-go")

    def dele_and_drop() -> None:
        pop = _login(fake_pop3)
        pop.dele(1)
        pop.sock.close()

    def dele_and_quit() -> None:
        pop = _login(fake_pop3)
        pop.dele(1)
        pop.quit()

    await asyncio.to_thread(dele_and_drop)
    await asyncio.sleep(0.05)
    assert fake_pop3.messages == [first]
    assert fake_pop3.committed == []
    await asyncio.to_thread(dele_and_quit)
    assert fake_pop3.messages == []
    assert fake_pop3.committed == ["keep-or-go"]
    assert fake_pop3.sessions == 2


async def test_second_session_gets_in_use(fake_pop3: FakePop3Server) -> None:
    """While one session holds the maildrop, another login gets -ERR [IN-USE]."""

    def talk() -> str:
        first = _login(fake_pop3)
        try:
            with pytest.raises(poplib.error_proto) as info:
                _login(fake_pop3)
            return str(info.value)
        finally:
            first.quit()

    assert "[IN-USE]" in await asyncio.to_thread(talk)
    await asyncio.to_thread(lambda: _login(fake_pop3).quit())  # the lock is released


async def test_commands_are_recorded_with_arguments(fake_pop3: FakePop3Server) -> None:
    """Every line received is recorded, PASS argument included, and repr() shows none of it."""
    await asyncio.to_thread(lambda: _login(fake_pop3).quit())
    assert fake_pop3.commands == ["USER alice", "PASS secret", "QUIT"]
    assert fake_pop3.verbs == ["USER", "PASS", "QUIT"]
    assert "secret" not in repr(fake_pop3)


async def test_refuse_login_with_response_code(fake_pop3: FakePop3Server) -> None:
    """refuse_login answers PASS with the given line, RFC 2449 code included."""
    fake_pop3.refuse_login("-ERR [LOGIN-DELAY] wait a bit")
    with pytest.raises(poplib.error_proto, match=r"\[LOGIN-DELAY\]"):
        await asyncio.to_thread(_login, fake_pop3)
    assert not fake_pop3.locked


async def test_no_uidl_mode(fake_pop3: FakePop3Server) -> None:
    """With uidl=False, CAPA leaves UIDL out and UIDL answers -ERR."""
    fake_pop3.uidl = False
    fake_pop3.add(PLAIN)

    def talk() -> dict[str, list[str]]:
        pop = _login(fake_pop3)
        try:
            with pytest.raises(poplib.error_proto):
                pop.uidl()
            return pop.capa()
        finally:
            pop.quit()

    assert "UIDL" not in await asyncio.to_thread(talk)


async def test_dele_and_quit_errors(fake_pop3: FakePop3Server) -> None:
    """reply_on gives -ERR to DELE and QUIT; an -ERR QUIT commits nothing."""
    fake_pop3.add(PLAIN)
    fake_pop3.reply_on("DELE", "-ERR [SYS/TEMP] cannot mark")
    fake_pop3.reply_on("QUIT", "-ERR [SYS/PERM] cannot commit")

    def talk() -> None:
        pop = _login(fake_pop3)
        with pytest.raises(poplib.error_proto, match="SYS/TEMP"):
            pop.dele(1)
        pop.dele(1)
        with pytest.raises(poplib.error_proto, match="SYS/PERM"):
            pop.quit()
        pop.close()

    await asyncio.to_thread(talk)
    assert len(fake_pop3.messages) == 1
    assert fake_pop3.committed == []


async def test_drop_on_command(fake_pop3: FakePop3Server) -> None:
    """drop_on closes the connection without answering the command."""
    fake_pop3.add(PLAIN)
    fake_pop3.drop_on("RETR")
    pop = await asyncio.to_thread(_login, fake_pop3)
    try:
        with pytest.raises(poplib.error_proto, match="EOF"):
            await asyncio.to_thread(pop.retr, 1)
    finally:
        pop.close()


async def test_drop_after_reply(fake_pop3: FakePop3Server) -> None:
    """drop_on(after_reply=True) answers the command, then closes."""
    fake_pop3.drop_on("NOOP", after_reply=True)
    pop = await asyncio.to_thread(_login, fake_pop3)
    try:
        assert (await asyncio.to_thread(pop.noop)).startswith(b"+OK")
        with pytest.raises(poplib.error_proto, match="EOF"):
            await asyncio.to_thread(pop.stat)
    finally:
        pop.close()


async def test_drop_in_the_middle_of_a_multiline_answer(fake_pop3: FakePop3Server) -> None:
    """drop_mid_response_on sends part of the RETR answer and closes."""
    fake_pop3.add(PLAIN * 50)
    fake_pop3.drop_mid_response_on("RETR")
    pop = await asyncio.to_thread(_login, fake_pop3)
    try:
        with pytest.raises(poplib.error_proto, match="EOF"):
            await asyncio.to_thread(pop.retr, 1)
    finally:
        pop.close()


async def test_garbage_answer(fake_pop3: FakePop3Server) -> None:
    """garbage_on answers with a line that is not POP3; poplib rejects it."""
    fake_pop3.garbage_on("STAT")
    pop = await asyncio.to_thread(_login, fake_pop3)
    try:
        with pytest.raises(poplib.error_proto, match="HTTP"):
            await asyncio.to_thread(pop.stat)
    finally:
        pop.close()


async def test_slow_answer(fake_pop3: FakePop3Server) -> None:
    """delay_on holds the answer back; a client with a short timeout times out."""
    fake_pop3.delay_on("NOOP", 1.0)
    pop = await asyncio.to_thread(_login, fake_pop3, 0.2)
    try:
        with pytest.raises(socket.timeout):
            await asyncio.to_thread(pop.noop)
    finally:
        pop.close()


async def test_missing_terminator(fake_pop3: FakePop3Server) -> None:
    """no_terminator_on sends the whole body but no '.' line, then stays silent."""
    fake_pop3.add(PLAIN)
    fake_pop3.no_terminator_on("RETR")
    pop = await asyncio.to_thread(_login, fake_pop3, 0.3)
    try:
        with pytest.raises(socket.timeout):
            await asyncio.to_thread(pop.retr, 1)
    finally:
        pop.close()


async def test_endless_line(fake_pop3: FakePop3Server) -> None:
    """endless_line_on streams a line without an end; poplib stops at its line limit."""
    fake_pop3.endless_line_on("STAT")
    pop = await asyncio.to_thread(_login, fake_pop3)
    try:
        with pytest.raises(poplib.error_proto, match="line too long"):
            await asyncio.to_thread(pop.stat)
    finally:
        pop.close()


async def test_bare_lf_bodies(fake_pop3: FakePop3Server) -> None:
    """With line_end=b"\\n" multi-line bodies use bare LF, like a sloppy server."""
    fake_pop3.line_end = b"\n"
    fake_pop3.add(DOTTED)

    def talk() -> list[bytes]:
        pop = _login(fake_pop3)
        try:
            return pop.retr(1)[1]
        finally:
            pop.quit()

    assert b"\r\n".join(await asyncio.to_thread(talk)) + b"\r\n" == DOTTED
