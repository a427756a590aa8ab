"""Review of 25479bc: "a deferred message every target acknowledged no longer holds
strict_order mail behind it" (``_Session._transaction``: ``delivered``).

"Delivered" is read from the rows of the listed identity only, not whether the message
listed under it now is the one those rows acknowledged. A reused identity listed at another
size (a new message, whose proof is deferred: RETR refused, timed out, over the budget)
counts as delivered, so with strict_order the mail after it is posted before it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bridge.ledger import DEFAULT_FILENAME
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.regressions.test_r12_unreadable_wedge import _Damaged
from tests.unit.test_keep import _config
from tests.unit.test_keep import _session_result as _session


async def test_strict_order_holds_mail_behind_a_new_message_under_a_reused_uidl(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """strict_order, keep: true, UIDLs reassigned by the server. B is kept as UIDL 1. B is
    removed and a new message V (another size) gets UIDL 1, then W arrives as UIDL 2. RETR
    of V fails for a while (a file not readable yet): V's proof is deferred, and W, listed
    after it, is posted first. Expected (strict_order): V posted before W."""
    b = make_message(1, body="b, kept\n")
    v = make_message(2, body="v, a new message under a reused uidl, longer\n")
    w = make_message(3, body="w, brand new\n")
    assert len(b) != len(v)
    server = _Damaged()
    server.add(b, uid="1")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, strict_order=True)
        await _session(config)
        server.messages.clear()
        server.add(v, uid="1")
        server.add(w, uid="2")
        server.damaged = {"1"}
        for _ in range(2):
            await _session(config)
        server.damaged = set()
        with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as conn:  # its backoff passed
            conn.execute("UPDATE deliveries SET next_attempt_at = NULL")
        for _ in range(2):
            await _session(config)
        subjects = [r.json()["subject"] for r in receiver.requests]
        assert subjects == ["message 1", "message 2", "message 3"], "W posted before V"
    finally:
        await server.stop()
