"""Review of keep (issue 16): kept mail posted twice or downloaded at every poll when
identities move, acknowledgements left without fsync, a lowered size limit that reposts, a
backlog gauge hidden by STAT, and a keep turned off that proves everything in one session.

Real Dovecot (`pop3_uidl_format = %u`, whose UID list can be rebuilt) where it can show the
fault; the fake server for a server without UIDL and a STAT that says less than LIST.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bridge.app import App
from bridge.config import Config
from bridge.keep import DAY
from bridge.ledger import DEFAULT_FILENAME
from bridge.poller import SessionResult
from tests.dovecot import Dovecot
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import config_dict, make_message
from tests.integration.test_keep import _remove_and_rebuild, _session
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config


def _texts(receiver: WebhookReceiver) -> list[str]:
    return [r.json()["text"] for r in receiver.requests]


@pytest.mark.dovecot
async def test_kept_mail_is_not_posted_again_when_uidls_shift(
    dovecot_u: Dovecot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, three kept messages of different sizes under UIDLs 1, 2, 3. Another client
    removes the first and the UID list is rebuilt: the other two are now UIDLs 1 and 2 (each
    UIDL names another delivered message). Before: both posted a second time. Now: retrieved
    once, proven by content to be the messages delivered, not posted; then left alone."""
    user = dovecot_u.new_user()
    bodies = ["a\n", "bb, the second\n", "ccc, the third message\n"]
    user.deliver_many([make_message(i, body=b) for i, b in enumerate(bodies)])
    data = tmp_path / "data"
    await _session(dovecot_u, user, receiver, data, keep=True)
    assert _texts(receiver) == bodies
    _remove_and_rebuild(user)  # another client removed all; the UID list starts again
    user.deliver_many([make_message(i, body=b) for i, b in enumerate(bodies)][1:])

    result, sent, _ = await _session(dovecot_u, user, receiver, data, keep=True)
    assert _texts(receiver) == bodies  # nothing posted twice
    assert (result.moved_identities, result.reused_identities, result.kept) == (2, 0, 2)
    assert b"DELE" not in sent

    again, sent, _ = await _session(dovecot_u, user, receiver, data, keep=True)
    assert b"RETR" not in sent  # proven once, not downloaded at every poll
    assert (again.kept, again.moved_identities, again.delivered) == (2, 0, 0)
    assert len(receiver.requests) == 3


@pytest.mark.dovecot
async def test_a_kept_message_under_a_reused_uidl_is_retrieved_once(
    dovecot_u: Dovecot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true. X is kept under UIDL 1; it is removed on the server and Y (another size)
    gets UIDL 1: Y is posted once as a new message. Before: Y was downloaded again at every
    later poll (to be told apart from X). Now: no RETR once Y is known."""
    user = dovecot_u.new_user()
    user.deliver(make_message(1, body="x, the kept message\n"))
    data = tmp_path / "data"
    await _session(dovecot_u, user, receiver, data, keep=True)
    _remove_and_rebuild(user)
    user.deliver(make_message(2, body="y, a longer and different message\n"))
    await _session(dovecot_u, user, receiver, data, keep=True)
    assert len(receiver.requests) == 2
    for _ in range(2):
        later, sent, _ = await _session(dovecot_u, user, receiver, data, keep=True)
        assert b"RETR" not in sent
        assert (later.kept, later.delivered) == (1, 0)
    assert len(receiver.requests) == 2


@pytest.mark.dovecot
async def test_keep_acknowledgements_are_fsynced_by_the_end_of_the_session(
    dovecot_u: Dovecot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true sends no DELE, and the fsync of the acknowledgements was tied to DELE: they
    stayed unsynced (a power cut would repost them). Now they are durable when the session
    ends, before the ledger is closed."""
    user = dovecot_u.new_user()
    user.deliver_many([make_message(i) for i in range(3)])
    config = config_dict(dovecot_u, user, receiver.url, tmp_path, mailbox={"keep": True})
    app = App(Config.from_dict(config, env={}))
    try:
        result = await app.session(app.mailboxes["inbox"], asyncio.Event())
        assert result is not None
        assert (result.delivered, result.kept) == (3, 3)
        assert not app.ledger.pending  # nothing committed is waiting for its fsync
    finally:
        await app.close()


@pytest.mark.dovecot
async def test_a_lowered_size_limit_does_not_repost_a_message_acknowledged_whole(
    dovecot_u: Dovecot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep_days passed for a 200 KB message acknowledged whole; max_message_bytes was lowered
    to 64 KB since. Before: the proof took its headers (TOP), found no match, and posted it
    again (headers only) instead of deleting it. Now: retrieved whole for the proof, deleted,
    not posted again."""
    user = dovecot_u.new_user()
    user.deliver(make_message(1, size=200_000))
    data = tmp_path / "data"
    await _session(dovecot_u, user, receiver, data, keep=True, keep_days=1)
    assert len(receiver.requests) == 1
    assert not receiver.requests[0].json().get("truncated")
    with sqlite3.connect(data / DEFAULT_FILENAME) as conn:
        conn.execute("UPDATE deliveries SET acked_at = acked_at - ?", (2 * DAY,))
    result, sent, _ = await _session(
        dovecot_u, user, receiver, data, keep=True, keep_days=1, max_message_bytes=65536
    )
    assert len(receiver.requests) == 1
    assert (result.deleted, result.reused_identities) == (1, 0)
    assert b"DELE" in sent
    assert user.count() == 0


@pytest.mark.dovecot
async def test_keep_turned_off_proves_within_the_session_budget(
    dovecot_u: Dovecot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Five kept messages, then keep turned off with session_max_messages 2. Before: all
    five retrieved for proof in one session, whatever the budget. Now: two per session, the
    next session asked for at once; all deleted in the end, none posted again."""
    user = dovecot_u.new_user()
    user.deliver_many([make_message(i) for i in range(5)])
    data = tmp_path / "data"
    await _session(dovecot_u, user, receiver, data, keep=True)
    deleted = []
    for _ in range(3):
        result, sent, _ = await _session(dovecot_u, user, receiver, data, session_max_messages=2)
        assert sent.count(b"RETR") <= 2
        deleted.append(result.deleted)
    assert deleted == [2, 2, 1]
    assert user.count() == 0
    assert len(receiver.requests) == 5


async def _fake_session(config: Config) -> tuple[SessionResult, str]:
    app = App(config)
    try:
        result = await app.session(app.mailboxes["fake"], asyncio.Event())
        metrics = app.metrics.render().decode()
    finally:
        await app.close()
    assert result is not None
    assert result.committed
    return result, metrics


async def test_a_kept_look_alike_is_not_posted_again_when_its_twin_leaves(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """No UIDL. X and Y have the same Message-ID, Date, From, Subject and size (one header
    identity), told apart by content and kept. X is removed by another client: Y is alone
    under the header identity. Before: posted a second time. Now: proven to be Y, kept."""
    x = make_message(1, body="alpha\n")
    y = make_message(1, body="bravo\n")
    assert len(x) == len(y)
    server = FakePop3Server([x, y], uidl=False)
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True)
        first, _ = await _fake_session(config)
        assert (first.delivered, first.kept) == (2, 2)
        del server.messages[0]
        second, _ = await _fake_session(config)
        assert _texts(receiver) == ["alpha\n", "bravo\n"]
        assert (second.kept, second.moved_identities, second.delivered) == (1, 1, 0)
        server.commands.clear()
        third, _ = await _fake_session(config)
        assert "RETR" not in server.verbs
        assert (third.kept, third.delivered) == (1, 0)
        assert "DELE" not in server.verbs
        assert len(receiver.requests) == 2
    finally:
        await server.stop()


async def test_keep_backlog_gauge_counts_what_list_shows_when_stat_says_less(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, a server whose STAT says 0 while LIST shows messages. Before: the backlog
    gauge was STAT minus kept, 0 while two messages waited. Now: what LIST showed minus kept."""
    server = FakePop3Server([make_message(1), make_message(2)])
    server.stat_says_empty = True
    await server.start()
    try:
        hook_down = _config(server, "http://127.0.0.1:9/never", tmp_path, keep=True)
        result, metrics = await _fake_session(hook_down)
        assert result.kept == 0
        assert 'bridge_mailbox_messages{mailbox="fake"} 2.0' in metrics
    finally:
        await server.stop()
