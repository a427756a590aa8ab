"""Review of affcb8b: a look-alike the proof budget leaves out is dropped from the session's
inventory, so with strict_order a later message is posted before it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config
from tests.unit.test_keep import _session_result as _session


async def test_strict_order_holds_when_the_proof_budget_leaves_a_look_alike_out(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """strict_order, no keep. X is delivered and DELE'd; QUIT is carried out but its reply
    lost, so the ledger still holds X's rows (a delivered message no listed identity accounts
    for). Then L1, L2 (new, X's size, other content) and N arrive. The proof budget
    (session_max_bytes: one look-alike) checks L1 and drops L2 from the session; the delivery
    budget still has room, so N is posted before L2. Expected: L1, L2, N in server order."""
    x = make_message(0, body="xxxx the delivered one\n")
    l1 = make_message(1, body="l1ll another message!!\n")
    l2 = make_message(2, body="l2ll and one more ....\n")
    n = make_message(3, body="n, the last one\n")
    assert len(x) == len(l1) == len(l2)
    server = FakePop3Server()
    server.add(x, uid="x")
    await server.start()
    try:
        server.swallow_reply_on("QUIT")
        await _session(_config(server, receiver.url, tmp_path, strict_order=True))
        assert server.messages == []
        while server.locked:  # noqa: ASYNC110 - the fake server frees its lock
            await asyncio.sleep(0.1)
        server.add(l1, uid="l1")
        server.add(l2, uid="l2")
        server.add(n, uid="n")
        budget = len(x) + len(x) // 2
        config = _config(
            server, receiver.url, tmp_path, strict_order=True, session_max_bytes=budget
        )
        for _ in range(4):
            await _session(config)
        subjects = [r.json()["subject"] for r in receiver.requests]
        assert subjects == ["message 0", "message 1", "message 2", "message 3"]
    finally:
        await server.stop()
