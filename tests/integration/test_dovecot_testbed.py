"""The Dovecot test bed itself: login, STAT and a byte-exact RETR with the standard library."""

from __future__ import annotations

import poplib
import ssl

import pytest

from tests.dovecot import Dovecot, Pop3User

pytestmark = pytest.mark.dovecot

MESSAGE = (
    b"From: Alice <alice@example.org>\n"
    b"To: bob@example.org\n"
    b"Subject: test bed\n"
    b"\n"
    b"Hello.\n"
    b".leading dot\n"
    b".\n"
    b"Bye.\n"
)


def test_login_stat_and_byte_exact_retr(dovecot: Dovecot, pop3_user: Pop3User) -> None:
    """A seeded message is listed with its CRLF size and retrieved byte for byte."""
    pop3_user.deliver(MESSAGE)
    conn = poplib.POP3(dovecot.host, dovecot.port, timeout=10)
    try:
        conn.user(pop3_user.name)
        conn.pass_(pop3_user.password)
        count, size = conn.stat()
        assert count == 1
        expected = MESSAGE.replace(b"\n", b"\r\n")
        assert size == len(expected)
        _, lines, _ = conn.retr(1)
        assert b"\r\n".join(lines) + b"\r\n" == expected
    finally:
        conn.quit()


def test_implicit_tls_verifies_against_test_ca(dovecot: Dovecot, pop3_user: Pop3User) -> None:
    """The implicit-TLS port presents a certificate that the test CA verifies for localhost."""
    context = ssl.create_default_context(cafile=str(dovecot.ca_file))
    conn = poplib.POP3_SSL("localhost", dovecot.tls_port, context=context, timeout=10)
    try:
        conn.user(pop3_user.name)
        conn.pass_(pop3_user.password)
        assert conn.stat() == (0, 0)
    finally:
        conn.quit()


def test_wrong_password_is_refused(dovecot: Dovecot, pop3_user: Pop3User) -> None:
    """Authentication is real: a wrong password gets -ERR."""
    conn = poplib.POP3(dovecot.host, dovecot.port, timeout=10)
    try:
        conn.user(pop3_user.name)
        with pytest.raises(poplib.error_proto):
            conn.pass_(pop3_user.password + "x")
    finally:
        conn.close()
