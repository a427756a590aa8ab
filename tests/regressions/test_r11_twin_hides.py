"""Review of the kept-twin rename (affcb8b, ``_Prove._kept_twin``).

With keep, an identity listed at another size than its rows is renamed, without RETR, to its
one kept content twin ``<uid>~<hash>`` of that size. Nothing checks that the twin's message
is not listed elsewhere right now: a genuinely new message that happens to get the UIDL and
the size is taken for the twin and never posted.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


async def test_a_new_message_is_not_taken_for_a_kept_twin_listed_elsewhere(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, UIDLs reassigned by the server (Dovecot %u with a rebuilt UID list).
    X is kept as UIDL 1; then Y (another size) gets UIDL 1 and is posted as 1~<hash Y>, kept.
    Then the list is rebuilt again: a new message Z of Y's size gets UIDL 1 and Y gets
    UIDL 2. The session renames 1 to the twin 1~<hash Y> without RETR, and in the same session
    retrieves 2, proves it is Y and adopts Y's delivery for it: two identities claim Y, and Z
    is kept without ever being posted (for ever, without keep_days). Expected: Z posted."""
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
        await _session(config)  # Y posted as 1~<hash>
        await _session(config)  # and kept (the twin rename, no RETR)
        assert [r.json()["subject"] for r in receiver.requests] == ["message 1", "message 2"]
        server.messages.clear()
        server.add(z, uid="1")
        server.add(y, uid="2")
        for _ in range(2):
            await _session(config)
        subjects = sorted(r.json()["subject"] for r in receiver.requests)
        assert subjects == ["message 1", "message 2", "message 3"]
    finally:
        await server.stop()
