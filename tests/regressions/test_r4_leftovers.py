"""R4: stopping inside a pipelined batch leaves RETR replies on the wire; the next
single-line command (DELE/QUIT) must read them within command_timeout in total."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from bridge.app import App
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_poller_safety import _config


async def test_budget_stop_mid_batch_still_commits(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    for i in range(4):
        fake_pop3.add(make_message(i, size=6000))
    fake_pop3.trickle_on("RETR", 3000, times=0)  # ~2 s per message, steady (> min rate)
    config = _config(
        fake_pop3,
        receiver.url,
        tmp_path,
        command_timeout=3,
        min_transfer_rate=1000,
        session_max_seconds=1,
    )
    app = App(config)
    state = app.mailboxes["fake"]
    # keep the keep-alive NOOP out of the way (that is R1)
    state.poller.policy = dataclasses.replace(state.poller.policy, keepalive_interval=1000)
    try:
        result = await app.session(state, asyncio.Event())
    finally:
        await app.close()
    print(result, fake_pop3.verbs)
    assert result is not None, "the session failed instead of stopping at its budget"
    assert result.committed
    assert len(fake_pop3.messages) == 4 - len(receiver.requests)
