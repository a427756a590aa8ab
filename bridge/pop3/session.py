"""Session commands: connect, CAPA, STLS, UTF8, NOOP, QUIT (logging in: bridge.pop3.login)."""

from __future__ import annotations

import asyncio
import socket
import ssl

from bridge.errors import (
    Pop3ConnectionError,
    Pop3Error,
    Pop3ResponseError,
    Pop3TimeoutError,
    Pop3TLSError,
)
from bridge.pop3._core import ClientCore
from bridge.pop3.hints import connect_failure_hint, no_greeting_hint, tls_failure_hint
from bridge.pop3.options import TlsMode
from bridge.pop3.responses import Capabilities, Greeting, Response
from bridge.pop3.wire import STREAM_LIMIT, Connection

__all__ = ["SessionMixin"]


class SessionMixin(ClientCore):
    """Connecting, TLS, capabilities, logging out."""

    async def connect(self) -> Greeting:
        """Open the connection, read the greeting, ask ``CAPA`` and (``starttls``) do STLS.

        Raises :class:`Pop3TLSError` when STLS is required but not offered or fails,
        :class:`Pop3TimeoutError`, :class:`Pop3ConnectionError`, or the typed error of a
        ``-ERR`` greeting. On any failure the connection is closed.
        """
        if self.connected:
            raise Pop3Error("already connected", mailbox=self.mailbox)
        loop = asyncio.get_running_loop()
        timeouts = self.timeouts
        self._session_deadline = (
            loop.time() + timeouts.session if timeouts.session is not None else None
        )
        self.authenticated = False
        self.utf8 = False
        self.mechanism = None
        self.capabilities = Capabilities()
        self.greeting = None
        context = self.ssl_context() if self.tls_mode is TlsMode.IMPLICIT else None
        where = f"{self.host}:{self.port}"
        # connect_timeout bounds TCP connect, the TLS handshake and the greeting together.
        connect_deadline = None if timeouts.connect is None else loop.time() + timeouts.connect
        try:
            async with asyncio.timeout_at(connect_deadline):
                reader, writer = await asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=context,
                    server_hostname=self.server_hostname if context else None,
                    ssl_handshake_timeout=timeouts.connect if context else None,
                    limit=STREAM_LIMIT,
                )
        except TimeoutError as exc:
            raise Pop3TimeoutError(
                f"connecting to {where} took longer than {timeouts.connect} s",
                command="connect",
                mailbox=self.mailbox,
            ) from exc
        except ssl.SSLError as exc:  # includes certificate verification failures
            hint = tls_failure_hint(exc)
            raise Pop3TLSError(
                f"TLS with {where} failed: {exc}" + (f"; {hint}" if hint else ""),
                command="connect",
                mailbox=self.mailbox,
            ) from exc
        except OSError as exc:
            hint = connect_failure_hint(exc, self.port)
            raise Pop3ConnectionError(
                f"could not connect to {where}: {exc}" + (f"; {hint}" if hint else ""),
                command="connect",
                mailbox=self.mailbox,
            ) from exc
        _set_nodelay(writer)
        self._writer = writer
        self._conn = Connection(
            reader,
            writer,
            read_timeout=timeouts.read,
            max_line_length=self.max_line_length,
            mailbox=self.mailbox,
            min_rate=timeouts.min_rate,
            status_timeout=timeouts.command,
        )
        try:
            left = None if connect_deadline is None else max(connect_deadline - loop.time(), 0)
            try:
                async with self._bounded("greeting", within=left):
                    response = await self._conn.read_greeting()
            except Pop3TimeoutError as exc:
                raise Pop3TimeoutError(
                    f"no complete greeting from {where} within {timeouts.connect} s "
                    f"(connect_timeout); connection closed; {no_greeting_hint(self.tls_mode)}",
                    command="greeting",
                    mailbox=self.mailbox,
                ) from exc
            if not response.ok:
                raise self._error(response, "greeting")
            self.greeting = Greeting.parse(response.text)
            await self.capa()
            if self.tls_mode is TlsMode.STARTTLS:
                await self.stls()
            await self._enable_utf8()
        except BaseException:
            self.abort()
            raise
        return self.greeting

    async def capa(self) -> Capabilities:
        """Ask ``CAPA``; a ``-ERR`` gives an empty set with ``known=False`` (RFC 1939 server)."""
        conn = self._connection("CAPA")
        async with self._bounded("CAPA", multiline=True):
            reply = await conn.request(
                b"CAPA\r\n",
                "CAPA",
                multiline=True,
                max_bytes=1 << 20,
                max_line=self.max_line_length,
            )
        if reply.response.ok and reply.data is not None:
            caps = Capabilities.parse(self._lines(reply.data, "CAPA"))
        else:
            caps = Capabilities()
        self.capabilities = caps
        conn.pipelining = caps.pipelining and self.authenticated
        return caps

    async def stls(self) -> Capabilities:
        """Upgrade to TLS with ``STLS`` (RFC 2595), then ask ``CAPA`` again.

        Fails with :class:`Pop3TLSError`, closing the connection, when the server does not
        offer STLS or refuses it: there is no fallback to plain text. Bytes the server sent
        after its ``+OK`` in plain text are discarded.
        """
        conn = self._connection("STLS")
        if conn.tls_active:
            raise Pop3TLSError("TLS is already active", command="STLS", mailbox=self.mailbox)
        if self.capabilities.known and not self.capabilities.stls:
            error = Pop3TLSError(
                f"{self.host}:{self.port} does not offer STLS and TLS is required; "
                "not continuing in plain text (use tls: implicit, or fix the server)",
                command="STLS",
                mailbox=self.mailbox,
            )
            conn.fail(error)
            raise error
        async with self._bounded("STLS"):
            reply = await conn.request(b"STLS\r\n", "STLS")
        if not reply.response.ok:
            error = Pop3TLSError(
                f"the server refused STLS: -ERR {reply.response.text}; "
                "not continuing in plain text",
                command="STLS",
                mailbox=self.mailbox,
            )
            conn.fail(error)
            raise error
        try:
            async with asyncio.timeout(self.timeouts.connect):
                await conn.start_tls(
                    self.ssl_context(),
                    server_hostname=self.server_hostname,
                    handshake_timeout=self.timeouts.connect,
                )
        except Pop3TLSError as exc:
            hint = tls_failure_hint(exc.__cause__) if exc.__cause__ is not None else ""
            if not hint:
                raise
            raise Pop3TLSError(
                f"{exc.message}; {hint}", command="STLS", mailbox=self.mailbox
            ) from exc.__cause__
        except TimeoutError as exc:
            if isinstance(exc, Pop3Error):
                raise
            error = Pop3TLSError(
                "the TLS handshake after STLS timed out", command="STLS", mailbox=self.mailbox
            )
            conn.fail(error)
            raise error from exc
        return await self.capa()

    async def utf8_command(self) -> Response:
        """``UTF8`` (RFC 6856): the server may then send UTF-8 headers as they are stored."""
        response = await self._simple("UTF8")
        self.utf8 = True
        return response

    async def _enable_utf8(self) -> None:
        """Send ``UTF8`` when CAPA announced it and it is not on yet.

        RFC 6856 makes UTF8 an AUTHORIZATION-state command, so it is sent before login; a
        server that refuses it there gets it again after login (when its CAPA still announces
        it). Without it Courier replaces every message with UTF-8 headers by a "Cannot display
        Unicode content" notice, so the real message would be posted and deleted unseen.
        """
        if self.utf8 or not self.capabilities.utf8:
            return
        try:
            await self.utf8_command()
        except Pop3ResponseError:
            if self.authenticated:
                raise

    async def noop(self) -> Response:
        """``NOOP``: keeps the session alive while a webhook is slow."""
        return await self._simple("NOOP")

    async def quit(self) -> Response:
        """``QUIT``: the server deletes the messages marked with DELE, then the connection closes.

        Only a ``+OK`` commits; a ``-ERR`` raises the typed error (nothing was deleted).
        """
        conn = self._connection("QUIT")
        try:
            async with self._bounded("QUIT"):
                reply = await conn.request(b"QUIT\r\n", "QUIT")
        finally:
            await conn.close(self.timeouts.connect)
        if not reply.response.ok:
            raise self._error(reply.response, "QUIT")
        return reply.response

    async def close(self) -> None:
        """Close the connection without QUIT: messages marked for deletion stay."""
        if self._conn is not None:
            await self._conn.close(self.timeouts.connect)


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    """TCP_NODELAY on the client socket: a small command is sent at once, never held back by
    Nagle while an earlier segment waits for the server's (delayed) ACK."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
