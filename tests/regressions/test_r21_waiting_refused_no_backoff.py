"""Review of 3274e1f (``_Prove._waiting_for``: a listed message some target acknowledged and
another is due to get now is retrieved in the proof phase).

A RETR refused there makes the message "unreadable" for the proof: deferred for this
session, nothing recorded. Before 3274e1f the same RETR came in the delivery phase, where
a refusal is a failed retrieval (``mark_retr_failed``: the targets wait
``retr_retry_base``, doubling at each failure; ``retr_failed`` counted and logged). So a
message the server cannot hand out (a corrupted message file: ``-ERR`` at every RETR) that
one target acknowledged before is now retrieved at every poll for ever, without backoff.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bridge.devserver import crlf
from bridge.ledger import DEFAULT_FILENAME
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.regressions.test_r13_undelivered_twin import _config
from tests.regressions.test_r21_suspect_refused_every_poll import _Corrupted
from tests.unit.test_keep import _session


async def test_a_partly_delivered_message_whose_retr_is_refused_backs_off(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """No keep, targets main and audit. X is acknowledged by main and refused by audit (422:
    parked). The park ends (its time moved back) and from then on the server refuses every
    RETR of X. Every poll sends RETR 1 (the proof of _waiting_for), refused, X deferred.
    Expected: the refusal backs off like a failed RETR: the polls right after it send no
    RETR (as before 3274e1f), and X is not deleted."""
    audit = WebhookReceiver()
    await audit.start()
    x = make_message(1)
    server = _Corrupted()
    server.add(x, uid="1")
    await server.start()
    try:
        config = _config(server, {"main": receiver.url, "audit": audit.url}, tmp_path)
        audit.decide(lambda r: 422)
        await _session(config)
        with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as conn:
            conn.execute("UPDATE deliveries SET next_attempt_at = 0 WHERE state = 'parked'")
        audit.decide(None)
        server.corrupted = frozenset({crlf(x)})
        await _session(config)
        assert server.commands.count("RETR 1") >= 2  # the first delivery, and this one
        for _ in range(3):
            server.commands.clear()
            await _session(config)
            assert "RETR 1" not in server.commands, f"RETR at every poll: {server.commands}"
        assert len(server.messages) == 1
    finally:
        await server.stop()
        await audit.stop()
