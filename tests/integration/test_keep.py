"""keep / keep_days (issue 16) end to end: the real poller and ledger against Dovecot.

Every session goes through a :class:`CutProxy` that cuts nothing: it records the commands, so
a test can say that no DELE was sent, or which messages were retrieved.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bridge.app import App
from bridge.config import Config
from bridge.exitcodes import ExitCode
from bridge.keep import DAY
from bridge.ledger import DEFAULT_FILENAME
from bridge.poller import SessionResult
from tests.dovecot import Dovecot, Pop3User
from tests.fakes.cutproxy import CutProxy
from tests.integration.kit import config_dict, make_message
from tests.receiver import WebhookReceiver

pytestmark = pytest.mark.dovecot


async def _session(
    dovecot: Dovecot, user: Pop3User, receiver: WebhookReceiver, data: Path, **mailbox: Any
) -> tuple[SessionResult, list[bytes], str]:
    """One session through a recording proxy: its result, the commands sent, /metrics."""
    proxy = await CutProxy(dovecot.host, dovecot.port).start()
    try:
        config = config_dict(
            dovecot, user, receiver.url, data, port=proxy.port, tls="none", mailbox=mailbox
        )
        app = App(Config.from_dict(config, env={}))
        try:
            result = await app.session(app.mailboxes["inbox"], asyncio.Event())
            metrics = app.metrics.render().decode()
        finally:
            await app.close()
    finally:
        await proxy.stop()
    assert result is not None
    assert result.committed
    return result, proxy.commands, metrics


def _subjects(receiver: WebhookReceiver) -> list[str]:
    return sorted(r.json()["subject"] for r in receiver.requests)


def _age_acks(data: Path, subjects_uidls: list[str], days: float) -> None:
    """Move the acknowledgement of these identities ``days`` into the past."""
    with sqlite3.connect(data / DEFAULT_FILENAME) as conn:
        conn.executemany(
            "UPDATE deliveries SET acked_at = acked_at - ? WHERE uidl = ?",
            [(days * DAY, uidl) for uidl in subjects_uidls],
        )


def _uidls(receiver: WebhookReceiver) -> dict[str, str]:
    """subject -> uidl of every POST so far."""
    return {r.json()["subject"]: r.json()["uidl"] for r in receiver.requests}


def _on_server(user: Pop3User) -> list[str]:
    return sorted(
        line.split(b":", 1)[1].strip().decode()
        for raw in user.messages()
        for line in raw.splitlines()
        if line.startswith(b"Subject:")
    )


async def test_keep_posts_each_message_once_and_never_deletes(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true. Session 1 posts 3 messages and sends no DELE; they stay on the server.
    Mail arriving before session 2 is posted once; the kept messages are neither posted nor
    retrieved again. Kept mail is no backlog: bridge_mailbox_messages counts only the new."""
    pop3_user.deliver_many([make_message(i) for i in range(3)])
    data = tmp_path / "data"
    first, sent, metrics = await _session(dovecot, pop3_user, receiver, data, keep=True)
    assert _subjects(receiver) == ["message 0", "message 1", "message 2"]
    assert b"DELE" not in sent
    assert pop3_user.count() == 3
    assert (first.delivered, first.kept, first.deleted) == (3, 3, 0)
    assert 'bridge_mailbox_messages{mailbox="inbox"} 3.0' in metrics  # STAT saw 3 undelivered

    pop3_user.deliver(make_message(3))
    second, sent, metrics = await _session(dovecot, pop3_user, receiver, data, keep=True)
    assert _subjects(receiver) == ["message 0", "message 1", "message 2", "message 3"]
    assert len(receiver.distinct_webhook_ids()) == 4
    assert sent.count(b"RETR") == 1  # only the new message: kept ones are not downloaded again
    assert b"DELE" not in sent
    assert pop3_user.count() == 4
    assert (second.delivered, second.kept, second.deleted, second.reconciled) == (1, 4, 0, 0)
    assert 'bridge_mailbox_messages{mailbox="inbox"} 1.0' in metrics  # only message 3
    assert 'bridge_oldest_undelivered_age_seconds{mailbox="inbox"}' not in metrics

    third, sent, metrics = await _session(dovecot, pop3_user, receiver, data, keep=True)
    assert len(receiver.requests) == 4  # nothing posted twice
    assert b"RETR" not in sent
    assert b"DELE" not in sent
    assert (third.kept, third.delivered) == (4, 0)
    assert 'bridge_mailbox_messages{mailbox="inbox"} 0.0' in metrics


async def test_keep_once_exits_0_when_everything_is_delivered_and_kept(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """`popbridge once` with keep: mail delivered and kept on purpose is not "left on the
    server" (exit 0), on the run that delivers it and on later runs."""
    pop3_user.deliver_many([make_message(i) for i in range(2)])
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path, mailbox={"keep": True})
    for _ in range(2):
        app = App(Config.from_dict(config, env={}))
        try:
            report = await app.once()
        finally:
            await app.close()
        assert report.exit_code is ExitCode.OK
    assert len(receiver.requests) == 2
    assert pop3_user.count() == 2


async def test_keep_days_deletes_only_messages_acknowledged_long_enough_ago(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep_days: 2. Messages acknowledged 3 days ago are proven (retrieved and compared)
    and deleted without being posted again; the one acknowledged 1 day ago stays."""
    pop3_user.deliver_many([make_message(i) for i in range(3)])
    data = tmp_path / "data"
    box = {"keep": True, "keep_days": 2}
    await _session(dovecot, pop3_user, receiver, data, **box)
    assert pop3_user.count() == 3
    uidls = _uidls(receiver)
    _age_acks(data, [uidls["message 0"], uidls["message 1"]], days=3)
    _age_acks(data, [uidls["message 2"]], days=1)

    result, sent, _ = await _session(dovecot, pop3_user, receiver, data, **box)
    assert len(receiver.requests) == 3  # nothing posted again
    assert sent.count(b"RETR") == 2  # the proof of the two old ones, not the young one
    assert sent.count(b"DELE") == 2
    assert _on_server(pop3_user) == ["message 2"]
    assert (result.reconciled, result.deleted, result.kept) == (2, 2, 1)


async def test_keep_days_does_not_delete_a_message_whose_proof_fails(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep_days passed, but the message listed under the acknowledged identity is not the one
    acknowledged (its content changed under the same UIDL and size): it is not deleted, it is
    posted as a new message under a new webhook-id."""
    original = make_message(0, body="alpha body\n")
    pop3_user.deliver(original)
    data = tmp_path / "data"
    box = {"keep": True, "keep_days": 2}
    await _session(dovecot, pop3_user, receiver, data, **box)
    uidl = _uidls(receiver)["message 0"]
    # Same length, other content, same file: Dovecot keeps the UID, so the UIDL and size match.
    changed = make_message(0, body="bravo body\n")
    assert len(changed) == len(original)
    (stored,) = [p for sub in ("new", "cur") for p in (pop3_user.maildir / sub).iterdir()]
    stored.write_bytes(changed)
    _age_acks(data, [uidl], days=3)

    result, sent, _ = await _session(dovecot, pop3_user, receiver, data, **box)
    assert b"DELE" not in sent
    assert pop3_user.count() == 1
    assert [r.json()["text"] for r in receiver.requests] == ["alpha body\n", "bravo body\n"]
    assert len(receiver.distinct_webhook_ids()) == 2
    assert result.reused_identities == 1


async def test_keep_turned_off_deletes_delivered_messages_without_posting_again(
    dovecot: Dovecot, pop3_user: Pop3User, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, then keep removed from the config: the messages delivered while kept are
    proven and deleted at the next session, and not posted again."""
    pop3_user.deliver_many([make_message(i) for i in range(3)])
    data = tmp_path / "data"
    await _session(dovecot, pop3_user, receiver, data, keep=True)
    assert pop3_user.count() == 3
    result, sent, _ = await _session(dovecot, pop3_user, receiver, data)
    assert len(receiver.requests) == 3
    assert sent.count(b"DELE") == 3
    assert pop3_user.count() == 0
    assert (result.reconciled, result.deleted, result.delivered) == (3, 3, 0)


def _remove_and_rebuild(user: Pop3User) -> None:
    """Another client deleted every message and the UID list was rebuilt: new mail gets UID 1
    again, the UIDL a kept message had."""
    for path in user.maildir.iterdir():
        if path.name.startswith("dovecot"):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    user.clear()


async def test_a_kept_messages_uidl_given_to_another_message_is_posted(
    dovecot_u: Dovecot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, %u UIDLs. Message X is delivered and kept under UIDL 1; it is removed on the
    server and Y (another size) gets UIDL 1. Y is posted once, under a new webhook-id; X is
    not posted again, and nothing is deleted. A later session posts nothing."""
    user = dovecot_u.new_user()
    user.deliver(make_message(1, body="x, the kept message\n"))
    data = tmp_path / "data"
    await _session(dovecot_u, user, receiver, data, keep=True)
    assert receiver.requests[0].json()["uidl"] == "1"
    _remove_and_rebuild(user)
    user.deliver(make_message(2, body="y, a longer and different message\n"))

    result, sent, _ = await _session(dovecot_u, user, receiver, data, keep=True)
    assert [r.json()["text"] for r in receiver.requests] == [
        "x, the kept message\n",
        "y, a longer and different message\n",
    ]
    assert len(receiver.distinct_webhook_ids()) == 2
    assert result.reused_identities == 1
    assert b"DELE" not in sent
    assert user.count() == 1

    later, sent, _ = await _session(dovecot_u, user, receiver, data, keep=True)
    assert len(receiver.requests) == 2
    assert later.kept == 1
    assert b"DELE" not in sent
