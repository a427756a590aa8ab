"""An asyncio POP3 client: wire framing, one method per command, pure auth encoders, typed
responses and errors (:mod:`bridge.errors`)."""

from bridge.pop3.auth import (
    Mechanism,
    apop_digest,
    choose_mechanism,
    oauthbearer,
    sasl_login,
    sasl_plain,
    xoauth2,
)
from bridge.pop3.client import Pop3Client
from bridge.pop3.options import Timeouts, TlsMode
from bridge.pop3.responses import Capabilities, Greeting, ListEntry, Response, Stat, UidlEntry

__all__ = [
    "Capabilities",
    "Greeting",
    "ListEntry",
    "Mechanism",
    "Pop3Client",
    "Response",
    "Stat",
    "Timeouts",
    "TlsMode",
    "UidlEntry",
    "apop_digest",
    "choose_mechanism",
    "oauthbearer",
    "sasl_login",
    "sasl_plain",
    "xoauth2",
]
