"""What the ledger stores: the row states, :class:`Row`, the schema and its migrations.

Also the column list and the SQL assembled from it, and the helpers that turn a database row
into a :class:`Row` and an error into a ``last_error``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from bridge.errors import LedgerError
from bridge.redact import scrub

SCHEMA_VERSION = 3
"""``PRAGMA user_version`` of the schema this code writes."""

DEFAULT_FILENAME = "ledger.sqlite3"
"""The database file's name when :class:`Ledger` is given a directory."""


class RowState(enum.StrEnum):
    """Where one target's delivery of one message stands (compares equal to its string)."""

    SEEN = "seen"
    TRANSIENT = "transient"
    PARKED = "parked"
    ACKED = "acked"
    DEAD_LETTERED = "dead_lettered"


DONE = (RowState.ACKED, RowState.DEAD_LETTERED)
PENDING = (RowState.SEEN, RowState.TRANSIENT)

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
        return self.state in DONE

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

MIGRATIONS: dict[int, str] = {
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

COLUMNS = (
    "mailbox, uidl, target, state, attempts, last_error, next_attempt_at, webhook_id, "
    "first_seen_at, size, updated_at, dele_sent_at, committed_at, raw_size, raw_sha256, "
    "retr_failures, refused, acked_at"
)
_ERROR_CHARS = 1000
# Queries assembled only from the constants above, never from input.
SELECT_MAILBOX = f"SELECT {COLUMNS} FROM deliveries WHERE mailbox = ?"  # noqa: S608
SELECT_MESSAGE = f"{SELECT_MAILBOX} AND uidl = ?"
OLDEST = "SELECT MIN(first_seen_at) FROM deliveries WHERE mailbox = ? AND state IN "


def decode_row(values: tuple[Any, ...]) -> Row:
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


def clip(text: str) -> str:
    text = scrub(text)  # last_error is shown by the CLI and in logs: no secret goes in
    return text if len(text) <= _ERROR_CHARS else text[:_ERROR_CHARS] + "..."


def missing(mailbox: str, uidl: str, targets: tuple[str, ...]) -> LedgerError:
    which = f" for target {targets[0]!r}" if targets else ""
    return LedgerError(f"[{mailbox}] message {uidl!r} has no ledger row{which}; mark_seen it first")
