"""The ledger's read-only queries: a message's rows, the backlog, the keys of a mailbox."""

from __future__ import annotations

from bridge.ledger.schema import (
    OLDEST,
    PENDING,
    SELECT_MAILBOX,
    SELECT_MESSAGE,
    Row,
    RowState,
    decode_row,
)
from bridge.ledger.store import Store


class Reads(Store):
    """Queries that write nothing."""

    def rows(self, mailbox: str) -> dict[str, dict[str, Row]]:
        """Every row of ``mailbox`` as ``{uidl: {target: Row}}``."""
        result: dict[str, dict[str, Row]] = {}
        for row in map(decode_row, self._read(SELECT_MAILBOX, (mailbox,))):
            result.setdefault(row.uidl, {})[row.target] = row
        return result

    def rows_for(self, mailbox: str, uidl: str) -> dict[str, Row]:
        """The rows of one message as ``{target: Row}`` (empty if never seen)."""
        return {
            row.target: row for row in map(decode_row, self._read(SELECT_MESSAGE, (mailbox, uidl)))
        }

    def oldest_pending(self, mailbox: str, *, include_parked: bool = False) -> float | None:
        """``first_seen_at`` of the oldest message some target still waits for, or None.

        Counts ``seen`` and ``transient`` rows (and ``parked`` ones if asked).
        """
        states = PENDING + ((RowState.PARKED,) if include_parked else ())
        sql = OLDEST + "(" + ", ".join("?" * len(states)) + ")"
        value = self._read(sql, (mailbox, *states))[0][0]
        return None if value is None else float(value)

    def parked_count(self, mailbox: str) -> int:
        """How many messages of ``mailbox`` have at least one parked target."""
        sql = "SELECT COUNT(DISTINCT uidl) FROM deliveries WHERE mailbox = ? AND state = ?"
        return int(self._read(sql, (mailbox, RowState.PARKED))[0][0])

    def known_uidls(self, mailbox: str) -> set[str]:
        """Every ledger key of ``mailbox``."""
        sql = "SELECT DISTINCT uidl FROM deliveries WHERE mailbox = ?"
        return {str(r[0]) for r in self._read(sql, (mailbox,))}
