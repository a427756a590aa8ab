"""The fake server's answers to POP3 commands: authorization and transaction states."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import ssl

from bridge.devserver.messages import FakeMessage, _Session, crlf, stuff


class _Pop3Commands:
    """Answers one command at a time from the state :class:`FakePop3Server` keeps."""

    user: str
    password: str
    token: str
    capa: bool
    pipelining: bool
    uidl: bool
    top: bool
    apop: bool
    sasl: tuple[str, ...]
    stls_context: ssl.SSLContext | None
    greeting: str
    line_end: bytes
    messages: list[FakeMessage]
    commands: list[str]
    deleted: set[int]
    committed: list[str]
    list_size_factor: float
    stat_says_empty: bool
    locked: bool

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
