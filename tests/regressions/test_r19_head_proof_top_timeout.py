"""Review of dc88a25 / 9dda758 (a message under a headers-only acknowledgement, within
``max_message_bytes`` now, is read with ``TOP n 0`` for the proof before its RETR).

``_Fetch._fetch`` sends that TOP for every such message of the batch before any RETR and
handles only a ``-ERR``: a TOP that times out raises out of the fetch phase with no message
marked as the one that timed out, so the session fails (no reconnect, no QUIT) instead of
parking the message as a RETR that timed out is parked. The next session sends the same TOP
first: while the server is slow to answer it, every session fails there, and no other
message (in the same batch or after it) is ever posted. Before dc88a25 the message was
retrieved with RETR, and a RETR that timed out parks its message and the session goes on
with the others on a new connection.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fakes.pop3server import FakePop3Server, Fault
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.regressions.test_r13_undelivered_twin import _config
from tests.unit.test_keep import _session, _session_result


async def test_a_slow_top_for_the_head_proof_does_not_hold_back_the_other_mail(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Two targets, oversize_policy headers_only, max_message_bytes 10 000, command_timeout
    1 s. Q (20 kB) as UIDL 1 is posted headers-only: main acknowledges, audit answers 500.
    The limit is raised to 100 000 and M (small, new) arrives as UIDL 2; the server now
    answers TOP after 3 s. Every session sends TOP 1 0 first, times out and fails: M is
    never posted. Expected: Q left for later (parked, like a RETR that timed out) and M
    posted to both targets."""
    audit = WebhookReceiver()
    await audit.start()
    server = FakePop3Server()
    server.add(make_message(1, size=20000), uid="1")
    await server.start()
    try:
        urls = {"main": receiver.url, "audit": audit.url}
        box = {"oversize_policy": "headers_only", "command_timeout": 1}
        audit.decide(lambda req: 500)
        await _session(_config(server, urls, tmp_path, max_message_bytes=10_000, **box))
        assert receiver.requests[-1].json()["body_omitted"] is True
        audit.decide(None)
        server.add(make_message(2), uid="2")
        server.faults.append(Fault("TOP", "delay", seconds=3, times=0))
        config = _config(server, urls, tmp_path, max_message_bytes=100_000, **box)
        for _ in range(3):
            await _session_result(config)
            await asyncio.sleep(2.5)  # the fake server's stalled session lets the maildrop go
        for hook in (receiver, audit):
            got = [x.json()["subject"] for x in hook.requests if x.answered == 200]
            assert "message 2" in got, f"M never posted: {server.commands}"
    finally:
        await server.stop()
        await audit.stop()
