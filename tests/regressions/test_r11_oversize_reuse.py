"""Review of affcb8b (proof follows the ack): an oversize message under a reused identity is
skipped at every session, never posted, never parked.

``verify`` now picks RETR for every candidate acknowledged whole, and when the listed size is
over max_message_bytes it retrieves it "up to the size acknowledged" (``large``: cap
``retr_limit(max(max_message_bytes, ack.raw_size))``). That is right for the message that was
acknowledged; but a *new* message under the same identity that is over the limit (and over
the slack) is refused by the cap: ``unreadable``, skipped, and the same again next session.
Before, a candidate over the limit was compared by TOP and, being another message, went on to
the oversize policy (headers_only: posted; park: parked and counted).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config
from tests.unit.test_keep import _session_result as _session


async def test_an_oversize_message_under_a_kept_reused_uidl_is_handled(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, max_message_bytes 64 KB, oversize_policy headers_only. X (small) is kept
    under UIDL 1; X is removed and Y (300 KB, oversize) gets UIDL 1. Expected: Y posted
    headers only (as any oversize message). Before: RETR refused by the cap at every poll,
    "reconcile_unreadable", Y never posted."""
    server = FakePop3Server()
    server.add(make_message(1), uid="1")
    await server.start()
    try:
        config = _config(
            server,
            receiver.url,
            tmp_path,
            keep=True,
            max_message_bytes=65536,
            oversize_policy="headers_only",
        )
        await _session(config)
        assert len(receiver.requests) == 1
        server.messages.clear()
        server.add(make_message(2, size=300_000), uid="1")
        results = [await _session(config) for _ in range(2)]
        subjects = [r.json()["subject"] for r in receiver.requests]
        assert subjects == ["message 1", "message 2"], results
    finally:
        await server.stop()


async def test_an_oversize_message_under_a_reused_uidl_is_parked_not_skipped_for_ever(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """No keep, oversize_policy park. X is delivered and DELE'd, QUIT carried out but its
    reply lost (the ledger still holds X's rows). Y (300 KB, over the 64 KB limit) then gets
    X's UIDL. Expected: Y is another message, so the oversize policy applies (parked, counted
    as oversize). Before: skipped as unreadable at every session, oversize never counted."""
    server = FakePop3Server()
    server.add(make_message(1), uid="x")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, max_message_bytes=65536)
        server.swallow_reply_on("QUIT")
        await _session(config)
        assert server.messages == []
        while server.locked:  # noqa: ASYNC110 - the fake server frees its lock
            await asyncio.sleep(0.1)
        server.add(make_message(2, size=300_000), uid="x")
        result = await _session(config)
        assert result is not None
        assert result.oversize == 1, result
    finally:
        await server.stop()
