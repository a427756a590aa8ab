"""Pure parts of the POP3 client: auth encoders, the auto mechanism choice, response parsing
and the -ERR to typed error mapping."""

from __future__ import annotations

import base64

import pytest

from bridge.errors import (
    Pop3AuthError,
    Pop3InsecureAuthError,
    Pop3InUseError,
    Pop3ProtocolError,
    Pop3ResponseError,
    Pop3SysTempError,
)
from bridge.pop3 import (
    Capabilities,
    Greeting,
    Mechanism,
    apop_digest,
    choose_mechanism,
    oauthbearer,
    sasl_login,
    sasl_plain,
    xoauth2,
)
from bridge.pop3.errors import error_for
from bridge.pop3.responses import Response, Status


def test_apop_digest_matches_rfc1939_example() -> None:
    """The digest for RFC 1939's example timestamp and secret is the one printed in the RFC."""
    digest = apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf")
    assert digest == "c4c9334bac560ecc979e58001b3e22fb"


def test_sasl_encoders() -> None:
    """PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER encode exactly the documented byte layouts."""
    assert base64.b64decode(sasl_plain("", "u", "p")) == b"\0u\0p"
    assert [base64.b64decode(s) for s in sasl_login("u", "pä")] == [b"u", "pä".encode()]
    assert base64.b64decode(xoauth2("u@x", "tok")) == b"user=u@x\x01auth=Bearer tok\x01\x01"
    assert base64.b64decode(oauthbearer("a,b=c", "tok", "pop.x", 995)) == (
        b"n,a=a=2Cb=3Dc,\x01host=pop.x\x01port=995\x01auth=Bearer tok\x01\x01"
    )


CAPS_DOVECOT = Capabilities.parse(
    [
        "TOP",
        "UIDL",
        "RESP-CODES",
        "PIPELINING",
        "AUTH-RESP-CODE",
        "STLS",
        "USER",
        "SASL PLAIN LOGIN",
    ]
)
APOP_GREETING = Greeting.parse("Dovecot ready. <1.2@host>")


@pytest.mark.parametrize(
    ("caps", "greeting", "token", "tls", "expected"),
    [
        (CAPS_DOVECOT, APOP_GREETING, False, True, Mechanism.PLAIN),
        (CAPS_DOVECOT, APOP_GREETING, False, False, Mechanism.APOP),
        (CAPS_DOVECOT, Greeting.parse("ready"), False, False, Mechanism.PLAIN),
        (Capabilities.parse(["USER"]), None, False, True, Mechanism.USER),
        (Capabilities.parse(["SASL LOGIN"]), None, False, True, Mechanism.LOGIN),
        (Capabilities(), None, False, True, Mechanism.USER),
        (Capabilities.parse(["SASL PLAIN XOAUTH2"]), None, True, True, Mechanism.XOAUTH2),
        (Capabilities.parse(["SASL OAUTHBEARER"]), None, True, True, Mechanism.OAUTHBEARER),
        (Capabilities(), None, True, True, Mechanism.XOAUTH2),
    ],
)
def test_choose_mechanism_order(
    caps: Capabilities, greeting: Greeting | None, token: bool, tls: bool, expected: Mechanism
) -> None:
    """auto picks, per the documented order, the strongest mechanism for the credentials."""
    chosen = choose_mechanism(
        caps, greeting, has_password=not token, has_token=token, tls_active=tls, allow_insecure=True
    )
    assert chosen is expected


def test_choose_mechanism_refusals() -> None:
    """No TLS without allow_insecure is refused; a token with no OAuth mechanism is refused;
    a server with nothing usable is refused."""
    with pytest.raises(Pop3InsecureAuthError):
        choose_mechanism(
            CAPS_DOVECOT,
            APOP_GREETING,
            has_password=True,
            has_token=False,
            tls_active=False,
            allow_insecure=False,
        )
    with pytest.raises(Pop3AuthError):
        choose_mechanism(
            CAPS_DOVECOT,
            None,
            has_password=False,
            has_token=True,
            tls_active=True,
            allow_insecure=False,
        )
    with pytest.raises(Pop3AuthError):
        choose_mechanism(
            Capabilities.parse(["TOP"]),
            None,
            has_password=True,
            has_token=False,
            tls_active=True,
            allow_insecure=False,
        )


def test_capabilities_parse() -> None:
    """CAPA lines become typed flags; LOGIN-DELAY is an int; garbage in it is a protocol error."""
    caps = Capabilities.parse(
        ["top", "LOGIN-DELAY 900 USER", "EXPIRE 30", "IMPLEMENTATION Shlemazle Plotz-v302", "X-Y z"]
    )
    assert caps.top
    assert caps.login_delay == 900
    assert caps.expire == "30"
    assert caps.implementation == "Shlemazle Plotz-v302"
    assert caps.has("x-y")
    assert caps.raw["X-Y"] == ("z",)
    with pytest.raises(Pop3ProtocolError):
        Capabilities.parse(["LOGIN-DELAY soon"])


def test_greeting_without_timestamp() -> None:
    """A greeting without <...> has no APOP timestamp."""
    assert Greeting.parse("POP3 ready").apop_timestamp is None
    assert Greeting.parse("ready <a.b@c> now").apop_timestamp == "<a.b@c>"


@pytest.mark.parametrize(
    ("code", "verb", "error"),
    [
        ("IN-USE", "PASS", Pop3InUseError),
        ("SYS/TEMP/DISK", "RETR", Pop3SysTempError),
        (None, "APOP", Pop3AuthError),
        (None, "RETR", Pop3ResponseError),
        ("X-UNKNOWN", "STAT", Pop3ResponseError),
    ],
)
def test_error_mapping(code: str | None, verb: str, error: type[Pop3ResponseError]) -> None:
    """Response codes (hierarchical) and the command decide the error type; secrets echoed by
    the server are scrubbed."""
    response = Response(Status.ERR, "refused for hunter2", code)
    mapped = error_for(response, verb, mailbox="box", secrets=["hunter2"])
    assert type(mapped) is error
    assert mapped.code == code
    assert "hunter2" not in str(mapped)
    assert str(mapped).startswith("[box] ")
