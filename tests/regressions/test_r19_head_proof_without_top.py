"""Review of dc88a25 / 9dda758 (a message under a headers-only acknowledgement is read with
``TOP n 0`` for the proof, also when it is within ``max_message_bytes`` now).

``_Fetch._fetch`` takes the TOP path only when the server offers TOP; otherwise it treats
the message as oversize (``proof_by_head`` is true) and ``_oversize`` parks it (headers_only
needs TOP), with the reason "over max_message_bytes" though it is within the limit. When
the identity names another message now (positional UIDLs after a deletion in a mail
client), that message is new and within the limit, yet it is never retrieved and never
posted to any target: it is parked again each time the park runs out. Before dc88a25 it
was retrieved whole, told apart, and posted whole (the reconcile proof, ``verify``, also
renames such a message by its listing when there is no TOP, so it gets posted).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bridge.ledger import DEFAULT_FILENAME
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.regressions.test_r13_undelivered_twin import _config
from tests.unit.test_keep import _session


async def test_a_new_message_under_a_headers_only_acknowledgement_is_posted_without_top(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Two targets, oversize_policy headers_only, max_message_bytes 10 000, positional
    UIDLs. Q (20 kB) as UIDL 1 is posted headers-only: main acknowledges, audit answers
    500. The server no longer offers TOP (a server migration), Q is deleted in a mail
    client and R (another 20 kB message) gets UIDL 1; the limit is raised to 100 000. R is
    parked as "over max_message_bytes" at every session (also after the park ran out),
    never retrieved, never posted. Expected: R, new and within the limit, posted whole to
    both targets."""
    audit = WebhookReceiver()
    await audit.start()
    q = make_message(1, size=20000)
    r = make_message(2, size=20000)
    assert len(q) == len(r)
    assert q != r
    server = FakePop3Server()
    server.add(q, uid="1")
    await server.start()
    try:
        urls = {"main": receiver.url, "audit": audit.url}
        box = {"oversize_policy": "headers_only"}
        audit.decide(lambda req: 500)
        await _session(_config(server, urls, tmp_path, max_message_bytes=10_000, **box))
        assert receiver.requests[-1].json()["body_omitted"] is True
        audit.decide(None)
        server.messages.clear()
        server.add(r, uid="1")
        server.top = False
        config = _config(server, urls, tmp_path, max_message_bytes=100_000, **box)
        for _ in range(3):
            await _session(config)
            with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as db:  # the park ran out
                db.execute("UPDATE deliveries SET next_attempt_at = 0 WHERE state = 'parked'")
        for hook in (receiver, audit):
            got = [x.json() for x in hook.requests if x.answered == 200]
            assert got[-1]["subject"] == "message 2", "R never posted"
            assert got[-1]["body_omitted"] is False
    finally:
        await server.stop()
        await audit.stop()
