"""Review of 2a842c8 and 25479bc (``_Prove._keep_apart``: "a twin not yet delivered goes on
as it is").

With keep, a UIDL listed at a size other than its rows' is taken for its content twin
``<uid>~<hash>`` of that size without a download. When no target acknowledged that twin yet
(the receiver answered 500), there is nothing to compare with at delivery: whatever message
the UIDL holds now is posted under the twin's webhook-id. If the UID list was rebuilt and
the UIDL now holds a message delivered before under another UIDL, that message is posted a
second time. The twin's message itself (deleted meanwhile) is fine; the damage is the
repost, and the twin's rows then record the other content as acknowledged.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


async def test_a_pending_twin_does_not_claim_a_message_delivered_under_another_uidl(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, one target, UIDLs reassigned by the server. X kept as UIDL 1. X removed;
    B (a new size) gets UIDL 1 and A (B's size) arrives as UIDL 2: A is posted as 2, B as
    1~<B> but the receiver answers 500. B is deleted in a mail client and the UID list
    rebuilt: A gets UIDL 1. 1 is taken for its one twin 1~<B>, not delivered yet, so A is
    posted again, under 1~<B>'s webhook-id. Expected: A posted once."""
    x = make_message(1, body="x, the first kept message\n")
    a = make_message(2, body="a: your job 1 finished\n")
    b = make_message(3, body="b: your job 2 finished\n")
    assert len(a) == len(b) != len(x)
    server = FakePop3Server()
    server.add(x, uid="1")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True)
        await _session(config)
        receiver.decide(lambda r: 500 if r.json()["subject"] == "message 3" else None)
        server.messages.clear()
        server.add(b, uid="1")
        server.add(a, uid="2")
        await _session(config)
        receiver.decide(None)
        server.messages.clear()
        server.add(a, uid="1")
        for _ in range(2):
            await _session(config)
        posted = [r.json()["text"] for r in receiver.requests if r.answered == 200]
        assert posted.count("a: your job 1 finished\n") == 1, f"A posted twice: {posted}"
    finally:
        await server.stop()
