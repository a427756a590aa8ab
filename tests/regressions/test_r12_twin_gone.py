"""Review of the kept-twin rename (d41fd5e, ``_Prove._twin``), and the limit it keeps.

With keep, an identity listed at another size than its rows is renamed, without RETR, to its
one delivered content twin ``<uid>~<hash>`` of that size, unless another listed message of that
size is "unsettled". Nothing says the twin's message is still on the server at all: if it is
gone, a new message that gets the UIDL at that size is taken for it and never posted
(keep.py: "The same identity with another size is another message ... retrieved and checked").
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


async def test_a_new_message_taken_for_a_gone_kept_twin_is_posted_when_keep_days_pass(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, keep_days: 2, UIDLs reassigned by the server (Dovecot %u with a rebuilt UID
    list). X is kept as UIDL 1; Y (another size) gets UIDL 1: posted as 1~<hash Y>, kept. Y is
    deleted in a mail client and a new Z of Y's size gets UIDL 1. While kept, Z is taken for Y
    by identity and size, without RETR: the documented limit of keep (docs/config.md, "A
    reused identity with exactly the same size is not noticed while the message is kept").
    When keep_days pass, nothing is deleted without the content proof: Z is retrieved, found
    not to be Y, posted once and not deleted. (The review asked for Z to be posted while kept;
    that needs a download of every kept message at every poll, which keep avoids by design.)"""
    x = make_message(1, body="x, the first kept message\n")
    y = make_message(2, body="y, a later, longer message\n")
    z = make_message(3, body="z, brand new, never sent!!\n")
    assert len(y) == len(z) != len(x)
    server = FakePop3Server()
    server.add(x, uid="1")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, keep_days=2)
        await _session(config)
        server.messages.clear()
        server.add(y, uid="1")
        await _session(config)
        server.messages.clear()
        server.add(z, uid="1")
        await _session(config)
        assert len(receiver.requests) == 2  # the documented limit: not noticed while kept
        with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as conn:
            conn.execute("UPDATE deliveries SET acked_at = acked_at - ?", (3 * DAY,))
        server.commands.clear()
        for _ in range(3):
            await _session(config)
        subjects = sorted(r.json()["subject"] for r in receiver.requests)
        assert subjects == ["message 1", "message 2", "message 3"]
        assert "DELE" not in server.verbs
        assert len(server.messages) == 1
    finally:
        await server.stop()
