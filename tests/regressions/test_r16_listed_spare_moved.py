"""Review of 350fdff (``_Prove._trusted``: "only a message that left the listing now can have
moved").

A spare entry whose identity is listed now is not only an earlier content ``u~<hash>`` of a
listed UIDL: it is also ``u`` itself when ``u`` is listed at another size than its rows',
i.e. the message delivered under ``u`` is no longer under ``u`` and may well have moved
under another UIDL (positional UIDLs, a rebuilt UID list). 350fdff no longer counts it, so
a twin of its size is taken without a download for the UIDL the moved message now holds.
When that twin is not delivered yet, its delivery checks the content, finds another one and
posts it as new: the moved message is posted a second time (before 350fdff the UIDL was
proven, and the moved message's delivery adopted).
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


async def test_a_message_moved_off_a_uidl_listed_at_another_size_is_not_posted_again(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, one target. A kept as UIDL 1, C0 as UIDL 2. UIDL 2 reused for C1 (A's
    size): told apart as 2~<C1>, the receiver answers 500. C1 deleted in a mail client and
    the UID list rebuilt: A gets UIDL 2, Z (a third size) UIDL 1. 1's rows (A) are spare but
    1 is listed, so 2~<C1> is trusted; its delivery finds A, renames it 2~<A> and posts it
    again. Expected: A posted once (its delivery adopted, as before 350fdff)."""
    a = make_message(1, body="a: your job 1 finished\n")
    c0 = make_message(2, body="c0, a kept message of another length\n")
    c1 = make_message(3, body="c: your job 2 finished\n")
    z = make_message(4, body="z, yet another length, quite a bit longer\n")
    assert len(a) == len(c1)
    assert len({len(a), len(c0), len(z)}) == 3
    server = FakePop3Server()
    server.add(a, uid="1")
    server.add(c0, uid="2")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True)
        await _session(config)
        receiver.decide(lambda r: 500 if r.json()["subject"] == "message 3" else None)
        server.messages.clear()
        server.add(a, uid="1")
        server.add(c1, uid="2")
        await _session(config)
        receiver.decide(None)
        server.messages.clear()
        server.add(z, uid="1")
        server.add(a, uid="2")
        for _ in range(2):
            await _session(config)
        posted = [r.json()["subject"] for r in receiver.requests if r.answered == 200]
        assert posted.count("message 1") == 1, f"A posted twice: {posted}"
        assert posted.count("message 4") == 1, posted
        assert "DELE" not in server.verbs
    finally:
        await server.stop()
