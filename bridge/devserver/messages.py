"""What the fake server holds: messages, scripted faults, sessions, and the wire helpers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


def crlf(data: bytes) -> bytes:
    """``data`` with every line end made CRLF."""
    if data.count(b"\n") != data.count(b"\r\n"):
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return data


def stuff(message: bytes, *, line_end: bytes = b"\r\n") -> bytes:
    """The multi-line wire form of ``message``: dot-stuffed, ending with the ``.`` line."""
    body = crlf(message)
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    if body.startswith(b"."):
        body = b"." + body
    body = body.replace(b"\r\n.", b"\r\n..")
    if line_end != b"\r\n":
        body = body.replace(b"\r\n", line_end)
    return body + b"." + line_end


@dataclass
class FakeMessage:
    """One message in the fake maildrop (stored with CRLF line ends)."""

    data: bytes
    uid: str

    @property
    def size(self) -> int:
        """The size LIST and STAT report."""
        return len(self.data)


@dataclass
class Fault:
    """Something to do instead of (or besides) answering a command normally.

    ``action`` is one of ``drop`` (close without answering), ``drop_after`` (answer, then
    close), ``reply`` (send ``payload`` instead of the answer), ``delay`` (wait ``seconds``, then
    answer), ``drop_mid`` (send half the answer, then close), ``no_terminator`` (send the
    answer without its ``.`` line and go silent), ``endless_line`` (stream a line that never
    ends), ``trickle`` (send the answer at ``seconds`` octets per second), ``swallow`` (carry
    the command out, QUIT's commit included, then close without answering). It fires on the
    ``nth`` matching command, ``times`` times in a row (0: forever).
    """

    verb: str
    action: str
    payload: bytes = b""
    seconds: float = 0.0
    nth: int = 1
    times: int = 1
    seen: int = 0
    fired: int = 0

    def matches(self, verb: str) -> bool:
        """Count ``verb`` and say whether the fault fires for it now."""
        if verb != self.verb:
            return False
        self.seen += 1
        if self.seen < self.nth or (self.times and self.fired >= self.times):
            return False
        self.fired += 1
        return True


class _Closed(Exception):
    """The session ends here (dropped or QUIT)."""


@dataclass
class _Session:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    timestamp: str
    user: str | None = None
    authorized: bool = False
    tls: bool = False
    snapshot: list[FakeMessage] = field(default_factory=list)
    marked: set[int] = field(default_factory=set)
