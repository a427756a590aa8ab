"""A message's rows come and go: created ``seen`` (or adopted), then DELE sent, committed, pruned.

Per message, ``dele_sent_at`` then ``committed_at`` record the deletion; the rows stay until
:meth:`~bridge.ledger.Ledger.prune` sees the UIDL gone from the server (:mod:`bridge.ledger`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable

from bridge.errors import LedgerError
from bridge.ledger.reads import Reads
from bridge.ledger.schema import COLUMNS, DONE, RowState, SeenMessage, identity_base


class Lifecycle(Reads):
    """Rows entering the ledger, the deletion of their message, and rows leaving it."""

    def mark_seen(
        self,
        mailbox: str,
        messages: Iterable[SeenMessage],
        targets: Iterable[str],
        now: float | None = None,
    ) -> None:
        """Record new messages: one ``seen`` row per (message, target) not yet in the ledger.

        ``messages`` holds ``(uidl, webhook_id, size)``. Existing rows are left
        alone, so a target added to the config later gets a row of its own.
        """
        stamp = self._now(now)
        names = tuple(targets)
        values = [
            (mailbox, uidl, target, RowState.SEEN, wid, stamp, size, stamp)
            for uidl, wid, size in messages
            for target in names
        ]
        self._run(
            "mark_seen",
            lambda c: c.executemany(
                "INSERT OR IGNORE INTO deliveries (mailbox, uidl, target, state, webhook_id, "
                "first_seen_at, size, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            ),
            durable=True,
        )

    def adopt(
        self,
        mailbox: str,
        source: str,
        uidl: str,
        webhook_id: str,
        size: int,
        now: float | None = None,
    ) -> None:
        """Record that the message listed as ``uidl`` is the one delivered as ``source``.

        The rows of ``source`` are copied to ``uidl`` (its states, acknowledgement times and
        content proof; this ``webhook_id`` and ``size``), so the message is not posted again.
        Only for a message whose content was proven to be the one acknowledged under
        ``source`` (a UIDL that moved): :mod:`bridge.reconcile`. Existing rows of ``uidl`` that
        no target acknowledged are replaced (they stood for a message that is gone); the
        others are left alone.
        """
        stamp = self._now(now)
        columns = COLUMNS.split(", ")
        picked = ", ".join(
            {
                "uidl": "?",
                "webhook_id": "?",
                "size": "?",
                "updated_at": "?",
                "dele_sent_at": "NULL",
                "committed_at": "NULL",
                # a proof backoff (mark_proof_failed) was about the source's place
                "retr_failures": "0",
                "next_attempt_at": "CASE WHEN state IN ('acked', 'dead_lettered') "
                "THEN NULL ELSE next_attempt_at END",
            }.get(c, c)
            for c in columns
        )
        # Assembled only from the constants above, never from input.
        sql = (
            f"INSERT OR IGNORE INTO deliveries ({COLUMNS}) SELECT {picked} "  # noqa: S608
            "FROM deliveries WHERE mailbox = ? AND uidl = ?"
        )
        params = (uidl, webhook_id, size, stamp, mailbox, source)

        def work(conn: sqlite3.Connection) -> None:
            # Rows of ``uidl`` no target acknowledged stood for a message that is gone.
            conn.execute(
                "DELETE FROM deliveries WHERE mailbox = ? AND uidl = ? "
                "AND state NOT IN ('acked', 'dead_lettered')",
                (mailbox, uidl),
            )
            conn.execute(sql, params)

        self._run("adopt", work, durable=True)

    def mark_resized(self, mailbox: str, uidl: str, size: int) -> None:
        """Record the ``LIST`` size of a message none of whose targets acknowledged it yet
        and whose identity is listed now with another size (a reused UIDL: the message
        delivered under it is the one listed now, and keep knows it by this size)."""
        self._run(
            "mark_resized",
            lambda c: c.execute(
                "UPDATE deliveries SET size = ? WHERE mailbox = ? AND uidl = ? "
                "AND state NOT IN ('acked', 'dead_lettered')",
                (size, mailbox, uidl),
            ),
            durable=True,
        )

    def mark_proven(self, mailbox: str, uidl: str, now: float | None = None) -> None:
        """Record that the message listed now was proven (by its content) to be ``uidl``'s.

        Sets ``updated_at``: of an identity's content keys at one size, the one proven last
        is taken for the message listed under it (:meth:`~bridge.poller.proof._Prove._twin`).
        A hint, not a delivery fact: committed without an fsync. Clears a proof backoff
        (:meth:`mark_proof_failed`)."""
        stamp = self._now(now)
        self._run(
            "mark_proven",
            lambda c: c.execute(
                "UPDATE deliveries SET updated_at = ?, retr_failures = 0, next_attempt_at = "
                "CASE WHEN state IN ('acked', 'dead_lettered') THEN NULL ELSE next_attempt_at END "
                "WHERE mailbox = ? AND uidl = ?",
                (stamp, mailbox, uidl),
            ),
            durable=True,
            sync=False,
        )

    def mark_dele_sent(
        self,
        mailbox: str,
        uidls: Collection[str],
        now: float | None = None,
        *,
        sync: bool = True,
    ) -> None:
        """Record that DELE was answered ``+OK`` for these messages (not yet committed).

        Raises :class:`~bridge.errors.LedgerError` if one of them has a target that
        is not done (acked or dead-lettered): a message must never be deleted before.
        """
        if not uidls:
            return
        stamp = self._now(now)

        def work(conn: sqlite3.Connection) -> None:
            found: dict[str, list[str]] = {uidl: [] for uidl in uidls}
            names = list(found)
            for start in range(0, len(names), 500):  # within SQLite's variable limit
                chunk = names[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                for uidl, state in conn.execute(
                    "SELECT uidl, state FROM deliveries "  # noqa: S608 - only placeholders
                    f"WHERE mailbox = ? AND uidl IN ({marks})",
                    (mailbox, *chunk),
                ):
                    found[uidl].append(state)
            for uidl, states in found.items():
                if not states or any(s not in DONE for s in states):
                    raise LedgerError(
                        f"ledger {self.path}: [{mailbox}] message {uidl!r} is marked deleted "
                        f"but not every target acknowledged it (states: {sorted(states)})"
                    )
            conn.executemany(
                "UPDATE deliveries SET dele_sent_at = ?, updated_at = ? "
                "WHERE mailbox = ? AND uidl = ?",
                [(stamp, stamp, mailbox, uidl) for uidl in uidls],
            )

        self._run("mark_dele_sent", work, durable=True, sync=sync)

    def commit_session(
        self, mailbox: str, uidls: Collection[str], now: float | None = None
    ) -> None:
        """Record that QUIT was answered ``+OK``: the deletions of ``uidls`` are committed.

        The rows stay until :meth:`prune` no longer sees the UIDLs on the server.
        """
        stamp = self._now(now)
        self._run(
            "commit_session",
            lambda c: c.executemany(
                "UPDATE deliveries SET committed_at = ?, updated_at = ? "
                "WHERE mailbox = ? AND uidl = ? AND dele_sent_at IS NOT NULL",
                [(stamp, stamp, mailbox, uidl) for uidl in uidls],
            ),
            durable=True,
        )

    def forget_targets(self, mailbox: str, keep: Collection[str]) -> int:
        """Delete the rows of targets no longer configured for ``mailbox``; returns how many.

        Without this, a removed target's pending rows would keep its messages from ever
        counting as done (and keep the backlog metrics wrong).
        """
        names = tuple(keep)
        marks = ", ".join("?" * len(names))
        where = f"mailbox = ? AND target NOT IN ({marks})"
        if not self._read(f"SELECT 1 FROM deliveries WHERE {where} LIMIT 1", (mailbox, *names)):  # noqa: S608
            return 0  # nothing to forget: no write, no fsync (the common, idle case)
        sql = f"DELETE FROM deliveries WHERE {where}"  # noqa: S608
        return int(
            self._run(
                "forget_targets", lambda c: c.execute(sql, (mailbox, *names)).rowcount, durable=True
            )
        )

    def prune(self, mailbox: str, present_uidls: Collection[str]) -> int:
        """Delete the rows of messages no longer on the server; returns how many messages.

        A key ``u~<hash>`` (a message told apart by content) stays while ``u`` is listed.
        Writes nothing when nothing is gone.
        """
        present = set(present_uidls)
        gone = {
            key
            for key in self.known_uidls(mailbox)
            if key not in present and identity_base(key) not in present
        }
        if not gone:
            return 0

        def work(conn: sqlite3.Connection) -> int:
            conn.executemany(
                "DELETE FROM deliveries WHERE mailbox = ? AND uidl = ?",
                [(mailbox, uidl) for uidl in gone],
            )
            return len(gone)

        return self._run("prune", work, durable=True)
