"""Framing: commands to bytes, and a read buffer cut into status lines and multi-line bodies.

:class:`FrameReader` owns a read buffer over an :class:`asyncio.StreamReader`. It reads big
chunks and finds the ``CRLF.CRLF`` terminator with one C-level scan per chunk, so a pipelined
stream of small messages costs a few microseconds per message. Which reply belongs to which
command is :class:`bridge.pop3.wire.Connection`'s concern, not this module's.
"""

from __future__ import annotations

import asyncio
import re
import time

from bridge.errors import (
    Pop3CommandArgumentError,
    Pop3ConnectionError,
    Pop3LineTooLongError,
    Pop3MessageTooLargeError,
    Pop3ProtocolError,
    Pop3TimeoutError,
)
from bridge.pop3.responses import Response, Status

DEFAULT_MAX_LINE_LENGTH = 8192
"""Longest status line (and listing line) accepted, in octets."""

STREAM_LIMIT = 1 << 20
"""``limit`` for the asyncio stream: how much the transport buffers before pausing reads."""

READ_CHUNK = 1 << 18
SHRINK_AFTER = 1024 * 1024  # consumed bytes after which the read buffer is reallocated
DISCARD_FACTOR = 8  # a too-large body is read and dropped up to this many times the limit
DISCARD_FLOOR = 64 * 1024 * 1024  # ... and at least this many octets, before giving up

# A line that is only "." ends a multi-line response. The search starts at the LF that ended
# the status line, so an empty body (".\r\n" right after the status line) needs no special case.
_TERMINATOR = re.compile(rb"\n\.\r?\n")
_FORBIDDEN = ("\r", "\n", "\0")


def encode_command(verb: str, *args: str) -> bytes:
    """``VERB arg1 arg2\\r\\n`` as bytes; refuses CR, LF or NUL in any part.

    The error names the verb only, never the offending value (it may be a password).
    """
    for part in (verb, *args):
        if any(ch in part for ch in _FORBIDDEN):
            raise Pop3CommandArgumentError(
                f"refusing to send {verb.split(' ', 1)[0]}: an argument contains CR, LF or NUL",
                command=verb,
            )
    line = " ".join((verb, *args)) if args else verb
    return line.encode("utf-8") + b"\r\n"


def unstuff(data: bytes) -> bytes:
    """Undo dot-stuffing and turn bare LF line ends into CRLF.

    ``data`` starts at a line start and holds whole lines (the terminator already removed).
    Every line that starts with ``.`` loses that first ``.`` (RFC 1939 section 3).
    """
    if data[:1] == b".":
        data = data[1:]
    if b"\n." in data:
        data = data.replace(b"\n.", b"\n")
    if data.count(b"\n") != data.count(b"\r\n"):
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return data


def parse_status(line: bytes, *, allow_continuation: bool = False) -> Response:
    """Parse one status line (without its line end) into a :class:`Response`."""
    head = line[:4].upper()
    if head[:3] == b"+OK":
        return Response.from_text(Status.OK, _text(line[3:]))
    if head == b"-ERR":
        return Response.from_text(Status.ERR, _text(line[4:]))
    if allow_continuation and (line == b"+" or line[:2] == b"+ "):
        return Response(Status.CONTINUE, line[2:].decode("ascii", "replace"))
    raise Pop3ProtocolError(f"the server sent a line that is not a POP3 status: {line[:60]!r}")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").strip()


class FrameReader:
    """Status lines and multi-line bodies from a stream, with its own buffer.

    Invariant between frames: the byte before ``_pos`` is the LF that ended the previous frame.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        *,
        read_timeout: float | None,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        min_rate: float | None = None,
        status_timeout: float | None = None,
    ) -> None:
        self._reader = reader
        self.status_timeout = status_timeout
        """Longest time for one status line in total (a trickled ``+OK`` ends too)."""
        self._buf = bytearray(b"\n")
        self._pos = 1
        self.read_timeout = read_timeout
        """Longest wait for any byte while a reply is due (the idle timeout)."""
        self.max_line_length = max_line_length
        self.discard_floor = DISCARD_FLOOR
        """A too-large body is dropped up to max(DISCARD_FACTOR x limit, this) octets."""
        self.min_rate = min_rate
        """Octets per second a multi-line body must average once ``read_timeout`` has passed
        since its status line: a trickle ends, a slow but steady transfer goes on."""

    @property
    def buffered(self) -> int:
        """Octets read from the stream and not yet parsed (0: the next frame needs a read)."""
        return len(self._buf) - self._pos

    def discard_buffer(self) -> int:
        """Drop everything buffered but not yet read (at the STLS switch); returns the count."""
        dropped = len(self._buf) - self._pos
        self._buf = bytearray(b"\n")
        self._pos = 1
        return dropped

    def _compact(self) -> None:
        # Deleting from the front of a bytearray is O(1) in CPython (it moves the start),
        # but keeps the allocation: after a large body, copy what is left into a new buffer
        # so one big message does not pin its size in memory for the rest of the session.
        if self._pos > SHRINK_AFTER:
            self._buf = bytearray(self._buf[self._pos - 1 :])
            self._pos = 1
        elif self._pos > 1:
            del self._buf[: self._pos - 1]
            self._pos = 1

    async def _fill(self, rate: _RateWatch | None = None) -> None:
        wait = self.read_timeout
        if rate is not None:
            left = rate.time_left()
            wait = left if wait is None else min(wait, left)
        try:
            async with asyncio.timeout(wait):
                data = await self._reader.read(READ_CHUNK)
        except TimeoutError as exc:
            if rate is not None and rate.time_left() <= 0:
                raise Pop3TimeoutError(rate.describe() + "; connection closed") from exc
            raise Pop3TimeoutError(
                f"the server sent nothing for {self.read_timeout} s; connection closed"
            ) from exc
        except OSError as exc:
            raise Pop3ConnectionError(f"reading from the server failed: {exc}") from exc
        if not data:
            raise Pop3ConnectionError("the server closed the connection")
        self._buf += data
        if rate is not None:
            rate.received += len(data)

    async def read_status(self, *, allow_continuation: bool = False) -> Response:
        """Read one status line (``+OK``, ``-ERR``, or ``+`` when ``allow_continuation``),
        within ``status_timeout`` in total."""
        try:
            async with asyncio.timeout(self.status_timeout):
                return await self._read_status(allow_continuation)
        except TimeoutError as exc:
            if isinstance(exc, Pop3TimeoutError):
                raise
            raise Pop3TimeoutError(
                f"a status line took longer than {self.status_timeout} s; connection closed"
            ) from exc

    async def _read_status(self, allow_continuation: bool) -> Response:
        self._compact()
        limit = self.max_line_length
        while True:
            nl = self._buf.find(b"\n", self._pos)
            if nl >= 0:
                break
            if len(self._buf) - self._pos > limit:
                raise Pop3LineTooLongError(f"a status line from the server passed {limit} octets")
            await self._fill()
        if nl - self._pos > limit:
            raise Pop3LineTooLongError(f"a status line from the server passed {limit} octets")
        line = bytes(self._buf[self._pos : nl])
        self._pos = nl + 1
        if line[-1:] == b"\r":
            line = line[:-1]
        return parse_status(line, allow_continuation=allow_continuation)

    async def read_body(
        self, *, max_bytes: int | None = None, max_line: int | None = None
    ) -> bytes | None:
        """Read a multi-line body up to its ``.`` line; unstuffed, CRLF line ends.

        ``max_bytes`` bounds the returned size exactly; past it (at 4/3 of it on the wire,
        the most dot-stuffing can add) the rest of the body is read and dropped, so memory
        stays bounded and the session can go on, and None is returned. A body that goes on
        past :data:`DISCARD_FACTOR` times the limit raises
        :class:`~bridge.errors.Pop3MessageTooLargeError`. ``max_line`` bounds each line.
        Bounded by the idle timeout and, with ``min_rate``, by a minimum average rate.
        """
        self._compact()
        buf = self._buf
        start = self._pos
        wire_limit = None if max_bytes is None else max_bytes * 4 // 3 + 8
        rate = None if self.min_rate is None else _RateWatch(self.min_rate, self.read_timeout)
        if rate is not None:
            rate.received = len(buf) - start  # already buffered (pipelined replies)
        search_from = start - 1
        dropped = 0
        while True:
            match = _TERMINATOR.search(buf, search_from)
            if match is not None:
                break
            end = len(buf)
            if wire_limit is not None and end - start > wire_limit:
                # Too large: keep reading to the terminator, dropping what arrives, so the
                # next reply still pairs with its command.
                keep = 3  # enough of a split "\n.\r" to find the terminator across reads
                dropped += end - start - keep
                del buf[start : end - keep]
                end = len(buf)
                if dropped > max(DISCARD_FACTOR * (max_bytes or 0), self.discard_floor):
                    raise Pop3MessageTooLargeError(
                        f"the message is larger than the limit of {max_bytes} octets and "
                        f"did not end within {dropped} octets",
                        limit=max_bytes or 0,
                    )
            search_from = max(start - 1, end - 3)
            if max_line is not None and end - buf.rfind(b"\n", start - 1) - 1 > max_line:
                raise Pop3LineTooLongError(f"a response line passed {max_line} octets")
            await self._fill(rate)
        if dropped:
            self._pos = match.end()
            self._compact()
            return None
        cut = match.start() + 1
        # One copy out of the buffer (a bytearray slice would be a second one).
        with memoryview(buf) as view:
            data = bytes(view[start:cut]) if cut > start else b""
        self._pos = match.end()
        del buf
        self._compact()
        if data:
            data = unstuff(data)
        if max_bytes is not None and len(data) > max_bytes:
            return None  # complete but too large: the stream is still in step
        return data


class _RateWatch:
    """The minimum-rate rule for one body: after ``grace`` seconds, ``min_rate`` on average."""

    __slots__ = ("grace", "min_rate", "received", "started")

    def __init__(self, min_rate: float, grace: float | None) -> None:
        self.min_rate = min_rate
        self.grace = grace or 0.0
        self.started = time.monotonic()
        self.received = 0

    def time_left(self) -> float:
        """Seconds until the bytes received so far fall below the required average."""
        due = self.started + self.grace + self.received / self.min_rate
        return due - time.monotonic()

    def describe(self) -> str:
        took = time.monotonic() - self.started
        return (
            f"the server sent {self.received} octets in {took:.0f} s, below the minimum "
            f"transfer rate of {self.min_rate:.0f} octets/s (min_transfer_rate)"
        )
