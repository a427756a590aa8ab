"""``keep: true``: delivered messages stay on the server, and the ledger remembers them.

Like fetchmail's ``keep`` or getmail's ``delete = false``: the bridge sends no DELE for the
mailbox, and the done rows of a message (every target acknowledged it, or it was
dead-lettered) are what keeps it from being posted again at the next poll. Those rows stay as
long as the server lists the message (:meth:`bridge.ledger.Ledger.prune` only drops rows of
messages gone from the server).

A kept message is not retrieved again at each poll: its identity (UIDL, or the header hash
of a server without UIDL) and the ``LIST`` size it had when it was first seen are the
evidence that it is still the message delivered. The same identity with another size is
another message (a reused UIDL): it is retrieved and checked like any reconcile candidate
(:mod:`bridge.reconcile`) and, since its content differs, posted under an identity of its
content. A reused identity with exactly the same size is not noticed while the message is
kept (unless a delivered message of that size left the listing unexpectedly: then the kept
ones of that size are compared once, :meth:`bridge.poller.proof._Prove._loose`); it is at the
latest when ``keep_days`` passed, because no kept message is ever deleted
without the full proof (``LIST`` size and SHA-256 of the acknowledged content).

``keep_days: N`` deletes a delivered message once ``N`` days have passed since its last
acknowledgement (``acked_at`` of the last target), in a session like any other, after that
proof.
"""

from __future__ import annotations

from collections.abc import Mapping

from bridge.ledger import Row

__all__ = ["DAY", "delivered_at", "held", "same_listing"]

DAY = 86400.0


def delivered_at(rows: Mapping[str, Row]) -> float | None:
    """When the message was delivered: the latest ``acked_at`` of its rows, or None when a
    row is not done or has no time."""
    times = [r.acked_at for r in rows.values() if r.done]
    if not times or len(times) != len(rows) or None in times:
        return None
    return max(t for t in times if t is not None)


def held(rows: Mapping[str, Row], now: float, *, keep: bool, keep_days: int | None) -> bool:
    """True while a delivered message (``rows`` all done) stays on the server.

    Without ``keep_days`` for ever; with it until ``keep_days`` after :func:`delivered_at`.
    A message whose delivery time is unknown is kept: deleting it cannot be undone.
    """
    if not keep:
        return False
    if keep_days is None:
        return True
    at = delivered_at(rows)
    return at is None or now < at + keep_days * DAY


def same_listing(rows: Mapping[str, Row], size: int) -> bool:
    """True when every row saw the message at this ``LIST`` size: a kept identity listed with
    another size names another message now."""
    return bool(rows) and all(r.size == size for r in rows.values())
