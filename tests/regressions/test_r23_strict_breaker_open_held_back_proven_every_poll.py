"""Review of e51a566 (``_Prove._holding``: with ``strict_order``, waiting mail after the first
message that holds the others back is not compared in the proof phase).

``_holding`` counts a message as holding the others back only when none of its waiting rows
is due now. A message whose only waiting target has its circuit breaker open has a due row
(its short retry backoff passed) and is not counted; yet the delivery phase holds everything
after it back (``_next_batch``: no due target once the open ones are left out, so strict
order stops there) for as long as the breaker stays open. A later message some target
acknowledged and another (breaker closed) is due to get is then retrieved for its proof at
every poll and never posted: the r21 behaviour, through a breaker instead of a parked row.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bridge.app import App
from bridge.config import Config
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import SECRET, make_message
from tests.receiver import WebhookReceiver


def _config(server: FakePop3Server, main: str, audit: str, data_dir: Path, **box: Any) -> Config:
    hook = {"secret": SECRET, "backoff_initial": 0.01, "backoff_max": 0.02, "max_attempts": 1}
    return Config.from_dict(
        {
            "data_dir": str(data_dir),
            "webhooks": {
                "main": {**hook, "url": main, "breaker_failures": 100},
                # open for the rest of the test once it opens
                "audit": {**hook, "url": audit, "breaker_failures": 1, "breaker_cooldown": 3},
            },
            "mailboxes": [server.mailbox_config("fake", ["audit", "main"], **box)],
        },
        env={},
    )


def _subjects(receiver: WebhookReceiver) -> list[str]:
    return [r.json()["subject"] for r in receiver.requests]


async def test_strict_order_a_message_held_back_by_an_open_breaker_is_not_retrieved_every_poll(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Targets main and audit. Without strict_order: message 1 acknowledged by main, audit
    answers 500 (retry soon); message 2 acknowledged by audit, main answers 500 (retry
    soon). Then strict_order, one running App: audit refuses message 1 again and its breaker
    opens (breaker_failures 1, cool-down 3 s). At every later poll while it is open, message
    1 (waiting for audit only) holds message 2 back, yet message 2 is RETRieved for its
    proof (``_holding`` does not see message 1: its audit row is due, only the breaker is
    open), then held back, never posted to main. Expected: while message 1 is held back by
    the open breaker, no RETR/TOP at all (as with a parked message 1, r21), nothing posted."""
    audit = WebhookReceiver()
    await audit.start()
    server = FakePop3Server()
    for i in (1, 2):
        server.add(make_message(i), uid=str(i))
    await server.start()
    try:
        receiver.decide(lambda r: 500 if r.json()["subject"] == "message 2" else None)
        audit.decide(lambda r: 500 if r.json()["subject"] == "message 1" else None)
        setup = App(_config(server, receiver.url, audit.url, tmp_path))
        try:
            await setup.session(setup.mailboxes["fake"], asyncio.Event())
        finally:
            await setup.close()
        assert sorted(_subjects(receiver)) == ["message 1", "message 2"]
        assert sorted(_subjects(audit)) == ["message 1", "message 2"]
        receiver.decide(None)  # main would take message 2 now
        await asyncio.sleep(0.1)  # the retry backoffs (0.01-0.02 s) pass
        app = App(_config(server, receiver.url, audit.url, tmp_path, strict_order=True))
        try:
            mailbox = app.mailboxes["fake"]
            await app.session(mailbox, asyncio.Event())  # audit refuses message 1: open
            assert app.webhooks.is_open("audit")
            posted = len(receiver.requests)
            for _ in range(3):
                await asyncio.sleep(0.1)  # message 1's audit row is due again
                server.commands.clear()
                await app.session(mailbox, asyncio.Event())
                retrieved = [c for c in server.commands if c.split()[0] in ("RETR", "TOP")]
                assert retrieved == [], f"held back, yet retrieved at every poll: {retrieved}"
            assert len(receiver.requests) == posted
        finally:
            await app.close()
    finally:
        await server.stop()
        await audit.stop()
