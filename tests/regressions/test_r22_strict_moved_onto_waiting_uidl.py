"""Review of 446dc2c (``_Prove._waiting_for`` returns nothing with ``strict_order``).

Under strict_order a listed message some target acknowledged and another still waits for is
no longer compared in the proof phase. That comparison is what finds a delivered message
that moved onto the waiting identity at the same size (a rebuilt UID list) and adopts its
delivery. The delivery phase only sees "not the content acknowledged under this UIDL" and
posts it as a new message, to every target, the ones that have it included.
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


async def test_strict_order_a_message_moved_onto_a_partly_acknowledged_uidl_is_posted_once(
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    """keep: true, strict_order, targets "main" and "audit". A is kept as UIDL 1 (both
    acked); Q (A's size) arrives as UIDL 5: main answers 200, audit 500. Q is deleted in a
    mail client and the UID list rebuilt: A gets UIDL 5 (at Q's size, the size main
    acknowledged there), Z (another size) UIDL 1. What happens with strict_order: UIDL 5
    is not compared in the proof phase (446dc2c), the delivery phase finds it is not Q and
    posts A as new (5~<hash>) to both targets. Expected (as without strict_order): A
    posted once to each target. Passes without strict_order, and on 17eee3b."""
    audit = WebhookReceiver()
    await audit.start()
    a = make_message(1, body="a: your job 1 finished\n")
    q = make_message(2, body="q: your job 2 FAILED!!\n")
    z = make_message(3, body="z, yet another length, quite a bit longer still\n")
    assert len(a) == len(q) != len(z)
    server = FakePop3Server()
    server.add(a, uid="1")
    await server.start()
    try:
        urls = {"main": receiver.url, "audit": audit.url}
        config = _config(server, urls, tmp_path, keep=True, strict_order=True)
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
        assert _posted(receiver).count("message 3") == 1, f"main: {_posted(receiver)}"
    finally:
        await server.stop()
        await audit.stop()
