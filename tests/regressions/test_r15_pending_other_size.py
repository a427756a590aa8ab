"""Found reviewing d108685, also on the revisions before it (keep: a UIDL listed at a size
other than its rows' names another message).

A UIDL's rows are written by ``mark_seen`` with the LIST size of the message first seen
under it; ``mark_acked`` records the content acknowledged but never the size. When the
message is gone before it was posted (the receiver answered 500; another client deleted
it) and the UIDL is reused for a message of another size (positional UIDLs, a rebuilt UID
list), that message is posted under the UIDL, unchecked (no target acknowledged anything
under it), and its rows say: acknowledged, at the old size. At the next poll the UIDL is
listed at a size other than its rows': "another message", retrieved, no proof possible
(the acknowledgement is of another LIST size), renamed by its content and posted again.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


async def test_a_message_posted_under_a_uidl_seen_at_another_size_is_posted_once(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, one target. X kept as UIDL 1; Q arrives as UIDL 5 and the receiver
    answers 500. Q is deleted in a mail client and UIDL 5 reused for P (another size):
    P is posted under 5. Next poll: 5 at P's size, its rows at Q's: P RETRieved, renamed
    5~<P> and posted a second time. Expected: P posted once, no RETR once it is."""
    x = make_message(1, body="x, the first kept message\n")
    q = make_message(2, body="q, a message the receiver failed\n")
    p = make_message(3, body="p: your job finished\n")
    assert len(p) != len(q)
    server = FakePop3Server()
    server.add(x, uid="1")
    server.add(q, uid="5")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True)
        receiver.decide(lambda r: 500 if r.json()["subject"] == "message 2" else None)
        await _session(config)
        receiver.decide(None)
        server.messages.clear()
        server.add(x, uid="1")
        server.add(p, uid="5")
        await _session(config)
        for _ in range(2):
            await _session(config)
        posted = [r.json()["subject"] for r in receiver.requests if r.answered == 200]
        assert posted.count("message 3") == 1, f"P posted twice: {posted}"
        server.commands.clear()
        await _session(config)
        assert "RETR" not in server.verbs
    finally:
        await server.stop()
