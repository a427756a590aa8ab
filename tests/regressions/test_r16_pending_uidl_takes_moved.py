"""Review of b3d3efb (``_Session``/``Ledger.mark_resized``: "nothing acknowledged under it
yet: it stands for the message listed now"). Also on the revisions before it.

A UIDL whose rows no target acknowledged, listed at another size, holds another message
now; b3d3efb records it as the one its rows stand for and posts it unchecked. But that
message may be one delivered before under another UIDL (positional UIDLs, a rebuilt UID
list): a UIDL with rows is never compared with the spare entries (only unknown UIDLs are
look-alikes), so the moved message is posted a second time.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


async def test_a_moved_message_under_a_pending_uidl_of_another_size_is_posted_once(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, one target. A kept as UIDL 1; Q arrives as UIDL 5, the receiver answers
    500. Q deleted in a mail client and the UID list rebuilt: A gets UIDL 5 (Q's rows, at
    Q's size), Z (a third size) UIDL 1. A is resized into 5's rows and posted again.
    Expected: A posted once (its delivery adopted by 5)."""
    a = make_message(1, body="a: your job 1 finished\n")
    q = make_message(2, body="q, a message the receiver failed, longer\n")
    z = make_message(3, body="z, yet another length, quite a bit longer still\n")
    assert len({len(a), len(q), len(z)}) == 3
    server = FakePop3Server()
    server.add(a, uid="1")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True)
        await _session(config)
        receiver.decide(lambda r: 500 if r.json()["subject"] == "message 2" else None)
        server.add(q, uid="5")
        await _session(config)
        receiver.decide(None)
        server.messages.clear()
        server.add(z, uid="1")
        server.add(a, uid="5")
        for _ in range(2):
            await _session(config)
        posted = [r.json()["subject"] for r in receiver.requests if r.answered == 200]
        assert posted.count("message 1") == 1, f"A posted twice: {posted}"
        assert "DELE" not in server.verbs
    finally:
        await server.stop()
