"""Review of the moved-identity adoption (affcb8b): the proof budget vs prune.

A message under a new identity is adopted (not posted again) only while the ledger still
holds the rows of the identity it was delivered under ("spare"). Those rows are pruned at the
end of the very session in which their identity is no longer listed. A look-alike that the
proof budget (session_max_messages) leaves for "the next session" is therefore never compared
with them: by then they are gone, and it is posted a second time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.app import App
from tests.dovecot import Dovecot
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.integration.test_keep import _remove_and_rebuild
from tests.integration.test_keep import _session as _dovecot_session
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


async def test_moved_kept_mail_left_over_budget_is_not_posted_again(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, session_max_messages 1. Three messages kept under UIDLs a1, a2, a3. The
    server renumbers its UIDLs (b1, b2, b3: a rebuilt UID list, a migrated maildrop). The
    first session proves and adopts b1, leaves b2 and b3 for later (skipped, more_pending)
    and prunes a1..a3 (no longer listed). Later sessions have nothing to adopt from: b2 and b3
    are posted a second time (new webhook-ids). Expected: each message posted once."""
    bodies = [f"message body number {i} " + "x" * (10 * i) + "\n" for i in range(3)]
    msgs = [make_message(i, body=b) for i, b in enumerate(bodies)]
    server = FakePop3Server()
    for i, m in enumerate(msgs):
        server.add(m, uid=f"a{i}")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, session_max_messages=1)
        for _ in range(3):
            await _session(config)
        assert len(receiver.requests) == 3
        for i, m in enumerate(server.messages):
            m.uid = f"b{i}"
        results = [await _session(config) for _ in range(4)]
        assert results[0].moved_identities == 1
        texts = sorted(r.json()["text"] for r in receiver.requests)
        assert texts == sorted(bodies), f"posted again: {len(receiver.requests) - 3}"
    finally:
        await server.stop()


async def test_moved_mail_left_over_budget_without_keep_is_not_posted_again(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """No keep. Three messages delivered and DELE'd, but QUIT's reply is lost and the server
    did not remove them; meanwhile the server renumbered its UIDLs. The next session
    (session_max_messages 1) adopts one, drops the other two from the session and prunes the
    old rows: the next sessions post those two again. Expected: deleted without a repost."""
    bodies = [f"message body number {i} " + "y" * (10 * i) + "\n" for i in range(3)]
    msgs = [make_message(i, body=b) for i, b in enumerate(bodies)]
    server = FakePop3Server()
    for i, m in enumerate(msgs):
        server.add(m, uid=f"a{i}")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, session_max_messages=3)
        server.reply_on("QUIT", "-ERR [SYS/TEMP] cannot commit now")
        app = App(config)
        try:
            first = await app.session(app.mailboxes["fake"], asyncio.Event())
        finally:
            await app.close()
        assert first is not None
        assert first.delivered == 3
        assert len(server.messages) == 3  # nothing committed
        for i, m in enumerate(server.messages):
            m.uid = f"b{i}"
        config = _config(server, receiver.url, tmp_path, session_max_messages=1)
        for _ in range(4):
            await _session(config)
        texts = sorted(r.json()["text"] for r in receiver.requests)
        assert texts == sorted(bodies), f"posted again: {len(receiver.requests) - 3}"
        assert server.messages == []
    finally:
        await server.stop()


async def test_shifted_kept_uidls_left_over_budget_are_not_posted_again(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, session_max_messages 1, positional UIDLs. Three messages kept as 1, 2, 3;
    the first is removed by another client, so the others are now 1 and 2 (each listed at
    another size). The session proves 1 (adopted from 2), marks 2 "kept one more session"
    without proof, and prunes 3 (no longer listed). The next session proves 2, finds no
    delivered message with its content any more, and posts it a second time."""
    bodies = [f"message body number {i} " + "z" * (10 * i) + "\n" for i in range(3)]
    msgs = [make_message(i, body=b) for i, b in enumerate(bodies)]
    server = FakePop3Server()
    for i, m in enumerate(msgs):
        server.add(m, uid=str(i + 1))
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, session_max_messages=3)
        await _session(config)
        assert len(receiver.requests) == 3
        del server.messages[0]
        for i, m in enumerate(server.messages):
            m.uid = str(i + 1)
        config = _config(server, receiver.url, tmp_path, keep=True, session_max_messages=1)
        for _ in range(3):
            await _session(config)
        texts = sorted(r.json()["text"] for r in receiver.requests)
        assert texts == sorted(bodies), f"posted again: {len(receiver.requests) - 3}"
    finally:
        await server.stop()


@pytest.mark.dovecot
async def test_dovecot_rebuilt_uid_list_over_budget_posts_nothing_twice(
    dovecot_u: Dovecot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """The r10 scenario (keep, Dovecot %u, three kept messages, the UID list rebuilt with the
    last two redelivered as UIDLs 1 and 2) with session_max_messages 1. The first session
    proves UIDL 1 only and prunes UIDL 3's rows; the message now under UIDL 2 is then posted a
    second time. Expected (as without the budget): nothing posted twice."""
    user = dovecot_u.new_user()
    bodies = ["a\n", "bb, the second\n", "ccc, the third message\n"]
    user.deliver_many([make_message(i, body=b) for i, b in enumerate(bodies)])
    data = tmp_path / "data"
    await _dovecot_session(dovecot_u, user, receiver, data, keep=True)
    assert len(receiver.requests) == 3
    _remove_and_rebuild(user)
    user.deliver_many([make_message(i, body=b) for i, b in enumerate(bodies)][1:])
    for _ in range(3):
        await _dovecot_session(dovecot_u, user, receiver, data, keep=True, session_max_messages=1)
    texts = sorted(r.json()["text"] for r in receiver.requests)
    assert texts == sorted(bodies), f"posted again: {len(receiver.requests) - 3}"
