"""Review of 25479bc: "a twin not yet delivered goes on as it is" (``_Prove._keep_apart``).

With keep, an identity listed at another size is now renamed to its one content twin
``<uid>~<hash>`` of that size even when the twin is not delivered to every target yet, and
then "delivered as it is" without any proof. If the twin's message is gone and another
message of that size got the identity, the delivery phase finds the content differs from
what one target acknowledged and renames it under the twin key (``<uid>~<Y>~<Z>``). That is
repeated at every session: the twin's pending row never settles (its message is gone), so
the new message is RETRieved at every poll for ever, counted as a reused identity each time.
Before 25479bc an undelivered twin was no twin: the message was proven and named ``<uid>~<Z>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.config import Config
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import SECRET, make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _session


def _config(server: FakePop3Server, urls: dict[str, str], data_dir: Path, **box: Any) -> Config:
    hooks = {
        name: {"url": url, "secret": SECRET, "backoff_initial": 0.01, "backoff_max": 0.02}
        for name, url in urls.items()
    }
    mailbox = server.mailbox_config("fake", sorted(urls), **box)
    return Config.from_dict(
        {"data_dir": str(data_dir), "webhooks": hooks, "mailboxes": [mailbox]}, env={}
    )


async def test_a_new_message_behind_a_half_delivered_twin_is_not_retrieved_for_ever(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, targets main and audit, UIDLs reassigned by the server. X kept as UIDL 1.
    Y (another size) gets UIDL 1: posted as 1~<Y>; main acknowledges, audit answers 500
    (retry later). Y is deleted in a mail client and Z (Y's size) gets UIDL 1. Z is posted
    once to each target (fine), but then RETRieved at every session for ever. Expected:
    Z posted once to each target, and no RETR once it is."""
    audit = WebhookReceiver()
    await audit.start()
    x = make_message(1, body="x, the first kept message\n")
    y = make_message(2, body="y, a later, longer message\n")
    z = make_message(3, body="z, brand new, never sent!!\n")
    assert len(y) == len(z) != len(x)
    server = FakePop3Server()
    server.add(x, uid="1")
    await server.start()
    try:
        config = _config(server, {"main": receiver.url, "audit": audit.url}, tmp_path, keep=True)
        await _session(config)
        audit.decide(lambda r: 500 if r.json()["subject"] == "message 2" else None)
        server.messages.clear()
        server.add(y, uid="1")
        await _session(config)
        server.messages.clear()
        server.add(z, uid="1")
        await _session(config)
        await _session(config)
        for _ in range(2):
            server.commands.clear()
            await _session(config)
            assert "RETR" not in server.verbs, "RETR at every poll"
        assert sorted(r.json()["subject"] for r in receiver.requests) == [
            "message 1",
            "message 2",
            "message 3",
        ]
        assert "message 3" in [r.json()["subject"] for r in audit.requests]
    finally:
        await server.stop()
        await audit.stop()
