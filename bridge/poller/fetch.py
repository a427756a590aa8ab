"""The fetch phase of a session: RETR in batches (pipelined, slow start), oversize and failed
retrievals held back, deliveries started as messages arrive, DELE after each batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

from bridge.errors import (
    LedgerError,
    Pop3Error,
    Pop3MessageTooLargeError,
    Pop3ResponseError,
    Pop3TimeoutError,
)
from bridge.identity import Message, can_top, retr_limit
from bridge.poller.deliver import _Deliver
from bridge.poller.model import LARGE_MESSAGE_BYTES, _Batch, _Fetched
from bridge.reconcile import proof_by_head


class _KeepAlive:
    """NOOP every ``keepalive_interval`` while webhooks are slow, so the server does not close
    an idle session. It is only ever stopped between NOOPs (a NOOP cancelled while its reply
    is due would close the connection), and a failed NOOP is logged, never raised: the next
    real command reports a broken connection anyway."""

    def __init__(self, session: _Fetch) -> None:
        self._session = session
        self._busy = asyncio.Lock()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        s = self._session
        client = s._client()
        while True:
            await s.p.clock.sleep(s.policy.keepalive_interval)
            if client.outstanding:
                # Replies are on their way: the session is not idle, and a NOOP queued behind
                # pipelined RETRs would read them all into memory ahead of the deliveries.
                continue
            async with self._busy:
                try:
                    await client.noop()
                except Pop3ResponseError as exc:
                    s.log.warning("noop_failed", error=str(exc))  # the session is still fine
                except (Pop3Error, OSError) as exc:
                    s.log.warning("noop_failed", error=str(exc))
                    return  # the connection is gone; the next command reports it

    async def stop(self) -> None:
        try:
            async with self._busy:  # never interrupt a NOOP whose reply is due
                self._task.cancel()
        finally:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # our own cancellation, not the keep-alive's


class _Fetch(_Deliver):
    """Fetching: RETR in batches within the session budget, overlapping the deliveries."""

    async def _deliver_pending(self, pending: Sequence[tuple[Message, tuple[str, ...]]]) -> None:
        """Fetch and deliver in batches; once deliveries run clean, the next batch's RETRs
        overlap the current batch's POSTs (at most two batches in memory)."""
        index = 0
        previous: _Batch | None = None
        self._deadline = self._started + self.policy.session_max_seconds
        keepalive = _KeepAlive(self)
        try:
            while index < len(pending):
                if self.stop.is_set() or self._strict_blocked or not self._budget_left():
                    self.result.more_pending = True
                    break
                if not self._ledger_writable():
                    self.result.more_pending = True
                    break
                batch, index = self._next_batch(pending, index)
                if not batch:
                    continue
                # A large message is fetched and delivered alone: memory stays near a few
                # times its size instead of adding a second batch on top.
                large = any(m.size >= LARGE_MESSAGE_BYTES for m, _ in batch)
                overlap = not self.policy.strict_order and self._clean_batches > 0 and not large
                if previous is not None and (large or not overlap):
                    await self._settle(previous)
                    previous = None
                current = await self._fetch(batch)
                if previous is not None:
                    await self._settle(previous)
                previous = current
                if not overlap:
                    previous = None
                    await self._settle(current)
            if previous is not None:
                await self._settle(previous)
        except asyncio.CancelledError:
            # Shutdown grace expired: stop the deliveries too. Their acknowledgements, if
            # any arrived, are in the ledger; nothing is deleted without QUIT.
            for task in self._tasks:
                task.cancel()
            raise
        finally:
            # On any other failure, deliveries already under way finish (each bounded by its
            # webhook timeout), so their acknowledgements land in the ledger and the next
            # session deletes the messages without posting them again.
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await keepalive.stop()

    def _next_batch(
        self, pending: Sequence[tuple[Message, tuple[str, ...]]], index: int
    ) -> tuple[list[tuple[Message, tuple[str, ...]]], int]:
        """The next batch within the window and byte cap, without targets whose breaker is
        open; returns it and the index after it."""
        blocked = self._open_targets()
        batch: list[tuple[Message, tuple[str, ...]]] = []
        batch_bytes = 0
        window = 1 if self.policy.strict_order else self._window
        while index < len(pending) and len(batch) < window:
            msg, due = pending[index]
            if batch and batch_bytes + msg.size > self.policy.batch_max_bytes:
                break
            due = tuple(t for t in due if t not in blocked)
            if not due:
                if self.policy.strict_order:
                    self._strict_blocked = True  # keep order: wait for the target to recover
                    break
                index += 1
                self.result.skipped += 1  # every target it waits for is failing
                continue
            index += 1
            batch.append((msg, due))
            batch_bytes += msg.size
            if len(batch) + self.result.fetched >= self.policy.session_max_messages:
                break
        return batch, index

    def _spawn(self, batch: _Batch, msg: Message, due: tuple[str, ...], data: _Fetched) -> None:
        task = asyncio.create_task(self._handle(batch, msg, due, data))
        batch.tasks.append(task)
        self._tasks.add(task)
        size = len(data.raw if data.raw is not None else data.head or b"")
        self._held += size
        self.result.peak_held_bytes = max(self.result.peak_held_bytes, self._held)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            self._held -= size

        task.add_done_callback(done)

    def _ledger_writable(self) -> bool:
        """Probe the ledger before fetching a batch: acknowledgements that cannot be written
        would make every session post the same batch again."""
        try:
            self.p.ledger.probe()
        except LedgerError as exc:
            self.p.metrics.ledger_write_failed(self.policy.name)
            self.result.ledger_error = str(exc)
            self.log.error("ledger_unwritable", error=str(exc), detail="fetching stopped")
            return False
        return True

    async def _fetch(self, batch: Sequence[tuple[Message, tuple[str, ...]]]) -> _Batch:
        """RETR (pipelined) a batch and start a delivery task per message as it arrives.

        Memory follows the bytes received, not what LIST claimed: before the next reply is
        read, the deliveries in flight must hold less than ``batch_max_bytes``, so a large
        message (or a server that understates sizes) is delivered before the next is read.
        """
        limit = self.policy.max_message_bytes
        started = _Batch()
        regular: list[tuple[Message, tuple[str, ...]]] = []
        whole: list[tuple[Message, tuple[str, ...], int]] = []
        heads: dict[int, bytes] = {}
        for msg, due in batch:
            ack = self._expected.get(msg.uid)
            over = msg.size > limit
            if proof_by_head(msg, ack, limit) and over:
                await self._oversize(started, msg, due)  # in order, also in strict mode
                if self.policy.strict_order:
                    await asyncio.gather(*started.tasks)
                continue
            if proof_by_head(msg, ack, limit) or (over and ack is not None):
                # Acknowledged by a target before the limit changed: headers-only (raised
                # since) or whole (lowered since). If it is that message the others get what
                # the first got (one content per webhook-id): its header block is read for
                # the proof, and it is retrieved whole up to the size acknowledged. If it is
                # another message, it is new, and goes by today's limit (deliver.py).
                if can_top(self._client()) and (not over or self.policy.oversize_policy != "park"):
                    head = await self._top(msg, due)
                    if head is None:
                        continue
                    heads[msg.num] = head
                if over and ack is not None:
                    whole.append((msg, due, retr_limit(max(limit, ack.raw_size or 0))))
                    continue
            regular.append((msg, due))
        # LIST sizes can be a little off (line ends): allow some slack before calling a
        # message too large, and park it if RETR still passes the limit.
        passes = [(regular, retr_limit(limit))] + [([(m, d)], cap) for m, d, cap in whole]
        for group, cap in passes:
            if group and not await self._retr(started, group, cap, heads):
                break
        return started

    async def _retr(
        self,
        started: _Batch,
        regular: Sequence[tuple[Message, tuple[str, ...]]],
        cap: int,
        heads: dict[int, bytes],
    ) -> bool:
        """RETR ``regular`` (pipelined, each up to ``cap`` octets) and start their deliveries
        (with the header block read before for a proof, if any); False when the session
        stopped early (budget, SIGTERM, strict order)."""
        client = self._client()
        by_num = {m.num: (m, d) for m, d in regular}
        order = iter(regular)
        go_on = True
        items = client.retr_each([m.num for m, _ in regular], max_bytes=cap)
        try:
            async for num, item in items:
                msg, due = by_num[num]
                next(order)
                if isinstance(item, Pop3Error):
                    self._retr_failed(msg, due, item)
                    started.failed = True
                else:
                    self.result.fetched += 1
                    self.result.fetched_bytes += len(item)
                    self.p.metrics.message_fetched(self.policy.name)
                    self._spawn(started, msg, due, _Fetched(raw=item, head=heads.get(num)))
                    del item
                if self.policy.strict_order:
                    if started.tasks:
                        await started.tasks[-1]
                    if self._strict_blocked:
                        go_on = False
                        break
                if not self._budget_left() or self.stop.is_set():
                    # A hard deadline also inside a batch: nothing more is started; replies
                    # already on their way are read and dropped by the next command.
                    self.result.more_pending = True
                    go_on = False
                    break
                await self._room()
        except Pop3Error as exc:
            # A RETR that timed out (read here, or by another command reading on its behalf,
            # which then finds the connection closed by the timeout) parks its message.
            timeout = exc if isinstance(exc, Pop3TimeoutError) else client.failure
            if not isinstance(timeout, Pop3TimeoutError):
                raise
            stuck = next(order, None)
            if stuck is not None:
                self._timed_out = stuck[0]
                self._retr_failed(stuck[0], stuck[1], None)
            if timeout is exc:
                raise
            raise timeout from exc
        finally:
            await items.aclose()  # type: ignore[attr-defined]  # an async generator
        # Stopped early (budget, SIGTERM, strict order): the RETRs already sent are read and
        # dropped now, under the transfer bounds, not inside the next DELE's timeout.
        await client.discard_outstanding()
        return go_on

    async def _room(self) -> None:
        """Wait until the deliveries in flight hold less than ``batch_max_bytes``."""
        while self._held >= self.policy.batch_max_bytes and self._tasks:
            await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)

    def _retr_failed(self, msg: Message, due: tuple[str, ...], error: Pop3Error | None) -> None:
        """Park a message whose RETR failed (``error`` None: it timed out) with a short,
        growing backoff; the session goes on without it."""
        mailbox = self.policy.name
        if isinstance(error, Pop3MessageTooLargeError):
            reason: Literal["refused", "too_large", "timeout"] = "too_large"
            self.result.oversize += 1
            self.p.metrics.message_oversize(mailbox)
            why = f"RETR of message {msg.num} passed the size limit ({error.limit} octets)"
        elif error is None:
            reason = "timeout"
            why = f"retrieval of message {msg.num} timed out (idle, or below min_transfer_rate)"
        else:
            reason = "refused"
            self.p.metrics.pop3_error_response(mailbox, getattr(error, "code", None))
            why = f"RETR of message {msg.num} refused: {getattr(error, 'text', '') or error}"
        self.result.retr_failed += 1
        self.p.metrics.retr_failed(mailbox, reason)
        until = self.p.ledger.mark_retr_failed(
            mailbox, msg.uid, due, why, backoff_base=self.policy.retr_retry_base
        )
        self.log.warning(
            "retr_failed", uidl=msg.uid, size=msg.size, reason=reason, error=why, retry_at=until
        )
        if self.policy.strict_order:
            self._strict_blocked = True

    async def _settle(self, batch: _Batch) -> None:
        """Wait for a batch's deliveries, adapt the window, and DELE what they acknowledged."""
        await asyncio.gather(*batch.tasks, return_exceptions=True)
        errors = [e for t in batch.tasks if (e := t.exception()) is not None]
        for extra in errors[1:]:
            self.log.error("delivery_failed_unexpectedly", error=repr(extra))
        if errors:
            raise errors[0]
        if batch.failed:
            self._clean_batches = 0
            self._window = 1
        else:
            self._clean_batches += 1
            self._window = min(self._window * 2, self.policy.retr_window)
        done, self.to_delete = self.to_delete, []
        await self._dele(done)

    async def _top(self, msg: Message, due: tuple[str, ...]) -> bytes | None:
        """``TOP n 0``; None when it was refused or timed out: the message is held back like
        a failed RETR (a timeout then closes the connection, and the session goes on with
        the others on a new one)."""
        client = self._client()
        try:
            return await client.top(msg.num, 0)
        except Pop3ResponseError as exc:
            self._retr_failed(msg, due, exc)  # refused now: the others go on
            return None
        except Pop3Error as exc:
            timeout = exc if isinstance(exc, Pop3TimeoutError) else client.failure
            if not isinstance(timeout, Pop3TimeoutError):
                raise
            self._timed_out = msg
            self._retr_failed(msg, due, None)
            if timeout is exc:
                raise
            raise timeout from exc

    async def _oversize(self, batch: _Batch, msg: Message, due: tuple[str, ...]) -> None:
        reason = self._oversize_reason(msg)
        if self.policy.oversize_policy == "park" or not can_top(self._client()):
            self._park_oversize(msg, due, reason)  # headers_only needs TOP (never unlisted)
            return
        self.result.oversize += 1
        self.p.metrics.message_oversize(self.policy.name)
        head = await self._top(msg, due)
        if head is None:
            return
        self.result.fetched += 1
        self.result.fetched_bytes += len(head)
        self.p.metrics.message_fetched(self.policy.name)
        self._spawn(batch, msg, due, _Fetched(head=head, reason=reason))
