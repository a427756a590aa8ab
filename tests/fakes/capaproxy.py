"""A POP3-aware proxy in front of the real Dovecot that plays a server with fewer capabilities.

Servers without UIDL, TOP or PIPELINING, or that announce and enforce LOGIN-DELAY, are
easiest to get this way (../shared/TESTBED.md): the proxy takes capability lines out of CAPA
(and may add some), answers ``-ERR`` itself to the commands such a server would not know, and
records every command the client sent, so a test can assert what was never sent. Replies keep
their order under pipelining: each command's reply is either the server's (read framed) or the
proxy's own. Plain text only (no STLS through it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

_MULTILINE_ALWAYS = {"CAPA", "RETR", "TOP"}
_MULTILINE_NO_ARG = {"LIST", "UIDL"}
_LOGIN = {"PASS", "APOP", "AUTH"}


@dataclass
class CapaProxy:
    """Forwards 127.0.0.1:``port`` to Dovecot at ``target``, minus ``strip``.

    ``strip``: capability names taken out of CAPA; commands of those names get ``-ERR``.
    ``login_delay``: seconds announced as ``LOGIN-DELAY`` and enforced on the next login.
    ``no_capa``: answer ``-ERR`` to CAPA itself (an RFC 1939-only server).
    """

    target: tuple[str, int]
    strip: frozenset[str] = frozenset()
    login_delay: int | None = None
    no_capa: bool = False
    commands: list[str] = field(default_factory=list)
    refused_logins: int = 0
    port: int = 0
    _last_login: float | None = None
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def verbs(self) -> list[str]:
        """The verbs the client sent, in order."""
        return [c.split(" ", 1)[0].upper() for c in self.commands]

    async def start(self) -> CapaProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _refuse_login(self) -> bool:
        if self.login_delay is None or self._last_login is None:
            return False
        return time.monotonic() - self._last_login < self.login_delay

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        s_reader, s_writer = await asyncio.open_connection(*self.target)
        queue: asyncio.Queue[tuple[str, bytes | None] | None] = asyncio.Queue()
        queue.put_nowait(("greeting", None))

        async def upstream() -> None:
            while True:
                line = await c_reader.readline()
                if not line:
                    break
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                self.commands.append(text)
                words = text.split()
                verb = words[0].upper() if words else ""
                local: bytes | None = None
                if verb in self.strip or (verb == "CAPA" and self.no_capa):
                    local = b"-ERR unknown command\r\n"
                elif verb in _LOGIN and self._refuse_login():
                    self.refused_logins += 1
                    local = b"-ERR [LOGIN-DELAY] wait before logging in again\r\n"
                if local is not None:
                    queue.put_nowait((verb, local))
                    continue
                multiline = verb in _MULTILINE_ALWAYS or (
                    verb in _MULTILINE_NO_ARG and len(words) == 1
                )
                queue.put_nowait((verb + (" M" if multiline else ""), None))
                s_writer.write(line)
                await s_writer.drain()
            queue.put_nowait(None)

        async def downstream() -> None:
            while (item := await queue.get()) is not None:
                what, local = item
                if local is not None:
                    c_writer.write(local)
                    await c_writer.drain()
                    continue
                verb, _, multi = what.partition(" ")
                status = await s_reader.readline()
                if not status:
                    break
                out = [status]
                if status.startswith(b"+OK") and multi:
                    while True:
                        line = await s_reader.readline()
                        if not line:
                            break
                        if line == b".\r\n":
                            out.append(line)
                            break
                        if verb == "CAPA":
                            name = line.split(b" ", 1)[0].strip().decode().upper()
                            if name in self.strip or name == "LOGIN-DELAY":
                                continue
                        out.append(line)
                    if verb == "CAPA" and self.login_delay is not None:
                        out.insert(-1, f"LOGIN-DELAY {self.login_delay}\r\n".encode())
                if verb in _LOGIN and status.startswith(b"+OK"):
                    self._last_login = time.monotonic()
                c_writer.write(b"".join(out))
                await c_writer.drain()

        try:
            await asyncio.gather(upstream(), downstream())
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            for writer in (c_writer, s_writer):
                writer.close()
            self._tasks.discard(task)
