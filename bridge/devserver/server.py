"""The fake server itself: set-up, fault scripting and the session loop."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import ssl
from collections.abc import Iterable
from typing import Any

from bridge.devserver.commands import _Pop3Commands
from bridge.devserver.messages import FakeMessage, Fault, _Closed, _Session, crlf

_ENDLESS_CAP = 64 * 1024 * 1024  # an "endless" line stops here, so a broken client cannot hang us
_stamp = itertools.count(1)


class FakePop3Server(_Pop3Commands):
    """A scriptable POP3 server; see the module docstring."""

    def __init__(
        self,
        messages: Iterable[bytes] = (),
        *,
        user: str = "alice",
        password: str = "secret",  # noqa: S107 - a fake server's well-known test password
        token: str = "ya29.fake-token",  # noqa: S107 - and its test token
        host: str = "127.0.0.1",
        port: int = 0,
        capa: bool = True,
        pipelining: bool = True,
        uidl: bool = True,
        top: bool = True,
        apop: bool = True,
        sasl: tuple[str, ...] = ("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"),
        stls_context: ssl.SSLContext | None = None,
        greeting: str = "popbridge fake POP3 server ready",
    ) -> None:
        self.user = user
        self.password = password
        self.token = token
        self.host = host
        self._requested_port = port
        self.capa = capa
        self.pipelining = pipelining
        self.uidl = uidl
        self.top = top
        self.apop = apop
        self.sasl = sasl
        self.stls_context = stls_context
        self.greeting = greeting
        self.line_end = b"\r\n"
        """Line end used for multi-line bodies; set ``b"\\n"`` to act like a sloppy server."""
        self.messages: list[FakeMessage] = []
        self.commands: list[str] = []
        """Every line received, in order, across sessions (arguments kept, never printed)."""
        self.sessions = 0
        self.deleted: set[int] = set()
        """Message numbers marked with DELE in the latest session."""
        self.committed: list[str] = []
        """UIDs removed by successful QUITs, in order."""
        self.faults: list[Fault] = []
        self.list_size_factor = 1.0
        """LIST (and STAT) report each size times this: below 1, a server that understates."""
        self.stat_says_empty = False
        """STAT answers ``+OK 0 0`` whatever the maildrop holds (a broken server)."""
        self.locked = False
        self._uid_seq = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        for message in messages:
            self.add(message)

    def __repr__(self) -> str:
        return f"<FakePop3Server {self.host}:{self.port} messages={len(self.messages)}>"

    # ------------------------------------------------------------------ set-up

    @property
    def port(self) -> int:
        """The port the server listens on (after :meth:`start`)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.sockets[0].getsockname()[1])

    def mailbox_config(self, name: str, webhooks: list[str], **extra: Any) -> dict[str, Any]:
        """A ``mailboxes[]`` config entry that logs in to this server (plain POP3 on loopback)."""
        entry: dict[str, Any] = {
            "name": name,
            "host": self.host,
            "port": self.port,
            "tls": "none",
            "allow_insecure_auth": True,  # loopback only: this server speaks plain POP3
            "username": self.user,
            "password": self.password,
            "webhooks": webhooks,
        }
        entry.update(extra)
        return entry

    @property
    def verbs(self) -> list[str]:
        """The verbs of :attr:`commands` (upper-cased), handy for asserting order."""
        return [line.split(" ", 1)[0].upper() for line in self.commands]

    def add(self, data: bytes, uid: str | None = None) -> FakeMessage:
        """Append a message (line ends made CRLF) with a fresh or given UID."""
        message = FakeMessage(crlf(data), uid or f"uid-{next(self._uid_seq):06d}")
        self.messages.append(message)
        return message

    async def start(self) -> FakePop3Server:
        """Listen on ``host``, port 0 unless one was given."""
        self._server = await asyncio.start_server(
            self._serve, self.host, self._requested_port, limit=1 << 16
        )
        return self

    async def stop(self) -> None:
        """Close the listener and every open session."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakePop3Server:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ fault scripting

    def _fault(self, verb: str, action: str, **kwargs: object) -> Fault:
        fault = Fault(verb.upper(), action, **kwargs)  # type: ignore[arg-type]
        self.faults.append(fault)
        return fault

    def drop_on(self, verb: str, *, nth: int = 1, after_reply: bool = False) -> Fault:
        """Close the connection on the ``nth`` ``verb``, before (or after) answering it."""
        return self._fault(verb, "drop_after" if after_reply else "drop", nth=nth)

    def reply_on(self, verb: str, raw: bytes | str, *, nth: int = 1, times: int = 1) -> Fault:
        """Answer ``verb`` with ``raw`` (CRLF added to a str) instead of the real answer."""
        payload = raw if isinstance(raw, bytes) else raw.encode() + b"\r\n"
        return self._fault(verb, "reply", payload=payload, nth=nth, times=times)

    def garbage_on(self, verb: str, *, nth: int = 1) -> Fault:
        """Answer ``verb`` with a line that is not POP3."""
        return self.reply_on(verb, b"HTTP/1.1 400 Bad Request\r\n", nth=nth)

    def delay_on(self, verb: str, seconds: float, *, nth: int = 1, times: int = 1) -> Fault:
        """Wait ``seconds`` before answering ``verb``."""
        return self._fault(verb, "delay", seconds=seconds, nth=nth, times=times)

    def swallow_reply_on(self, verb: str, *, nth: int = 1) -> Fault:
        """Carry out the ``nth`` ``verb`` (QUIT: commit the deletions) but close instead of
        answering: the client never learns that it worked."""
        return self._fault(verb, "swallow", nth=nth)

    def trickle_on(
        self, verb: str, octets_per_second: float, *, nth: int = 1, times: int = 1
    ) -> Fault:
        """Send the answer to the ``nth`` ``verb`` (``"GREETING"`` too) this slowly."""
        return self._fault(verb, "trickle", seconds=octets_per_second, nth=nth, times=times)

    def drop_mid_response_on(self, verb: str, *, nth: int = 1) -> Fault:
        """Send half of the (multi-line) answer to ``verb``, then close."""
        return self._fault(verb, "drop_mid", nth=nth)

    def no_terminator_on(self, verb: str, *, nth: int = 1) -> Fault:
        """Send the multi-line answer to ``verb`` without its ``.`` line, then go silent."""
        return self._fault(verb, "no_terminator", nth=nth)

    def endless_line_on(self, verb: str, *, nth: int = 1) -> Fault:
        """Answer ``verb`` with a line that never ends (until the client hangs up)."""
        return self._fault(verb, "endless_line", nth=nth)

    def refuse_login(
        self, line: str = "-ERR [AUTH] invalid credentials", *, times: int = 0
    ) -> None:
        """Answer every PASS, APOP and AUTH with ``line`` (e.g. ``-ERR [IN-USE] ...``)."""
        for verb in ("PASS", "APOP", "AUTH"):
            self.reply_on(verb, line, times=times)

    def _fault_for(self, verb: str) -> Fault | None:
        found = None
        for fault in self.faults:
            if fault.matches(verb) and found is None:
                found = fault
        return found

    # ------------------------------------------------------------------ sessions

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.sessions += 1
        session = _Session(reader, writer, f"<{os.getpid()}.{next(_stamp)}@popbridge.fake>")
        try:
            await self._answer(session, "GREETING", [])
            while True:
                try:
                    raw = await reader.readuntil(b"\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                    return
                line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
                self.commands.append(line)
                verb, *args = line.split(" ") if line else [""]
                verb = verb.upper()
                await self._answer(session, verb, args)
        except (_Closed, OSError, EOFError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass  # dropped on purpose, or the client went away
        finally:
            if session.authorized:
                self.locked = False
            writer.transport.abort()
            self._tasks.discard(task)

    async def _answer(self, session: _Session, verb: str, args: list[str]) -> None:
        """Answer one command (or the greeting), applying the fault scripted for it."""
        writer = session.writer
        fault = self._fault_for(verb)
        action = fault.action if fault is not None else None
        if action == "drop":
            raise _Closed
        if action == "reply":
            assert fault is not None
            answer = fault.payload  # instead of the real answer: no state changes
        elif action != "endless_line":
            if fault is not None and action == "delay":
                await asyncio.sleep(fault.seconds)
            answer = await self._handle(session, verb, args)
        if fault is not None:
            if action == "swallow":
                raise _Closed  # carried out above (QUIT committed), never answered
            if action == "drop_mid":
                writer.write(answer[: max(1, len(answer) // 2)])
                await writer.drain()
                raise _Closed
            elif action == "no_terminator":
                writer.write(answer[: -len(b"." + self.line_end)])
                await writer.drain()
                await session.reader.read()  # silent until the client hangs up
                raise _Closed
            elif action == "trickle":
                step = max(1, int(fault.seconds / 10))
                for start in range(0, len(answer), step):
                    writer.write(answer[start : start + step])
                    await writer.drain()
                    await asyncio.sleep(step / fault.seconds)
                answer = b""
            elif action == "endless_line":
                writer.write(b"+OK ")
                chunk = b"x" * 65536
                for _ in range(_ENDLESS_CAP // len(chunk)):
                    writer.write(chunk)
                    await writer.drain()
                raise _Closed
        writer.write(answer)
        await writer.drain()
        if verb == "STLS" and answer.startswith(b"+OK") and self.stls_context is not None:
            await writer.start_tls(self.stls_context)
            session.tls = True
        if verb == "QUIT" and answer.startswith(b"+OK"):
            raise _Closed
        if fault is not None and fault.action == "drop_after":
            raise _Closed
