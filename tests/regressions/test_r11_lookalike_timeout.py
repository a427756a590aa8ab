"""Review of affcb8b: the proof RETR of a look-alike times out (the unverifiable path).

The look-alike is held back for a while (``Poller.unverifiable``) and the session goes on on a
new connection, where the delivered identity it would be compared with is no longer listed
and is pruned. When the look-alike is retrieved again, there is nothing left to adopt: the
message delivered before is posted a second time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config
from tests.unit.test_keep import _session_result as _session


async def test_a_moved_message_whose_proof_timed_out_is_not_posted_again(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true. A message kept under UIDL a1; the server renumbers it b1. Its proof RETR
    is slow once (timed out): it is left alone and the session reconnects, prunes a1 and
    commits. The next session (the next `once` run, or 120 s later) retrieves b1, has no
    delivered identity to compare it with, and posts it again. Expected: posted once."""
    server = FakePop3Server()
    server.add(make_message(1, size=3000), uid="a1")
    await server.start()
    try:
        config = _config(
            server, receiver.url, tmp_path, keep=True, command_timeout=1, min_transfer_rate=1000
        )
        await _session(config)
        assert len(receiver.requests) == 1
        server.messages[0].uid = "b1"
        server.trickle_on("RETR", 600)  # the proof RETR, once
        await _session(config)
        while server.locked:  # noqa: ASYNC110 - the fake server frees its lock
            await asyncio.sleep(0.1)
        for _ in range(2):
            await _session(config)
        assert len(receiver.requests) == 1, "the moved message was posted again"
    finally:
        await server.stop()
