"""Review of 3274e1f (``_Prove._waiting_for``: a listed message some target acknowledged and
another is due to get now is retrieved and compared in the proof phase).

Whether the message is then posted is decided later, in the delivery phase, and with
``strict_order`` a message after one that waits is held back (not posted, not retrieved).
``_waiting_for`` does not know that: a message held back behind a parked one is retrieved
for its proof at every poll, and never posted, for as long as the one before it waits
(a target that refuses it: parked with a growing backoff, for ever with reject_policy park).
Before 3274e1f a held-back message was not retrieved at all.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.regressions.test_r13_undelivered_twin import _config
from tests.unit.test_keep import _session


async def test_a_message_held_back_by_strict_order_is_not_retrieved_at_every_poll(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, strict_order, target main. Messages 1, 2, 3 delivered and kept. Target
    audit added: it refuses message 1 (422: parked for the park backoff), so strict_order
    holds 2 and 3 back. At every later poll 2 and 3 are retrieved (RETR 2, RETR 3) for
    their proof, then held back again, never posted to audit. Expected: while message 1 is
    parked, no RETR at all (as before 3274e1f), and nothing posted."""
    audit = WebhookReceiver()
    await audit.start()
    server = FakePop3Server()
    for i in range(1, 4):
        server.add(make_message(i), uid=str(i))
    await server.start()
    try:
        box = {"strict_order": True, "keep": True}
        await _session(_config(server, {"main": receiver.url}, tmp_path, **box))
        audit.decide(lambda r: 422 if r.json()["subject"] == "message 1" else None)
        config = _config(server, {"main": receiver.url, "audit": audit.url}, tmp_path, **box)
        await _session(config)  # message 1 refused by audit: parked; 2 and 3 held back
        assert [r.json()["subject"] for r in audit.requests] == ["message 1"]
        for _ in range(3):
            server.commands.clear()
            await _session(config)
            retrieved = [c for c in server.commands if c.split()[0] in ("RETR", "TOP")]
            assert retrieved == [], f"held back, yet retrieved at every poll: {retrieved}"
        assert [r.json()["subject"] for r in audit.requests] == ["message 1"]
    finally:
        await server.stop()
        await audit.stop()
