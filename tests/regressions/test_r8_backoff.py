"""R8: the RETR-failure backoff counts the row's earlier webhook attempts: after a receiver
outage of ~10 sessions, one RETR -ERR parks the message for ~17 hours."""

from __future__ import annotations

from pathlib import Path

from bridge.ledger import Ledger
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_poller_safety import _config, _session


async def test_first_retr_failure_waits_minutes(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    fake_pop3.add(make_message(1))
    config = _config(fake_pop3, receiver.url, tmp_path)
    receiver.reply(503)
    for _ in range(10):  # the receiver is down for 10 sessions
        await _session(config)
    receiver.reply(200)
    fake_pop3.reply_on("RETR", "-ERR [SYS/TEMP] try later")  # once
    await _session(config)
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        row = ledger.rows_for("fake", "uid-000001")["main"]
    wait = (row.next_attempt_at or 0) - row.updated_at
    print("attempts", row.attempts, "wait", wait)
    assert wait <= 600, f"first RETR failure parks for {wait / 3600:.1f} h"
