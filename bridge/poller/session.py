"""A mailbox's :class:`Poller` and its session: connect, inventory (STAT, LIST, UIDL), reconcile,
deliver, QUIT; a new connection after a RETR timed out."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from bridge.attachments import ClaimCheck
from bridge.clock import Clock, SystemClock
from bridge.deadletter import DeadLetterStore
from bridge.errors import Pop3InUseError, Pop3ResponseError, Pop3TimeoutError
from bridge.identity import Message, take_inventory
from bridge.keep import same_listing
from bridge.ledger import Ledger, Row, RowState, identity_base
from bridge.poller.model import (
    MAX_RECONNECTS,
    ClientFactory,
    MailboxPolicy,
    SessionMetrics,
    SessionResult,
)
from bridge.poller.proof import _Prove
from bridge.pop3 import Pop3Client
from bridge.reconcile import acknowledged
from bridge.webhook import WebhookClient, WebhookTarget


class Poller:
    """Runs sessions for one mailbox. Not re-entrant: one session at a time per mailbox."""

    def __init__(
        self,
        policy: MailboxPolicy,
        *,
        open_client: ClientFactory,
        ledger: Ledger,
        webhooks: WebhookClient,
        targets: Mapping[str, WebhookTarget],
        deadletters: DeadLetterStore,
        metrics: SessionMetrics,
        clock: Clock | None = None,
        claim_check: ClaimCheck | None = None,
    ) -> None:
        missing = [t for t in policy.targets if t not in targets]
        if missing:
            raise ValueError(f"mailbox {policy.name!r} names unknown webhook targets {missing}")
        self.policy = policy
        self.open_client = open_client
        self.ledger = ledger
        self.webhooks = webhooks
        self.targets = targets
        self.deadletters = deadletters
        self.metrics = metrics
        self.clock = clock or SystemClock()
        self.claim_check = claim_check  # attachments by reference; None: no content store
        self._lock = asyncio.Lock()
        self.unverifiable: dict[str, float] = {}
        """Messages whose proof retrieval failed: uid -> monotonic time to try again."""

    @property
    def name(self) -> str:
        return self.policy.name

    async def run_session(self, stop: asyncio.Event | None = None) -> SessionResult:
        """One POP3 session; raises the client's typed errors when the session fails early."""
        if self._lock.locked():
            raise RuntimeError(f"mailbox {self.name!r} already has a session running")
        async with self._lock:
            return await _Session(self, stop or asyncio.Event()).run()


class _Session(_Prove):
    """One session: connect, take the inventory, reconcile, deliver, commit."""

    async def run(self) -> SessionResult:
        clock = self.p.clock
        self._started = clock.monotonic()
        try:
            while True:
                try:
                    await self._connection()
                    break
                except Pop3TimeoutError:
                    # The message whose RETR was too slow is parked: go on with the others on
                    # a new connection (this one cannot be trusted with a reply half read).
                    # Its acknowledged deletions are reconciled there, then committed by QUIT.
                    if (
                        self._timed_out is None
                        or self.result.reconnects >= MAX_RECONNECTS
                        or self.stop.is_set()
                        or not self._budget_left()
                    ):
                        raise
                    self.result.reconnects += 1
                    self.log.warning(
                        "reconnecting", after="RETR timed out", uidl=self._timed_out.uid
                    )
                    self._connection_state()
        except Pop3ResponseError as exc:
            self.p.metrics.pop3_error_response(self.policy.name, exc.code)
            raise
        finally:
            self.result.duration = clock.monotonic() - self._started
        return self.result

    async def _connection(self) -> None:
        if self.result.reconnects:
            self.client = await self._reopen()
        else:
            self.client = await self.p.open_client()
        try:
            await self._transaction()
            await self._quit()
        finally:
            await self.client.close()

    async def _reopen(self) -> Pop3Client:
        """Log in again after a RETR timeout; the server may not have noticed yet that the
        old connection is gone and answer [IN-USE] for a moment."""
        for wait in (1.0, 2.0, 4.0, None):
            try:
                return await self.p.open_client()
            except Pop3InUseError:
                if wait is None:
                    raise
                await self.p.clock.sleep(wait)
        raise AssertionError("unreachable")

    async def _transaction(self) -> None:
        client = self._client()
        mailbox = self.policy.name
        ledger = self.p.ledger
        stat = await client.stat()
        self.result.stat_messages, self.result.stat_bytes = stat.count, stat.size
        if not self.policy.keep:  # with keep, once the kept messages are known (below)
            self.p.metrics.mailbox_stat(mailbox, stat.count, stat.size)
        ledger.forget_targets(mailbox, self.policy.targets)
        # LIST and UIDL are the truth, never STAT: a server whose STAT says 0 while LIST
        # shows messages must not make the ledger forget acknowledged, uncommitted rows.
        known = ledger.rows(mailbox)
        found = await take_inventory(
            client,
            mailbox=mailbox,
            known=known,
            max_message_bytes=self.policy.max_message_bytes,
        )
        if found.uidl_refused is not None:
            self.p.metrics.pop3_error_response(mailbox, found.uidl_refused.code)
            self.log.warning("uidl_unsupported", detail="using a hash of the headers")
        elif found.uidl_missing:
            self.log.info("uidl_not_offered", detail="using a hash of the headers")
        if found.problems:
            self.result.identity_problems.extend(found.problems)
            self.p.metrics.identity_problem(mailbox, "duplicate", len(found.problems))
            self.log.warning("uidl_problems", problems=found.problems[:10])
        self.result.on_server = max(stat.count, len(found.messages) + found.unidentified)
        self._check_stability(known, found.listed)
        inventory = await self._prove(found.messages, known)
        if not found.unidentified:  # a message without identity now may have rows to keep
            ledger.prune(mailbox, {m.uid for m in inventory} | found.listed | self._retain)
        rows = ledger.rows(mailbox)
        now = self.p.clock.time()

        pending: list[tuple[Message, tuple[str, ...]]] = []
        new: list[Message] = []
        held_back = False
        kept_bytes = 0
        self.result.kept = 0
        for msg in inventory:
            if msg.num in self._deferred:
                # Its proof is still to come: neither posted nor deleted (nor recorded as
                # seen, which would make a moved message look new next time). One every
                # target acknowledged is delivered already: strict_order holds nothing for it.
                self.result.skipped += 1
                was = known.get(msg.uid, {})
                delivered = same_listing(was, msg.size) and all(
                    t in was and was[t].done for t in self.policy.targets
                )
                held_back = held_back or (self.policy.strict_order and not delivered)
                continue
            targets = rows.get(msg.uid, {})
            acked = any(r.done for r in targets.values())
            if targets and not acked and not same_listing(targets, msg.size):
                # Nothing acknowledged under it yet: it stands for the message listed now.
                ledger.mark_resized(mailbox, msg.uid, msg.size)
                targets = ledger.rows_for(mailbox, msg.uid)
            if any(t not in targets for t in self.policy.targets):
                new.append(msg)  # never seen, or a target was added to the config since
            waiting = tuple(
                t for t in self.policy.targets if t not in targets or not targets[t].done
            )
            if not waiting:
                if msg.uid in self._kept or self._holds(targets, now):
                    # Delivered before and kept on the server: neither posted nor deleted.
                    self.result.kept += 1
                    kept_bytes += msg.size
                    continue
                # Every target acknowledged this very content (proven above) in an earlier
                # session that did not commit, or keep_days passed: delete it now, without
                # posting again.
                self.to_delete.append(msg)
                continue
            due = tuple(t for t in waiting if t not in targets or targets[t].due(now))
            if not due or held_back:
                self.result.skipped += 1
                # strict_order: nothing after a message that waits goes before it
                held_back = held_back or self.policy.strict_order
                continue
            pending.append((msg, due))
            self._waiting[msg.uid] = waiting
            self._refused[msg.uid] = {
                t
                for t in waiting
                if t in targets and targets[t].state == RowState.PARKED and targets[t].refused
            }
            if len(waiting) < len(self.policy.targets) or self._renamed(msg):
                # Some target acknowledged it before, or it was taken for a message told
                # apart by content earlier without a download: check it is that message.
                self._expected[msg.uid] = acknowledged(targets)
        if new:
            ledger.mark_seen(
                mailbox,
                [(m.uid, m.webhook_id, m.size) for m in new],
                self.policy.targets,
                now,
            )
        if self.policy.keep:
            # Kept messages are delivered: the backlog gauge counts only the others (of what
            # LIST showed: a STAT that says less must not hide them).
            listed_bytes = sum(m.size for m in found.messages)
            self.p.metrics.mailbox_stat(
                mailbox,
                max(0, self.result.on_server - self.result.kept),
                max(0, max(stat.size, listed_bytes) - kept_bytes),
            )
        self.result.reconciled += len(self.to_delete)
        if self.to_delete:
            self.log.info("reconcile", deleting=len(self.to_delete))
            done, self.to_delete = self.to_delete, []
            await self._dele(done)
        self._report_backlog()
        await self._deliver_pending(pending)

    def _check_stability(self, known: dict[str, dict[str, Row]], listed: set[str]) -> None:
        """Warn when no listed identity is one the ledger expects on the server: UIDLs that
        change every session make a repost carry a new webhook-id (receivers cannot dedupe)."""
        expected = {
            identity_base(uid)
            for uid, rows in known.items()
            if all(r.committed_at is None for r in rows.values())
        }
        if expected and listed and not expected & listed:
            self.p.metrics.identity_problem(self.policy.name, "unstable_uidl")
            self.log.warning(
                "uidl_unstable",
                detail="no UIDL the server lists now is one it listed before for messages "
                "still on it: UIDLs that change between sessions defeat duplicate detection "
                "(check the server's UIDL settings, e.g. Dovecot pop3_uidl_format)",
                expected=len(expected),
                listed=len(listed),
            )
