"""Marking messages for deletion: DELE (one, or pipelined) and RSET."""

from __future__ import annotations

import collections
from collections.abc import Iterable

from bridge.errors import Pop3ResponseError
from bridge.pop3._core import ClientCore
from bridge.pop3.responses import Response
from bridge.pop3.wire import PendingReply, encode_command

__all__ = ["DeletionMixin"]


class DeletionMixin(ClientCore):
    """DELE marks, QUIT commits (see :meth:`SessionMixin.quit`), RSET unmarks."""

    async def dele(self, num: int) -> Response:
        """``DELE n``: mark a message; it is removed only when ``QUIT`` succeeds."""
        return await self._simple("DELE", self._num(num))

    async def dele_many(
        self, nums: Iterable[int], *, window: int = 64
    ) -> list[Pop3ResponseError | None]:
        """Mark several messages, pipelined when the server allows; one result per message.

        A ``-ERR`` for one message does not stop the others: a
        ``-ERR`` is a complete reply, so the replies that follow still pair up with their
        commands. The result holds ``None`` for each message marked and the typed error for
        each refused. A connection or protocol failure still raises (and closes).
        """
        todo = [self._num(num) for num in nums]
        conn = self._connection("DELE")
        results: list[Pop3ResponseError | None] = []
        if not conn.pipelining or window <= 1:
            for num in todo:
                try:
                    await self._simple("DELE", num)
                except Pop3ResponseError as error:
                    results.append(error)
                else:
                    results.append(None)
            return results
        queue: collections.deque[PendingReply] = collections.deque()
        sent = 0
        while sent < len(todo) or queue:
            # Refill when the client would otherwise wait for the network (its ACK then
            # rides on the commands: see retr_each), or when half the window is free.
            room = window - len(queue)
            if sent < len(todo) and (room >= max(1, window // 2) or conn.buffered == 0):
                batch = todo[sent : sent + window - len(queue)]
                sent += len(batch)
                queue.extend(conn.send_many((encode_command("DELE", n) for n in batch), "DELE"))
                await conn.drain()
            pending = queue.popleft()
            if conn.buffered == 0 and queue:
                self._quickack()
            async with self._bounded("DELE"):
                reply = await conn.wait(pending)
            results.append(None if reply.response.ok else self._error(reply.response, "DELE"))
        return results

    async def rset(self) -> Response:
        """``RSET``: unmark every message marked with DELE in this session."""
        return await self._simple("RSET")
