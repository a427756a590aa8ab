"""Review of 3274e1f (``_Prove._superseded``: a listed identity at its size whose content key
``<uid>~<hash>`` was written after its rows, at any size, has stale rows: with keep it is
retrieved and proven instead of kept).

A content key of a listed identity is not always an earlier content of it: a server that
lists one UIDL for two messages (duplicate UIDLs) lists the second one as ``<uid>~<hash>``
(:func:`bridge.identity._tell_apart`) alongside the first, which keeps ``<uid>``. While that
second message is being delivered (a target that answers 500, retried at every poll) its
rows are written at every attempt, after the first message's rows (even after the
``mark_proven`` of its proof, which comes before the delivery phase): the first message,
delivered and kept, is retrieved for a proof at every poll for as long as the second
waits. Before 3274e1f it was kept without a download.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


async def test_a_kept_message_is_not_retrieved_while_its_duplicate_uidl_sibling_waits(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, one target. X delivered and kept as UIDL A. Y arrives and the server
    lists it with UIDL A too: Y is told apart as A~<hash> and posted; the target answers
    500 to Y at every attempt. From the second poll on, X (UIDL A, kept) is retrieved at
    every poll (RETR 1) besides Y. Expected: X is not retrieved (only Y: RETR 2 to tell it
    apart, RETR 2 to post it), X posted once."""
    x = make_message(1, body="x body\n")
    y = make_message(2, body="y body, longer\n")
    server = FakePop3Server()
    server.add(x, uid="A")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True)
        await _session(config)
        server.add(y, uid="A")
        receiver.decide(lambda r: 500 if r.json()["subject"] == "message 2" else None)
        await _session(config)
        for _ in range(3):
            server.commands.clear()
            await _session(config)
            assert "RETR 1" not in server.commands, f"kept X retrieved: {server.commands}"
        subjects = [r.json()["subject"] for r in receiver.requests]
        assert subjects.count("message 1") == 1, subjects
    finally:
        await server.stop()
