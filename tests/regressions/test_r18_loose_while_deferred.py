"""Review of d040056 (kept messages of a loose size are compared once, within the budget).

While a proof is deferred (its RETR timed out: the message waits ``retr_retry_base``), the
deliveries a moved message could adopt are retained, so a size at which a delivered message
left stays loose in every session: the kept messages of that size were compared again at
every poll until the deferred proof was had. They are compared once that is settled.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.app import App
from tests.fakes.pop3server import FakePop3Server, Fault
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


async def test_kept_mail_of_a_loose_size_is_not_compared_at_every_poll_while_a_proof_waits(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, one target, stable UIDLs. A, B, C (one size) and D (another) posted as 1,
    2, 3, 4 and kept. A is deleted in a mail client and UIDL 4 now lists E (another size:
    to be proven). E's RETR times out: it waits, and A's rows are retained. Later sessions
    of the same process: B and C are not retrieved again while E waits."""
    a, b, c = (make_message(i, body=f"{i}: your job finished\n") for i in (1, 2, 3))
    d = make_message(4, body="d, a message of another length\n")
    e = make_message(5, body="e, yet another length, longer still\n")
    assert len(a) == len(b) == len(c) != len(d) != len(e)
    server = FakePop3Server()
    for uid, raw in enumerate((a, b, c, d), start=1):
        server.add(raw, uid=str(uid))
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, command_timeout=1)
        await _session(config)
        assert len(receiver.requests) == 4
        server.messages.clear()
        server.add(b, uid="2")
        server.add(c, uid="3")
        server.add(e, uid="4")
        # E is the last proof retrieved (by number): its RETR answers too late.
        server.faults.append(Fault("RETR", "delay", seconds=3, nth=3))
        app = App(config)
        try:
            box = app.mailboxes["fake"]
            first = await app.session(box, asyncio.Event())
            assert first is not None
            assert first.retr_failed == 1
            server.commands.clear()
            again = await app.session(box, asyncio.Event())
            assert again is not None
            assert again.committed
        finally:
            await app.close()
        assert "RETR" not in server.verbs, f"compared again while E waits: {server.commands}"
        assert len(receiver.requests) == 4
    finally:
        await server.stop()
