"""R2-3: ``popbridge once`` reports 0 ("nothing is left on the server") while a message is
left on the server, when the server's STAT undercounts (STAT 0 while LIST shows mail - the
poller itself knows such servers and trusts LIST/UIDL, never STAT). session_exit_code
compares ``stat_messages`` (STAT) with ``deleted``; it should count what the inventory
(LIST/UIDL) found and what is left of it."""

from __future__ import annotations

from pathlib import Path

from bridge.app import App
from bridge.exitcodes import ExitCode
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_poller_safety import _config


async def test_parked_message_with_stat_saying_empty_is_not_exit_0(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    fake_pop3.add(make_message(1))
    fake_pop3.stat_says_empty = True
    receiver.reply(400)  # rejected: parked, left on the server
    app = App(_config(fake_pop3, receiver.url, tmp_path))
    try:
        report = await app.once()
    finally:
        await app.close()
    assert len(receiver.requests) == 1
    assert len(fake_pop3.messages) == 1  # still on the server
    assert report.exit_code is ExitCode.LEFT_ON_SERVER
