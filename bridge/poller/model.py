"""What a session is given and reports: the policy, the result, the metrics it calls, and the
fetched-message and batch records its phases pass along."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from bridge.ledger import Content
from bridge.mime import INLINE_PARSE_MAX_BYTES, PayloadOptions
from bridge.pop3 import Pop3Client
from bridge.webhook import DeliveryKind

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
