"""Sessions that must go on (and end with QUIT) when one message cannot be retrieved, that
keep their time budget, and that never trust STAT over LIST. Each case once lost, wedged or
silently skipped mail."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from bridge.app import App
from bridge.config import Config
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import SECRET, make_message
from tests.receiver import WebhookReceiver


def _config(server: FakePop3Server, url: str, data_dir: Path, **mailbox: Any) -> Config:
    box = server.mailbox_config("fake", ["main"], **mailbox)
    hook = {"url": url, "secret": SECRET, "backoff_initial": 0.01, "backoff_max": 0.02}
    return Config.from_dict(
        {
            "data_dir": str(data_dir),
            "webhooks": {"main": hook},
            "mailboxes": [box],
            "metrics": {"mailbox_detail": "full"},  # asserted per mailbox
        },
        env={},
    )


async def _session(config: Config) -> tuple[App, Any]:
    app = App(config)
    try:
        result = await app.session(app.mailboxes["fake"], asyncio.Event())
    finally:
        await app.close()
    return app, result


def _subjects(receiver: WebhookReceiver) -> list[str]:
    return [r.json()["subject"] for r in receiver.requests]


async def test_retr_err_for_one_message_skips_only_that_message(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Courier's "-ERR ... it's gone!" for one RETR used to end the whole session (5,000
    messages: 1,500-4,000 left). Now that message is parked, the others are delivered, and
    QUIT commits their deletion."""
    for i in range(6):
        fake_pop3.add(make_message(i))
    fake_pop3.reply_on("RETR", "-ERR Can't open the message file - it's gone!", nth=3)
    app, result = await _session(_config(fake_pop3, receiver.url, tmp_path))
    assert result.committed
    assert result.retr_failed == 1
    assert result.delivered == 5
    assert [m.uid for m in fake_pop3.messages] == ["uid-000003"]
    assert "message 2" not in _subjects(receiver)
    metrics = app.metrics.render().decode()
    assert 'bridge_retr_failures_total{mailbox="fake",reason="refused"} 1.0' in metrics


async def test_retr_backoff_starts_short(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A failed RETR waits minutes, not a day, and the wait grows with each failure."""
    fake_pop3.add(make_message(1))
    fake_pop3.reply_on("RETR", "-ERR [SYS/TEMP] try later", times=0)
    config = _config(fake_pop3, receiver.url, tmp_path)
    await _session(config)
    ledger_path = tmp_path / "ledger.sqlite3"
    from bridge.ledger import Ledger

    with Ledger(ledger_path) as ledger:
        row = ledger.rows_for("fake", "uid-000001")["main"]
        first_wait = (row.next_attempt_at or 0) - row.updated_at
    assert 60 <= first_wait <= 300
    # Pretend the wait is over (only the time: a webhook failure would reset the count of
    # failed RETRs), and fail again.
    with sqlite3.connect(ledger_path) as conn:
        conn.execute("UPDATE deliveries SET next_attempt_at = 0")
    conn.close()
    await _session(config)
    with Ledger(ledger_path) as ledger:
        row = ledger.rows_for("fake", "uid-000001")["main"]
        assert (row.next_attempt_at or 0) - row.updated_at > first_wait


async def test_trickled_retr_is_parked_and_the_session_goes_on(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A RETR trickled at 100 octets/s: the message is parked, the session reconnects, the
    messages acknowledged before are reconciled (not reposted), the rest are delivered and
    QUIT commits. Before, each session died on it and 3 of 7 were ever posted."""
    for i in range(7):
        fake_pop3.add(make_message(i, size=3000))
    fake_pop3.trickle_on("RETR", 100, nth=4)
    config = _config(
        fake_pop3,
        receiver.url,
        tmp_path,
        command_timeout=1,
        min_transfer_rate=1000,
        delivery_concurrency=1,
    )
    began = time.monotonic()
    app, result = await _session(config)
    assert time.monotonic() - began < 20
    assert result is not None, "the session failed instead of going on"
    assert result.committed
    assert result.reconnects == 1
    assert result.retr_failed == 1
    assert [m.uid for m in fake_pop3.messages] == ["uid-000004"]
    assert len(receiver.requests) == 6
    assert len(receiver.distinct_webhook_ids()) == 6
    metrics = app.metrics.render().decode()
    assert 'bridge_retr_failures_total{mailbox="fake",reason="timeout"} 1.0' in metrics


async def test_session_max_seconds_holds_inside_a_batch(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """With slow RETRs (0.3 s each) and session_max_seconds 1, the session stops taking
    messages inside the batch, QUITs, and says more is pending."""
    for i in range(30):
        fake_pop3.add(make_message(i))
    fake_pop3.delay_on("RETR", 0.3, times=0)
    config = _config(fake_pop3, receiver.url, tmp_path, session_max_seconds=1)
    began = time.monotonic()
    _, result = await _session(config)
    took = time.monotonic() - began
    assert result.committed
    assert result.more_pending
    assert result.delivered < 10
    assert took < 8  # 30 x 0.3 s = 9 s would be the whole mailbox
    assert len(fake_pop3.messages) == 30 - result.delivered


async def test_stat_zero_is_not_trusted_over_list(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A server whose STAT says 0 while LIST shows messages: the messages are delivered, and
    the ledger keeps acknowledged, uncommitted rows (they used to be pruned and reposted)."""
    for i in range(3):
        fake_pop3.add(make_message(i))
    fake_pop3.drop_on("QUIT")
    config = _config(fake_pop3, receiver.url, tmp_path)
    await _session(config)
    assert len(receiver.requests) == 3
    fake_pop3.stat_says_empty = True
    _, result = await _session(config)
    assert result.committed
    assert result.reconciled == 3
    assert fake_pop3.messages == []
    assert len(receiver.requests) == 3  # nothing posted twice


async def test_uidls_that_change_every_session_are_reported(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A listing with no UIDL in common with the messages the ledger expects on the server is
    a warning and a metric: reposts would carry new webhook-ids."""
    fake_pop3.add(make_message(1), uid="a1")
    receiver.reply(503)
    config = _config(fake_pop3, receiver.url, tmp_path)
    await _session(config)
    fake_pop3.messages[0].uid = "b1"  # the server renamed it
    receiver.reply(200)
    app, _ = await _session(config)
    metrics = app.metrics.render().decode()
    assert 'bridge_identity_problems_total{kind="unstable_uidl",mailbox="fake"} 1.0' in metrics


async def test_memory_follows_bytes_received_not_list(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """LIST understates every size 100-fold (24 x 20 MB took 391 MB before): a message larger
    than batch_max_bytes is delivered before the next reply is read, so at most one of them
    is held at a time, whatever LIST claimed."""
    raws = [make_message(i, size=2_500_000) for i in range(4)]
    for raw in raws:
        fake_pop3.add(raw)
    fake_pop3.list_size_factor = 0.01
    config = _config(
        fake_pop3, receiver.url, tmp_path, delivery_concurrency=8, max_message_bytes=50_000_000
    )
    _, result = await _session(config)
    assert result.committed
    assert result.delivered == 4
    biggest = max(len(raw.replace(b"\n", b"\r\n")) for raw in raws)
    assert result.peak_held_bytes <= biggest
