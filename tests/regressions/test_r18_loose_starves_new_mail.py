"""Review of f777eb8 (2a: kept messages of a size at which a delivered message left its
place now, ``_Prove._loose``, are retrieved and compared).

Those kept messages go to the session's budget with the other candidates, in listing
order, ahead of a reused UIDL (a new message under a delivered message's identity, which
must be told apart by content before it is posted). With a budget of one message, the
kept one listed first takes it at every session; the reused UIDL is deferred, and while
it is, the delivered message's rows are retained, so its size stays loose. The new
message is never posted, and the kept one is retrieved at every poll. Before f777eb8 the
kept message was left alone and the new one posted in the first session.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


async def test_a_new_message_under_a_reused_uidl_is_posted_despite_loose_kept_mail(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true (no keep_days), one target, session_max_messages: 1, positional UIDLs.
    K and A (one size) posted as 1 and 2 and kept. A is deleted in a mail client and N (a
    new message of another size) arrives: the server lists it as 2. A's size is loose, so
    K is to be compared and comes first: it takes the budget, 2 is deferred (A's rows
    retained), and so at every session. Expected: N posted within a few sessions, and
    then no RETR at all."""
    k = make_message(1, body="k: your job 1 finished\n")
    a = make_message(2, body="a: your job 2 finished\n")
    n = make_message(3, body="n, a new message of another length\n")
    assert len(k) == len(a) != len(n)
    server = FakePop3Server()
    server.add(k, uid="1")
    server.add(a, uid="2")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, session_max_messages=1)
        for _ in range(2):
            await _session(config)
        assert len(receiver.requests) == 2
        server.messages.clear()
        server.add(k, uid="1")
        server.add(n, uid="2")
        for _ in range(5):
            await _session(config)
        posted = [r.json()["subject"] for r in receiver.requests if r.answered == 200]
        assert posted == ["message 1", "message 2", "message 3"], f"N never posted: {posted}"
        server.commands.clear()
        await _session(config)
        assert "RETR" not in server.verbs, f"retrieved at every poll: {server.commands}"
    finally:
        await server.stop()
