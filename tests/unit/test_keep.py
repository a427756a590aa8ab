"""keep / keep_days: the pure decisions, and servers without UIDL (the fake POP3 server; the
Dovecot variants are in tests/integration/test_keep.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from bridge.app import App
from bridge.config import Config
from bridge.keep import DAY, delivered_at, held, same_listing
from bridge.ledger import DEFAULT_FILENAME, Row, RowState
from bridge.poller import SessionResult
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import SECRET, make_message
from tests.receiver import WebhookReceiver

T0 = 1_700_000_000.0


def _row(target: str, state: RowState, acked_at: float | None, size: int = 100) -> Row:
    return Row(
        mailbox="m",
        uidl="u",
        target=target,
        state=state,
        attempts=1,
        last_error=None,
        next_attempt_at=None,
        webhook_id="msg_u",
        first_seen_at=T0,
        size=size,
        updated_at=T0,
        dele_sent_at=None,
        committed_at=None,
        acked_at=acked_at,
    )


def test_delivered_at_is_the_last_targets_acknowledgement() -> None:
    """A message is delivered when its last target acknowledged (or it was dead-lettered);
    not before every target is done."""
    rows = {
        "a": _row("a", RowState.ACKED, T0 + 10),
        "b": _row("b", RowState.DEAD_LETTERED, T0 + 99),
    }
    assert delivered_at(rows) == T0 + 99
    rows["b"] = _row("b", RowState.PARKED, None)
    assert delivered_at(rows) is None


def test_held_for_ever_without_keep_days_and_until_they_pass_with_them() -> None:
    """keep without keep_days never lets go; keep_days lets go N days after delivery; an
    unknown delivery time is kept (a deletion cannot be undone); no keep holds nothing."""
    rows = {"a": _row("a", RowState.ACKED, T0)}
    assert held(rows, T0 + 1000 * DAY, keep=True, keep_days=None)
    assert held(rows, T0 + 2 * DAY - 1, keep=True, keep_days=2)
    assert not held(rows, T0 + 2 * DAY, keep=True, keep_days=2)
    assert not held(rows, T0, keep=False, keep_days=None)
    unknown = {"a": _row("a", RowState.ACKED, None)}
    assert held(unknown, T0 + 1000 * DAY, keep=True, keep_days=2)


def test_same_listing_needs_the_size_every_row_saw() -> None:
    """A kept identity listed with another size names another message now."""
    rows = {"a": _row("a", RowState.ACKED, T0, size=100)}
    assert same_listing(rows, 100)
    assert not same_listing(rows, 101)
    assert not same_listing({}, 100)


def _config(server: FakePop3Server, url: str, data_dir: Path, **mailbox: Any) -> Config:
    box = server.mailbox_config("fake", ["main"], **mailbox)
    hook = {"url": url, "secret": SECRET, "backoff_initial": 0.01, "backoff_max": 0.02}
    return Config.from_dict(
        {"data_dir": str(data_dir), "webhooks": {"main": hook}, "mailboxes": [box]}, env={}
    )


async def _session_result(config: Config) -> SessionResult | None:
    """One session of the fake server's mailbox ``fake`` (None: it failed before a result)."""
    app = App(config)
    try:
        return await app.session(app.mailboxes["fake"], asyncio.Event())
    finally:
        await app.close()


async def _session(config: Config) -> SessionResult:
    """One session that must have committed."""
    result = await _session_result(config)
    assert result is not None
    assert result.committed
    return result


async def test_keep_without_uidl_posts_once_by_header_identity(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A server without UIDL: kept messages are known by their header hash (TOP), not
    retrieved again, not posted again, never deleted; new mail is posted once."""
    server = FakePop3Server([make_message(1), make_message(2)], uidl=False)
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True)
        first = await _session(config)
        assert (first.delivered, first.kept) == (2, 2)
        server.commands.clear()
        server.add(make_message(3))
        second = await _session(config)
        assert (second.delivered, second.kept) == (1, 3)
        assert server.verbs.count("RETR") == 1  # the new message only
        server.commands.clear()
        await _session(config)
        assert "RETR" not in server.verbs
        assert "DELE" not in server.verbs
        assert len(server.messages) == 3
        assert sorted(r.json()["subject"] for r in receiver.requests) == [
            "message 1",
            "message 2",
            "message 3",
        ]
    finally:
        await server.stop()


async def test_keep_days_never_deletes_a_look_alike_without_proof(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """No UIDL, keep_days passed. The kept X is gone from the server and Y arrived with X's
    Message-ID, Date, From, Subject and size (the same header identity): Y is retrieved,
    found to be another message, posted under a new webhook-id, and not deleted."""
    x = make_message(1, body="alpha\n")
    y = make_message(1, body="bravo\n")
    assert len(x) == len(y)
    server = FakePop3Server([x], uidl=False)
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, keep_days=3)
        await _session(config)
        server.messages.clear()
        server.add(y)
        with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as conn:
            conn.execute("UPDATE deliveries SET acked_at = acked_at - ?", (4 * DAY,))
        server.commands.clear()
        result = await _session(config)
        assert "DELE" not in server.verbs
        assert len(server.messages) == 1
        assert [r.json()["text"] for r in receiver.requests] == ["alpha\n", "bravo\n"]
        assert len(receiver.distinct_webhook_ids()) == 2
        assert (result.reused_identities, result.kept) == (1, 1)
    finally:
        await server.stop()


async def test_keep_days_deletes_within_the_session_budget(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Three kept messages past keep_days, session_max_messages 2: a session proves and
    deletes two, keeps the third and asks for the next session at once, which deletes it.
    Nothing is posted again."""
    for i in range(3):
        fake_pop3.add(make_message(i))
    config = _config(
        fake_pop3, receiver.url, tmp_path, keep=True, keep_days=1, session_max_messages=2
    )
    first = await _session(config)
    assert first.kept == 2  # the budget also bounds the first delivery session
    await _session(config)
    assert len(receiver.requests) == 3
    with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as conn:
        conn.execute("UPDATE deliveries SET acked_at = acked_at - ?", (2 * DAY,))
    fake_pop3.commands.clear()
    expiring = await _session(config)
    assert fake_pop3.verbs.count("DELE") == 2
    assert (expiring.deleted, expiring.kept, expiring.more_pending) == (2, 1, True)
    last = await _session(config)
    assert (last.deleted, last.kept, last.more_pending) == (1, 0, False)
    assert fake_pop3.messages == []
    assert len(receiver.requests) == 3
