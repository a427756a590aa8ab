"""The service: builds every concrete part from config and schedules the mailboxes.

This is the only module that turns config into objects (STYLE.md). It owns the ledger, the
webhook client, the metrics and the HTTP server, one :class:`~bridge.poller.Poller` per
mailbox, and the scheduling rules: each mailbox polls every ``poll_interval`` with jitter,
one session per mailbox at a time, at most ``max_concurrent_sessions`` at once, a failing
mailbox backs off by the kind of failure and never delays the others.

The package: :mod:`~bridge.app.parts` builds each kind of part from its config section;
:mod:`~bridge.app.base` owns them and runs one session of a mailbox, :mod:`~bridge.app.loops`
schedules the mailboxes for `run`, and :mod:`~bridge.app.service` holds :class:`App` with
`once`, `check` and reloads.
"""

from bridge.app.parts import (
    attachment_store,
    client_factory,
    log_login,
    mailbox_policy,
    prune_attachments,
    select_shard,
    session_outcome,
    shard_of,
    webhook_ssl_context,
    webhook_target,
)
from bridge.app.service import (
    JITTER,
    MAX_FAILURE_BACKOFF,
    ONCE_MAX_WAIT,
    RETENTION_INTERVAL,
    App,
    MailboxState,
)

__all__ = [
    "JITTER",
    "MAX_FAILURE_BACKOFF",
    "ONCE_MAX_WAIT",
    "RETENTION_INTERVAL",
    "App",
    "MailboxState",
    "attachment_store",
    "client_factory",
    "log_login",
    "mailbox_policy",
    "prune_attachments",
    "select_shard",
    "session_outcome",
    "shard_of",
    "webhook_ssl_context",
    "webhook_target",
]
