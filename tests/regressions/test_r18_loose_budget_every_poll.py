"""Review of f777eb8 (2a: kept messages of a size at which a delivered message left its
place now, ``_Prove._loose``, are retrieved and compared).

The spare delivery that makes the size "loose" is retained (``_retain``) while any kept
message of that size waits behind the session's budget, and the candidates go to the
budget in the same order every session. With more kept messages of that size than one
session may retrieve, the same first ones are retrieved at every poll, the others never,
and the loose rows are never let go: a RETR (and ``more_pending``, so at once) for ever.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


async def test_kept_mail_of_a_loose_size_over_the_budget_is_not_retrieved_for_ever(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true (no keep_days), one target, session_max_messages: 1, stable UIDLs. A, B,
    C (one size) posted as 1, 2, 3 and kept. A is deleted in a mail client: its size is
    loose, B and C are to be compared, the budget takes B, C waits, so A's rows are
    retained. Every later session does the same: B is retrieved at every poll, C never.
    Expected: after a few sessions, no RETR at all."""
    a = make_message(1, body="a: your job 1 finished\n")
    b = make_message(2, body="b: your job 2 finished\n")
    c = make_message(3, body="c: your job 3 finished\n")
    assert len(a) == len(b) == len(c)
    server = FakePop3Server()
    server.add(a, uid="1")
    server.add(b, uid="2")
    server.add(c, uid="3")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, session_max_messages=1)
        for _ in range(3):
            await _session(config)
        assert len(receiver.requests) == 3
        del server.messages[0]
        for _ in range(4):
            await _session(config)
        server.commands.clear()
        result = await _session(config)
        assert "RETR" not in server.verbs, f"retrieved at every poll: {server.commands}"
        assert not result.more_pending
        assert len(receiver.requests) == 3
        assert "DELE" not in server.verbs
    finally:
        await server.stop()
