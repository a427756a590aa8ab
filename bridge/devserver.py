"""A small scriptable POP3 server for development, the demo and tests: asyncio, stdlib only.

It serves a list of messages on 127.0.0.1, port 0, and speaks enough of RFC 1939 / 2449 /
2595 / 5034 for a client: USER, PASS, APOP, AUTH (PLAIN, LOGIN, XOAUTH2, OAUTHBEARER), CAPA,
STLS (when given a TLS context), STAT, LIST, UIDL, RETR, TOP, DELE, NOOP, RSET, QUIT. Like a
real server it locks the maildrop per session (a second session gets ``-ERR [IN-USE]``) and
deletes marked messages only on QUIT.

What a real server will not do on demand, it does here: faults keyed by command verb
(``"GREETING"`` for the greeting) that drop the connection, answer garbage or a given line,
answer slowly, send an endless line, stop before the ``.`` terminator, or drop in the middle of a
multi-line answer. ``commands`` records every line received, arguments included (so tests can
assert on them); the server never logs or prints them.

    server = FakePop3Server([b"Subject: hi\\r\\n\\r\\nbody\\r\\n"])
    await server.start()
    server.drop_on("RETR")            # the next RETR gets no answer, the connection closes
    server.refuse_login("-ERR [IN-USE] somebody else is in")
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import itertools
import json
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakeMessage", "FakePop3Server", "Fault", "crlf", "stuff"]

_ENDLESS_CAP = 64 * 1024 * 1024  # an "endless" line stops here, so a broken client cannot hang us
_stamp = itertools.count(1)


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


class FakePop3Server:
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

    # ------------------------------------------------------------------ commands

    def _capa_lines(self, session: _Session) -> list[str]:
        lines = ["TOP"] if self.top else []
        if self.uidl:
            lines.append("UIDL")
        lines += ["RESP-CODES", "AUTH-RESP-CODE"]
        if self.pipelining:
            lines.append("PIPELINING")
        if not session.authorized:
            lines.append("USER")
            if self.sasl:
                lines.append("SASL " + " ".join(self.sasl))
            if self.stls_context is not None and not session.tls:
                lines.append("STLS")
        lines += ["EXPIRE NEVER", "IMPLEMENTATION popbridge-fake"]
        return lines

    def _multi(self, first: str, body: bytes) -> bytes:
        return f"+OK {first}".encode() + b"\r\n" + stuff(body, line_end=self.line_end)

    def _message(self, session: _Session, arg: str) -> tuple[int, FakeMessage] | None:
        if not arg.isdigit():
            return None
        num = int(arg)
        if not 1 <= num <= len(session.snapshot) or num in session.marked:
            return None
        return num, session.snapshot[num - 1]

    async def _handle(self, session: _Session, verb: str, args: list[str]) -> bytes:
        if verb == "GREETING":
            greeting = f"+OK {self.greeting}"
            if self.apop:
                greeting += f" {session.timestamp}"
            return greeting.encode() + b"\r\n"
        if verb == "QUIT":
            if session.authorized:
                for num in sorted(session.marked):
                    message = session.snapshot[num - 1]
                    self.messages.remove(message)
                    self.committed.append(message.uid)
            return b"+OK bye\r\n"
        if verb == "NOOP":
            return b"+OK\r\n"
        if verb == "CAPA" and self.capa:
            return self._multi(
                "capability list follows",
                crlf("\n".join(self._capa_lines(session)).encode() + b"\n"),
            )
        if not session.authorized:
            return await self._authorization(session, verb, args)
        return self._transaction(session, verb, args)

    async def _authorization(self, session: _Session, verb: str, args: list[str]) -> bytes:
        if verb == "STLS" and self.stls_context is not None and not session.tls:
            return b"+OK begin TLS\r\n"
        if verb == "USER" and args:
            session.user = args[0]
            return b"+OK\r\n"
        if verb == "PASS" and session.user is not None:
            ok = session.user == self.user and " ".join(args) == self.password
            return self._login(session, ok)
        if verb == "APOP" and self.apop and len(args) == 2:
            digest = hashlib.md5((session.timestamp + self.password).encode()).hexdigest()
            return self._login(session, args[0] == self.user and args[1] == digest)
        if verb == "AUTH" and args and args[0].upper() in self.sasl:
            return await self._sasl(session, args[0].upper(), args[1] if len(args) > 1 else None)
        if verb in {"PASS", "APOP", "AUTH"}:
            return b"-ERR [AUTH] not allowed here\r\n"
        return b"-ERR unknown command or not logged in\r\n"

    def _login(self, session: _Session, ok: bool) -> bytes:
        if not ok:
            return b"-ERR [AUTH] invalid credentials\r\n"
        if self.locked:
            return b"-ERR [IN-USE] the maildrop is locked by another session\r\n"
        self.locked = True
        session.authorized = True
        session.snapshot = list(self.messages)
        session.marked = set()
        self.deleted = session.marked
        return b"+OK logged in\r\n"

    async def _continue(self, session: _Session, challenge: bytes) -> str:
        session.writer.write(b"+ " + challenge + b"\r\n")
        await session.writer.drain()
        raw = await session.reader.readuntil(b"\n")
        line = raw.rstrip(b"\r\n").decode("ascii", "replace")
        self.commands.append(line)
        return line

    async def _sasl(self, session: _Session, mech: str, initial: str | None) -> bytes:
        def decode(text: str) -> str | None:
            try:
                return base64.b64decode(text, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None

        if mech == "LOGIN":
            first = initial or await self._continue(session, b"VXNlcm5hbWU6")
            user = decode(first)
            password = decode(await self._continue(session, b"UGFzc3dvcmQ6"))
            return self._login(session, user == self.user and password == self.password)
        response = initial if initial is not None else await self._continue(session, b"")
        if response == "*":
            return b"-ERR AUTH cancelled\r\n"
        text = decode(response) if response != "=" else ""
        if text is None:
            return b"-ERR invalid base64\r\n"
        if mech == "PLAIN":
            parts = text.split("\0")
            ok = len(parts) == 3 and parts[1] == self.user and parts[2] == self.password
            return self._login(session, ok)
        if mech == "XOAUTH2":
            expected = f"user={self.user}\x01auth=Bearer {self.token}\x01\x01"
            ok = text == expected
        else:  # OAUTHBEARER
            fields = text.split("\x01")
            ok = fields[0] == f"n,a={self.user}," and f"auth=Bearer {self.token}" in fields
        if ok:
            return self._login(session, True)
        error = json.dumps({"status": "401", "schemes": "bearer", "scope": "pop"}).encode()
        await self._continue(session, base64.b64encode(error))  # the client acknowledges
        return b"-ERR [AUTH] invalid token\r\n"

    def _listed(self, msg: FakeMessage) -> int:
        return int(msg.size * self.list_size_factor)

    def _transaction(self, session: _Session, verb: str, args: list[str]) -> bytes:
        live = [
            (num, msg) for num, msg in enumerate(session.snapshot, 1) if num not in session.marked
        ]
        if verb == "STAT":
            if self.stat_says_empty:
                return b"+OK 0 0\r\n"
            return f"+OK {len(live)} {sum(self._listed(m) for _, m in live)}\r\n".encode()
        if verb in {"LIST", "UIDL"} and (verb == "LIST" or self.uidl):

            def item(num: int, msg: FakeMessage) -> str:
                return f"{num} {self._listed(msg) if verb == 'LIST' else msg.uid}"

            if args:
                found = self._message(session, args[0])
                if found is None:
                    return b"-ERR no such message\r\n"
                return f"+OK {item(*found)}\r\n".encode()
            body = "".join(f"{item(num, msg)}\r\n" for num, msg in live).encode()
            return self._multi(f"{len(live)} messages", body)
        if verb == "RETR" and args:
            found = self._message(session, args[0])
            if found is None:
                return b"-ERR no such message\r\n"
            return self._multi(f"{found[1].size} octets", found[1].data)
        if verb == "TOP" and self.top and len(args) == 2 and args[1].isdigit():
            found = self._message(session, args[0])
            if found is None:
                return b"-ERR no such message\r\n"
            head, sep, body = found[1].data.partition(b"\r\n\r\n")
            if body.endswith(b"\r\n"):
                body = body[:-2]
            lines = body.split(b"\r\n")[: int(args[1])] if body else []
            top = head + sep + b"".join(line + b"\r\n" for line in lines)
            return self._multi("top of message follows", top)
        if verb == "DELE" and args:
            found = self._message(session, args[0])
            if found is None:
                return b"-ERR no such message or already deleted\r\n"
            session.marked.add(found[0])
            return f"+OK message {found[0]} deleted\r\n".encode()
        if verb == "RSET":
            session.marked.clear()
            return b"+OK\r\n"
        return b"-ERR unknown command\r\n"
