"""A minimal raw-socket POP3 reader: the upper limit for retrieval on this machine.

No parsing, no dot-unstuffing, no checks beyond finding where each reply ends: it logs in
with USER/PASS, sends RETR commands (all in one write when pipelining, one at a time in
lock-step), counts reply bytes, and leaves with RSET + QUIT so the mailbox is unchanged.
The clock covers the RETRs only (after login, before QUIT), as in ../shared/TESTBED.md.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

__all__ = ["RawResult", "raw_retrieve"]

_TERMINATOR = b"\r\n.\r\n"


@dataclass(frozen=True)
class RawResult:
    """What one raw pass read: message count, reply bytes, seconds on the in-process clock."""

    messages: int
    bytes: int
    seconds: float


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.pos = 0

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 18)
        if not chunk:
            raise ConnectionError("the POP3 server closed the connection")
        self.buf += chunk

    def _compact(self) -> None:
        if self.pos > (1 << 22):
            del self.buf[: self.pos]
            self.pos = 0

    def line(self) -> bytes:
        self._compact()
        while (end := self.buf.find(b"\r\n", self.pos)) < 0:
            self._fill()
        out = bytes(self.buf[self.pos : end])
        self.pos = end + 2
        return out

    def multiline(self) -> int:
        """Skip one ``+OK`` multi-line reply; return the size of its body."""
        status = self.line()
        if not status.startswith(b"+OK"):
            raise RuntimeError(f"RETR failed: {status[:80]!r}")
        start = self.pos
        search = start - 2  # an empty body: the status line's CRLF starts the terminator
        while (end := self.buf.find(_TERMINATOR, search)) < 0:
            search = max(search, len(self.buf) - len(_TERMINATOR) + 1)
            self._fill()
        self.pos = end + len(_TERMINATOR)
        return max(0, end + 2 - start)


def _ok(reader: _Reader, what: str) -> None:
    reply = reader.line()
    if not reply.startswith(b"+OK"):
        raise RuntimeError(f"{what} failed: {reply[:80]!r}")


def raw_retrieve(
    host: str, port: int, user: str, password: str, count: int, *, pipelined: bool = True
) -> RawResult:
    """RETR messages 1..count over one plain connection; see the module docstring."""
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = _Reader(sock)
        _ok(reader, "greeting")
        sock.sendall(f"USER {user}\r\n".encode())
        _ok(reader, "USER")
        sock.sendall(f"PASS {password}\r\n".encode())
        _ok(reader, "PASS")
        total = 0
        started = time.perf_counter()
        if pipelined:
            sock.sendall(b"".join(b"RETR %d\r\n" % n for n in range(1, count + 1)))
            for _ in range(count):
                total += reader.multiline()
        else:
            for n in range(1, count + 1):
                sock.sendall(b"RETR %d\r\n" % n)
                total += reader.multiline()
        seconds = time.perf_counter() - started
        sock.sendall(b"RSET\r\nQUIT\r\n")
        _ok(reader, "RSET")
        _ok(reader, "QUIT")
    return RawResult(count, total, seconds)
