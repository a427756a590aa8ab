"""Review of dc88a25 (a message some target acknowledged whole is retrieved whole, up to
the size acknowledged, after ``max_message_bytes`` was lowered below its size).

The fetch decides by the acknowledgement before the message listed now was checked to be
the one acknowledged. When the identity names another message of the same ``LIST`` size
now (positional UIDLs after a deletion in a mail client), that message is new, and over
today's limit: the check at delivery tells it apart and posts it under a content
identity, to every target, but with what was fetched for the check, the whole message.
A new message over ``max_message_bytes`` is posted whole (and, with keep off, deleted)
whatever ``oversize_policy`` says. Before dc88a25 it was read with TOP and posted
headers-only (``headers_only``) or parked (``park``). The mirror of r18's
test_r18_new_message_headers_only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.regressions.test_r13_undelivered_twin import _config
from tests.unit.test_keep import _session


@pytest.mark.parametrize("policy", ["headers_only", "park"])
async def test_another_message_under_a_whole_acknowledgement_over_the_limit_is_not_posted_whole(
    receiver: WebhookReceiver, tmp_path: Path, policy: str
) -> None:
    """Two targets, max_message_bytes 100 000, positional UIDLs. Q (20 kB) as UIDL 1 is
    posted whole: main acknowledges, audit answers 500. Q is deleted in a mail client and
    R (another 20 kB message, the same LIST size) gets UIDL 1; the limit is lowered to
    10 000. R is retrieved whole (Q's acknowledgement was whole), found to be another
    message and posted whole to both targets as 1~<hash>, then deleted. Expected: R, a
    new message over the limit, is never posted whole (headers-only or parked, as
    oversize_policy says)."""
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
        box = {"oversize_policy": policy}
        audit.decide(lambda req: 500)
        await _session(_config(server, urls, tmp_path, max_message_bytes=100_000, **box))
        assert receiver.requests[-1].json()["body_omitted"] is False
        audit.decide(None)
        server.messages.clear()
        server.add(r, uid="1")
        config = _config(server, urls, tmp_path, max_message_bytes=10_000, **box)
        for _ in range(2):
            await _session(config)
        for hook in (receiver, audit):
            whole = [
                x.json()["uidl"]
                for x in hook.requests
                if x.json()["subject"] == "message 2" and x.json()["body_omitted"] is False
            ]
            assert not whole, f"R, over the limit, posted whole as {whole}"
    finally:
        await server.stop()
        await audit.stop()
