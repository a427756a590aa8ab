"""A TCP proxy on loopback that cuts the connection when the client sends a chosen command.

It sits between the bridge and the real Dovecot to produce the one fault that matters most
for delete-after-ack: the connection dropping after DELE and before QUIT reaches the server.
The server then never sees QUIT, so (RFC 1939) nothing is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib


class CutProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; drops both sides on ``cut_before``."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        cut_before: bytes | None = None,
        swallow_reply_to: bytes | None = None,
    ):
        self.target = (target_host, target_port)
        self.cut_before = cut_before
        self.swallow_reply_to = swallow_reply_to
        """Forward this command, let the server act on it, but never pass its reply on."""
        self.cuts = 0
        self.commands: list[bytes] = []
        """The verb of every command the client sent (``b"RETR"``, ``b"DELE"``...), in order."""
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> CutProxy:
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

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        s_reader, s_writer = await asyncio.open_connection(*self.target)
        cut = asyncio.Event()
        muted = asyncio.Event()

        async def upstream() -> None:
            # Client -> server, a line at a time so the cut happens exactly before the command.
            while not cut.is_set():
                line = await c_reader.readline()
                if not line:
                    break
                self.commands.append(line.split(b" ", 1)[0].strip().upper())
                if self.cut_before and line.upper().startswith(self.cut_before):
                    self.cuts += 1
                    cut.set()
                    break
                swallow = bool(self.swallow_reply_to) and line.upper().startswith(
                    self.swallow_reply_to or b""
                )
                if swallow:
                    muted.set()  # from here on nothing reaches the client
                s_writer.write(line)
                await s_writer.drain()
                if swallow:
                    self.cuts += 1  # downstream drops the reply and ends the connection

        async def downstream() -> None:
            while not cut.is_set():
                data = await s_reader.read(65536)
                if not data or muted.is_set():
                    break  # muted: the server answered the swallowed command; drop it
                c_writer.write(data)
                await c_writer.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task
                self._tasks.discard(task)
            for writer in (c_writer, s_writer):
                writer.transport.abort()
