"""Review of f777eb8 / d040056 (with keep, kept messages of a size at which a delivered
message left its place unexpectedly, ``_Prove._loose``, are compared once).

``_loose`` leaves out a spare delivery whose content some listed identity was acknowledged
with (``sha not in shas``): one listed message accounts for it. With byte-identical copies
(each delivered under its own identity, "matched one to one") it accounts for one copy
only. Positional UIDLs over A, B, B' (B' a byte-identical copy of B, one size): A is
deleted in a mail client, B shifts onto A's UIDL and B' onto B's. The delivery of B' (the
last UIDL, no longer listed) is left out as "accounted for" by B's UIDL, so the size is not
loose, nothing is compared, and that delivery's rows are pruned. When keep_days pass, UIDL
1 is proven against A, found to hold B, and B is posted again as a new message: the content
B reaches the target three times for two copies. Without copies
(test_r15_positional_same_size) each is posted once.
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


async def test_shifted_byte_identical_copies_are_not_posted_again(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, keep_days: 3, one target, positional UIDLs. A, B and B' (a byte-identical
    copy of B; one size) posted as 1, 2, 3 and kept. A is deleted in a mail client: B is
    listed as 1, B' as 2. Three days later 1 is proven against A, holds B, and B is posted
    a third time as 1~<hash>. Expected: A once, B twice (once per copy), no more."""
    a = make_message(1, body="a: your job 1 finished\n")
    b = make_message(2, body="b: your job 2 finished\n")
    assert len(a) == len(b)
    server = FakePop3Server()
    server.add(a, uid="1")
    server.add(b, uid="2")
    server.add(b, uid="3")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, keep_days=3)
        await _session(config)
        server.messages.clear()
        server.add(b, uid="1")
        server.add(b, uid="2")
        await _session(config)
        with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as conn:
            conn.execute("UPDATE deliveries SET acked_at = acked_at - ?", (4 * DAY,))
        for _ in range(2):
            await _session(config)
        posted = [
            (r.json()["subject"], r.json()["uidl"]) for r in receiver.requests if r.answered == 200
        ]
        assert len(posted) == 3, f"B posted again: {posted}"
    finally:
        await server.stop()
