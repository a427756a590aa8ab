"""Review of the moved-identity adoption (affcb8b, d41fd5e): a webhook target added later.

``_Prove._spare`` only offers the rows of a delivered identity for adoption when it has a row
for every target configured now (``all(t in rows for t in self.policy.targets)``). A target
added to the config since has no row yet under the old identity, so a message whose UIDL
moved in the meantime is not recognised at all: it is posted as new to every target, the
old target included (a second time, under a new webhook-id), instead of only to the new one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.config import Config
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import SECRET, make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _session_result as _session


def _config(server: FakePop3Server, urls: dict[str, str], data_dir: Path, **box: Any) -> Config:
    hooks = {
        name: {"url": url, "secret": SECRET, "backoff_initial": 0.01, "backoff_max": 0.02}
        for name, url in urls.items()
    }
    mailbox = server.mailbox_config("fake", sorted(urls), **box)
    return Config.from_dict(
        {"data_dir": str(data_dir), "webhooks": hooks, "mailboxes": [mailbox]}, env={}
    )


async def test_a_moved_kept_message_is_not_posted_again_to_the_old_target(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true with one target, "main". A is kept under UIDL a1. The maildrop is migrated
    (UIDLs renumbered: b1) and at the same restart a second target, "audit", is added. a1
    has no "audit" row, so it is no spare: b1 is posted as new to main (a second time) and to
    audit. Expected: main receives A once, audit once."""
    audit = WebhookReceiver()
    await audit.start()
    server = FakePop3Server()
    server.add(make_message(1, body="a, kept\n"), uid="a1")
    await server.start()
    try:
        await _session(_config(server, {"main": receiver.url}, tmp_path, keep=True))
        assert len(receiver.requests) == 1
        server.messages[0].uid = "b1"
        both = {"main": receiver.url, "audit": audit.url}
        for _ in range(2):
            await _session(_config(server, both, tmp_path, keep=True))
        assert len(audit.requests) == 1
        assert len(receiver.requests) == 1, "posted to main again"
    finally:
        await server.stop()
        await audit.stop()


async def test_a_moved_message_after_a_lost_quit_is_not_posted_again_to_the_old_target(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """No keep, one target "main". A posted and DELE'd, QUIT refused (not removed). Then the
    UIDLs are renumbered (a1 -> b1) and a target "audit" is added. b1 is not recognised
    (a1 has no "audit" row) and is posted to main a second time. Expected: main once."""
    audit = WebhookReceiver()
    await audit.start()
    server = FakePop3Server()
    server.add(make_message(1, body="a, delivered\n"), uid="a1")
    await server.start()
    try:
        server.reply_on("QUIT", "-ERR [SYS/TEMP] cannot commit now")
        first = await _session(_config(server, {"main": receiver.url}, tmp_path))
        assert first is not None
        assert first.delivered == 1
        assert not first.committed
        server.messages[0].uid = "b1"
        both = {"main": receiver.url, "audit": audit.url}
        for _ in range(2):
            await _session(_config(server, both, tmp_path))
        assert len(audit.requests) == 1
        assert len(receiver.requests) == 1, "posted to main again"
        assert server.messages == []
    finally:
        await server.stop()
        await audit.stop()
