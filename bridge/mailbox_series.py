"""The per-mailbox gauges, kept as plain numbers and rendered without the client library.

At 10,000 mailboxes these are most of ``/metrics``. prometheus-client keeps an object with a
lock per series and formats each sample through several layers (~100 ns per byte); here a
mailbox is one small list and its label text is escaped once, so rendering is a few string
joins per mailbox, done in chunks that yield to the event loop between them
(:meth:`MailboxSeries.render_chunks`). It is also a regular collector, so
``registry.collect()`` and ``get_sample_value`` see the same values.

Always per mailbox (what an operator acts on per mailbox):
``bridge_last_successful_poll_timestamp_seconds``, ``bridge_mailbox_messages`` (the backlog)
and ``bridge_oldest_undelivered_age_seconds``; the last one, with essential detail, only for
the mailboxes that have an undelivered message (after a good session there is none, so at
10,000 mostly idle mailboxes it costs nothing). ``bridge_mailbox_bytes`` and
``bridge_parked_messages`` are per mailbox only with full detail; otherwise one series each,
summed over the mailboxes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Final

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["FAMILIES", "MailboxSeries"]

# (name, help, always per mailbox) in the order of a row's fields
FAMILIES: Final = (
    (
        "bridge_last_successful_poll_timestamp_seconds",
        "Unix time of the last session that ended well (0: none yet).",
        True,
    ),
    (
        "bridge_oldest_undelivered_age_seconds",
        "Age of the oldest message seen but not yet delivered (0 when none).",
        True,
    ),
    ("bridge_mailbox_messages", "Messages in the maildrop at the last STAT.", True),
    ("bridge_mailbox_bytes", "Size of the maildrop at the last STAT.", False),
    ("bridge_parked_messages", "Messages parked in the ledger (rejected or backing off).", False),
)
_LAST, _OLDEST, _MESSAGES, _BYTES, _PARKED = range(5)
_NONE: Final = -1.0  # "no undelivered message" in the oldest field


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _num(value: float) -> str:
    """A sample value as the exposition format writes it (finite values only here)."""
    return repr(float(value))


class MailboxSeries(Collector):
    """Per-mailbox gauge values; ``full`` exports bytes and parked per mailbox too."""

    def __init__(self, *, clock: Callable[[], float], full: bool) -> None:
        self._clock = clock
        self.full = full
        self._rows: dict[str, list[float]] = {}
        self._labels: dict[str, str] = {}
        self._removed: set[str] = set()

    def row(self, mailbox: str) -> list[float]:
        """The mailbox's fields, created (all 0, nothing undelivered) on first use.

        A mailbox :meth:`retain` removed gets a row that is not exported: the last session
        of a mailbox a reload removed must not bring back its series (a frozen last-poll
        time would look like a stalled mailbox forever)."""
        row = self._rows.get(mailbox)
        if row is None:
            row = [0.0, _NONE, 0.0, 0.0, 0.0]
            if mailbox in self._removed:
                return row
            self._rows[mailbox] = row
            self._labels[mailbox] = f'{{mailbox="{_escape(mailbox)}"}} '
        return row

    def retain(self, mailboxes: Iterable[str]) -> None:
        """Keep the series of ``mailboxes`` only (after a reload or a shard change)."""
        keep = set(mailboxes)
        for mailbox in [m for m in self._rows if m not in keep]:
            del self._rows[mailbox], self._labels[mailbox]
            self._removed.add(mailbox)
        self._removed -= keep

    def __len__(self) -> int:
        return len(self._rows)

    # ------------------------------------------------------------------ updates

    def poll_succeeded(self, mailbox: str, when: float) -> None:
        self.row(mailbox)[_LAST] = float(when)

    def set_oldest(self, mailbox: str, first_seen: float | None) -> None:
        self.row(mailbox)[_OLDEST] = _NONE if first_seen is None else float(first_seen)

    def stat(self, mailbox: str, messages: int, size: int) -> None:
        row = self.row(mailbox)
        row[_MESSAGES] = float(messages)
        row[_BYTES] = float(size)

    def set_parked(self, mailbox: str, count: int) -> None:
        self.row(mailbox)[_PARKED] = float(count)

    # ------------------------------------------------------------------ reading

    def _value(self, row: list[float], field: int, now: float) -> float:
        if field == _OLDEST:
            first_seen = row[_OLDEST]
            return 0.0 if first_seen == _NONE else max(0.0, now - first_seen)
        return row[field]

    def _shown(self, row: list[float], field: int) -> bool:
        """Essential detail leaves out the oldest-undelivered age of mailboxes with none."""
        return self.full or field != _OLDEST or row[_OLDEST] != _NONE

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The families for prometheus-client's registry (tests, the progress line)."""
        now = self._clock()
        for field, (name, help_text, per_mailbox) in enumerate(FAMILIES):
            if per_mailbox or self.full:
                family = GaugeMetricFamily(name, help_text, labels=["mailbox"])
                for mailbox, row in self._rows.items():
                    if self._shown(row, field):
                        family.add_metric([mailbox], self._value(row, field, now))
            else:
                family = GaugeMetricFamily(name, help_text)
                family.add_metric([], sum(row[field] for row in self._rows.values()))
            yield family

    def render_chunks(self, size: int = 1000) -> Iterator[str]:
        """The exposition text of every family, ``size`` mailboxes per piece."""
        now = self._clock()
        items = list(self._rows.items())
        for field, (name, help_text, per_mailbox) in enumerate(FAMILIES):
            head = f"# HELP {name} {help_text}\n# TYPE {name} gauge\n"
            if not (per_mailbox or self.full):
                total = sum(row[field] for _, row in items)
                yield f"{head}{name} {_num(total)}\n"
                continue
            yield head
            labels = self._labels
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                if field == _OLDEST:
                    yield "".join(
                        f"{name}{labels[mailbox]}{self._value(row, field, now)!r}\n"
                        for mailbox, row in chunk
                        if self._shown(row, field)
                    )
                else:
                    yield "".join(
                        f"{name}{labels[mailbox]}{row[field]!r}\n" for mailbox, row in chunk
                    )
