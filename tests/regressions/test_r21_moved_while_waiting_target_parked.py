"""Review of 3274e1f (``_Prove._waiting_for``: an identity some target acknowledged and another
is due to get now is retrieved and compared in the proof phase, so a message that moved onto
it (a rebuilt UID list, positional UIDLs) adopts its delivery instead of being posted again
to the target that has it).

Only while a target is due *now*. Parked for the target that waits (a refusal, with its
backoff), or behind an open breaker, the identity is not retrieved in the session that
first lists the moved message under it, and the rows of the identity the message was
delivered under (no longer listed) are pruned at the end of that session. When the park
ends, the identity is retrieved, found to hold other content, and nothing is left to
adopt: the message is posted again under ``<uid>~<hash>`` to every target, also to the one
that acknowledged it. Pre-existing (7129a65 does the same in the delivery phase); the
change fixes the case only when the waiting target happens to be due at the move.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from bridge.ledger import DEFAULT_FILENAME
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.regressions.test_r13_undelivered_twin import _config
from tests.unit.test_keep import _session


@pytest.mark.parametrize("keep", [False, True], ids=["delete", "keep"])
async def test_a_message_moved_while_its_waiting_target_is_parked_is_not_posted_again(
    receiver: WebhookReceiver, tmp_path: Path, keep: bool
) -> None:
    """Targets main and audit, positional UIDLs. A (UIDL 1) and B (UIDL 2), same size:
    main acknowledges both, audit refuses both (422: parked, not due for the backoff). A is
    deleted in a mail client and B becomes UIDL 1 (at A's size). A session runs while audit
    is still parked: nothing retrieved, the rows of UIDL 2 pruned. The park ends (its time
    moved back) and audit accepts: UIDL 1 is retrieved, holds B, which is posted again to
    main as 1~<hash>. Expected: main gets B once (audit gets B once)."""
    audit = WebhookReceiver()
    await audit.start()
    a = make_message(1, body="a body 1\n")
    b = make_message(2, body="b body 2\n")
    assert len(a) == len(b)
    server = FakePop3Server()
    server.add(a, uid="1")
    server.add(b, uid="2")
    await server.start()
    try:
        config = _config(server, {"main": receiver.url, "audit": audit.url}, tmp_path, keep=keep)
        audit.decide(lambda r: 422)
        await _session(config)
        server.messages.clear()
        server.add(b, uid="1")
        await _session(config)  # audit parked: not due
        with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as conn:
            conn.execute("UPDATE deliveries SET next_attempt_at = 0 WHERE state = 'parked'")
        audit.decide(None)
        for _ in range(2):
            await _session(config)
        main = Counter(r.json()["subject"] for r in receiver.requests if r.answered == 200)
        got = Counter(r.json()["subject"] for r in audit.requests if r.answered == 200)
        assert main == Counter({"message 1": 1, "message 2": 1}), f"main: {main}"
        assert got["message 2"] == 1, f"audit: {got}"
    finally:
        await server.stop()
        await audit.stop()
