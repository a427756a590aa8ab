"""Marking messages for deletion: DELE (one, or pipelined) and RSET."""

from __future__ import annotations

from collections.abc import Iterable

from bridge.pop3._core import ClientCore
from bridge.pop3.responses import Response
from bridge.pop3.wire import encode_command

__all__ = ["DeletionMixin"]


class DeletionMixin(ClientCore):
    """DELE marks, QUIT commits (see :meth:`SessionMixin.quit`), RSET unmarks."""

    async def dele(self, num: int) -> Response:
        """``DELE n``: mark a message; it is removed only when ``QUIT`` succeeds."""
        return await self._simple("DELE", self._num(num))

    async def dele_many(self, nums: Iterable[int], *, window: int = 64) -> int:
        """Mark several messages, pipelined in batches of ``window`` when the server allows.

        Returns how many were marked. The first ``-ERR`` raises its typed error; when other
        DELE replies are still outstanding the connection is closed, so nothing is committed.
        """
        todo = [self._num(num) for num in nums]
        conn = self._connection("DELE")
        if not conn.pipelining or window <= 1:
            for num in todo:
                await self._simple("DELE", num)
            return len(todo)
        for start in range(0, len(todo), window):
            batch = todo[start : start + window]
            pendings = conn.send_many((encode_command("DELE", num) for num in batch), "DELE")
            await conn.drain()
            for index, pending in enumerate(pendings):
                async with self._bounded("DELE"):
                    reply = await conn.wait(pending)
                if not reply.response.ok:
                    error = self._error(reply.response, "DELE")
                    if index + 1 < len(pendings):
                        conn.fail(error)
                    raise error
        return len(todo)

    async def rset(self) -> Response:
        """``RSET``: unmark every message marked with DELE in this session."""
        return await self._simple("RSET")
