"""The metric families: names, help, labels and buckets, in one private registry, and the
exposition. What callers record lives in :mod:`bridge.metrics.record`."""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

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
from bridge.metric_labels import MAILBOX_DETAILS, MailboxDetail, check_label

# `_created` doubles every counter and histogram and no alert or dashboard uses it. The switch
# is process-wide in prometheus-client; the bridge owns its process.
disable_created_metrics()  # type: ignore[no-untyped-call]  # the library leaves it untyped

WEBHOOK_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60)
SESSION_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
LAG_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class MetricFamilies:
    """Every metric the bridge exports, registered in a private :class:`CollectorRegistry`.

    The base of :class:`bridge.metrics.Metrics`, which adds the methods that record.
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
            "moved (a new identity proven by content to be a message already delivered under "
            "another: not posted again), unstable_uidl (no UIDL overlaps the previous "
            "listing), duplicate (shared, told apart by content).",
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
