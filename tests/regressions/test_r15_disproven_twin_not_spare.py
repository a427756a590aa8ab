"""Found reviewing d108685, also before it (``_Prove._prove``: the twin taken counts as listed).

With keep, a UIDL listed at the size of one of its twins ``<uid>~<hash>`` is taken for the
one proven last, and that twin is then "listed" (``listed`` in ``_prove``): it is left out
of the spare entries, the deliveries a message under a moved UIDL may adopt. When
keep_days pass the UIDL is proven against that twin before any DELE. If it holds other
content (a UID list rebuilt again: keep's documented limit while kept), the proof renames
it, but the twin stays out of the spare entries: the message it stands for, listed now
under another UIDL and found there by its own proof, has nothing to adopt and is "posted
as a new message", a second time.
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


async def test_a_twin_disproven_at_keep_days_is_adopted_not_posted_again(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, keep_days: 3, one target, UIDLs reassigned by the server. X kept as 1.
    X removed, A (a new size) gets 1: posted as 1~<A>. B (A's size) arrives and the UID
    list is rebuilt: B gets 1, A gets 2: B is posted as 1~<B>, A adopted as 2. Rebuilt
    once more: A gets 1, B gets 2 (not noticed while kept: 1 is taken for 1~<B>, proven
    last; 2 is listed at its size). Three days later 1 is proven against 1~<B>, holds A:
    renamed 1~<A>, delivered, deleted (fine). 2 is proven against A, holds B: renamed 2~<B>;
    1~<B>, B's delivery, was left out of the spare entries (the twin taken), so B is posted
    a second time. Expected: A and B posted once each."""
    x = make_message(1, body="x, the first kept message\n")
    a = make_message(2, body="a: your job 1 finished\n")
    b = make_message(3, body="b: your job 2 finished\n")
    assert len(a) == len(b) != len(x)
    server = FakePop3Server()
    server.add(x, uid="1")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, keep_days=3)
        await _session(config)
        server.messages.clear()
        server.add(a, uid="1")
        await _session(config)
        server.messages.clear()
        server.add(b, uid="1")
        server.add(a, uid="2")
        await _session(config)
        server.messages.clear()
        server.add(a, uid="1")
        server.add(b, uid="2")
        await _session(config)
        with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as conn:
            conn.execute("UPDATE deliveries SET acked_at = acked_at - ?", (4 * DAY,))
        for _ in range(2):
            await _session(config)
        posted = [r.json()["subject"] for r in receiver.requests if r.answered == 200]
        assert posted == ["message 1", "message 2", "message 3"], f"B posted twice: {posted}"
    finally:
        await server.stop()
