"""One mailbox's POP3 session: the only place that decides retry, park or delete.

A session (see ../DESIGN.md, "The delivery ledger"):

1. open a logged-in client (the caller's factory), STAT, UIDL and LIST;
2. reconcile: messages every target already acknowledged are deleted without posting again,
   once their content is proven to be what was acknowledged (:mod:`bridge.reconcile`; no
   proof: a new message), ledger rows whose UIDL is gone are pruned, parked messages whose
   time has not come are skipped;
3. new messages oldest first, in batches within the session budget: RETR (pipelined),
   parse, POST to every target that has not acknowledged yet; when all have, the
   acknowledgement (with the message's size and SHA-256) is made durable and only then is
   DELE sent. A message whose RETR fails (-ERR, too large, too slow) is parked with a short,
   growing backoff and the session goes on; memory follows the bytes received, not LIST;
4. QUIT. Only its ``+OK`` commits the deletions.

The poller never parses bytes (that is :mod:`bridge.mime`) and never speaks HTTP (that is
:mod:`bridge.webhook`); it decides what their results mean for the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

import structlog

from bridge.attachments import ClaimCheck
from bridge.clock import Clock, SystemClock, sleep_unless
from bridge.deadletter import DeadLetterStore
from bridge.errors import (
    AttachmentStoreError,
    BridgeError,
    LedgerError,
    Pop3Error,
    Pop3InUseError,
    Pop3MessageTooLargeError,
    Pop3ResponseError,
    Pop3TimeoutError,
)
from bridge.identity import (
    Message,
    can_top,
    content_key,
    key_base,
    retr_limit,
    take_inventory,
)
from bridge.keep import held, same_listing
from bridge.ledger import Content, Ledger, Row, RowState, identity_base
from bridge.mime import (
    INLINE_PARSE_MAX_BYTES,
    Payload,
    PayloadOptions,
    build_headers_only_payload,
    build_payload,
    payload_json,
)
from bridge.pop3 import Pop3Client
from bridge.reconcile import HEAD_PREFIX, Acknowledged, acknowledged, content_digest, verify
from bridge.webhook import (
    DeliveryKind,
    DeliveryOutcome,
    ReferenceBody,
    WebhookClient,
    WebhookTarget,
    webhook_id,
)

log = structlog.get_logger("bridge.poller")

PARSE_IN_THREAD_BYTES = INLINE_PARSE_MAX_BYTES  # larger messages are parsed off the event loop
SLOW_START_WINDOW = 4  # messages in the first RETR batch of a session
LARGE_MESSAGE_BYTES = 1024 * 1024  # messages at least this big are parsed and posted one at a time
MAX_RECONNECTS = 3  # new connections in one session after a RETR timeout parked a message
_MAY_WAIT = (DeliveryKind.CIRCUIT_OPEN, DeliveryKind.TRANSIENT)  # may wait for a breaker trial


class SessionMetrics(Protocol):
    """What a session reports; :class:`bridge.metrics.Metrics` implements it."""

    def mailbox_stat(self, mailbox: str, messages: int, size_bytes: int) -> None: ...
    def message_fetched(self, mailbox: str, count: int = 1) -> None: ...
    def message_delivered(self, mailbox: str, target: str) -> None: ...
    def message_rejected(self, mailbox: str, target: str) -> None: ...
    def delivery_failed(
        self, mailbox: str, target: str, reason: Literal["transient", "rejected", "circuit_open"]
    ) -> None: ...
    def message_dead_lettered(self, mailbox: str) -> None: ...
    def message_oversize(self, mailbox: str) -> None: ...
    def parse_defects_found(self, mailbox: str, count: int) -> None: ...
    def messages_deleted_committed(self, mailbox: str, count: int) -> None: ...
    def commit_failed(self, mailbox: str, command: Literal["DELE", "QUIT"]) -> None: ...
    def pop3_error_response(self, mailbox: str, code: str | None) -> None: ...
    def set_oldest_undelivered(self, mailbox: str, first_seen: float | None) -> None: ...
    def set_parked(self, mailbox: str, count: int) -> None: ...
    def identity_problem(
        self,
        mailbox: str,
        kind: Literal["reused", "moved", "unstable_uidl", "duplicate"],
        count: int = 1,
    ) -> None: ...
    def retr_failed(
        self, mailbox: str, reason: Literal["refused", "too_large", "timeout"]
    ) -> None: ...
    def ledger_write_failed(self, mailbox: str) -> None: ...


@dataclass(frozen=True)
class MailboxPolicy:
    """What the poller needs to know about one mailbox (built from config by the app)."""

    name: str
    targets: tuple[str, ...]
    max_message_bytes: int = 50 * 1024 * 1024
    oversize_policy: Literal["park", "headers_only"] = "park"
    reject_policy: Literal["park", "dead_letter"] = "park"
    session_max_messages: int = 500
    session_max_bytes: int = 512 * 1024 * 1024
    session_max_seconds: float = 300.0
    delivery_concurrency: int = 4
    strict_order: bool = False
    retr_window: int = 32
    batch_max_bytes: int = 2 * 1024 * 1024
    keepalive_interval: float = 30.0
    oversize_park_delay: float = 24 * 3600.0
    retr_retry_base: float = 120.0
    """First wait after a failed RETR (doubling with each failure, capped by the ledger)."""
    keep: bool = False
    """Never DELE a delivered message (:mod:`bridge.keep`); the ledger remembers it."""
    keep_days: int | None = None
    """With ``keep``: DELE a delivered message this many days after its acknowledgement."""
    payload_options: PayloadOptions = field(default_factory=PayloadOptions)


@dataclass
class SessionResult:
    """What one session did; ``committed`` is True only after QUIT's ``+OK``."""

    mailbox: str
    stat_messages: int = 0
    stat_bytes: int = 0
    on_server: int = 0
    """Messages on the server at the start: what LIST showed (STAT when it said more)."""
    fetched: int = 0
    fetched_bytes: int = 0
    delivered: int = 0
    reconciled: int = 0
    deleted: int = 0
    rejected: int = 0
    transient: int = 0
    dead_lettered: int = 0
    oversize: int = 0
    retr_failed: int = 0
    reused_identities: int = 0
    moved_identities: int = 0
    """Messages proven (by content) to be ones delivered under another identity."""
    skipped: int = 0
    kept: int = 0
    """Delivered messages left on the server by ``keep`` (listed now, or delivered since)."""
    more_pending: bool = False
    committed: bool = False
    commit_errors: list[str] = field(default_factory=list)
    identity_problems: list[str] = field(default_factory=list)
    ledger_error: str | None = None
    """Why the ledger could not be written (fetching stopped), or None."""
    reconnects: int = 0
    peak_held_bytes: int = 0
    """Most bytes of retrieved messages held at once (deliveries not finished)."""
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the session committed and nothing failed to deliver or delete."""
        return self.committed and not self.commit_errors and self.transient == 0


ClientFactory = Callable[[], Awaitable[Pop3Client]]


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
        """Acknowledged messages whose proof timed out: uid -> monotonic time to try again."""

    @property
    def name(self) -> str:
        return self.policy.name

    async def run_session(self, stop: asyncio.Event | None = None) -> SessionResult:
        """One POP3 session; raises the client's typed errors when the session fails early."""
        if self._lock.locked():
            raise RuntimeError(f"mailbox {self.name!r} already has a session running")
        async with self._lock:
            return await _Session(self, stop or asyncio.Event()).run()


@dataclass
class _Fetched:
    """What was retrieved for one message; ``raw`` is dropped as soon as it is not needed."""

    raw: bytes | None = None
    head: bytes | None = None
    reason: str = ""
    content: Content | None = None
    """``(size, sha256)`` of what is posted: the proof a later reconcile DELE needs."""
    body: bytes | None = None
    """The JSON as POSTed, kept only while it may become a dead letter (for replay)."""
    acked_early: frozenset[str] | set[str] = frozenset()
    """Targets whose acknowledgement was written before another target's breaker wait."""


@dataclass
class _Batch:
    """The delivery tasks started for one RETR batch, and whether any failed for now."""

    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    failed: bool = False


class _KeepAlive:
    """NOOP every ``keepalive_interval`` while webhooks are slow, so the server does not close
    an idle session. It is only ever stopped between NOOPs (a NOOP cancelled while its reply
    is due would close the connection), and a failed NOOP is logged, never raised: the next
    real command reports a broken connection anyway."""

    def __init__(self, session: _Session) -> None:
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


class _Session:
    """The state of one session; one POP3 connection (a new one after a RETR timed out)."""

    def __init__(self, poller: Poller, stop: asyncio.Event) -> None:
        self.p = poller
        self.policy = poller.policy
        self.stop = stop
        self.result = SessionResult(mailbox=poller.policy.name)
        self.log = log.bind(mailbox=self.policy.name)
        self._semaphore = asyncio.Semaphore(max(1, self.policy.delivery_concurrency))
        self._large = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()  # every delivery still running
        self._held = 0  # bytes of retrieved messages whose delivery has not finished
        self._started = 0.0
        self._connection_state()

    def _connection_state(self) -> None:
        """Reset what lives as long as one connection."""
        self.client: Pop3Client | None = None
        self.to_delete: list[Message] = []
        self.deleted_uids: list[str] = []
        self._strict_blocked = False
        # Slow start: a few messages first, doubling while deliveries succeed, back to one
        # on a failure, so a receiver that is down costs few downloads before its breaker opens.
        self._window = min(SLOW_START_WINDOW, self.policy.retr_window)
        self._clean_batches = 0
        self._waiting: dict[str, tuple[str, ...]] = {}  # uid -> targets not done at start
        self._refused: dict[str, set[str]] = {}  # uid -> targets that had rejected it before
        self._expected: dict[str, Acknowledged | None] = {}  # uid -> what some target acked
        self._kept: set[str] = set()  # delivered messages keep leaves alone (not proven now)
        self._timed_out: Message | None = None  # the message whose RETR timed out
        self._deadline = float("inf")  # monotonic end of the session's time budget
        self._posting = 0  # deliveries whose POSTs are under way
        self._idle = asyncio.Event()  # set while no POST is under way
        self._idle.set()

    # ------------------------------------------------------------------ the session

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
            ledger.prune(mailbox, {m.uid for m in inventory} | found.listed)
        rows = ledger.rows(mailbox)
        now = self.p.clock.time()

        pending: list[tuple[Message, tuple[str, ...]]] = []
        new: list[Message] = []
        held_back = False
        kept_bytes = 0
        self.result.kept = 0
        for msg in inventory:
            targets = rows.get(msg.uid, {})
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
            if len(waiting) < len(self.policy.targets):
                # Some target acknowledged it before: check it is still that message.
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

    def _holds(self, rows: Mapping[str, Row], now: float) -> bool:
        """True while keep leaves this delivered message on the server."""
        return held(rows, now, keep=self.policy.keep, keep_days=self.policy.keep_days)

    def _keep_apart(
        self,
        candidates: list[tuple[Message, Acknowledged | None]],
        known: dict[str, dict[str, Row]],
        renamed: dict[int, Message],
    ) -> list[tuple[Message, Acknowledged | None]]:
        """With keep: the candidates to prove now. A kept message listed at its first size is
        left alone (no RETR at every poll). One listed with another size names another message
        now: if exactly one message told apart by content under this identity was delivered at
        this size (an earlier session proved it), it is that one, kept as well (``renamed``);
        otherwise it is proven (and so posted as new). Messages whose keep_days passed are
        proven for DELE (within the session's budget, :meth:`_prove`)."""
        now = self.p.clock.time()
        prove: list[tuple[Message, Acknowledged | None]] = []
        for msg, ack in candidates:
            rows = known[msg.uid]
            if not self._holds(rows, now):
                prove.append((msg, ack))
            elif same_listing(rows, msg.size):
                self._kept.add(msg.uid)
            elif (twin := self._kept_twin(msg, known, now)) is not None:
                renamed[msg.num] = twin
                self._kept.add(twin.uid)
            else:
                prove.append((msg, ack))
        return prove

    def _kept_twin(
        self, msg: Message, known: dict[str, dict[str, Row]], now: float
    ) -> Message | None:
        """The one kept content identity ``<uid>~<hash>`` delivered at ``msg``'s size, if any."""
        base = key_base(msg.uid)
        twins = [
            key
            for key, rows in known.items()
            if key != msg.uid
            and identity_base(key) == base
            and all(r.done for r in rows.values())
            and same_listing(rows, msg.size)
            and self._holds(rows, now)
        ]
        if len(twins) != 1:
            return None
        key = twins[0]
        return Message(
            num=msg.num, uid=key, size=msg.size, webhook_id=webhook_id(self.policy.name, key)
        )

    def _spare(
        self, inventory: list[Message], known: dict[str, dict[str, Row]]
    ) -> dict[str, tuple[str, int]]:
        """Delivered messages no listed identity accounts for: ``{content hash: (identity,
        listed size)}`` of every done identity not listed now at its size and never deleted by
        a committed session. A message listed under a new identity with that content is the
        one delivered (a UIDL that moved: positional UIDLs, a rebuilt UID list, a look-alike
        twin that left): :meth:`_prove` adopts its delivery instead of posting it again."""
        listed = {m.uid: m.size for m in inventory}
        spare: dict[str, tuple[str, int]] = {}
        for uid, rows in known.items():
            if uid in listed and same_listing(rows, listed[uid]):
                continue
            if any(r.committed_at is not None for r in rows.values()):
                continue
            ack = acknowledged(rows)
            if ack is None or ack.sha256 is None or ack.listed_size is None:
                continue
            if not all(t in rows for t in self.policy.targets):
                continue
            spare.setdefault(ack.sha256, (uid, ack.listed_size))
        return spare

    def _over_budget(
        self, checks: list[tuple[Message, Acknowledged | None]]
    ) -> tuple[list[tuple[Message, Acknowledged | None]], list[Message]]:
        """Split the messages to retrieve for proof by the session's message and byte budget:
        ``(now, later)``. A delivered message left for later is kept one more session (keep);
        any other waits, neither posted nor deleted; the next session starts at once."""
        now: list[tuple[Message, Acknowledged | None]] = []
        later: list[Message] = []
        size = 0
        for msg, ack in checks:
            if now and (
                len(now) >= self.policy.session_max_messages
                or size + msg.size > self.policy.session_max_bytes
            ):
                later.append(msg)
                continue
            now.append((msg, ack))
            size += msg.size
        if later:
            self.result.more_pending = True
        return now, later

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

    async def _prove(
        self, inventory: list[Message], known: dict[str, dict[str, Row]]
    ) -> list[Message]:
        """Check the messages every target acknowledged before (reconcile candidates) against
        what was acknowledged; the unproven become new messages (see :mod:`bridge.reconcile`).
        A new identity with the size of a delivered message no identity accounts for is
        retrieved too: with that content, it is that message under a moved UIDL, and its
        delivery is adopted instead of posting it again."""
        targets = self.policy.targets
        mono = self.p.clock.monotonic()
        later = {uid for uid, until in self.p.unverifiable.items() if until > mono}
        candidates = [
            (m, acknowledged(known[m.uid]))
            for m in inventory
            if m.uid in known
            and m.uid not in later
            and all(t in known[m.uid] and known[m.uid][t].done for t in targets)
        ]
        held_back = [m for m in inventory if m.uid in later]
        if held_back:
            self.result.skipped += len(held_back)
            inventory = [m for m in inventory if m.uid not in later]
        replaced: dict[int, Message] = {}
        if self.policy.keep:
            candidates = self._keep_apart(candidates, known, replaced)
        spare = self._spare(inventory, known)
        sizes = {size for _, size in spare.values()}
        lookalikes = {m.num for m in inventory if m.uid not in known and m.size in sizes}
        checks = candidates + [(m, None) for m in inventory if m.num in lookalikes]
        checks, waiting = self._over_budget(checks)
        dropped: set[int] = set()
        for msg in waiting:
            if msg.num not in lookalikes and self.policy.keep:
                self._kept.add(msg.uid)  # delivered: kept one more session, proven then
            else:
                dropped.add(msg.num)
                self.result.skipped += 1
        if not checks:
            return [replaced.get(m.num, m) for m in inventory if m.num not in dropped]
        verdict = await verify(
            self._client(),
            mailbox=self.policy.name,
            candidates=checks,
            max_message_bytes=self.policy.max_message_bytes,
        )
        if verdict.timed_out is not None:
            # Its proof could not be retrieved in time: leave it alone for a while (it stays
            # on the server, nothing is posted), reconnect and go on with the others.
            stuck = verdict.timed_out
            self.p.unverifiable[stuck.uid] = mono + self.policy.retr_retry_base
            self._timed_out = stuck
            self.result.retr_failed += 1
            self.p.metrics.retr_failed(self.policy.name, "timeout")
            self.log.warning("reconcile_timed_out", uidl=stuck.uid)
            failure = self._client().failure
            assert isinstance(failure, Pop3TimeoutError)
            raise failure
        for msg in verdict.proven:
            spare.pop(verdict.digests[msg.num], None)  # accounted for by its own identity
        for old, new in verdict.renamed:
            moved = spare.get(verdict.digests[old.num])
            if moved is not None and moved[1] == old.size:
                del spare[verdict.digests[old.num]]
                replaced[old.num] = self._adopt(old if old.num in lookalikes else new, moved[0])
                continue
            if old.num in lookalikes:
                continue  # another message: posted under the identity it is listed with
            replaced[old.num] = new
            self.result.reused_identities += 1
            self.p.metrics.identity_problem(self.policy.name, "reused")
            self.log.warning(
                "identity_reused",
                uidl=old.uid,
                new_identity=new.uid,
                detail="the message listed under this identity is not the one acknowledged "
                "under it: posted as a new message, not deleted",
            )
        gone = {msg.num for msg, _ in verdict.unreadable} | dropped
        for msg, error in verdict.unreadable:
            self.result.skipped += 1
            self.log.warning("reconcile_unreadable", uidl=msg.uid, error=str(error))
        return [replaced.get(m.num, m) for m in inventory if m.num not in gone]

    def _adopt(self, msg: Message, source: str) -> Message:
        """``msg`` is proven to be the message delivered as ``source``: record it as such."""
        self.p.ledger.adopt(self.policy.name, source, msg.uid, msg.webhook_id, msg.size)
        self.result.moved_identities += 1
        self.p.metrics.identity_problem(self.policy.name, "moved")
        self.log.warning(
            "identity_moved",
            uidl=msg.uid,
            delivered_as=source,
            detail="this message was delivered before under another identity (UIDLs that "
            "moved: positional UIDLs, a rebuilt UID list): not posted again",
        )
        return msg

    def _client(self) -> Pop3Client:
        assert self.client is not None
        return self.client

    # ------------------------------------------------------------------ delivery

    def _budget_left(self) -> bool:
        r, p = self.result, self.policy
        return (
            r.fetched < p.session_max_messages
            and r.fetched_bytes < p.session_max_bytes
            and self.p.clock.monotonic() - self._started < p.session_max_seconds
        )

    def _open_targets(self) -> set[str]:
        return {t for t in self.policy.targets if self.p.webhooks.is_open(t)}

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
        client = self._client()
        limit = self.policy.max_message_bytes
        started = _Batch()
        regular: list[tuple[Message, tuple[str, ...]]] = []
        for msg, due in batch:
            if msg.size > limit:
                await self._oversize(started, msg, due)  # in order, also in strict mode
                if self.policy.strict_order:
                    await asyncio.gather(*started.tasks)
            else:
                regular.append((msg, due))
        if not regular:
            return started
        by_num = {m.num: (m, d) for m, d in regular}
        order = iter(regular)
        # LIST sizes can be a little off (line ends): allow some slack before calling a
        # message too large, and park it if RETR still passes the limit.
        items = client.retr_each([m.num for m, _ in regular], max_bytes=retr_limit(limit))
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
                    self._spawn(started, msg, due, _Fetched(raw=item))
                    del item
                if self.policy.strict_order:
                    if started.tasks:
                        await started.tasks[-1]
                    if self._strict_blocked:
                        break
                if not self._budget_left() or self.stop.is_set():
                    # A hard deadline also inside a batch: nothing more is started; replies
                    # already on their way are read and dropped by the next command.
                    self.result.more_pending = True
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
        return started

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
            why = f"RETR of message {msg.num} timed out (idle, or below min_transfer_rate)"
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

    def _park_oversize(self, msg: Message, due: tuple[str, ...], reason: str) -> None:
        mailbox = self.policy.name
        self.result.oversize += 1
        self.p.metrics.message_oversize(mailbox)
        until = self.p.clock.time() + self.policy.oversize_park_delay
        for target in due:
            self.p.ledger.mark_parked(mailbox, msg.uid, target, reason, until, refused=False)
        self.log.warning("oversize_parked", uidl=msg.uid, size=msg.size, reason=reason)
        if self.policy.strict_order:
            self._strict_blocked = True

    async def _oversize(self, batch: _Batch, msg: Message, due: tuple[str, ...]) -> None:
        limit = self.policy.max_message_bytes
        reason = f"message is {msg.size} bytes, over max_message_bytes={limit}"
        if self.policy.oversize_policy == "park" or not can_top(self._client()):
            self._park_oversize(msg, due, reason)  # headers_only needs TOP (never unlisted)
            return
        self.result.oversize += 1
        self.p.metrics.message_oversize(self.policy.name)
        try:
            head = await self._client().top(msg.num, 0)
        except Pop3ResponseError as exc:
            self._retr_failed(msg, due, exc)  # refused now: the others go on
            return
        self.result.fetched += 1
        self.result.fetched_bytes += len(head)
        self.p.metrics.message_fetched(self.policy.name)
        self._spawn(batch, msg, due, _Fetched(head=head, reason=reason))

    def _build(self, msg: Message, data: _Fetched) -> Payload:
        if self._client().utf8:
            return self._build_unmarked(msg, data).model_copy(update={"pop3_utf8": True})
        return self._build_unmarked(msg, data)

    def _build_unmarked(self, msg: Message, data: _Fetched) -> Payload:
        fetched_at = datetime.now(UTC)
        options = self.policy.payload_options
        mailbox = self.policy.name
        if data.raw is not None:
            return build_payload(
                data.raw,
                mailbox=mailbox,
                uidl=msg.uid,
                webhook_id=msg.webhook_id,
                fetched_at=fetched_at,
                options=options,
            )
        assert data.head is not None
        return build_headers_only_payload(
            data.head,
            size=msg.size,
            mailbox=mailbox,
            uidl=msg.uid,
            webhook_id=msg.webhook_id,
            fetched_at=fetched_at,
            reason=data.reason,
            options=options,
        )

    async def _handle(
        self, batch: _Batch, msg: Message, due: tuple[str, ...], data: _Fetched
    ) -> None:
        # A payload and its JSON body take about 2.7 times the raw message: large messages
        # go one at a time, so memory stays near a few times the largest message.
        large = data.raw is not None and len(data.raw) >= LARGE_MESSAGE_BYTES
        async with self._large if large else contextlib.nullcontext(), self._semaphore:
            await self._handle_locked(batch, msg, due, data)

    async def _handle_locked(
        self, batch: _Batch, msg: Message, due: tuple[str, ...], data: _Fetched
    ) -> None:
        mailbox = self.policy.name
        began = time.monotonic()
        if msg.uid in self._expected:
            # Some target acknowledged this identity before: is it still that message?
            # No proof (no stored hash, another size, another hash) means a new message.
            ack = self._expected[msg.uid]
            if data.raw is not None:
                digest = content_digest(data.raw)
            else:
                proof = (data.head or b"") + b"size:%d" % msg.size
                digest = content_digest(proof, head_only=True)
            same_size = ack is not None and ack.listed_size in (None, msg.size)
            if ack is None or not same_size or ack.sha256 != digest:
                renamed = self._reidentify(msg, digest)
                if renamed is None:
                    return
                msg, due = renamed
        size = len(data.raw) if data.raw is not None else msg.size
        if size > PARSE_IN_THREAD_BYTES:
            payload = await asyncio.to_thread(self._build, msg, data)
        else:
            payload = self._build(msg, data)
        if data.raw is not None:
            data.content = (len(data.raw), payload.sha256 or content_digest(data.raw))
        elif data.head is not None:
            proof = data.head + b"size:%d" % msg.size
            data.content = (msg.size, content_digest(proof, head_only=True))
        if self.policy.reject_policy != "dead_letter":
            data.raw = None  # only a dead letter needs the raw bytes again: free them early
        if payload.defects:
            self.p.metrics.parse_defects_found(mailbox, len(payload.defects))
        claim = self.p.claim_check
        try:
            # Large attachments go to the content store before the POST that refers to them.
            payload = await claim.store_large(payload) if claim is not None else payload
        except AttachmentStoreError as exc:
            outcomes = [
                DeliveryOutcome(DeliveryKind.TRANSIENT, t, payload.webhook_id, error=str(exc))
                for t in due
            ]
        else:
            body = payload_json(payload)
            # Without a content store there is no reference body: a 413 parks or rejects.
            reference = claim.reference_body(payload) if claim is not None else None
            posts = [
                self.p.webhooks.deliver(
                    self.p.targets[t], payload.webhook_id, body, reference_body=reference
                )
                for t in due
            ]
            # One target (the common case) needs no extra task; several are posted concurrently.
            self._posting += 1
            self._idle.clear()
            try:
                outcomes = (
                    [await posts[0]] if len(posts) == 1 else list(await asyncio.gather(*posts))
                )
            finally:
                self._posting -= 1
                if not self._posting:
                    self._idle.set()
            if any(o.kind is DeliveryKind.ACKED for o in outcomes) and any(
                o.kind in _MAY_WAIT for o in outcomes
            ):
                # Another target may now wait for its breaker's trial request (up to its
                # cool-down): what was acknowledged goes to the ledger first, so neither a
                # SIGTERM nor a crash during the wait makes it be posted again.
                early = {o.target for o in outcomes if o.kind is DeliveryKind.ACKED}
                self.p.ledger.mark_acked(
                    self.policy.name, msg.uid, sorted(early), content=data.content, sync=False
                )
                data.acked_early = early
            outcomes = await self._after_recovery(payload.webhook_id, body, reference, outcomes)
            if data.raw is not None:  # dead_letter policy: keep what was posted, for replay
                data.body = body
            del body
        outcome = await self._record(batch, msg, outcomes, data)
        self.log.info(
            "message",
            uidl=msg.uid,
            webhook_id=msg.webhook_id,
            size=msg.size,
            outcome=outcome,
            targets={o.target: o.kind.value for o in outcomes},
            attempts=sum(o.attempts for o in outcomes),
            status={o.target: o.status for o in outcomes if o.status is not None},
            error=next((o.error for o in outcomes if o.error), None),
            duration=round(time.monotonic() - began, 4),
        )

    def _reidentify(self, msg: Message, digest: str) -> tuple[Message, tuple[str, ...]] | None:
        """A target acknowledged other content under this identity: the message is new, and
        gets an identity of its content. Returns it with the targets still due, or None when
        every target already acknowledged this very content (it is then deleted)."""
        mailbox, targets = self.policy.name, self.policy.targets
        short = digest.removeprefix(HEAD_PREFIX)
        key = content_key(msg.uid, ("t" if short != digest else "") + short, {})
        new = Message(num=msg.num, uid=key, size=msg.size, webhook_id=webhook_id(mailbox, key))
        self.p.ledger.mark_seen(mailbox, [(key, new.webhook_id, msg.size)], targets)
        rows = self.p.ledger.rows_for(mailbox, key)
        waiting = tuple(t for t in targets if not rows[t].done)
        self.result.reused_identities += 1
        self.p.metrics.identity_problem(mailbox, "reused")
        self.log.warning(
            "identity_reused",
            uidl=msg.uid,
            new_identity=key,
            detail="another message was acknowledged under this identity: posted as new",
        )
        if not waiting:
            if self._holds(rows, self.p.clock.time()):
                self.result.kept += 1  # delivered under this content before, and kept
                return None
            self.to_delete.append(new)
            self.result.reconciled += 1
            return None
        self._waiting[key] = waiting
        self._refused[key] = {
            t for t in waiting if rows[t].state == RowState.PARKED and rows[t].refused
        }
        return new, waiting

    async def _after_recovery(
        self,
        webhook_id: str,
        body: bytes,
        reference: ReferenceBody | None,
        outcomes: list[DeliveryOutcome],
    ) -> list[DeliveryOutcome]:
        """A message already fetched whose target's breaker is open waits for the breaker's
        next trial request (if it comes within the session's time budget) and, when the
        target is back, is delivered in this session instead of being fetched again later.
        One wait per message and target: a target still down leaves the message for later."""
        webhooks, clock = self.p.webhooks, self.p.clock
        for i, o in enumerate(outcomes):
            if o.kind not in _MAY_WAIT:
                continue
            if o.kind is DeliveryKind.TRANSIENT and not webhooks.is_open(o.target):
                # The first failures come before the breaker opens: whether the target is
                # down is known once the POSTs under way have their answers.
                await self._idle.wait()
            if not webhooks.is_open(o.target):
                continue  # failed on its own; the breaker has not given up on the target
            target = self.p.targets[o.target]
            # the trial request itself may take up to the target's timeout
            until = clock.monotonic() + webhooks.retry_in(o.target) + target.timeout + 1.0
            if until > self._deadline or self.stop.is_set():
                continue
            while not self.stop.is_set():
                # Wait out the cool-down, then for a trial request another message may have
                # started; CIRCUIT_OPEN comes back at once, without a request.
                while webhooks.is_open(o.target) and clock.monotonic() < until:
                    left = until - clock.monotonic()
                    pause = min(left, max(webhooks.retry_in(o.target), 0.05))
                    if await sleep_unless(self.stop, pause, clock):
                        break  # SIGTERM: the message waits for a later session
                if webhooks.is_open(o.target) or self.stop.is_set():
                    break
                outcomes[i] = await webhooks.deliver(
                    target, webhook_id, body, reference_body=reference
                )
                if outcomes[i].kind is not DeliveryKind.CIRCUIT_OPEN:
                    break
        return outcomes

    async def _record(
        self, batch: _Batch, msg: Message, outcomes: Sequence[DeliveryOutcome], data: _Fetched
    ) -> str:
        """Write the outcomes to the ledger and metrics; decide delete, dead-letter or wait."""
        mailbox = self.policy.name
        ledger = self.p.ledger
        now = self.p.clock.time()
        for o in outcomes:
            if o.kind is DeliveryKind.ACKED:
                self.p.metrics.message_delivered(mailbox, o.target)
            elif o.kind is DeliveryKind.REJECTED:
                self.p.metrics.message_rejected(mailbox, o.target)
                self.p.metrics.delivery_failed(mailbox, o.target, "rejected")
            elif o.kind is DeliveryKind.CIRCUIT_OPEN:
                self.p.metrics.delivery_failed(mailbox, o.target, "circuit_open")
            else:
                self.p.metrics.delivery_failed(mailbox, o.target, "transient")
        acked = {o.target for o in outcomes if o.kind is DeliveryKind.ACKED}
        rejected = [o for o in outcomes if o.kind is DeliveryKind.REJECTED]
        transient = [
            o for o in outcomes if o.kind not in (DeliveryKind.ACKED, DeliveryKind.REJECTED)
        ]
        if acked - data.acked_early:
            # Committed now (a crash cannot lose it); one fsync before the batch's DELEs.
            ledger.mark_acked(
                mailbox,
                msg.uid,
                sorted(acked - data.acked_early),
                now,
                content=data.content,
                sync=False,
            )
        for o in rejected:
            # A 413 parked for size is no refusal of the message (it must not be dead-lettered).
            by_receiver = not getattr(o, "parked", False)
            ledger.mark_parked(
                mailbox, msg.uid, o.target, o.error or "rejected", None, refused=by_receiver
            )
        for o in transient:
            # Due again at the next session unless the receiver itself asked for a pause
            # (Retry-After); a target that keeps failing is held back by its circuit
            # breaker, which lives in memory, not by a per-message wait.
            paused = o.retry_after if o.retry_after_from_receiver else None
            due_at = now + paused if paused else now
            ledger.mark_transient(mailbox, msg.uid, o.target, o.error or o.kind.value, due_at)

        # Targets done before this session are not in `waiting`; the rest must answer now.
        waiting = set(self._waiting.get(msg.uid, self.policy.targets))
        refused = {o.target for o in rejected} | self._refused.get(msg.uid, set())
        settled = acked | refused
        if waiting <= acked:
            self.result.delivered += 1
            if self.policy.keep:
                self.result.kept += 1  # stays on the server; its acked rows remember it
            else:
                self.to_delete.append(msg)  # DELE after this batch, once the acks are synced
            return "acked"
        if transient:
            self.result.transient += 1
            batch.failed = True
            outcome = "retry_later"
        elif (
            refused
            and waiting <= settled
            and self.policy.reject_policy == "dead_letter"
            and data.raw is not None  # a headers-only (oversize) payload stays parked
            and not any(o.parked for o in rejected)  # too large, on_too_large: park
        ):
            # Every target has answered for good (acknowledged or refused): spool it durably,
            # then it may go. A target that only failed for now keeps it on the server.
            why = "; ".join(f"{o.target}: {o.error}" for o in rejected) or "rejected before"
            await asyncio.to_thread(
                self.p.deadletters.write,
                mailbox,
                msg.uid,
                data.raw,
                why,
                webhook_id=msg.webhook_id,
                payload=data.body,
                extra={"targets": sorted(refused)},
            )
            ledger.mark_dead_lettered(mailbox, msg.uid, why, now, content=data.content)
            self.p.metrics.message_dead_lettered(mailbox)
            self.result.dead_lettered += 1
            if self.policy.keep:
                self.result.kept += 1  # spooled and done; keep leaves it on the server
            else:
                self.to_delete.append(msg)
            return "dead_lettered"
        elif rejected:
            self.result.rejected += 1
            outcome = "parked"
        else:
            self.result.skipped += 1  # delivered where due; another target waits (parked, breaker)
            outcome = "waiting_for_other_targets"
        if self.policy.strict_order:
            self._strict_blocked = True
        return outcome

    # ------------------------------------------------------------------ deletion and commit

    async def _dele(self, messages: Sequence[Message]) -> None:
        """DELE messages whose every target is done, pipelined; ``-ERR`` is counted, not ignored.

        The acknowledgements are made durable first (one fsync for the whole batch): a message
        is never marked for deletion before its acknowledgement is on disk.
        """
        if messages or self.p.ledger.pending:
            # Also with nothing to delete (keep, a target that waits): acknowledgements are
            # written without fsync while the batch runs; they become durable here.
            await self.p.ledger.flush()
        if not messages:
            return
        mailbox = self.policy.name
        results = await self._client().dele_many([m.num for m in messages])
        sent: list[str] = []
        for msg, error in zip(messages, results, strict=True):
            if error is None:
                sent.append(msg.uid)
                continue
            self.p.metrics.commit_failed(mailbox, "DELE")
            self.p.metrics.pop3_error_response(mailbox, error.code)
            self.result.commit_errors.append(f"DELE {msg.num}: {error.text or error}")
            self.log.error("dele_failed", uidl=msg.uid, num=msg.num, error=error.text or str(error))
        self.deleted_uids.extend(sent)
        self.p.ledger.mark_dele_sent(mailbox, sent, sync=False)

    async def _quit(self) -> None:
        mailbox = self.policy.name
        client = self._client()
        try:
            await client.quit()
        except (Pop3Error, OSError) as exc:
            self.p.metrics.commit_failed(mailbox, "QUIT")
            if isinstance(exc, Pop3ResponseError):
                self.p.metrics.pop3_error_response(mailbox, exc.code)
            self.result.commit_errors.append(f"QUIT: {exc}")
            self.log.error("quit_failed", error=str(exc), uncommitted=len(self.deleted_uids))
            return
        self.result.committed = True
        self.result.deleted = len(self.deleted_uids)
        if self.deleted_uids:
            self.p.ledger.commit_session(mailbox, self.deleted_uids)
            self.p.metrics.messages_deleted_committed(mailbox, len(self.deleted_uids))
        self._report_backlog()

    def _report_backlog(self) -> None:
        mailbox = self.policy.name
        self.p.metrics.set_oldest_undelivered(mailbox, self.p.ledger.oldest_pending(mailbox))
        self.p.metrics.set_parked(mailbox, self.p.ledger.parked_count(mailbox))


__all__ = [
    "BridgeError",
    "ClientFactory",
    "MailboxPolicy",
    "Message",
    "Poller",
    "SessionMetrics",
    "SessionResult",
]
