"""R3: a -ERR to TOP (a message gone since LIST, an unreadable file) ends the session."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_poller_safety import _config, _session


async def test_headers_only_top_err_skips_only_that_message(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    fake_pop3.add(make_message(0))
    fake_pop3.add(make_message(1, size=20000))  # oversize
    fake_pop3.add(make_message(2))
    fake_pop3.reply_on("TOP", "-ERR Can't open the message file - it's gone!", times=0)
    config = _config(
        fake_pop3, receiver.url, tmp_path, max_message_bytes=10000, oversize_policy="headers_only"
    )
    _app, r = await _session(config)
    print(r, fake_pop3.verbs)
    assert r is not None, "session failed on one TOP -ERR"
    assert len(receiver.requests) == 2


async def test_no_uidl_top_err_skips_only_that_message(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    async with FakePop3Server(uidl=False) as fake:
        for i in range(3):
            fake.add(make_message(i))
        fake.reply_on("TOP", "-ERR Can't open the message file - it's gone!", nth=2)
        config = _config(fake, receiver.url, tmp_path)
        _app, r = await _session(config)
        print(r, fake.verbs)
        assert r is not None, "session failed on one TOP -ERR"
        assert len(receiver.requests) == 2
