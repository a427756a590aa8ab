"""Small typed values the POP3 client returns: greeting, capabilities, listings, status replies."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from bridge.errors import Pop3ProtocolError

__all__ = [
    "Capabilities",
    "Greeting",
    "ListEntry",
    "Response",
    "Stat",
    "Status",
    "UidlEntry",
    "parse_response_code",
]

_CODE = re.compile(r"^\[([^\]\s]+)\]\s*")
_TIMESTAMP = re.compile(r"<[^<>\s]+>")


class Status(Enum):
    """The kind of a status line: ``+OK``, ``-ERR`` or a SASL continuation ``+``."""

    OK = "+OK"
    ERR = "-ERR"
    CONTINUE = "+"


def parse_response_code(text: str) -> tuple[str | None, str]:
    """Split an RFC 2449 extended response code off a status text.

    ``"[IN-USE] Mailbox locked"`` gives ``("IN-USE", "Mailbox locked")``; the code is upper-cased.
    """
    match = _CODE.match(text)
    if match is None:
        return None, text
    return match.group(1).upper(), text[match.end() :]


@dataclass(frozen=True, slots=True)
class Response:
    """One status line from the server.

    ``code`` is the RFC 2449 extended response code (``"IN-USE"``, ``"SYS/TEMP"``...) or None;
    ``text`` is the rest of the line after the status indicator and the code.
    """

    status: Status
    text: str = ""
    code: str | None = None

    @property
    def ok(self) -> bool:
        """True for ``+OK``."""
        return self.status is Status.OK

    @classmethod
    def from_text(cls, status: Status, text: str) -> Response:
        """Build a response, parsing the extended response code when there is one."""
        if status is Status.CONTINUE:
            return cls(status, text, None)
        code, rest = parse_response_code(text)
        return cls(status, rest, code)


@dataclass(frozen=True, slots=True)
class Greeting:
    """The server's greeting; ``apop_timestamp`` is the ``<...>`` APOP timestamp, if any."""

    text: str
    apop_timestamp: str | None = None

    @classmethod
    def parse(cls, text: str) -> Greeting:
        """Find the APOP timestamp (RFC 1939 section 7) in a greeting text."""
        match = _TIMESTAMP.search(text)
        return cls(text=text, apop_timestamp=match.group(0) if match else None)


@dataclass(frozen=True, slots=True)
class Stat:
    """``STAT``: number of messages in the maildrop and their total size in octets."""

    count: int
    size: int


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One ``LIST`` entry: message number and size in octets."""

    num: int
    size: int


@dataclass(frozen=True, slots=True)
class UidlEntry:
    """One ``UIDL`` entry: message number and its unique id (stable across sessions)."""

    num: int
    uid: str


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The server's ``CAPA`` answer (RFC 2449) as typed fields plus the raw lines.

    ``known`` is False when the server did not answer ``CAPA`` (an RFC 1939-only server): then
    every flag is False and callers should probe instead of trusting the flags.
    """

    known: bool = False
    top: bool = False
    uidl: bool = False
    user: bool = False
    pipelining: bool = False
    stls: bool = False
    resp_codes: bool = False
    auth_resp_code: bool = False
    sasl: tuple[str, ...] = ()
    utf8: bool = False
    """``UTF8`` (RFC 6856): the server takes the ``UTF8`` command (and may need it to send
    messages with UTF-8 headers as they are)."""
    login_delay: int | None = None
    expire: str | None = None
    implementation: str | None = None
    raw: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        """True when the capability ``name`` (case-insensitive) was announced."""
        return name.upper() in self.raw

    @classmethod
    def parse(cls, lines: Iterable[str]) -> Capabilities:
        """Parse the lines of a ``CAPA`` answer (without the status line and terminator)."""
        raw: dict[str, tuple[str, ...]] = {}
        for line in lines:
            words = line.split()
            if words:
                raw[words[0].upper()] = tuple(words[1:])
        delay = raw.get("LOGIN-DELAY", ())
        try:
            login_delay = int(delay[0]) if delay else None
        except ValueError as exc:
            raise Pop3ProtocolError(
                f"CAPA announced LOGIN-DELAY with a non-numeric value {delay[0]!r:.40}",
                command="CAPA",
            ) from exc
        expire = raw.get("EXPIRE")
        implementation = raw.get("IMPLEMENTATION")
        return cls(
            known=True,
            top="TOP" in raw,
            uidl="UIDL" in raw,
            user="USER" in raw,
            pipelining="PIPELINING" in raw,
            stls="STLS" in raw,
            resp_codes="RESP-CODES" in raw,
            auth_resp_code="AUTH-RESP-CODE" in raw,
            utf8="UTF8" in raw,
            sasl=tuple(m.upper() for m in raw.get("SASL", ())),
            login_delay=login_delay,
            expire=" ".join(expire) if expire is not None else None,
            implementation=" ".join(implementation) if implementation is not None else None,
            raw=raw,
        )
