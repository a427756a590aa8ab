"""The asyncio POP3 client: one ``async def`` per command, split by concern.

Usage::

    async with Pop3Client("pop.example.com", ca_file=...) as pop:
        await pop.login("user", password)
        for entry in await pop.uidl():
            raw = await pop.retr(entry.num)
            ...
            await pop.dele(entry.num)
    # leaving the block without an exception sends QUIT, which commits the deletions
"""

from __future__ import annotations

from types import TracebackType

from bridge.pop3.deletion import DeletionMixin
from bridge.pop3.login import LoginMixin
from bridge.pop3.retrieval import RetrievalMixin

__all__ = ["Pop3Client"]


class Pop3Client(LoginMixin, RetrievalMixin, DeletionMixin):
    """An asyncio POP3 client (RFC 1939, 2449, 2595, 5034).

    It returns typed values or raises errors from :mod:`bridge.errors`; it never retries or
    decides what a failure means for the mailbox. As an async context manager it connects on
    entry; on exit it sends ``QUIT`` (committing deletions) when the block succeeded, and drops
    the connection without ``QUIT`` (deleting nothing) when the block raised.
    """

    async def __aenter__(self) -> Pop3Client:
        if not self.connected:
            await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and self.connected:
            await self.quit()
        else:
            self.abort()
