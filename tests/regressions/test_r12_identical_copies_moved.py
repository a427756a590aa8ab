"""Review of the moved-identity adoption (affcb8b, d41fd5e): byte-identical copies.

``_Prove._spare`` keys the delivered messages no listed identity accounts for by their
content hash (``spare.setdefault(ack.sha256, ...)``): two byte-identical copies delivered
under two identities (the bridge posts copies separately, numbering them ``#2`` when they
share an identity) become ONE spare. When both move, the first look-alike adopts it, the
second finds nothing left to adopt and is posted again, under a new webhook-id.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dovecot import Dovecot
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.integration.test_keep import _remove_and_rebuild
from tests.integration.test_keep import _session as _dovecot_session
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config
from tests.unit.test_keep import _session_result as _session


async def test_moved_identical_copies_are_not_posted_again_with_keep(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true. The same message was delivered twice to the mailbox (byte-identical
    copies: a list and a direct copy, a redelivery), kept as UIDLs a1 and a2, posted twice
    (one webhook-id each). The server renumbers its UIDLs (b1, b2: a rebuilt UID list, a
    migrated maildrop). b1 adopts the one spare; b2 is posted a third time.
    Expected: nothing posted again."""
    m = make_message(1, body="the very same bytes twice\n")
    server = FakePop3Server()
    server.add(m, uid="a1")
    server.add(m, uid="a2")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True)
        await _session(config)
        assert len(receiver.requests) == 2
        server.messages[0].uid = "b1"
        server.messages[1].uid = "b2"
        for _ in range(2):
            await _session(config)
        assert len(receiver.requests) == 2, "a moved copy was posted again"
    finally:
        await server.stop()


async def test_moved_identical_copies_are_not_posted_again_after_a_lost_quit(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """No keep. Two byte-identical copies (UIDLs a1, a2) posted and DELE'd; QUIT fails, the
    server removes nothing; meanwhile it renumbers its UIDLs (b1, b2). The next session
    adopts one for b1 (deleted, not posted) and posts b2 again. Expected: both deleted,
    nothing posted again."""
    m = make_message(1, body="the very same bytes twice\n")
    server = FakePop3Server()
    server.add(m, uid="a1")
    server.add(m, uid="a2")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path)
        server.reply_on("QUIT", "-ERR [SYS/TEMP] cannot commit now")
        first = await _session(config)
        assert first is not None
        assert first.delivered == 2
        assert not first.committed
        assert len(server.messages) == 2
        server.messages[0].uid = "b1"
        server.messages[1].uid = "b2"
        for _ in range(2):
            await _session(config)
        assert len(receiver.requests) == 2, "a moved copy was posted again"
        assert server.messages == []
    finally:
        await server.stop()


@pytest.mark.dovecot
async def test_dovecot_rebuilt_uid_list_posts_no_identical_copy_twice(
    dovecot_u: Dovecot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Real Dovecot (%u). keep: true: C, D and two byte-identical copies of M kept as UIDLs
    1..4 (M posted twice, as copies are). Another client removes all, the UID list is rebuilt
    and the two copies of M are delivered again (UIDLs 1 and 2). Both are proven to be M;
    the first adopts the one spare M, the second is posted a third time."""
    user = dovecot_u.new_user()
    c = make_message(1, body="c, some other message\n")
    d = make_message(2, body="d, yet another, a longer message\n")
    m = make_message(3, body="m, the copy\n")
    assert len({len(c), len(d), len(m)}) == 3
    user.deliver_many([c, d, m, m])
    data = tmp_path / "data"
    await _dovecot_session(dovecot_u, user, receiver, data, keep=True)
    assert len(receiver.requests) == 4
    _remove_and_rebuild(user)
    user.deliver_many([m, m])
    for _ in range(2):
        await _dovecot_session(dovecot_u, user, receiver, data, keep=True)
    assert len(receiver.requests) == 4, "a moved copy was posted again"
