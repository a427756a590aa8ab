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

from bridge.metric_labels import (
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
    DeliveryFailureReason,
    IdentityProblem,
    MailboxDetail,
    MailboxErrorKind,
    RetrFailure,
    SessionOutcome,
    TooLargeAction,
    error_code_label,
    status_class,
)
from bridge.metrics.record import Metrics

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
