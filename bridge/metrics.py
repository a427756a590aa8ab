"""Prometheus metrics: one :class:`Metrics` object per app, with its own registry.

Every metric name is part of the public interface (docs/metrics.md). Labels only ever hold
config names (mailbox, webhook target) or values of the small enums below; the helper
methods check the enums so a typo cannot create a new series.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal, TypeAlias, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bridge import __version__

__all__ = [
    "COMMIT_COMMANDS",
    "DELIVERY_FAILURE_REASONS",
    "ERROR_CODES",
    "IDENTITY_PROBLEMS",
    "RETR_FAILURES",
    "SESSION_OUTCOMES",
    "STATUS_CLASSES",
    "TOO_LARGE_ACTIONS",
    "CircuitState",
    "DeliveryFailureReason",
    "IdentityProblem",
    "Metrics",
    "RetrFailure",
    "SessionOutcome",
    "TooLargeAction",
    "error_code_label",
    "status_class",
]

SessionOutcome: TypeAlias = Literal[
    "ok",
    "auth_error",
    "in_use",
    "login_delay",
    "connect_error",
    "timeout",
    "tls_error",
    "protocol_error",
    "server_error",
    "commit_error",
    "error",
]
SESSION_OUTCOMES: Final[tuple[SessionOutcome, ...]] = get_args(SessionOutcome)
DeliveryFailureReason: TypeAlias = Literal["transient", "rejected", "circuit_open"]
DELIVERY_FAILURE_REASONS: Final[tuple[DeliveryFailureReason, ...]] = get_args(DeliveryFailureReason)
StatusClass: TypeAlias = Literal["2xx", "3xx", "4xx", "5xx", "timeout", "error"]
STATUS_CLASSES: Final[tuple[StatusClass, ...]] = get_args(StatusClass)
ErrorCode: TypeAlias = Literal[
    "IN-USE", "LOGIN-DELAY", "SYS/TEMP", "SYS/PERM", "AUTH", "none", "other"
]
ERROR_CODES: Final[tuple[ErrorCode, ...]] = get_args(ErrorCode)
CommitCommand: TypeAlias = Literal["DELE", "QUIT"]
COMMIT_COMMANDS: Final[tuple[CommitCommand, ...]] = get_args(CommitCommand)
IdentityProblem: TypeAlias = Literal["reused", "unstable_uidl", "duplicate"]
IDENTITY_PROBLEMS: Final[tuple[IdentityProblem, ...]] = get_args(IdentityProblem)
RetrFailure: TypeAlias = Literal["refused", "too_large", "timeout"]
RETR_FAILURES: Final[tuple[RetrFailure, ...]] = get_args(RetrFailure)
TooLargeAction: TypeAlias = Literal["reference", "parked", "rejected"]
TOO_LARGE_ACTIONS: Final[tuple[TooLargeAction, ...]] = get_args(TooLargeAction)
CircuitState: TypeAlias = Literal["closed", "half_open", "open"]
_CIRCUIT_VALUES: Final[Mapping[str, int]] = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}

WEBHOOK_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60)
SESSION_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


def status_class(status: int | Literal["timeout", "error"]) -> StatusClass:
    """Map an HTTP status (or ``"timeout"`` / ``"error"``) to its ``status_class`` label."""
    if isinstance(status, str):
        if status not in ("timeout", "error"):
            raise ValueError(f"unknown webhook outcome {status!r}")
        return status
    classes: dict[int, StatusClass] = {2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
    return classes.get(status // 100, "error")


def error_code_label(code: str | None) -> ErrorCode:
    """Map an RFC 2449 response code (``SYS/TEMP/...`` included) to its bounded label."""
    if not code:
        return "none"
    code = code.upper()
    for known in ERROR_CODES[:5]:
        if code == known or code.startswith(known + "/"):
            return known
    return "other"


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


class Metrics:
    """Every metric the bridge exports, registered in a private :class:`CollectorRegistry`.

    Build one per app and pass it to whoever records; call :meth:`prepare` with the
    configured mailboxes and targets so their series exist (at 0) from the start.
    """

    content_type: Final[str] = CONTENT_TYPE_LATEST
    """The ``Content-Type`` of :meth:`render`'s output."""

    def __init__(
        self,
        *,
        version: str = __version__,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._oldest: dict[str, float | None] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._progress_listeners: list[Callable[[str], None]] = []
        r = self.registry
        mb, mbt = ["mailbox"], ["mailbox", "target"]

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
            ["mailbox", "target", "reason"],
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
            ["mailbox", "outcome"],
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
            ["mailbox", "code"],
            registry=r,
        )
        self.commit_failures = Counter(
            "bridge_commit_failures_total",
            "DELE or QUIT that failed, so deletions did not commit.",
            ["mailbox", "command"],
            registry=r,
        )
        self.mailbox_messages = Gauge(
            "bridge_mailbox_messages", "Messages in the maildrop at the last STAT.", mb, registry=r
        )
        self.mailbox_bytes = Gauge(
            "bridge_mailbox_bytes", "Size of the maildrop at the last STAT.", mb, registry=r
        )
        self.oldest_undelivered_age = Gauge(
            "bridge_oldest_undelivered_age_seconds",
            "Age of the oldest message seen but not yet delivered (0 when none).",
            mb,
            registry=r,
        )
        self.parked_messages = Gauge(
            "bridge_parked_messages",
            "Messages parked in the ledger (rejected or backing off).",
            mb,
            registry=r,
        )
        self.last_successful_poll = Gauge(
            "bridge_last_successful_poll_timestamp_seconds",
            "Unix time of the last session that ended well (0: none yet).",
            mb,
            registry=r,
        )
        self.identity_problems = Counter(
            "bridge_identity_problems_total",
            "Messages whose server identity could not be trusted: reused (the content differs "
            "from what was acknowledged under it, so it was posted as new, never deleted), "
            "unstable_uidl (no UIDL overlaps the previous listing), duplicate (shared, told "
            "apart by content).",
            ["mailbox", "kind"],
            registry=r,
        )
        self.retr_failures = Counter(
            "bridge_retr_failures_total",
            "Messages whose RETR failed (refused: -ERR, too_large: past max_message_bytes, "
            "timeout: idle or below min_transfer_rate); each is parked with a short backoff.",
            ["mailbox", "reason"],
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
            child = self._children[key] = metric.labels(*values)
        return child

    # ------------------------------------------------------------------ setup

    def prepare(
        self, routes: Mapping[str, Iterable[str]], *, extra_targets: Iterable[str] = ()
    ) -> None:
        """Create every series for the configured mailboxes and targets, at 0.

        ``routes`` maps each mailbox name to the targets it posts to (``mailbox.webhooks``);
        ``extra_targets`` adds targets no mailbox uses. Safe to call again.
        """
        targets = set(extra_targets)
        for mailbox, mailbox_targets in routes.items():
            for counter in (
                self.messages_fetched,
                self.messages_deleted,
                self.messages_dead_lettered,
                self.messages_oversize,
                self.parse_defects,
            ):
                counter.labels(mailbox)
            for outcome in SESSION_OUTCOMES:
                self.pop3_sessions.labels(mailbox, outcome)
            for code in ERROR_CODES:
                self.pop3_error_responses.labels(mailbox, code)
            for command in COMMIT_COMMANDS:
                self.commit_failures.labels(mailbox, command)
            self.ledger_write_errors.labels(mailbox)
            for kind in IDENTITY_PROBLEMS:
                self.identity_problems.labels(mailbox, kind)
            for failure in RETR_FAILURES:
                self.retr_failures.labels(mailbox, failure)
            self.pop3_session_duration.labels(mailbox)
            for gauge in (
                self.mailbox_messages,
                self.mailbox_bytes,
                self.parked_messages,
                self.last_successful_poll,
            ):
                gauge.labels(mailbox)
            self.set_oldest_undelivered(mailbox, None)
            for target in mailbox_targets:
                targets.add(target)
                self.messages_delivered.labels(mailbox, target)
                self.messages_rejected.labels(mailbox, target)
                for reason in DELIVERY_FAILURE_REASONS:
                    self.delivery_failures.labels(mailbox, target, reason)
        for target in targets:
            for status in STATUS_CLASSES:
                self.webhook_requests.labels(target, status)
            self.webhook_duration.labels(target)
            self.circuit_state.labels(target)
            for action in TOO_LARGE_ACTIONS:
                self.webhook_too_large.labels(target, action)

    # ------------------------------------------------------------------ messages

    def identity_problem(self, mailbox: str, kind: IdentityProblem, count: int = 1) -> None:
        """``count`` messages of ``mailbox`` had an identity problem of ``kind``."""
        _check(kind, IDENTITY_PROBLEMS, "identity problem")
        self._child(self.identity_problems, mailbox, kind).inc(count)

    def retr_failed(self, mailbox: str, reason: RetrFailure) -> None:
        """A RETR from ``mailbox`` failed for ``reason``; the message was parked."""
        _check(reason, RETR_FAILURES, "RETR failure")
        self._child(self.retr_failures, mailbox, reason).inc()

    def ledger_write_failed(self, mailbox: str) -> None:
        """A ledger write failed in a session of ``mailbox``."""
        self._child(self.ledger_write_errors, mailbox).inc()

    def message_fetched(self, mailbox: str, count: int = 1) -> None:
        """``count`` messages were retrieved from ``mailbox``."""
        self._child(self.messages_fetched, mailbox).inc(count)

    def on_progress(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(mailbox)`` whenever a message is delivered or deletions commit."""
        self._progress_listeners.append(listener)

    def _progressed(self, mailbox: str) -> None:
        for listener in self._progress_listeners:
            listener(mailbox)

    def message_delivered(self, mailbox: str, target: str) -> None:
        """``target`` acknowledged a message from ``mailbox`` with a 2xx."""
        self._child(self.messages_delivered, mailbox, target).inc()
        if self._progress_listeners:
            self._progressed(mailbox)

    def messages_deleted_committed(self, mailbox: str, count: int) -> None:
        """QUIT answered +OK, committing ``count`` deletions."""
        if count:
            self.messages_deleted.labels(mailbox).inc(count)
            self._progressed(mailbox)

    def message_rejected(self, mailbox: str, target: str) -> None:
        """``target`` refused a message (other 4xx, 3xx).

        Also call :meth:`delivery_failed` with reason ``"rejected"``.
        """
        self.messages_rejected.labels(mailbox, target).inc()

    def message_dead_lettered(self, mailbox: str) -> None:
        """A message was spooled to the dead-letter directory."""
        self.messages_dead_lettered.labels(mailbox).inc()

    def message_oversize(self, mailbox: str) -> None:
        """A message was larger than the mailbox's ``max_message_bytes``."""
        self.messages_oversize.labels(mailbox).inc()

    def delivery_failed(self, mailbox: str, target: str, reason: DeliveryFailureReason) -> None:
        """A delivery to ``target`` ended without a 2xx, for ``reason``."""
        _check(reason, DELIVERY_FAILURE_REASONS, "delivery failure reason")
        self.delivery_failures.labels(mailbox, target, reason).inc()

    def parse_defects_found(self, mailbox: str, count: int) -> None:
        """The parser reported ``count`` defects in one message."""
        if count:
            self.parse_defects.labels(mailbox).inc(count)

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
        _check(status_class, STATUS_CLASSES, "status class")
        self._child(self.webhook_requests, target, status_class).inc()
        self._child(self.webhook_duration, target).observe(duration_seconds)

    def too_large(self, target: str, action: str) -> None:
        """A payload was too large for ``target``; ``action`` says what was done.

        Its signature matches :data:`bridge.webhook.OnTooLarge`.
        """
        _check(action, TOO_LARGE_ACTIONS, "too-large action")
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
        if not isinstance(value, str) or value not in _CIRCUIT_VALUES:
            raise ValueError(f"unknown circuit state {state!r}")
        self.circuit_state.labels(target).set(_CIRCUIT_VALUES[value])

    def set_circuit_state(self, target: str, state: CircuitState) -> None:
        """Record the breaker state of ``target``: closed, half_open or open."""
        if state not in _CIRCUIT_VALUES:
            raise ValueError(f"unknown circuit state {state!r}")
        self.circuit_state.labels(target).set(_CIRCUIT_VALUES[state])

    # ------------------------------------------------------------------ POP3

    def pop3_session(self, mailbox: str, outcome: SessionOutcome, duration_seconds: float) -> None:
        """A session with ``mailbox`` ended with ``outcome`` after ``duration_seconds``."""
        _check(outcome, SESSION_OUTCOMES, "session outcome")
        self.pop3_sessions.labels(mailbox, outcome).inc()
        self.pop3_session_duration.labels(mailbox).observe(duration_seconds)

    def pop3_error_response(self, mailbox: str, code: str | None) -> None:
        """The server answered -ERR, with RFC 2449 ``code`` (None when it gave none)."""
        self.pop3_error_responses.labels(mailbox, error_code_label(code)).inc()

    def commit_failed(self, mailbox: str, command: CommitCommand) -> None:
        """``DELE`` or ``QUIT`` failed, so marked deletions did not (all) commit."""
        _check(command, COMMIT_COMMANDS, "commit command")
        self.commit_failures.labels(mailbox, command).inc()

    def mailbox_stat(self, mailbox: str, messages: int, size_bytes: int) -> None:
        """Record the STAT answer: ``messages`` waiting, ``size_bytes`` in total."""
        self.mailbox_messages.labels(mailbox).set(messages)
        self.mailbox_bytes.labels(mailbox).set(size_bytes)

    def set_parked(self, mailbox: str, count: int) -> None:
        """``count`` messages of ``mailbox`` are parked in the ledger."""
        self.parked_messages.labels(mailbox).set(count)

    def set_oldest_undelivered(self, mailbox: str, first_seen: float | None) -> None:
        """The oldest undelivered message was first seen at Unix time ``first_seen``.

        The exported age is computed at scrape time, so it keeps growing while a mailbox is
        stuck. ``None`` means nothing is waiting (age 0).
        """
        self._oldest[mailbox] = first_seen
        self.oldest_undelivered_age.labels(mailbox).set_function(
            lambda: self._age_of_oldest(mailbox)
        )

    def _age_of_oldest(self, mailbox: str) -> float:
        first_seen = self._oldest.get(mailbox)
        return 0.0 if first_seen is None else max(0.0, self._clock() - first_seen)

    def poll_succeeded(self, mailbox: str, when: float | None = None) -> None:
        """A session with ``mailbox`` ended well at Unix time ``when`` (default: now)."""
        self.last_successful_poll.labels(mailbox).set(self._clock() if when is None else when)

    def set_up(self, up: bool) -> None:
        """Set ``bridge_up`` (1 while running; 0 once shutting down)."""
        self.up.set(1 if up else 0)

    # ------------------------------------------------------------------ exposition

    def render(self) -> bytes:
        """Every metric in the Prometheus text exposition format."""
        return generate_latest(self.registry)
