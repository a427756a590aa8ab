"""State and helpers shared by the client's parts (session, retrieval, deletion)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from bridge.errors import (
    Pop3CommandArgumentError,
    Pop3ConnectionError,
    Pop3LineTooLongError,
    Pop3MessageTooLargeError,
    Pop3ProtocolError,
    Pop3ResponseError,
    Pop3TimeoutError,
)
from bridge.pop3.errors import AUTH_VERBS, error_for
from bridge.pop3.hints import auth_refusal_hint
from bridge.pop3.options import Timeouts, TlsMode
from bridge.pop3.responses import Capabilities, Greeting, Response
from bridge.pop3.wire import DEFAULT_MAX_LINE_LENGTH, Connection, encode_command

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "ClientCore"]

DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024 * 1024
"""Largest message ``retr``/``top`` accept unless the caller says otherwise (octets)."""

_LISTING_LIMIT = 64 * 1024 * 1024
"""Largest CAPA/LIST/UIDL answer accepted (about a million messages)."""

StrPath = str | os.PathLike[str]
_TCP = (socket.AF_INET, socket.AF_INET6)


class ClientCore:
    """Connection options, session state and the command helpers every part uses."""

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        tls: TlsMode | str = TlsMode.IMPLICIT,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: StrPath | None = None,
        client_cert: StrPath | None = None,
        client_key: StrPath | None = None,
        server_hostname: str | None = None,
        timeouts: Timeouts | None = None,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        mailbox: str | None = None,
    ) -> None:
        """Configure a client; nothing happens on the network until :meth:`connect`.

        ``tls`` is ``"implicit"`` (default, port 995), ``"starttls"`` or ``"none"`` (port 110).
        Certificates and host names are verified against the system store, or ``ca_file``;
        ``ssl_context`` replaces the whole context. ``mailbox`` names the mailbox in errors.
        """
        self.host = host
        self.tls_mode = TlsMode(tls)
        self.port = (
            port if port is not None else (995 if self.tls_mode is TlsMode.IMPLICIT else 110)
        )
        self.server_hostname = server_hostname or host
        self.timeouts = timeouts or Timeouts()
        self.max_line_length = max_line_length
        self.max_message_size = max_message_size
        self.mailbox = mailbox
        self._ssl_context = ssl_context
        self._ca_file = ca_file
        self._client_cert = client_cert
        self._client_key = client_key
        self.greeting: Greeting | None = None
        """The server's greeting, once connected."""
        self.capabilities = Capabilities()
        """The latest ``CAPA`` answer (asked again after STLS and after login)."""
        self.authenticated = False
        self.utf8 = False
        """True once the server accepted ``UTF8`` (RFC 6856) in this session."""
        self.mechanism: str | None = None
        """The login method in use (``user``, ``apop``, ``plain``...), once logged in."""
        self._conn: Connection | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._session_deadline: float | None = None

    # ------------------------------------------------------------------ state

    @property
    def connected(self) -> bool:
        """True while the connection is open."""
        return self._conn is not None and not self._conn.closed

    @property
    def tls_active(self) -> bool:
        """True when the connection is encrypted (implicit TLS or after STLS)."""
        return self._conn is not None and not self._conn.closed and self._conn.tls_active

    @property
    def outstanding(self) -> int:
        """Commands sent whose replies have not been read yet (pipelining)."""
        return 0 if self._conn is None else self._conn.outstanding

    async def discard_outstanding(self) -> None:
        """Read and drop the replies to pipelined commands nobody waits for any more (a
        consumer that stopped a pipelined ``retr_each`` early), under the multi-line bounds,
        so that the next command's own timeout covers only its own reply."""
        conn = self._conn
        if conn is None or conn.closed or not conn.outstanding:
            return
        async with self._bounded("RETR", multiline=True):
            await conn.discard_outstanding()

    @property
    def failure(self) -> BaseException | None:
        """What closed the connection, when a failure did; None while it is open."""
        return None if self._conn is None else self._conn.failure

    @property
    def tls_version(self) -> str | None:
        """The negotiated TLS version (``"TLSv1.3"``...), or None on a plain connection."""
        if self._writer is None or not self.tls_active:
            return None
        ssl_object = self._writer.get_extra_info("ssl_object")
        version = ssl_object.version() if ssl_object is not None else None
        return str(version) if version is not None else None

    @property
    def pipelining(self) -> bool:
        """True when commands are pipelined (logged in and the server announced PIPELINING)."""
        return self._conn is not None and self._conn.pipelining

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context: the caller's, or a verifying default with the configured CA/cert."""
        if self._ssl_context is None:
            context = ssl.create_default_context(cafile=self._ca_file)
            if self._client_cert is not None:
                context.load_cert_chain(self._client_cert, self._client_key)
            self._ssl_context = context
        return self._ssl_context

    def _quickack(self) -> None:
        """Ask the kernel to ACK the next segment at once (Linux ``TCP_QUICKACK``).

        Called before waiting on pipelined replies with nothing buffered: a server that leaves
        Nagle on (Courier, mailutils, Cyrus) sends its first reply and holds the rest until
        it sees an ACK, which the client's delayed-ACK timer would hold back for ~40 ms when
        the client has no command to send. The option is not sticky, hence one call per wait.
        """
        option = getattr(socket, "TCP_QUICKACK", None)
        sock = self._writer.get_extra_info("socket") if self._writer is not None else None
        if option is None or sock is None or sock.family not in _TCP:
            return
        with contextlib.suppress(OSError):  # a socket closing under us: the next read says so
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)

    def _connection(self, verb: str) -> Connection:
        conn = self._conn
        if conn is None or conn.closed:
            raise Pop3ConnectionError("not connected", command=verb, mailbox=self.mailbox)
        return conn

    def abort(self) -> None:
        """Drop the connection at once, without QUIT: nothing marked for deletion is deleted."""
        if self._conn is not None:
            self._conn.fail(Pop3ConnectionError("aborted by the client", mailbox=self.mailbox))

    # ------------------------------------------------------------------ helpers

    @asynccontextmanager
    async def _bounded(
        self, verb: str, *, multiline: bool = False, within: float | None = None
    ) -> AsyncIterator[None]:
        """Bound one command by the session deadline and, for a single-line reply, by
        ``Timeouts.command`` in total (or ``within`` seconds).

        A multi-line reply has no total bound here: the wire layer ends it when no byte came
        for ``Timeouts.read`` or it falls below ``Timeouts.min_rate``, so a large message on
        a slow link gets through and a trickle does not.
        """
        deadline = self._session_deadline
        total = within if within is not None else (None if multiline else self.timeouts.command)
        if total is not None:
            end = asyncio.get_running_loop().time() + total
            deadline = end if deadline is None else min(deadline, end)
        try:
            async with asyncio.timeout_at(deadline):
                yield
        except Pop3TimeoutError:
            raise
        except TimeoutError as exc:
            error = Pop3TimeoutError(
                f"{verb} did not complete in time; connection closed",
                command=verb,
                mailbox=self.mailbox,
            )
            if self._conn is not None:
                self._conn.fail(error)
            raise error from exc

    def _error(
        self, response: Response, verb: str, secrets: Iterable[str] = ()
    ) -> Pop3ResponseError:
        hint = None
        if verb in AUTH_VERBS:
            method = {"USER": "user", "PASS": "user", "APOP": "apop"}.get(verb)
            hint = auth_refusal_hint(
                response.text,
                method=method or self._auth_method,
                caps=self.capabilities,
                greeting=self.greeting,
                tls_active=self.tls_active,
            )
        return error_for(
            response,
            verb,
            mailbox=self.mailbox,
            login_delay=self.capabilities.login_delay,
            secrets=secrets,
            hint=hint,
        )

    _auth_method = "plain"
    """The SASL mechanism of the AUTH command in progress (for hints)."""

    def _protocol_error(
        self, message: str, verb: str, cls: type[Pop3ProtocolError] = Pop3ProtocolError
    ) -> Pop3ProtocolError:
        """A protocol error for ``verb``; the connection is closed (the session is suspect)."""
        error = cls(message, command=verb, mailbox=self.mailbox)
        if self._conn is not None:
            self._conn.fail(error)
        return error

    def _limit(self, max_bytes: int | None) -> int | None:
        return self.max_message_size if max_bytes is None else max_bytes

    @staticmethod
    def _num(num: int) -> str:
        if type(num) is not int or num < 1:
            raise Pop3CommandArgumentError(f"message numbers start at 1, not {num!r}")
        return str(num)

    async def _simple(
        self, verb: str, *args: str, secrets: Iterable[str] = (), shown: str | None = None
    ) -> Response:
        """Send a single-line command; ``-ERR`` raises the typed error."""
        line = encode_command(verb, *args)
        conn = self._connection(verb)
        async with self._bounded(verb):
            reply = await conn.request(line, shown or verb)
        if not reply.response.ok:
            raise self._error(reply.response, verb, secrets)
        return reply.response

    async def _multiline(
        self, verb: str, *args: str, max_bytes: int | None, listing: bool = False
    ) -> bytes:
        """Send a multi-line command and return its body; ``-ERR`` raises the typed error."""
        line = encode_command(verb, *args)
        conn = self._connection(verb)
        async with self._bounded(verb, multiline=True):
            reply = await conn.request(
                line,
                verb,
                multiline=True,
                max_bytes=_LISTING_LIMIT if listing else max_bytes,
                max_line=self.max_line_length if listing else None,
            )
        if not reply.response.ok:
            raise self._error(reply.response, verb)
        if reply.too_large:
            raise self._too_large(verb, max_bytes)
        assert reply.data is not None  # multi-line +OK always carries a body
        return reply.data

    def _too_large(self, verb: str, max_bytes: int | None) -> Pop3MessageTooLargeError:
        """The error for a body that passed ``max_bytes`` and was dropped; the session goes on."""
        error = Pop3MessageTooLargeError(
            f"the message is larger than the limit of {max_bytes} octets; it was skipped",
            limit=max_bytes or 0,
            command=verb,
            mailbox=self.mailbox,
        )
        error.connection_kept = True
        return error

    def _lines(self, data: bytes, verb: str) -> list[str]:
        """The lines of a listing body, each bounded by ``max_line_length``."""
        lines = data.split(b"\r\n")
        lines.pop()  # the body ends with CRLF
        out: list[str] = []
        for raw in lines:
            if len(raw) > self.max_line_length:
                raise self._protocol_error(
                    f"a {verb} line passed {self.max_line_length} octets",
                    verb,
                    Pop3LineTooLongError,
                )
            out.append(raw.decode("utf-8", "replace"))
        return out
