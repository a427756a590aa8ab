"""Review of affcb8b (keep_days): a reused UIDL is retrieved at every poll once the old
message's keep_days passed.

r10 stopped re-downloading a message under a reused UIDL at every poll, but only while the
rows of the old message under that UIDL are held. Once its keep_days passed, ``_keep_apart``
hands it to the proof each session (``not self._holds(rows)``): RETR, "identity_reused"
warning and metric, rename to the already-kept ``<uid>~<hash>`` -- at every poll, and it takes
a slot of the proof budget each time.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bridge.keep import DAY
from bridge.ledger import DEFAULT_FILENAME
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


async def test_a_reused_uidl_is_not_retrieved_at_every_poll_after_keep_days(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, keep_days 3. X kept as UIDL 1; X is removed by another client and Y
    (another size) gets UIDL 1: posted once as 1~<hash Y>, kept. Two days later X's rows
    (still in the ledger, UIDL 1 is listed) are past keep_days, Y's are not. Expected: Y left
    alone (kept, no RETR). Before: RETR of Y at every poll, and an identity_moved warning
    (and bridge_identity_problems_total{kind="moved"}) for Y "adopting" its own key
    1~<hash Y>, which _spare counts as not listed because the inventory names it 1."""
    server = FakePop3Server()
    server.add(make_message(1, body="x, the first kept message\n"), uid="1")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, keep_days=3)
        await _session(config)
        with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as conn:
            conn.execute("UPDATE deliveries SET acked_at = acked_at - ?", (2 * DAY,))
        server.messages.clear()
        server.add(make_message(2, body="y, a later and longer message\n"), uid="1")
        await _session(config)
        assert len(receiver.requests) == 2
        with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as conn:
            conn.execute("UPDATE deliveries SET acked_at = acked_at - ?", (2 * DAY,))
        for _ in range(2):
            server.commands.clear()
            later = await _session(config)
            assert (later.kept, later.delivered, later.deleted) == (1, 0, 0)
            assert (later.reused_identities, later.moved_identities) == (0, 0)
            assert "RETR" not in server.verbs
        assert len(receiver.requests) == 2
    finally:
        await server.stop()
