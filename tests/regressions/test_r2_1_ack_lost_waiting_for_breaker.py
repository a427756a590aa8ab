"""R2-1: a message posted to two targets, one acknowledges, the other's breaker opens. The
message then waits in ``_Session._after_recovery`` for the broken target's trial request
(the breaker's cool-down, 30 s by default) *before* the good target's acknowledgement is
written to the ledger (``_record`` runs after the wait). The wait ignores SIGTERM (it sleeps
the cool-down out), so the shutdown grace (25 s by default) expires and the task is
cancelled: the acknowledgement is never recorded and the next run POSTs the message to the
good target a second time.

Correct: a target's acknowledgement is in the ledger as soon as it arrives, whatever the
other targets are waiting for; SIGTERM ends the wait at once (the session QUITs within the
grace)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bridge.app import App
from bridge.config import Config
from bridge.ledger import Ledger
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import SECRET, make_message
from tests.receiver import WebhookReceiver


def _config(server: FakePop3Server, good: str, bad: str, data_dir: Path) -> Config:
    hook = {"secret": SECRET, "backoff_initial": 0.01, "backoff_max": 0.02}
    return Config.from_dict(
        {
            "data_dir": str(data_dir),
            "shutdown_grace": 2,
            "webhooks": {
                "good": {**hook, "url": good},
                # default breaker_cooldown (30 s): longer than the shutdown grace
                "bad": {**hook, "url": bad, "max_attempts": 1, "breaker_failures": 1},
            },
            "mailboxes": [server.mailbox_config("fake", ["good", "bad"])],
        },
        env={},
    )


async def test_ack_of_one_target_survives_sigterm_while_the_other_recovers(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    fake_pop3.add(make_message(1))
    bad = WebhookReceiver(reply=503)
    await bad.start()
    try:
        config = _config(fake_pop3, receiver.url, bad.url, tmp_path)
        app = App(config)
        stop = asyncio.Event()
        try:
            run = asyncio.create_task(app.once(stop))
            await receiver.wait_for(1, within=10)  # the good target acknowledged it
            await bad.wait_for(1, within=10)  # the bad one failed: its breaker is open
            await asyncio.sleep(0.3)
            began = time.monotonic()
            stop.set()  # SIGTERM
            await asyncio.wait_for(run, 40)
            took = time.monotonic() - began
        finally:
            await app.close()
        with Ledger(tmp_path / "ledger.sqlite3") as ledger:
            rows = ledger.rows_for("fake", "uid-000001")
        assert rows["good"].done, f"the good target's 2xx was not recorded: {rows['good']}"
        assert took < 2 + 1.5, f"SIGTERM waited {took:.1f} s for a breaker cool-down"

        # Next run, the bad target is back: the good one must not get the message again.
        bad.reply(200)
        app = App(config)
        try:
            await app.once()
        finally:
            await app.close()
        assert len(receiver.requests) == 1, "posted twice to the target that acknowledged"
        assert fake_pop3.messages == []
    finally:
        await bad.stop()
