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

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from bridge.errors import LedgerError
from bridge.redact import scrub

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

SCHEMA_VERSION = 3
"""``PRAGMA user_version`` of the schema this code writes."""

DEFAULT_FILENAME = "ledger.sqlite3"
"""The database file's name when :class:`Ledger` is given a directory."""

_T = TypeVar("_T")


class RowState(enum.StrEnum):
    """Where one target's delivery of one message stands (compares equal to its string)."""

    SEEN = "seen"
    TRANSIENT = "transient"
    PARKED = "parked"
    ACKED = "acked"
    DEAD_LETTERED = "dead_lettered"


_DONE = (RowState.ACKED, RowState.DEAD_LETTERED)
_PENDING = (RowState.SEEN, RowState.TRANSIENT)

SeenMessage = tuple[str, str, int | None]
"""``(uidl, webhook_id, size)`` of a message seen for the first time."""

Content = tuple[int, str]
"""``(raw_size, raw_sha256)``: what was acknowledged, the proof a reconcile DELE needs."""


_CONTENT_SUFFIX = re.compile(r"(.+)~t?[0-9a-f]{23,24}(?:#\d+)?")


def identity_base(key: str) -> str:
    """The listed identity a ledger key derives from: ``u`` for ``u~<content hash>``.

    ``~`` is a legal UIDL character: only a suffix shaped like a content hash counts."""
    found = _CONTENT_SUFFIX.fullmatch(key)
    return found.group(1) if found else key


@dataclass(frozen=True, slots=True)
class Row:
    """One (mailbox, uidl, target) row. Times are Unix seconds."""

    mailbox: str
    uidl: str
    target: str
    state: RowState
    attempts: int
    last_error: str | None
    next_attempt_at: float | None
    webhook_id: str
    first_seen_at: float
    size: int | None
    updated_at: float
    dele_sent_at: float | None
    committed_at: float | None
    raw_size: int | None = None
    raw_sha256: str | None = None
    retr_failures: int = 0
    """Consecutive failed RETRs of the message (its own backoff, apart from webhook attempts)."""
    refused: bool = False
    """Parked because the target refused it (a webhook rejection), not for a fetch problem."""
    acked_at: float | None = None
    """When this target acknowledged the message (or it was dead-lettered); None if not done."""

    @property
    def done(self) -> bool:
        """True when this target needs no more POSTs (acked, or the message was dead-lettered)."""
        return self.state in _DONE

    def due(self, now: float) -> bool:
        """True when this target should be tried now (not done, next attempt time reached)."""
        return not self.done and (self.next_attempt_at is None or self.next_attempt_at <= now)


def park_backoff(attempts: int, *, base: float = 300.0, cap: float = 86400.0) -> float:
    """Seconds a parked message waits after its ``attempts``-th attempt: base * 2^(n-1), capped."""
    return min(cap, base * 2.0 ** min(max(attempts, 1) - 1, 62))


_SCHEMA = f"""
CREATE TABLE deliveries (
    mailbox         TEXT    NOT NULL,
    uidl            TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ({", ".join(f"'{s}'" for s in RowState)})),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at REAL,
    webhook_id      TEXT    NOT NULL,
    first_seen_at   REAL    NOT NULL,
    size            INTEGER,
    updated_at      REAL    NOT NULL,
    dele_sent_at    REAL,
    committed_at    REAL,
    PRIMARY KEY (mailbox, uidl, target)
) WITHOUT ROWID;
CREATE INDEX deliveries_by_state ON deliveries (mailbox, state, first_seen_at);
"""

_MIGRATIONS: dict[int, str] = {
    1: _SCHEMA,
    2: """
ALTER TABLE deliveries ADD COLUMN raw_size INTEGER;
ALTER TABLE deliveries ADD COLUMN raw_sha256 TEXT;
ALTER TABLE deliveries ADD COLUMN retr_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID
""",
    # When a target acknowledged (or the message was dead-lettered): `keep_days` counts from
    # it. Rows done before this version take their last update, which was that moment unless
    # DELE was sent since (and then the message is being deleted anyway).
    3: """
ALTER TABLE deliveries ADD COLUMN acked_at REAL;
UPDATE deliveries SET acked_at = updated_at WHERE state IN ('acked', 'dead_lettered')
""",
}
"""``user_version`` reached -> the SQL that reaches it from the version before."""

_COLUMNS = (
    "mailbox, uidl, target, state, attempts, last_error, next_attempt_at, webhook_id, "
    "first_seen_at, size, updated_at, dele_sent_at, committed_at, raw_size, raw_sha256, "
    "retr_failures, refused, acked_at"
)
_ERROR_CHARS = 1000
# Queries assembled only from the constants above, never from input.
_SELECT_MAILBOX = f"SELECT {_COLUMNS} FROM deliveries WHERE mailbox = ?"  # noqa: S608
_SELECT_MESSAGE = f"{_SELECT_MAILBOX} AND uidl = ?"
_OLDEST = "SELECT MIN(first_seen_at) FROM deliveries WHERE mailbox = ? AND state IN "


class Ledger:
    """The delivery ledger in one SQLite file; open on construction, close with :meth:`close`.

    ``path`` is the database file, or an existing directory to hold
    ``ledger.sqlite3``; missing parent directories are created (mode 0700).
    Parked messages wait :func:`park_backoff` with ``park_base``/``park_max``.
    Failures raise :class:`~bridge.errors.LedgerError` naming the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        park_base: float = 300.0,
        park_max: float = 86400.0,
        clock: Callable[[], float] = time.time,
        defer_open: bool = False,
    ) -> None:
        """Open (creating or migrating) the ledger at ``path`` (later, with ``defer_open``)."""
        target = Path(path)
        self.path = target / DEFAULT_FILENAME if target.is_dir() else target
        self._park_base = park_base
        self._park_max = park_max
        self._clock = clock
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._batch_depth = 0
        self._unsynced = False
        if not defer_open:
            self.open()

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Open the database if it is not open; WAL mode, schema current.

        ``synchronous=NORMAL``: SQLite does not fsync at commit; this class does, on the WAL
        file, at each sync point (see the module docstring).
        """
        with self._lock:
            if self._conn is not None:
                return
            try:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                _private_file(self.path)
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=10.0
                )
            except (OSError, sqlite3.Error) as exc:
                raise LedgerError(f"cannot open the ledger {self.path}: {exc}") from exc
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise LedgerError(
                        f"the ledger {self.path} cannot use WAL mode (got {mode!r}); "
                        "put data_dir on a local file system"
                    )
                conn.execute("PRAGMA synchronous=NORMAL")
                self._migrate(conn)
            except sqlite3.Error as exc:
                conn.close()
                raise LedgerError(f"cannot open the ledger {self.path}: {exc}") from exc
            except BaseException:
                conn.close()
                raise
            self._conn = conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger {self.path} has schema version {version}, newer than this "
                f"popbridge understands ({SCHEMA_VERSION}); upgrade popbridge"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")  # one atomic step: its DDL and the version bump
            try:
                for statement in filter(str.strip, _MIGRATIONS[step].split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        """Commit anything pending and close. Safe to call twice."""
        with self._lock:
            if self._conn is None:
                return
            try:
                if self._conn.in_transaction:
                    self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot commit the ledger {self.path}: {exc}") from exc
            finally:
                self._conn.close()
                self._conn = None
                self._batch_depth = 0

    def __enter__(self) -> Ledger:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ transactions

    def _fsync_wal(self) -> None:
        """fsync the WAL: every transaction committed so far is then on disk."""
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:
            self._unsynced = False  # no WAL: everything is in the database file
            return
        except OSError as exc:
            raise LedgerError(f"ledger {self.path}: cannot open {wal} to sync it: {exc}") from exc
        try:
            os.fsync(fd)
        except OSError as exc:
            raise LedgerError(f"ledger {self.path}: fsync of {wal} failed: {exc}") from exc
        finally:
            os.close(fd)
        self._unsynced = False

    def sync(self) -> None:
        """Make every committed write durable now (one fsync); a no-op when all are."""
        with self._lock:
            if self._unsynced:
                self._fsync_wal()

    def _run(
        self,
        action: str,
        work: Callable[[sqlite3.Connection], _T],
        *,
        durable: bool,
        sync: bool = True,
    ) -> _T:
        """Run ``work`` atomically (a savepoint in the open transaction); commit unless deferred.

        A failing ``work`` leaves no trace and does not disturb deferred writes.
        """
        with self._lock:
            conn = self._conn
            if conn is None:
                raise LedgerError(f"the ledger {self.path} is closed")
            began = not conn.in_transaction
            try:
                if began:
                    # A transaction of its own: rolling it back undoes exactly this write.
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        result = work(conn)
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                else:
                    # Inside a deferred group: a savepoint, so a failure keeps the others.
                    conn.execute("SAVEPOINT op")
                    try:
                        result = work(conn)
                    except BaseException:
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                        raise
                    conn.execute("RELEASE op")
                if durable and self._batch_depth == 0:
                    conn.execute("COMMIT")
                    self._unsynced = True
                    if sync:
                        self._fsync_wal()
                return result
            except sqlite3.Error as exc:
                raise LedgerError(f"ledger {self.path}: {action} failed: {exc}") from exc

    def _read(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._conn is None:
                raise LedgerError(f"the ledger {self.path} is closed")
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise LedgerError(f"ledger {self.path}: read failed: {exc}") from exc

    def commit(self) -> None:
        """Commit deferred writes and make every write durable (one fsync at most)."""
        with self._lock:
            if self._conn is None:
                return
            if self._conn.in_transaction:
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    raise LedgerError(f"ledger {self.path}: commit failed: {exc}") from exc
                self._unsynced = True
            if self._unsynced:
                self._fsync_wal()

    async def flush(self) -> None:
        """:meth:`commit` in a worker thread, so the fsync does not stall the event loop."""
        await asyncio.to_thread(self.commit)

    @property
    def pending(self) -> bool:
        """True when deferred or unsynced writes await :meth:`commit`."""
        with self._lock:
            return self._conn is not None and (self._conn.in_transaction or self._unsynced)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Defer the commits of every write inside; commit once on exit (group commit).

        Nestable; only the outermost exit commits. On an exception the writes made
        so far are still committed (each one is a valid state on its own).
        """
        with self._lock:
            self._batch_depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._batch_depth -= 1
                outermost = self._batch_depth == 0
            if outermost:
                self.commit()

    def probe(self) -> None:
        """A small committed write, so a full disk or a read-only data_dir is found before a
        batch is fetched (and its acknowledgements could not be written)."""
        self._run(
            "write probe",
            lambda c: c.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?)",
                (repr(self._clock()),),
            ),
            durable=True,
            sync=False,
        )

    # ------------------------------------------------------------------ reads

    def rows(self, mailbox: str) -> dict[str, dict[str, Row]]:
        """Every row of ``mailbox`` as ``{uidl: {target: Row}}``."""
        result: dict[str, dict[str, Row]] = {}
        for row in map(_row, self._read(_SELECT_MAILBOX, (mailbox,))):
            result.setdefault(row.uidl, {})[row.target] = row
        return result

    def rows_for(self, mailbox: str, uidl: str) -> dict[str, Row]:
        """The rows of one message as ``{target: Row}`` (empty if never seen)."""
        return {row.target: row for row in map(_row, self._read(_SELECT_MESSAGE, (mailbox, uidl)))}

    def oldest_pending(self, mailbox: str, *, include_parked: bool = False) -> float | None:
        """``first_seen_at`` of the oldest message some target still waits for, or None.

        Counts ``seen`` and ``transient`` rows (and ``parked`` ones if asked).
        """
        states = _PENDING + ((RowState.PARKED,) if include_parked else ())
        sql = _OLDEST + "(" + ", ".join("?" * len(states)) + ")"
        value = self._read(sql, (mailbox, *states))[0][0]
        return None if value is None else float(value)

    def parked_count(self, mailbox: str) -> int:
        """How many messages of ``mailbox`` have at least one parked target."""
        sql = "SELECT COUNT(DISTINCT uidl) FROM deliveries WHERE mailbox = ? AND state = ?"
        return int(self._read(sql, (mailbox, RowState.PARKED))[0][0])

    # ------------------------------------------------------------------ writes

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
        ``source`` (a UIDL that moved): :mod:`bridge.reconcile`. Existing rows are left alone.
        """
        stamp = self._now(now)
        columns = _COLUMNS.split(", ")
        picked = ", ".join(
            {
                "uidl": "?",
                "webhook_id": "?",
                "size": "?",
                "updated_at": "?",
                "dele_sent_at": "NULL",
                "committed_at": "NULL",
            }.get(c, c)
            for c in columns
        )
        # Assembled only from the constants above, never from input.
        sql = (
            f"INSERT OR IGNORE INTO deliveries ({_COLUMNS}) SELECT {picked} "  # noqa: S608
            "FROM deliveries WHERE mailbox = ? AND uidl = ?"
        )
        params = (uidl, webhook_id, size, stamp, mailbox, source)
        self._run("adopt", lambda c: c.execute(sql, params), durable=True)

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
            (RowState.TRANSIENT, _clip(error), next_attempt_at),
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
                raise _missing(mailbox, uidl, (target,))
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
                    _clip(error),
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
                        _clip(error),
                        when,
                        failures,
                        stamp,
                        mailbox,
                        uidl,
                        target,
                    ),
                )
                if cursor.rowcount == 0:
                    raise _missing(mailbox, uidl, (target,))
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
                    _clip(reason),
                    stamp,
                    stamp,
                    *(content or (None, None)),
                    mailbox,
                    uidl,
                    RowState.ACKED,
                ),
            )
            if cursor.rowcount == 0:
                raise _missing(mailbox, uidl, ())

        self._run("mark_dead_lettered", work, durable=True)

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
                if not states or any(s not in _DONE for s in states):
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

    def known_uidls(self, mailbox: str) -> set[str]:
        """Every ledger key of ``mailbox``."""
        sql = "SELECT DISTINCT uidl FROM deliveries WHERE mailbox = ?"
        return {str(r[0]) for r in self._read(sql, (mailbox,))}

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

    # ------------------------------------------------------------------ helpers

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

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
                    raise _missing(mailbox, uidl, (target,))

        self._run(action, work, durable=durable, sync=sync)


def _private_file(path: Path) -> None:
    """Create ``path`` mode 0600 (SQLite gives its WAL and shm files the same mode), or
    take group and other permissions away from an existing one."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return
    os.close(fd)


def _row(values: tuple[Any, ...]) -> Row:
    (mailbox, uidl, target, state, attempts, error, nxt, wid, first, size, upd, dele, com) = values[
        :13
    ]
    raw_size, raw_sha256, retr_failures, refused, acked_at = values[13:18]
    return Row(
        mailbox=str(mailbox),
        uidl=str(uidl),
        target=str(target),
        state=RowState(state),
        attempts=int(attempts),
        last_error=None if error is None else str(error),
        next_attempt_at=None if nxt is None else float(nxt),
        webhook_id=str(wid),
        first_seen_at=float(first),
        size=None if size is None else int(size),
        updated_at=float(upd),
        dele_sent_at=None if dele is None else float(dele),
        committed_at=None if com is None else float(com),
        raw_size=None if raw_size is None else int(raw_size),
        raw_sha256=None if raw_sha256 is None else str(raw_sha256),
        retr_failures=int(retr_failures or 0),
        refused=bool(refused),
        acked_at=None if acked_at is None else float(acked_at),
    )


def _clip(text: str) -> str:
    text = scrub(text)  # last_error is shown by the CLI and in logs: no secret goes in
    return text if len(text) <= _ERROR_CHARS else text[:_ERROR_CHARS] + "..."


def _missing(mailbox: str, uidl: str, targets: tuple[str, ...]) -> LedgerError:
    which = f" for target {targets[0]!r}" if targets else ""
    return LedgerError(f"[{mailbox}] message {uidl!r} has no ledger row{which}; mark_seen it first")
