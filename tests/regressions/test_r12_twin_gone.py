"""Review of the kept-twin rename (d41fd5e, ``_Prove._twin``).

With keep, an identity listed at another size than its rows is renamed, without RETR, to its
one delivered content twin ``<uid>~<hash>`` of that size, unless another listed message of that
size is "unsettled". Nothing says the twin's message is still on the server at all: if it is
gone, a new message that gets the UIDL at that size is taken for it and never posted
(keep.py: "The same identity with another size is another message ... retrieved and checked").
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.app import App
from bridge.config import Config
from bridge.poller import SessionResult
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config


async def _session(config: Config) -> SessionResult:
    app = App(config)
    try:
        result = await app.session(app.mailboxes["fake"], asyncio.Event())
    finally:
        await app.close()
    assert result is not None
    assert result.committed
    return result


async def test_a_new_message_is_not_taken_for_a_kept_twin_that_is_gone(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, UIDLs reassigned by the server (Dovecot %u with a rebuilt UID list). X is
    kept as UIDL 1; the list is rebuilt and Y (another size) gets UIDL 1: posted as
    1~<hash Y>, kept. The user deletes Y in their mail client, the list is rebuilt again, and
    a new message Z of Y's size gets UIDL 1: UIDL 1 is listed at another size than X's rows,
    so it is another message; but it is renamed to 1~<hash Y> without RETR and kept without
    ever being posted. Expected: Z posted."""
    x = make_message(1, body="x, the first kept message\n")
    y = make_message(2, body="y, a later, longer message\n")
    z = make_message(3, body="z, brand new, never sent!!\n")
    assert len(y) == len(z) != len(x)
    server = FakePop3Server()
    server.add(x, uid="1")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True)
        await _session(config)
        server.messages.clear()
        server.add(y, uid="1")
        await _session(config)
        server.messages.clear()
        server.add(z, uid="1")
        for _ in range(2):
            await _session(config)
        subjects = sorted(r.json()["subject"] for r in receiver.requests)
        assert subjects == ["message 1", "message 2", "message 3"]
    finally:
        await server.stop()
