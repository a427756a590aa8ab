"""Review of 71ecf54 (a UIDL whose rows no target acknowledged, listed at another size, is a
look-alike compared with the spare deliveries). Also on the revisions before it.

The look-alike check leaves out every known UIDL with a done row. With two targets, a UIDL
one target acknowledged and the other failed (500) is left out too: when a delivered
message moves under it at another size (a rebuilt UID list), it is told apart by content
as a reused identity and posted as new to both targets, the one that has it included.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.regressions.test_r12_target_added import _config
from tests.unit.test_keep import _session_result as _session


def _posted(receiver: WebhookReceiver) -> list[str]:
    return [r.json()["subject"] for r in receiver.requests if r.answered == 200]


async def test_a_moved_message_under_a_partly_acknowledged_uidl_is_posted_once(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, targets "main" and "audit". A kept as UIDL 1 (both acked); Q arrives as
    UIDL 5: main answers 200, audit 500. Q deleted in a mail client and the UID list
    rebuilt: A gets UIDL 5 (at A's size), Z (a third size) UIDL 1. A is posted again to
    both targets as 5~<hash>. Expected: A posted once to each target."""
    audit = WebhookReceiver()
    await audit.start()
    a = make_message(1, body="a: your job 1 finished\n")
    q = make_message(2, body="q, a message the receiver failed, longer\n")
    z = make_message(3, body="z, yet another length, quite a bit longer still\n")
    assert len({len(a), len(q), len(z)}) == 3
    server = FakePop3Server()
    server.add(a, uid="1")
    await server.start()
    try:
        urls = {"main": receiver.url, "audit": audit.url}
        config = _config(server, urls, tmp_path, keep=True)
        await _session(config)
        audit.decide(lambda r: 500 if r.json()["subject"] == "message 2" else None)
        server.add(q, uid="5")
        await _session(config)
        audit.decide(None)
        server.messages.clear()
        server.add(z, uid="1")
        server.add(a, uid="5")
        for _ in range(2):
            await _session(config)
        assert _posted(receiver).count("message 1") == 1, f"main: {_posted(receiver)}"
        assert _posted(audit).count("message 1") == 1, f"audit: {_posted(audit)}"
        assert "DELE" not in server.verbs
        server.commands.clear()
        await _session(config)
        assert "RETR" not in server.verbs, "the adopted message is retrieved at every poll"
    finally:
        await server.stop()
        await audit.stop()
