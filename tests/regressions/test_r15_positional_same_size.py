"""Found reviewing d108685, also on the revisions before it (keep's documented limit: "a
reused identity listed at exactly the size of the delivered message is not noticed while
kept, only when keep_days pass, where nothing is deleted without a content proof").

Nothing is deleted, but what is posted then is wrong. Positional UIDLs (or a rebuilt UID
list) and mail of one size (notifications of one template): a message deleted by another
client shifts the later ones down one UIDL, each listed at the size its new UIDL's rows
saw. Not noticed while kept (the limit), and the rows of the last UIDL, no longer listed,
are pruned. When keep_days pass, each UIDL is proven against what was acknowledged under
it, found to hold other content and "posted as a new message". That content was
delivered already: under the next UIDL (listed, so not "spare", nothing to adopt) or under
the pruned one. Every shifted message is posted a second time.
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


async def test_messages_shifted_to_uidls_of_their_size_are_not_posted_again(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, keep_days: 3, one target, positional UIDLs. A, B, C (one size) posted
    as 1, 2, 3 and kept. A is deleted in a mail client: B is listed as 1, C as 2. Three
    days later 1 is proven against A (it holds B) and 2 against B (it holds C): B and C
    are posted a second time, under new webhook-ids. Expected: each posted once."""
    a = make_message(1, body="a: your job 1 finished\n")
    b = make_message(2, body="b: your job 2 finished\n")
    c = make_message(3, body="c: your job 3 finished\n")
    assert len(a) == len(b) == len(c)
    server = FakePop3Server()
    server.add(a, uid="1")
    server.add(b, uid="2")
    server.add(c, uid="3")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, keep_days=3)
        await _session(config)
        server.messages.clear()
        server.add(b, uid="1")
        server.add(c, uid="2")
        await _session(config)
        with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as conn:
            conn.execute("UPDATE deliveries SET acked_at = acked_at - ?", (4 * DAY,))
        for _ in range(2):
            await _session(config)
        posted = [r.json()["subject"] for r in receiver.requests if r.answered == 200]
        assert posted == ["message 1", "message 2", "message 3"], f"posted twice: {posted}"
    finally:
        await server.stop()
