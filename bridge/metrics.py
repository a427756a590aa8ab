"""Prometheus metrics: one :class:`Metrics` object per app, with its own registry.

Every metric name is part of the public interface (docs/metrics.md). Labels only ever hold
config names (mailbox, webhook target) or values of the small enums below; the helper
methods check the enums so a typo cannot create a new series.

Two levels of detail (``metrics.mailbox_detail`` in the config):

- ``essential``: per mailbox only what an operator acts on per mailbox: the last good poll,
  the oldest undelivered message, the backlog (:mod:`bridge.mailbox_series`) and errors by
  kind (``bridge_mailbox_errors_total``, a series once a mailbox had that kind of error).
  The message, session and POP3 counters drop the ``mailbox`` label: one series per target
  or enum value, summed over the mailboxes. About 130-150 bytes of /metrics per mailbox.
- ``full``: every counter and histogram also per mailbox, as in earlier versions (~6 KB per
  mailbox): for installations with few mailboxes.

No ``_created`` series are exported (they doubled the counters and histograms).
"""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from bridge import __version__
from bridge.mailbox_series import MailboxSeries
from bridge.metric_labels import (
    CIRCUIT_VALUES,
    COMMIT_COMMANDS,
    DELIVERY_FAILURE_REASONS,
    ERROR_CODES,
    IDENTITY_PROBLEMS,
    MAILBOX_DETAILS,
    MAILBOX_ERROR_KINDS,
    RETR_FAILURES,
    SESSION_OUTCOMES,
    STATUS_CLASSES,
    TOO_LARGE_ACTIONS,
    CircuitState,
    CommitCommand,
    DeliveryFailureReason,
    IdentityProblem,
    MailboxDetail,
    MailboxErrorKind,
    RetrFailure,
    SessionOutcome,
    TooLargeAction,
    check_label,
    error_code_label,
    status_class,
)

# `_created` doubles every counter and histogram and no alert or dashboard uses it. The switch
# is process-wide in prometheus-client; the bridge owns its process.
disable_created_metrics()  # type: ignore[no-untyped-call]  # the library leaves it untyped

__all__ = [
    "COMMIT_COMMANDS",
    "DELIVERY_FAILURE_REASONS",
    "ERROR_CODES",
    "IDENTITY_PROBLEMS",
    "MAILBOX_DETAILS",
    "MAILBOX_ERROR_KINDS",
    "RETR_FAILURES",
    "SESSION_OUTCOMES",
    "STATUS_CLASSES",
    "TOO_LARGE_ACTIONS",
    "CircuitState",
    "DeliveryFailureReason",
    "IdentityProblem",
    "MailboxDetail",
    "MailboxErrorKind",
    "Metrics",
    "RetrFailure",
    "SessionOutcome",
    "TooLargeAction",
    "error_code_label",
    "status_class",
]

WEBHOOK_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60)
SESSION_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
LAG_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """Every metric the bridge exports, registered in a private :class:`CollectorRegistry`.

    Build one per app and pass it to whoever records; call :meth:`prepare` with the
    configured mailboxes and targets so their series exist (at 0) from the start.
    ``mailbox_detail`` is ``"full"`` (every series per mailbox) or ``"essential"`` (see the
    module docstring); the config's default is ``"essential"``.
    """

    content_type: Final[str] = CONTENT_TYPE_LATEST
    """The ``Content-Type`` of :meth:`render`'s output."""

    def __init__(
        self,
        *,
        version: str = __version__,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
        mailbox_detail: MailboxDetail = "full",
    ) -> None:
        check_label(mailbox_detail, MAILBOX_DETAILS, "mailbox_detail")
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.full = mailbox_detail == "full"
        self._clock = clock
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._progress_listeners: list[Callable[[str], None]] = []
        # The per-mailbox gauges are rendered by MailboxSeries, everything else (the metrics
        # below and any collector registered later) by generate_latest.
        self.mailboxes = MailboxSeries(clock=clock, full=self.full)
        self.registry.register(self.mailboxes)
        self._rest = _AllBut(self.registry, self.mailboxes)
        r = self.registry
        mb = ["mailbox"] if self.full else []
        mbt = [*mb, "target"]

        self.messages_fetched = Counter(
            "bridge_messages_fetched_total",
            "Messages retrieved from POP3 (RETR or TOP).",
            mb,
            registry=r,
        )
        self.messages_delivered = Counter(
            "bridge_messages_delivered_total",
            "Messages a webhook target acknowledged with 2xx.",
            mbt,
            registry=r,
        )
        self.messages_deleted = Counter(
            "bridge_messages_deleted_total", "Deletions committed by QUIT +OK.", mb, registry=r
        )
        self.messages_rejected = Counter(
            "bridge_messages_rejected_total",
            "Messages a target refused (4xx other than 408/425/429, or 3xx).",
            mbt,
            registry=r,
        )
        self.messages_dead_lettered = Counter(
            "bridge_messages_dead_lettered_total",
            "Messages spooled to the dead-letter directory.",
            mb,
            registry=r,
        )
        self.messages_oversize = Counter(
            "bridge_messages_oversize_total",
            "Messages larger than max_message_bytes.",
            mb,
            registry=r,
        )
        self.delivery_failures = Counter(
            "bridge_delivery_failures_total",
            "Deliveries that did not end in 2xx, by reason (transient|rejected|circuit_open).",
            [*mb, "target", "reason"],
            registry=r,
        )
        self.parse_defects = Counter(
            "bridge_parse_defects_total", "Defects the MIME parser reported.", mb, registry=r
        )
        self.webhook_requests = Counter(
            "bridge_webhook_requests_total",
            "Webhook HTTP requests by status class (2xx|3xx|4xx|5xx|timeout|error).",
            ["target", "status_class"],
            registry=r,
        )
        self.webhook_duration = Histogram(
            "bridge_webhook_request_duration_seconds",
            "Webhook request duration.",
            ["target"],
            buckets=WEBHOOK_BUCKETS,
            registry=r,
        )
        self.webhook_too_large = Counter(
            "bridge_webhook_too_large_total",
            "Payloads too large for a target (413, or over max_payload_bytes), by what was done: "
            "reference|parked|rejected.",
            ["target", "action"],
            registry=r,
        )
        self.attachments_stored = Counter(
            "bridge_attachments_stored_total",
            "Objects written to the attachment content store (attachments by reference).",
            registry=r,
        )
        self.attachments_stored_bytes = Counter(
            "bridge_attachments_stored_bytes_total",
            "Bytes written to the attachment content store.",
            registry=r,
        )
        self.attachment_store_errors = Counter(
            "bridge_attachment_store_errors_total",
            "Writes to (or prunes of) the attachment content store that failed.",
            registry=r,
        )
        self.attachments_pruned = Counter(
            "bridge_attachments_pruned_total",
            "Objects removed from the attachment content store by retention.",
            registry=r,
        )
        self.attachments_pruned_bytes = Counter(
            "bridge_attachments_pruned_bytes_total",
            "Bytes removed from the attachment content store by retention.",
            registry=r,
        )
        self.circuit_state = Gauge(
            "bridge_webhook_circuit_state",
            "Circuit breaker per target: 0 closed, 1 half-open, 2 open.",
            ["target"],
            registry=r,
        )
        self.pop3_sessions = Counter(
            "bridge_pop3_sessions_total",
            "POP3 sessions by outcome.",
            [*mb, "outcome"],
            registry=r,
        )
        self.pop3_session_duration = Histogram(
            "bridge_pop3_session_duration_seconds",
            "POP3 session duration, connect to close.",
            mb,
            buckets=SESSION_BUCKETS,
            registry=r,
        )
        self.pop3_error_responses = Counter(
            "bridge_pop3_error_responses_total",
            "POP3 -ERR responses by RFC 2449 code.",
            [*mb, "code"],
            registry=r,
        )
        self.commit_failures = Counter(
            "bridge_commit_failures_total",
            "DELE or QUIT that failed, so deletions did not commit.",
            [*mb, "command"],
            registry=r,
        )
        self.mailbox_errors = Counter(
            "bridge_mailbox_errors_total",
            "Errors of one mailbox by kind: failed sessions by outcome, rejected and oversize "
            "messages. With essential detail a series appears with the mailbox's first error "
            "of that kind.",
            ["mailbox", "kind"],
            registry=r,
        )
        self.poll_lag_seconds = Histogram(
            "bridge_poll_lag_seconds",
            "How late polls started: from the time a poll was due to its session's start.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.mailboxes_owned = Gauge(
            "bridge_mailboxes_owned",
            "Mailboxes this process polls (its shard of the configured mailboxes).",
            registry=r,
        )
        self.mailboxes_configured = Gauge(
            "bridge_mailboxes_configured",
            "Mailboxes in the config file, over all shards.",
            registry=r,
        )
        self.identity_problems = Counter(
            "bridge_identity_problems_total",
            "Messages whose server identity could not be trusted: reused (the content differs "
            "from what was acknowledged under it, so it was posted as new, never deleted), "
            "unstable_uidl (no UIDL overlaps the previous listing), duplicate (shared, told "
            "apart by content).",
            [*mb, "kind"],
            registry=r,
        )
        self.retr_failures = Counter(
            "bridge_retr_failures_total",
            "Messages whose RETR failed (refused: -ERR, too_large: past max_message_bytes, "
            "timeout: idle or below min_transfer_rate); each is parked with a short backoff.",
            [*mb, "reason"],
            registry=r,
        )
        self.ledger_write_errors = Counter(
            "bridge_ledger_write_errors_total",
            "Failed writes to the ledger (full disk, read-only data_dir); fetching stops.",
            mb,
            registry=r,
        )
        self.up = Gauge("bridge_up", "1 while the bridge is running.", registry=r)
        self.build_info = Gauge(
            "bridge_build_info",
            "Always 1; labels carry the version.",
            ["version", "python"],
            registry=r,
        )
        self.build_info.labels(version=version, python=platform.python_version()).set(1)
        self.up.set(1)

    def _child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, remembered: the per-message paths call it a lot."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values) if values else metric
        return child

    def _mb(self, metric: Any, mailbox: str, *values: str) -> Any:
        """The child of a metric that carries ``mailbox`` only with full detail."""
        if self.full:
            return self._child(metric, mailbox, *values)
        return self._child(metric, *values)

    def mailbox_error(self, mailbox: str, kind: MailboxErrorKind, count: int = 1) -> None:
        """Count ``count`` errors of ``kind`` for ``mailbox`` (its series appears on first use)."""
        check_label(kind, MAILBOX_ERROR_KINDS, "mailbox error kind")
        self._child(self.mailbox_errors, mailbox, kind).inc(count)

    # ------------------------------------------------------------------ setup

    def prepare(
        self,
        routes: Mapping[str, Iterable[str]],
        *,
        extra_targets: Iterable[str] = (),
        configured: int | None = None,
    ) -> None:
        """Create every series for the configured mailboxes and targets, at 0.

        ``routes`` maps each mailbox name to the targets it posts to (``mailbox.webhooks``);
        ``extra_targets`` adds targets no mailbox uses; ``configured`` is the number of
        mailboxes in the config over all shards (default: ``len(routes)``). Safe to call again:
        the per-mailbox gauges of mailboxes no longer in ``routes`` are dropped.
        """
        targets = set(extra_targets)
        scopes: list[tuple[str, ...]] = [(m,) for m in routes] if self.full else [()]
        for scope in scopes:
            for counter in (
                self.messages_fetched,
                self.messages_deleted,
                self.messages_dead_lettered,
                self.messages_oversize,
                self.parse_defects,
            ):
                self._child(counter, *scope)
            for outcome in SESSION_OUTCOMES:
                self._child(self.pop3_sessions, *scope, outcome)
            for code in ERROR_CODES:
                self._child(self.pop3_error_responses, *scope, code)
            for command in COMMIT_COMMANDS:
                self._child(self.commit_failures, *scope, command)
            self._child(self.ledger_write_errors, *scope)
            for problem in IDENTITY_PROBLEMS:
                self._child(self.identity_problems, *scope, problem)
            for failure in RETR_FAILURES:
                self._child(self.retr_failures, *scope, failure)
            self._child(self.pop3_session_duration, *scope)
        for mailbox, mailbox_targets in routes.items():
            self.mailboxes.row(mailbox)
            if self.full:  # with essential detail they appear with the first error of a kind
                for kind in MAILBOX_ERROR_KINDS:
                    self._child(self.mailbox_errors, mailbox, kind)
            scope = (mailbox,) if self.full else ()
            for target in mailbox_targets:
                targets.add(target)
                self._child(self.messages_delivered, *scope, target)
                self._child(self.messages_rejected, *scope, target)
                for reason in DELIVERY_FAILURE_REASONS:
                    self._child(self.delivery_failures, *scope, target, reason)
        for target in targets:
            for status in STATUS_CLASSES:
                self.webhook_requests.labels(target, status)
            self.webhook_duration.labels(target)
            self.circuit_state.labels(target)
            for action in TOO_LARGE_ACTIONS:
                self.webhook_too_large.labels(target, action)
        self.mailboxes.retain(routes)  # a mailbox a reload removed (or moved away) goes
        self.mailboxes_owned.set(len(routes))
        self.mailboxes_configured.set(len(routes) if configured is None else configured)

    # ------------------------------------------------------------------ messages

    def identity_problem(self, mailbox: str, kind: IdentityProblem, count: int = 1) -> None:
        """``count`` messages of ``mailbox`` had an identity problem of ``kind``."""
        check_label(kind, IDENTITY_PROBLEMS, "identity problem")
        self._mb(self.identity_problems, mailbox, kind).inc(count)
        self.mailbox_error(mailbox, "identity_problem", count)

    def retr_failed(self, mailbox: str, reason: RetrFailure) -> None:
        """A RETR from ``mailbox`` failed for ``reason``; the message was parked."""
        check_label(reason, RETR_FAILURES, "RETR failure")
        self._mb(self.retr_failures, mailbox, reason).inc()
        self.mailbox_error(mailbox, "retr_failed")

    def ledger_write_failed(self, mailbox: str) -> None:
        """A ledger write failed in a session of ``mailbox``."""
        self._mb(self.ledger_write_errors, mailbox).inc()
        self.mailbox_error(mailbox, "ledger_write_error")

    def message_fetched(self, mailbox: str, count: int = 1) -> None:
        """``count`` messages were retrieved from ``mailbox``."""
        self._mb(self.messages_fetched, mailbox).inc(count)

    def on_progress(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(mailbox)`` whenever a message is delivered or deletions commit."""
        self._progress_listeners.append(listener)

    def _progressed(self, mailbox: str) -> None:
        for listener in self._progress_listeners:
            listener(mailbox)

    def message_delivered(self, mailbox: str, target: str) -> None:
        """``target`` acknowledged a message from ``mailbox`` with a 2xx."""
        self._mb(self.messages_delivered, mailbox, target).inc()
        if self._progress_listeners:
            self._progressed(mailbox)

    def messages_deleted_committed(self, mailbox: str, count: int) -> None:
        """QUIT answered +OK, committing ``count`` deletions."""
        if count:
            self._mb(self.messages_deleted, mailbox).inc(count)
            self._progressed(mailbox)

    def message_rejected(self, mailbox: str, target: str) -> None:
        """``target`` refused a message (other 4xx, 3xx).

        Also call :meth:`delivery_failed` with reason ``"rejected"``.
        """
        self._mb(self.messages_rejected, mailbox, target).inc()
        self.mailbox_error(mailbox, "rejected")

    def message_dead_lettered(self, mailbox: str) -> None:
        """A message was spooled to the dead-letter directory."""
        self._mb(self.messages_dead_lettered, mailbox).inc()

    def message_oversize(self, mailbox: str) -> None:
        """A message was larger than the mailbox's ``max_message_bytes``."""
        self._mb(self.messages_oversize, mailbox).inc()
        self.mailbox_error(mailbox, "oversize")

    def delivery_failed(self, mailbox: str, target: str, reason: DeliveryFailureReason) -> None:
        """A delivery to ``target`` ended without a 2xx, for ``reason``."""
        check_label(reason, DELIVERY_FAILURE_REASONS, "delivery failure reason")
        self._mb(self.delivery_failures, mailbox, target, reason).inc()

    def parse_defects_found(self, mailbox: str, count: int) -> None:
        """The parser reported ``count`` defects in one message."""
        if count:
            self._mb(self.parse_defects, mailbox).inc(count)

    # ------------------------------------------------------------------ webhooks

    def webhook_request(
        self,
        target: str,
        status: int | Literal["timeout", "error"],
        duration_seconds: float,
    ) -> None:
        """One HTTP request to ``target`` ended with ``status`` after ``duration_seconds``."""
        self._child(self.webhook_requests, target, status_class(status)).inc()
        self._child(self.webhook_duration, target).observe(duration_seconds)

    def webhook_attempt(self, target: str, status_class: str, duration_seconds: float) -> None:
        """Same as :meth:`webhook_request` with the label already computed.

        Its signature matches :data:`bridge.webhook.OnRequest`, so it can be passed as
        ``WebhookClient(on_request=metrics.webhook_attempt)``.
        """
        check_label(status_class, STATUS_CLASSES, "status class")
        self._child(self.webhook_requests, target, status_class).inc()
        self._child(self.webhook_duration, target).observe(duration_seconds)

    def too_large(self, target: str, action: str) -> None:
        """A payload was too large for ``target``; ``action`` says what was done.

        Its signature matches :data:`bridge.webhook.OnTooLarge`.
        """
        check_label(action, TOO_LARGE_ACTIONS, "too-large action")
        self._child(self.webhook_too_large, target, action).inc()

    def attachment_stored(self, size_bytes: int) -> None:
        """One object of ``size_bytes`` is durably in the attachment store (an ``OnWrite``)."""
        self.attachments_stored.inc()
        self.attachments_stored_bytes.inc(size_bytes)

    def attachment_store_failed(self) -> None:
        """A write to or prune of the attachment store failed."""
        self.attachment_store_errors.inc()

    def attachments_pruned_by_retention(self, count: int, size_bytes: int) -> None:
        """Retention removed ``count`` objects holding ``size_bytes``."""
        self.attachments_pruned.inc(count)
        self.attachments_pruned_bytes.inc(size_bytes)

    def breaker_changed(self, target: str, state: object) -> None:
        """Record a breaker state given as a string or an enum whose value is one.

        Its signature matches :data:`bridge.webhook.OnBreakerChange`.
        """
        value = getattr(state, "value", state)
        if not isinstance(value, str) or value not in CIRCUIT_VALUES:
            raise ValueError(f"unknown circuit state {state!r}")
        self.circuit_state.labels(target).set(CIRCUIT_VALUES[value])

    def set_circuit_state(self, target: str, state: CircuitState) -> None:
        """Record the breaker state of ``target``: closed, half_open or open."""
        if state not in CIRCUIT_VALUES:
            raise ValueError(f"unknown circuit state {state!r}")
        self.circuit_state.labels(target).set(CIRCUIT_VALUES[state])

    # ------------------------------------------------------------------ POP3

    def pop3_session(self, mailbox: str, outcome: SessionOutcome, duration_seconds: float) -> None:
        """A session with ``mailbox`` ended with ``outcome`` after ``duration_seconds``."""
        check_label(outcome, SESSION_OUTCOMES, "session outcome")
        self._mb(self.pop3_sessions, mailbox, outcome).inc()
        self._mb(self.pop3_session_duration, mailbox).observe(duration_seconds)
        if outcome != "ok":
            self.mailbox_error(mailbox, outcome)

    def pop3_error_response(self, mailbox: str, code: str | None) -> None:
        """The server answered -ERR, with RFC 2449 ``code`` (None when it gave none)."""
        self._mb(self.pop3_error_responses, mailbox, error_code_label(code)).inc()

    def commit_failed(self, mailbox: str, command: CommitCommand) -> None:
        """``DELE`` or ``QUIT`` failed, so marked deletions did not (all) commit."""
        check_label(command, COMMIT_COMMANDS, "commit command")
        self._mb(self.commit_failures, mailbox, command).inc()

    def mailbox_stat(self, mailbox: str, messages: int, size_bytes: int) -> None:
        """Record the STAT answer: ``messages`` waiting, ``size_bytes`` in total."""
        self.mailboxes.stat(mailbox, messages, size_bytes)

    def set_parked(self, mailbox: str, count: int) -> None:
        """``count`` messages of ``mailbox`` are parked in the ledger."""
        self.mailboxes.set_parked(mailbox, count)

    def set_oldest_undelivered(self, mailbox: str, first_seen: float | None) -> None:
        """The oldest undelivered message was first seen at Unix time ``first_seen``.

        The exported age is computed at scrape time, so it keeps growing while a mailbox is
        stuck. ``None`` means nothing is waiting (age 0).
        """
        self.mailboxes.set_oldest(mailbox, first_seen)

    def poll_succeeded(self, mailbox: str, when: float | None = None) -> None:
        """A session with ``mailbox`` ended well at Unix time ``when`` (default: now)."""
        self.mailboxes.poll_succeeded(mailbox, self._clock() if when is None else when)

    def poll_lag(self, seconds: float) -> None:
        """A poll started ``seconds`` after it was due."""
        self.poll_lag_seconds.observe(max(0.0, seconds))

    def set_up(self, up: bool) -> None:
        """Set ``bridge_up`` (1 while running; 0 once shutting down)."""
        self.up.set(1 if up else 0)

    # ------------------------------------------------------------------ exposition

    def render(self) -> bytes:
        """Every metric in the Prometheus text exposition format."""
        return generate_latest(self._rest) + "".join(self.mailboxes.render_chunks()).encode()

    async def render_async(self, chunk: int = 2500) -> bytes:
        """Like :meth:`render`, yielding to the event loop every ``chunk`` mailboxes.

        With full detail the library's part grows with the mailboxes too; it is then
        rendered in a worker thread (full detail is meant for few mailboxes).
        """
        if self.full and len(self.mailboxes) > chunk:
            head = await asyncio.to_thread(generate_latest, self._rest)
        else:
            head = generate_latest(self._rest)
        parts = [head]
        for piece in self.mailboxes.render_chunks(chunk):
            parts.append(piece.encode())
            await asyncio.sleep(0)
        return b"".join(parts)


class _AllBut:
    """A registry's collectors except one, for ``generate_latest``."""

    def __init__(self, registry: CollectorRegistry, skip: Collector) -> None:
        self._registry = registry
        self._skip = skip

    def collect(self) -> Iterator[Metric]:
        # prometheus-client has no public list of a registry's collectors; its own
        # restricted registry reads the same mapping.
        collectors = list(self._registry._collector_to_names)
        for collector in collectors:
            if collector is not self._skip:
                yield from collector.collect()
