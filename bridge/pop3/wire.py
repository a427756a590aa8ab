"""Bytes on the wire: CRLF framing, multi-line responses, dot-unstuffing, limits and ordering.

Two layers, both free of POP3 semantics beyond framing:

* :class:`FrameReader` (in :mod:`bridge.pop3.framing`, re-exported here) owns a read buffer
  over an :class:`asyncio.StreamReader` and cuts it into status lines and multi-line bodies.
  It reads big chunks and finds the ``CRLF.CRLF`` terminator with one C-level scan per chunk,
  so a pipelined stream of small messages costs a few microseconds per message.
* :class:`Connection` sends commands and hands every reply to the command that asked for it,
  strictly in order, so commands may be pipelined and a reply can never be paired with the
  wrong command. Any timeout, protocol error or cancellation in the middle of a reply closes the
  connection: nothing later can be misread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

from bridge.errors import Pop3ConnectionError, Pop3Error, Pop3TLSError
from bridge.pop3.framing import (
    DEFAULT_MAX_LINE_LENGTH,
    STREAM_LIMIT,
    FrameReader,
    encode_command,
    unstuff,
)
from bridge.pop3.responses import Response

__all__ = [
    "DEFAULT_MAX_LINE_LENGTH",
    "STREAM_LIMIT",
    "Connection",
    "FrameReader",
    "PendingReply",
    "Reply",
    "encode_command",
    "unstuff",
]

log = logging.getLogger("bridge.pop3")


@dataclass(slots=True)
class Reply:
    """A status line and, for a multi-line command answered ``+OK``, its body."""

    response: Response
    data: bytes | None = None
    too_large: bool = False
    """The body passed its size limit and was read and dropped (``data`` is None)."""


@dataclass(slots=True, eq=False)
class PendingReply:
    """A command on the wire waiting for its reply (filled in by :meth:`Connection.wait`)."""

    verb: str
    multiline: bool
    max_bytes: int | None
    max_line: int | None
    allow_continuation: bool
    reply: Reply | None = None


class Connection:
    """Sends commands and reads their replies in order; pipelining-safe.

    Any number of commands may be outstanding (when the server allows pipelining); whoever
    waits for a reply reads the replies before it on behalf of their commands. A failure while
    reading a reply closes the connection and fails every outstanding command.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        read_timeout: float | None,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        mailbox: str | None = None,
        min_rate: float | None = None,
        status_timeout: float | None = None,
    ) -> None:
        self.frames = FrameReader(
            reader,
            read_timeout=read_timeout,
            max_line_length=max_line_length,
            min_rate=min_rate,
            status_timeout=status_timeout,
        )
        self._writer = writer
        self._pending: collections.deque[PendingReply] = collections.deque()
        self._read_lock = asyncio.Lock()
        self._lockstep = asyncio.Lock()
        self.pipelining = False
        """When False, :meth:`request` keeps one command at a time on the wire."""
        self._failure: BaseException | None = None
        self._closed = False
        self.mailbox = mailbox

    # ------------------------------------------------------------------ state

    @property
    def closed(self) -> bool:
        """True once the connection was closed or broke."""
        return self._closed

    @property
    def failure(self) -> BaseException | None:
        """What closed the connection, if a failure did (a timeout, a protocol error...)."""
        return self._failure

    @property
    def outstanding(self) -> int:
        """How many commands were sent and not yet answered."""
        return len(self._pending)

    @property
    def buffered(self) -> int:
        """Octets read and not yet parsed (0: the next reply needs another read)."""
        return self.frames.buffered

    @property
    def tls_active(self) -> bool:
        """True when the transport is TLS."""
        return self._writer.get_extra_info("ssl_object") is not None

    def _check_open(self, verb: str) -> None:
        if self._closed:
            cause = f" ({type(self._failure).__name__})" if self._failure is not None else ""
            raise Pop3ConnectionError(
                f"the connection is closed{cause}", command=verb, mailbox=self.mailbox
            )

    def fail(self, exc: BaseException) -> None:
        """Close the connection at once because of ``exc``; outstanding commands fail."""
        if not self._closed:
            self._failure = exc
            self._closed = True
            self._writer.transport.abort()
        self._pending.clear()

    async def close(self, grace: float | None = 5.0) -> None:
        """Close the transport gracefully (bounded by ``grace`` seconds), else abort it."""
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        try:
            self._writer.close()
            async with asyncio.timeout(grace):
                await self._writer.wait_closed()
        except (OSError, TimeoutError):
            self._writer.transport.abort()

    # ------------------------------------------------------------------ commands

    def send(
        self,
        line: bytes,
        verb: str,
        *,
        multiline: bool = False,
        max_bytes: int | None = None,
        max_line: int | None = None,
        allow_continuation: bool = False,
    ) -> PendingReply:
        """Write one encoded command now and queue the wait for its reply."""
        self._check_open(verb)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("pop3 command %s", verb, extra={"mailbox": self.mailbox})
        pending = PendingReply(verb, multiline, max_bytes, max_line, allow_continuation)
        self._pending.append(pending)
        self._writer.write(line)
        return pending

    def send_many(
        self,
        lines: Iterable[bytes],
        verb: str,
        *,
        multiline: bool = False,
        max_bytes: int | None = None,
    ) -> list[PendingReply]:
        """Write several commands with the same reply shape in one write (pipelining)."""
        self._check_open(verb)
        chunks = list(lines)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("pop3 command %s x%d", verb, len(chunks), extra={"mailbox": self.mailbox})
        pendings = [PendingReply(verb, multiline, max_bytes, None, False) for _ in chunks]
        self._pending.extend(pendings)
        self._writer.write(b"".join(chunks))
        return pendings

    async def drain(self) -> None:
        """Wait until the transport's write buffer has room (flow control)."""
        try:
            await self._writer.drain()
        except OSError as exc:
            error = Pop3ConnectionError(
                f"writing to the server failed: {exc}", mailbox=self.mailbox
            )
            self.fail(error)
            raise error from exc

    async def wait(self, pending: PendingReply) -> Reply:
        """The reply to ``pending``, reading earlier replies for their commands first."""
        while pending.reply is None:
            async with self._read_lock:
                if pending.reply is not None:
                    break
                self._check_open(pending.verb)
                head = self._pending[0]
                try:
                    reply = await self._read_reply(head)
                except Pop3Error as exc:
                    exc.command = exc.command or head.verb
                    exc.mailbox = exc.mailbox or self.mailbox
                    self.fail(exc)
                    raise
                except BaseException as exc:  # cancelled or timed out mid-reply
                    self.fail(exc)
                    raise
                self._pending.popleft()
                head.reply = reply
        return pending.reply

    async def _read_reply(self, head: PendingReply) -> Reply:
        response = await self.frames.read_status(allow_continuation=head.allow_continuation)
        if head.multiline and response.ok:
            data = await self.frames.read_body(max_bytes=head.max_bytes, max_line=head.max_line)
            return Reply(response, data, too_large=data is None)
        return Reply(response)

    async def request(
        self,
        line: bytes,
        verb: str,
        *,
        multiline: bool = False,
        max_bytes: int | None = None,
        max_line: int | None = None,
        allow_continuation: bool = False,
    ) -> Reply:
        """Send one command and wait for its reply (alone on the wire unless pipelining)."""
        async with contextlib.nullcontext() if self.pipelining else self._lockstep:
            if not self.pipelining and self._pending:  # replies left by an abandoned pipeline
                await self.wait(self._pending[-1])
            pending = self.send(
                line,
                verb,
                multiline=multiline,
                max_bytes=max_bytes,
                max_line=max_line,
                allow_continuation=allow_continuation,
            )
            await self.drain()
            return await self.wait(pending)

    async def discard_outstanding(self) -> None:
        """Read and drop the replies to every command sent and not waited for."""
        if self._pending:
            await self.wait(self._pending[-1])

    async def read_greeting(self) -> Response:
        """Read the server's greeting (the reply to no command)."""
        pending = PendingReply("greeting", False, None, None, False)
        self._pending.append(pending)
        reply = await self.wait(pending)
        return reply.response

    async def start_tls(
        self,
        context: ssl.SSLContext,
        *,
        server_hostname: str | None,
        handshake_timeout: float | None,
    ) -> int:
        """Switch to TLS (after ``STLS`` was accepted); returns how many plaintext bytes
        that arrived after the ``+OK`` were discarded (they may be an injection attempt)."""
        self._check_open("STLS")
        if self._pending:
            raise Pop3TLSError("cannot start TLS with commands outstanding", command="STLS")
        dropped = self.frames.discard_buffer()
        try:
            await self._writer.start_tls(
                context, server_hostname=server_hostname, ssl_handshake_timeout=handshake_timeout
            )
        except (ssl.SSLError, ssl.CertificateError) as exc:
            error = Pop3TLSError(
                f"TLS negotiation after STLS failed: {exc}", command="STLS", mailbox=self.mailbox
            )
            self.fail(error)
            raise error from exc
        except (OSError, TimeoutError) as exc:
            error = Pop3TLSError(
                f"TLS negotiation after STLS failed: {exc!r}", command="STLS", mailbox=self.mailbox
            )
            self.fail(error)
            raise error from exc
        return dropped
