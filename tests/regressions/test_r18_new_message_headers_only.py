"""Review of dc88a25 (a message some target acknowledged before is fetched the way the
acknowledgement was taken: headers-only via TOP even if now within max_message_bytes).

The fetch decides by the acknowledgement before the message listed now was checked to
be the one acknowledged. When the identity names another message of the same ``LIST``
size now (positional UIDLs after a deletion in a mail client), that message is new: the
check at delivery tells it apart and posts it under a content identity, to every target,
but with what was fetched for the check, its header block. A message within the limit
(and with keep off, deleted after) reaches every target without its body, as if it
were over the limit: the body is lost. Before dc88a25 it was retrieved whole, checked,
and posted whole.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.regressions.test_r13_undelivered_twin import _config
from tests.unit.test_keep import _session


async def test_another_message_under_a_headers_only_acknowledgement_is_posted_whole(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Two targets, oversize_policy headers_only, max_message_bytes 10 000, positional
    UIDLs. Q (20 kB) as UIDL 1 is posted headers-only: main acknowledges, audit answers
    500. Q is deleted in a mail client and R (another 20 kB message, the same LIST size)
    gets UIDL 1; the limit is raised to 100 000. R is read with TOP (Q's acknowledgement
    was headers-only), found to be another message and posted headers-only to both
    targets as 1~t<hash>, then deleted. Expected: R, within the limit, posted whole."""
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
        config = _config(server, urls, tmp_path, max_message_bytes=100_000, **box)
        for _ in range(2):
            await _session(config)
        for hook in (receiver, audit):
            got = [x.json() for x in hook.requests if x.answered == 200]
            assert got[-1]["subject"] == "message 2"
            assert got[-1]["body_omitted"] is False, "R posted headers-only: its body lost"
    finally:
        await server.stop()
        await audit.stop()
