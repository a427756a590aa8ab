"""Review of 886b96d (``_Prove._suspects``: a listed identity whose acknowledged content a
retrieved message was found to hold under another identity is retrieved too, in a second
``verify``).

The second ``verify`` can fail for the suspect alone: its RETR times out (the session
reconnects, the suspect is left alone for a while) or is refused (unreadable, deferred). The
moved message's verdict is not held back with it: on the new connection (or right after the
-ERR) the suspect is deferred, so its identity counts as listed at its size, the moved
message's delivery is "accounted for", and the moved message is posted again as a new one
(a reused identity). Once the suspect is no longer unverifiable it is listed at the size of
its rows and kept without a download: the new mail under it is never posted (keep: true).
That is the very outcome the second ``verify`` was added to prevent (r19, Dovecot).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from bridge.ledger import DEFAULT_FILENAME
from tests.fakes.pop3server import FakePop3Server, Fault
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session, _session_result


@pytest.mark.parametrize(
    "fault",
    [
        Fault("RETR", "delay", seconds=3, nth=2),
        Fault("RETR", "reply", payload=b"-ERR try again later\r\n", nth=2),
    ],
    ids=["timeout", "refused"],
)
async def test_a_suspect_that_cannot_be_retrieved_holds_back_the_moved_message(
    receiver: WebhookReceiver, tmp_path: Path, fault: Fault
) -> None:
    """keep: true, one target, UIDLs renumbered (a rebuilt %u UID list). P (one size) and A
    (another) delivered and kept as UIDLs 1 and 2. P is deleted, the list rebuilt, N (new,
    A's size) arrives: A is UIDL 1, N is UIDL 2 (A's size). UIDL 1 is retrieved (another
    size) and holds A; UIDL 2 is the suspect, and its RETR (the second one) times out or is
    refused once. A is then posted again as 1~<hash>, and N, under UIDL 2 at A's size, is
    kept without a download for ever: never posted. Expected: each message posted once (A
    not again, N once), as when the suspect's RETR succeeds (once the backoff it earned,
    Ledger.mark_proof_failed, has passed)."""
    p = make_message(0, body="p, short\n")
    a = make_message(1, body="a, the longer one here\n")
    n = make_message(2, body="n, the longer one HERE\n")
    assert len(a) == len(n) != len(p)
    server = FakePop3Server()
    server.add(p, uid="1")
    server.add(a, uid="2")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, command_timeout=1)
        await _session(config)
        server.messages.clear()
        server.add(a, uid="1")
        server.add(n, uid="2")
        server.faults.append(fault)
        for _ in range(3):
            await _session_result(config)
            await asyncio.sleep(2.5)  # the stall ends
            with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as conn:  # the backoff passed
                conn.execute("UPDATE deliveries SET next_attempt_at = NULL")
        posted = Counter(r.json()["subject"] for r in receiver.requests if r.answered == 200)
        assert posted["message 1"] == 1, f"A posted again: {posted}; {server.commands}"
        assert posted["message 2"] == 1, f"N never posted: {posted}; {server.commands}"
    finally:
        await server.stop()
