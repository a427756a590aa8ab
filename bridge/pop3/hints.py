"""What to tell the user when a connection or a login fails: the fix, where it is clear.

Pure functions (no I/O). A refused login used to say "check the username and the password"
whatever the server answered; real servers refuse for other reasons too: the method is not
implemented (GNU mailutils answers ``-ERR Not implemented`` to ``AUTH``), plain-text logins
are only allowed after ``STLS`` (Dovecot: "Plaintext authentication disallowed on non-secure
connections"), or a proxy only allows some commands. Each hint names the config key to change
(``auth``, ``tls``, ``ca_file``).
"""

from __future__ import annotations

import errno
import socket
import ssl

from bridge.pop3.responses import Capabilities, Greeting

__all__ = [
    "auth_refusal_hint",
    "connect_failure_hint",
    "no_greeting_hint",
    "offered_methods",
    "tls_failure_hint",
]

_NOT_SUPPORTED = (
    "not implemented",
    "not supported",
    "unsupported",
    "unknown command",
    "unrecognized",
    "unrecognised",
    "invalid command",
    "bad command",
    "not allowed",
    "allowed commands",
    "unknown authentication",
    "mechanism",
)
_NEEDS_TLS = (
    "plaintext",
    "cleartext",
    "plain text",
    "non-secure",
    "insecure",
    "unencrypted",
    "tls required",
    "ssl required",
    "encryption required",
    "starttls",
    "stls",
    "privacy required",
)


def offered_methods(caps: Capabilities, greeting: Greeting | None) -> list[str]:
    """The ``auth`` values this server offers, as the config spells them."""
    methods: list[str] = []
    if caps.user or not caps.known:
        methods.append("user")
    if greeting is not None and greeting.apop_timestamp is not None:
        methods.append("apop")
    for mech in caps.sasl:
        if mech.lower() in ("plain", "login", "xoauth2", "oauthbearer"):
            methods.append(mech.lower())
    return methods


def auth_refusal_hint(
    text: str,
    *,
    method: str,
    caps: Capabilities,
    greeting: Greeting | None,
    tls_active: bool,
) -> str:
    """What to do about a ``-ERR`` to a login command (``text`` is the server's words)."""
    lowered = text.lower()
    if not tls_active and any(word in lowered for word in _NEEDS_TLS):
        if caps.stls:
            return "the server wants an encrypted connection first: use tls: starttls"
        return "the server wants an encrypted connection: use tls: implicit (port 995)"
    if any(word in lowered for word in _NOT_SUPPORTED):
        others = [m for m in offered_methods(caps, greeting) if m != method]
        if others:
            return (
                f"the server does not accept auth: {method} here; "
                f"use another auth ({', '.join(others)} offered)"
            )
        return f"the server does not accept auth: {method} here; try another auth"
    hint = "check the username and the password or token"
    if not tls_active and caps.stls:
        hint += " (the server offers STLS: tls: starttls would encrypt the login)"
    return hint


def tls_failure_hint(exc: BaseException) -> str:
    """A hint for a failed TLS handshake: plain text on the port, or an unknown CA."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            "the server's certificate is not trusted: if it is self-signed or from a private "
            "CA, set ca_file to that CA's certificate (PEM)"
        )
    reason = getattr(exc, "reason", None) or ""
    text = f"{reason} {exc}".upper()
    if any(
        word in text
        for word in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL", "HTTP")
    ):
        return (
            "the server answered in plain text: use tls: starttls, or the implicit-TLS port (995)"
        )
    return ""


def connect_failure_hint(exc: OSError, port: int) -> str:
    """A hint for a connection that could not be made: nothing listening, or no such host."""
    if isinstance(exc, ConnectionRefusedError):
        usual = "110 for tls: none or starttls, 995 for tls: implicit"
        return f"nothing accepts connections on port {port} there: check host and port ({usual})"
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve: check host (and the DNS of this machine)"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "no route to the host: check host, and any firewall between"
    return ""


def no_greeting_hint(tls_mode: str) -> str:
    """A hint for a server that accepted the connection but sent no greeting."""
    if tls_mode != "implicit":
        return "no greeting: is this an implicit-TLS port? try tls: implicit"
    return "no greeting: is the server overloaded, or is this not a POP3 port?"
