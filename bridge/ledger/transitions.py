"""A target's row moves: ``seen`` -> ``acked`` / ``transient`` / ``parked`` / ``dead_lettered``.

See :mod:`bridge.ledger` for the state machine and when each write is durable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from bridge.ledger.schema import Content, RowState, clip, missing, park_backoff
from bridge.ledger.store import Store


class Transitions(Store):
    """The outcomes of delivering a message to its targets (and of failing to retrieve it)."""

    def mark_acked(
        self,
        mailbox: str,
        uidl: str,
        targets: str | Iterable[str],
        now: float | None = None,
        *,
        content: Content | None = None,
        durable: bool = True,
        sync: bool = True,
    ) -> None:
        """Record that ``targets`` (one name or several) acknowledged the message.

        ``content`` is the ``(raw_size, raw_sha256)`` of what they acknowledged: without it
        a later reconcile cannot prove the server's copy is that message, and posts it again.

        Durable when it returns. With ``sync=False`` it is committed (it survives the
        process being killed) but its fsync waits for the next :meth:`sync`; with
        ``durable=False`` the write joins the open group transaction and becomes durable at
        the next :meth:`commit`, :meth:`flush` or durable write. Either way, call
        :meth:`sync` or :meth:`flush` before sending DELE.
        """
        names = (targets,) if isinstance(targets, str) else tuple(targets)
        stamp = self._now(now)
        self._update(
            "mark_acked",
            mailbox,
            uidl,
            names,
            "state = ?, attempts = attempts + 1, last_error = NULL, next_attempt_at = NULL, "
            "raw_size = ?, raw_sha256 = ?, retr_failures = 0, refused = 0, acked_at = ?",
            (RowState.ACKED, *(content or (None, None)), stamp),
            stamp,
            durable=durable,
            sync=sync,
        )

    def mark_acked_many(
        self,
        mailbox: str,
        acks: Iterable[tuple[str, str, Content | None]],
        now: float | None = None,
    ) -> None:
        """Record several ``(uidl, target, content)`` acknowledgements with one fsync."""
        with self.batch():
            for uidl, target, content in acks:
                self.mark_acked(mailbox, uidl, target, now, content=content, durable=False)

    def mark_transient(
        self,
        mailbox: str,
        uidl: str,
        target: str,
        error: str,
        next_attempt_at: float | None,
        now: float | None = None,
    ) -> None:
        """Record a transient failure; the target is tried again from ``next_attempt_at``."""
        self._update(
            "mark_transient",
            mailbox,
            uidl,
            (target,),
            "state = ?, attempts = attempts + 1, last_error = ?, next_attempt_at = ?, "
            "retr_failures = 0, refused = 0",
            (RowState.TRANSIENT, clip(error), next_attempt_at),
            now,
        )

    def mark_parked(
        self,
        mailbox: str,
        uidl: str,
        target: str,
        error: str,
        next_attempt_at: float | None = None,
        now: float | None = None,
        *,
        backoff_base: float | None = None,
        refused: bool = True,
    ) -> float:
        """Park a rejected message for ``target``; returns its next attempt time.

        With ``next_attempt_at=None`` the wait grows with the attempts:
        ``now + park_backoff(attempts)`` from ``backoff_base`` (default: the ledger's).
        """
        stamp = self._now(now)

        def work(conn: sqlite3.Connection) -> float:
            found = conn.execute(
                "SELECT attempts FROM deliveries WHERE mailbox = ? AND uidl = ? AND target = ?",
                (mailbox, uidl, target),
            ).fetchone()
            if found is None:
                raise missing(mailbox, uidl, (target,))
            attempts = int(found[0]) + 1
            when = next_attempt_at
            if when is None:
                base = self._park_base if backoff_base is None else backoff_base
                when = stamp + park_backoff(attempts, base=base, cap=self._park_max)
            conn.execute(
                "UPDATE deliveries SET state = ?, attempts = ?, last_error = ?, "
                "next_attempt_at = ?, updated_at = ?, refused = ? "
                "WHERE mailbox = ? AND uidl = ? AND target = ?",
                (
                    RowState.PARKED,
                    attempts,
                    clip(error),
                    when,
                    stamp,
                    int(refused),
                    mailbox,
                    uidl,
                    target,
                ),
            )
            return when

        return self._run("mark_parked", work, durable=True)

    def mark_proof_failed(
        self, mailbox: str, uidl: str, *, backoff_base: float, now: float | None = None
    ) -> float:
        """The message could not be retrieved for its proof (``-ERR``, timed out): it is not
        asked for again before the returned time, ``backoff_base`` doubling with each
        consecutive failure (as :meth:`mark_retr_failed`). Done rows keep their state (their
        ``next_attempt_at`` is otherwise unused); a row still due waits as long."""
        stamp = self._now(now)

        def work(conn: sqlite3.Connection) -> float:
            found = conn.execute(
                "SELECT MAX(retr_failures) FROM deliveries WHERE mailbox = ? AND uidl = ?",
                (mailbox, uidl),
            ).fetchone()
            failures = int(found[0] or 0) + 1
            when = stamp + park_backoff(failures, base=backoff_base, cap=self._park_max)
            conn.execute(
                "UPDATE deliveries SET retr_failures = ?, "
                "next_attempt_at = MAX(COALESCE(next_attempt_at, 0), ?) "
                "WHERE mailbox = ? AND uidl = ?",
                (failures, when, mailbox, uidl),
            )
            return when

        return float(self._run("mark_proof_failed", work, durable=True))

    def mark_retr_failed(
        self,
        mailbox: str,
        uidl: str,
        targets: Iterable[str],
        error: str,
        *,
        backoff_base: float,
        now: float | None = None,
    ) -> float:
        """The message could not be retrieved: ``targets`` wait ``backoff_base`` doubling with
        each consecutive failed RETR (not with webhook attempts); returns the next attempt time.

        The rows become ``transient``: nobody refused the message, so it never counts as
        rejected (a dead-letter decision needs every target to have answered)."""
        stamp = self._now(now)
        names = tuple(targets)

        def work(conn: sqlite3.Connection) -> float:
            found = conn.execute(
                "SELECT MAX(retr_failures) FROM deliveries WHERE mailbox = ? AND uidl = ?",
                (mailbox, uidl),
            ).fetchone()
            failures = int(found[0] or 0) + 1
            when = stamp + park_backoff(failures, base=backoff_base, cap=self._park_max)
            for target in names:
                cursor = conn.execute(
                    "UPDATE deliveries SET state = ?, last_error = ?, next_attempt_at = ?, "
                    "retr_failures = ?, refused = 0, updated_at = ? "
                    "WHERE mailbox = ? AND uidl = ? AND target = ?",
                    (
                        RowState.TRANSIENT,
                        clip(error),
                        when,
                        failures,
                        stamp,
                        mailbox,
                        uidl,
                        target,
                    ),
                )
                if cursor.rowcount == 0:
                    raise missing(mailbox, uidl, (target,))
            return when

        return self._run("mark_retr_failed", work, durable=True)

    def mark_dead_lettered(
        self,
        mailbox: str,
        uidl: str,
        reason: str,
        now: float | None = None,
        *,
        content: Content | None = None,
    ) -> None:
        """Record that the message was spooled to the dead-letter store: every target is done.

        Targets that acknowledged it stay ``acked``; the others become ``dead_lettered``.
        Call it after :meth:`~bridge.deadletter.DeadLetterStore.write` returned and
        before DELE. Durable when it returns.
        """
        stamp = self._now(now)

        def work(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE deliveries SET state = ?, last_error = ?, next_attempt_at = NULL, "
                "updated_at = ?, acked_at = ?, raw_size = ?, raw_sha256 = ? "
                "WHERE mailbox = ? AND uidl = ? AND state != ?",
                (
                    RowState.DEAD_LETTERED,
                    clip(reason),
                    stamp,
                    stamp,
                    *(content or (None, None)),
                    mailbox,
                    uidl,
                    RowState.ACKED,
                ),
            )
            if cursor.rowcount == 0:
                raise missing(mailbox, uidl, ())

        self._run("mark_dead_lettered", work, durable=True)

    def _update(
        self,
        action: str,
        mailbox: str,
        uidl: str,
        targets: tuple[str, ...],
        assignments: str,
        values: tuple[object, ...],
        now: float | None,
        *,
        durable: bool = True,
        sync: bool = True,
    ) -> None:
        stamp = self._now(now)

        def work(conn: sqlite3.Connection) -> None:
            for target in targets:
                cursor = conn.execute(
                    f"UPDATE deliveries SET {assignments}, updated_at = ? "  # noqa: S608
                    "WHERE mailbox = ? AND uidl = ? AND target = ?",
                    (*values, stamp, mailbox, uidl, target),
                )
                if cursor.rowcount == 0:
                    raise missing(mailbox, uidl, (target,))

        self._run(action, work, durable=durable, sync=sync)
