"""The ledger's SQLite connection: opening and migrating the file, transactions, durability.

What every ledger query runs on; the sync points and group commit are described in
:mod:`bridge.ledger`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from bridge.errors import LedgerError
from bridge.ledger.schema import DEFAULT_FILENAME, MIGRATIONS, SCHEMA_VERSION

_T = TypeVar("_T")


class Store:
    """The connection and its transactions; :class:`~bridge.ledger.Ledger` adds the queries."""

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
        file, at each sync point (see :mod:`bridge.ledger`).
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
                for statement in filter(str.strip, MIGRATIONS[step].split(";")):
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

    def __enter__(self) -> Self:
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

    # ------------------------------------------------------------------ helpers

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now


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
