"""The durable delivery ledger: one SQLite row per (mailbox, UIDL, target).

DESIGN.md, "The delivery ledger". A target's row moves::

    seen -> acked                       (2xx; durable before DELE is sent)
         -> transient                   (retry at next_attempt_at)
         -> parked                      (rejected; next_attempt_at grows, see park_backoff)
         -> dead_lettered               (spooled to disk; the message may be deleted)

and, per message, ``dele_sent_at`` then ``committed_at`` record the deletion (DELE
sent, then QUIT answered ``+OK``). Rows stay until :meth:`Ledger.prune` sees the
UIDL gone from the server, so a message the server failed to remove is deleted
again on reconcile and never posted twice. For a mailbox with ``keep: true`` the done rows of
messages still on the server are the only memory of what was posted: they stay as long as the
server lists the message. ``acked_at`` is when a target acknowledged (``keep_days`` counts
from the last target's).

A done row also keeps the proof of what was acknowledged: ``raw_size`` and ``raw_sha256`` of
the message as retrieved (``top:<sha256>`` of its header block for a headers-only payload).
A message is deleted on reconcile only when the server's copy has that content: an identity
the server gave to another message since (positional UIDLs, a rebuilt UID list, a server
without UIDL and look-alike headers) is then a new message, not one to delete.

SQLite in WAL mode. Every write commits at once and is on disk (the WAL fsynced) when it
returns, with two ways to share that cost (group commit, for throughput):

* ``mark_acked(..., sync=False)`` (and ``mark_dele_sent``) commit at once, so the write
  survives the process being killed, but leave the fsync to the next :meth:`Ledger.sync`,
  :meth:`Ledger.commit`, ``await`` :meth:`Ledger.flush` or synced write: one fsync then
  covers all of them, which is what must happen before DELE;
* ``mark_acked(..., durable=False)`` and writes inside :meth:`Ledger.batch` join one open
  transaction that the next commit makes durable; they are lost if the process dies first.

The methods are synchronous and short (one fsync at most) and are meant to be
called from the event loop; they are thread-safe, so ``asyncio.to_thread`` works
too. :meth:`Ledger.flush` does its fsync in a worker thread.
"""

from bridge.ledger.lifecycle import Lifecycle
from bridge.ledger.reads import Reads
from bridge.ledger.schema import (
    DEFAULT_FILENAME,
    SCHEMA_VERSION,
    Content,
    Row,
    RowState,
    SeenMessage,
    identity_base,
    park_backoff,
)
from bridge.ledger.store import Store
from bridge.ledger.transitions import Transitions

__all__ = [
    "DEFAULT_FILENAME",
    "SCHEMA_VERSION",
    "Content",
    "Ledger",
    "Row",
    "RowState",
    "SeenMessage",
    "identity_base",
    "park_backoff",
]


class Ledger(Transitions, Lifecycle, Reads, Store):
    """The delivery ledger in one SQLite file; open on construction, close with :meth:`close`.

    ``path`` is the database file, or an existing directory to hold
    ``ledger.sqlite3``; missing parent directories are created (mode 0700).
    Parked messages wait :func:`park_backoff` with ``park_base``/``park_max``.
    Failures raise :class:`~bridge.errors.LedgerError` naming the file.
    """
