"""Found reviewing dc88a25 / 9dda758, also before them (pre-existing at 4ba6736): with keep,
a UIDL that one target acknowledged for a message another target still waits for, reused
for another message of the same ``LIST`` size.

The identity's rows are at the size listed now and not all done, so the message listed
under it is due for the waiting target at every session: it is retrieved (with the
head-proof path of dc88a25: ``TOP n 0`` and RETR), told apart from the acknowledged one,
found to be the content key delivered and kept already, and left alone, until the next
poll. The waiting row stands for a message gone from the server and is never settled nor
pruned (its UIDL is listed), so the kept message is downloaded at every poll for ever.
test_r13_undelivered_twin covers the same with a twin of another size.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.regressions.test_r13_undelivered_twin import _config
from tests.unit.test_keep import _session


@pytest.mark.parametrize(("before", "after"), [(100_000, 100_000), (10_000, 100_000)])
async def test_a_kept_message_under_a_partly_acknowledged_uidl_is_not_retrieved_for_ever(
    receiver: WebhookReceiver, tmp_path: Path, before: int, after: int
) -> None:
    """keep: true, targets main and audit, oversize_policy headers_only, positional
    UIDLs. Q (20 kB) as UIDL 1 is posted (whole at a limit of 100 000, headers-only at
    10 000): main acknowledges, audit answers 500. Q is deleted in a mail client and R
    (another 20 kB message) gets UIDL 1 (the limit is 100 000 now). R is posted whole to
    both as 1~<hash> and kept (fine), but then retrieved at every session for ever (RETR 1,
    with TOP 1 0 first after a headers-only acknowledgement). Expected: once R is
    delivered and kept, no RETR nor TOP."""
    audit = WebhookReceiver()
    await audit.start()
    q = make_message(1, size=20000)
    r = make_message(2, size=20000)
    assert len(q) == len(r)
    assert q != r
    server = FakePop3Server()
    server.add(q, uid="1")
    await server.start()
    try:
        urls = {"main": receiver.url, "audit": audit.url}
        box = {"oversize_policy": "headers_only", "keep": True}
        audit.decide(lambda req: 500)
        await _session(_config(server, urls, tmp_path, max_message_bytes=before, **box))
        audit.decide(None)
        server.messages.clear()
        server.add(r, uid="1")
        config = _config(server, urls, tmp_path, max_message_bytes=after, **box)
        for _ in range(2):
            await _session(config)
        for hook in (receiver, audit):
            got = [x.json() for x in hook.requests if x.answered == 200]
            assert [g["subject"] for g in got][-1] == "message 2"
            assert got[-1]["body_omitted"] is False
        for _ in range(2):
            server.commands.clear()
            await _session(config)
            assert "RETR" not in server.verbs, f"retrieved at every poll: {server.commands}"
            assert "TOP" not in server.verbs, f"retrieved at every poll: {server.commands}"
        assert len([x for x in receiver.requests if x.answered == 200]) == 2
    finally:
        await server.stop()
        await audit.stop()
