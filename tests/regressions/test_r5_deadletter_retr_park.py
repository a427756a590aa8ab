"""R5: a RETR failure parks the message as if every target had refused it; with
reject_policy dead_letter a later session dead-letters and DELETEs it though a target that
never refused it (breaker open) never got it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from bridge.app import App
from bridge.config import Config
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import SECRET, make_message
from tests.receiver import WebhookReceiver


async def test_retr_park_is_not_a_rejection(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    async with WebhookReceiver(reply=503) as down:
        box = fake_pop3.mailbox_config("fake", ["a", "b"], reject_policy="dead_letter")
        hook = {
            "secret": SECRET,
            "backoff_initial": 0.01,
            "backoff_max": 0.02,
            "max_attempts": 1,
            "breaker_failures": 1,
            "breaker_cooldown": 600,
        }
        config = Config.from_dict(
            {
                "data_dir": str(tmp_path),
                "webhooks": {"a": {"url": receiver.url, **hook}, "b": {"url": down.url, **hook}},
                "mailboxes": [box],
            },
            env={},
        )
        fake_pop3.add(make_message(0))
        fake_pop3.add(make_message(1))
        fake_pop3.reply_on("RETR", "-ERR [SYS/TEMP] try later", nth=2)  # message 1, once
        app = App(config)
        state = app.mailboxes["fake"]
        try:
            r1 = await app.session(state, asyncio.Event())  # 0: a ok, b 503 -> breaker open
            print("s1", r1)
            # the RETR backoff is over
            with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
                db.execute("UPDATE deliveries SET next_attempt_at = 0 WHERE state = 'parked'")
            r2 = await app.session(state, asyncio.Event())
            print("s2", r2)
        finally:
            await app.close()
        print("b got", [r.json()["subject"] for r in down.requests])
        print("a got", [r.json()["subject"] for r in receiver.requests])
        print(
            "server",
            [m.uid for m in fake_pop3.messages],
            "deadletters",
            list((tmp_path / "dead-letters").rglob("*"))
            if (tmp_path / "dead-letters").exists()
            else [],
        )
        # b never refused message 1 (its breaker was open): it must stay on the server
        assert r2.dead_lettered == 0
        assert "uid-000002" in [m.uid for m in fake_pop3.messages]
