"""The state one session shares between its phases."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog

from bridge.identity import Message
from bridge.keep import held
from bridge.ledger import Row
from bridge.poller.model import SLOW_START_WINDOW, SessionResult
from bridge.pop3 import Pop3Client
from bridge.reconcile import Acknowledged

log = structlog.get_logger("bridge.poller")

if TYPE_CHECKING:
    from bridge.poller.session import Poller


class _State:
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
        self._deferred: set[int] = set()  # message numbers whose proof is still to come
        self._retain: set[str] = set()  # rows a deferred moved message could adopt
        self._listed: dict[int, str] = {}  # message number -> the identity LIST/UIDL gave it
        self._timed_out: Message | None = None  # the message whose RETR timed out
        self._deadline = float("inf")  # monotonic end of the session's time budget
        self._posting = 0  # deliveries whose POSTs are under way
        self._idle = asyncio.Event()  # set while no POST is under way
        self._idle.set()

    def _client(self) -> Pop3Client:
        assert self.client is not None
        return self.client

    def _renamed(self, msg: Message) -> bool:
        """True when ``msg`` goes under another identity than the one LIST/UIDL gave it (a
        content key taken for it, or given to it by its content)."""
        return msg.uid != self._listed.get(msg.num, msg.uid)

    def _holds(self, rows: Mapping[str, Row], now: float) -> bool:
        """True while keep leaves this delivered message on the server."""
        return held(rows, now, keep=self.policy.keep, keep_days=self.policy.keep_days)

    def _budget_left(self) -> bool:
        r, p = self.result, self.policy
        return (
            r.fetched < p.session_max_messages
            and r.fetched_bytes < p.session_max_bytes
            and self.p.clock.monotonic() - self._started < p.session_max_seconds
        )

    def _open_targets(self) -> set[str]:
        return {t for t in self.policy.targets if self.p.webhooks.is_open(t)}

    def _report_backlog(self) -> None:
        mailbox = self.policy.name
        self.p.metrics.set_oldest_undelivered(mailbox, self.p.ledger.oldest_pending(mailbox))
        self.p.metrics.set_parked(mailbox, self.p.ledger.parked_count(mailbox))
