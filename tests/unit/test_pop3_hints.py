"""What a failed login or connection tells the user: the server's words and the fix."""

from __future__ import annotations

import ssl

import pytest

from bridge.pop3.hints import auth_refusal_hint, no_greeting_hint, offered_methods, tls_failure_hint
from bridge.pop3.responses import Capabilities, Greeting

DOVECOT_PLAIN = Capabilities.parse(["USER", "SASL PLAIN LOGIN", "STLS", "UIDL", "TOP"])
MAILUTILS = Capabilities.parse(["USER", "STLS", "UIDL", "TOP"])
APOP_GREETING = Greeting.parse("POP3 Ready <1.2@host>")


def test_plaintext_refused_points_to_starttls() -> None:
    """Dovecot's refusal of a plain-text login on a non-secure connection asks for STLS, not
    for another password."""
    hint = auth_refusal_hint(
        "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
        method="user",
        caps=DOVECOT_PLAIN,
        greeting=None,
        tls_active=False,
    )
    assert hint == "the server wants an encrypted connection first: use tls: starttls"


def test_not_implemented_points_to_another_auth_naming_what_is_offered() -> None:
    """mailutils answers AUTH with "Not implemented": the hint names the methods it offers."""
    hint = auth_refusal_hint(
        "Not implemented", method="plain", caps=MAILUTILS, greeting=APOP_GREETING, tls_active=True
    )
    assert (
        hint == "the server does not accept auth: plain here; use another auth (user, apop offered)"
    )


def test_a_proxy_listing_allowed_commands_points_to_another_auth() -> None:
    """perdition-style refusals ("command not allowed, allowed commands: ...")."""
    hint = auth_refusal_hint(
        "Command not allowed. Allowed commands: USER PASS QUIT",
        method="apop",
        caps=MAILUTILS,
        greeting=APOP_GREETING,
        tls_active=True,
    )
    assert "use another auth (user offered)" in hint


@pytest.mark.parametrize(
    ("tls_active", "suffix"), [(True, ""), (False, " (the server offers STLS")]
)
def test_wrong_password_keeps_the_credentials_advice(tls_active: bool, suffix: str) -> None:
    """A plain refusal still says to check the credentials (and that STLS is offered)."""
    hint = auth_refusal_hint(
        "[AUTH] Authentication failed.",
        method="user",
        caps=DOVECOT_PLAIN,
        greeting=None,
        tls_active=tls_active,
    )
    assert hint.startswith("check the username and the password or token" + suffix)


def test_offered_methods_in_config_spelling() -> None:
    assert offered_methods(DOVECOT_PLAIN, APOP_GREETING) == ["user", "apop", "plain", "login"]
    assert offered_methods(Capabilities(), None) == ["user"]  # no CAPA: USER is the RFC 1939 way


def test_tls_failure_hints() -> None:
    """Plain text on a TLS port, and an unknown CA, each get their fix."""
    plain = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    assert "use tls: starttls, or the implicit-TLS port (995)" in tls_failure_hint(plain)
    unknown = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
    assert "set ca_file" in tls_failure_hint(unknown)
    assert tls_failure_hint(ssl.SSLError(1, "something else")) == ""


def test_no_greeting_hint_depends_on_the_mode() -> None:
    assert no_greeting_hint("starttls").endswith("try tls: implicit")
    assert no_greeting_hint("none").endswith("try tls: implicit")
    assert "implicit-TLS port" not in no_greeting_hint("implicit")


def test_connection_failures_name_what_to_check() -> None:
    """Nothing listening, a name that does not resolve, no route: each says what to check
    (before, only the socket's own words, e.g. "Connect call failed")."""
    import errno
    import socket

    from bridge.pop3.hints import connect_failure_hint

    refused = connect_failure_hint(ConnectionRefusedError(errno.ECONNREFUSED, "refused"), 11119)
    assert "port 11119" in refused
    assert "995 for tls: implicit" in refused
    assert "check host" in connect_failure_hint(socket.gaierror(-2, "Name not known"), 110)
    unreachable = OSError(errno.EHOSTUNREACH, "No route to host")
    assert "no route" in connect_failure_hint(unreachable, 110)
    assert connect_failure_hint(OSError(errno.EPERM, "odd"), 110) == ""
