"""What callers record: :class:`Metrics`, one method per event, checking enum labels."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from bridge.metric_labels import (
    CIRCUIT_VALUES,
    COMMIT_COMMANDS,
    DELIVERY_FAILURE_REASONS,
    ERROR_CODES,
    IDENTITY_PROBLEMS,
    MAILBOX_ERROR_KINDS,
    RETR_FAILURES,
    SESSION_OUTCOMES,
    STATUS_CLASSES,
    TOO_LARGE_ACTIONS,
    CircuitState,
    CommitCommand,
    DeliveryFailureReason,
    IdentityProblem,
    MailboxErrorKind,
    RetrFailure,
    SessionOutcome,
    check_label,
    error_code_label,
    status_class,
)
from bridge.metrics.families import MetricFamilies


class Metrics(MetricFamilies):
    """Every metric the bridge exports, registered in a private :class:`CollectorRegistry`.

    Build one per app and pass it to whoever records; call :meth:`prepare` with the
    configured mailboxes and targets so their series exist (at 0) from the start.
    ``mailbox_detail`` is ``"full"`` (every series per mailbox) or ``"essential"`` (see the
    module docstring); the config's default is ``"essential"``.
    """

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
