"""Pure authentication encoders (no I/O) and the ``auto`` mechanism choice.

Every function here returns the exact text to put on the wire (base64 where SASL wants it).
The results are secrets: never log them.

``auto`` order (:func:`choose_mechanism`), strongest first for the credentials given:

* a bearer token: ``XOAUTH2`` (what Google and Microsoft 365 accept), then ``OAUTHBEARER``
  (RFC 7628). When the server did not answer CAPA at all, ``XOAUTH2`` is tried; a server
  whose CAPA has no SASL line is never sent AUTH.
* a password on an encrypted connection: SASL ``PLAIN`` (one round trip, UTF-8 safe), then
  ``USER``/``PASS``, then SASL ``LOGIN``, then ``APOP``.
* a password on an unencrypted connection (only reached with ``allow_insecure``): ``APOP``
  first, because the password itself does not cross the wire, then the order above.
"""

from __future__ import annotations

import base64
import hashlib
from enum import StrEnum

from bridge.errors import Pop3AuthError, Pop3InsecureAuthError
from bridge.pop3.responses import Capabilities, Greeting

__all__ = [
    "Mechanism",
    "apop_digest",
    "choose_mechanism",
    "oauthbearer",
    "sasl_login",
    "sasl_plain",
    "xoauth2",
]


class Mechanism(StrEnum):
    """A way to log in; the values are what ``login(method=...)`` accepts."""

    AUTO = "auto"
    USER = "user"
    APOP = "apop"
    PLAIN = "plain"
    LOGIN = "login"
    XOAUTH2 = "xoauth2"
    OAUTHBEARER = "oauthbearer"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def apop_digest(timestamp: str, password: str) -> str:
    """``md5hex(timestamp + password)`` as RFC 1939 section 7 prescribes (timestamp with ``<>``)."""
    return hashlib.md5((timestamp + password).encode("utf-8")).hexdigest()


def sasl_plain(authzid: str, user: str, password: str) -> str:
    """The SASL PLAIN (RFC 4616) response: base64 of ``authzid NUL user NUL password``."""
    return _b64(f"{authzid}\0{user}\0{password}")


def sasl_login(user: str, password: str) -> tuple[str, str]:
    """The two SASL LOGIN responses: base64 user name, then base64 password."""
    return _b64(user), _b64(password)


def xoauth2(user: str, token: str) -> str:
    """The XOAUTH2 response: base64 of ``user=U ^A auth=Bearer T ^A ^A`` (Google, Microsoft)."""
    return _b64(f"user={user}\x01auth=Bearer {token}\x01\x01")


def _saslname(value: str) -> str:
    # RFC 5801 saslname: ',' and '=' must be escaped.
    return value.replace("=", "=3D").replace(",", "=2C")


def oauthbearer(user: str, token: str, host: str, port: int) -> str:
    """The OAUTHBEARER (RFC 7628) initial client response, base64 encoded."""
    return _b64(
        f"n,a={_saslname(user)},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"
    )


def choose_mechanism(
    caps: Capabilities,
    greeting: Greeting | None,
    *,
    has_password: bool,
    has_token: bool,
    tls_active: bool,
    allow_insecure: bool,
) -> Mechanism:
    """Pick the strongest mechanism the server offers for the credentials given (module doc).

    Raises :class:`Pop3InsecureAuthError` on an unencrypted connection without
    ``allow_insecure``, and :class:`Pop3AuthError` when nothing fits.
    """
    if not tls_active and not allow_insecure:
        offers = " (the server offers STLS: use tls: starttls)" if caps.stls else ""
        raise Pop3InsecureAuthError(
            "refusing to send credentials over an unencrypted connection; use TLS "
            f"(implicit or STLS) or allow insecure authentication explicitly{offers}",
            command="AUTH",
        )
    sasl = set(caps.sasl)
    if has_token:
        if "XOAUTH2" in sasl or not caps.known:
            return Mechanism.XOAUTH2
        if "OAUTHBEARER" in sasl:
            return Mechanism.OAUTHBEARER
        raise Pop3AuthError(
            "the server offers neither XOAUTH2 nor OAUTHBEARER, so a bearer token cannot be used",
            command="AUTH",
        )
    if not has_password:
        raise Pop3AuthError("no password or token was given", command="AUTH")
    apop = greeting is not None and greeting.apop_timestamp is not None
    order: list[Mechanism] = []
    if not tls_active and apop:
        order.append(Mechanism.APOP)
    if "PLAIN" in sasl:
        order.append(Mechanism.PLAIN)
    if caps.user or not caps.known:
        order.append(Mechanism.USER)
    if "LOGIN" in sasl:
        order.append(Mechanism.LOGIN)
    if apop:
        order.append(Mechanism.APOP)
    if not order:
        raise Pop3AuthError(
            "the server offers no password mechanism this client knows (USER, APOP, PLAIN, LOGIN)",
            command="AUTH",
        )
    return order[0]
