"""R1: a slow but steady RETR longer than keepalive_interval + command_timeout."""

from __future__ import annotations

import time
from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_poller_safety import _config, _session


async def test_slow_steady_retr_survives_keepalive(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    fake_pop3.add(make_message(0))
    fake_pop3.add(make_message(1, size=24000))  # ~5 s at 5000 octets/s
    fake_pop3.add(make_message(2))
    fake_pop3.trickle_on("RETR", 5000, nth=2)
    config = _config(fake_pop3, receiver.url, tmp_path, command_timeout=1, min_transfer_rate=1000)
    began = time.monotonic()
    try:
        _app, result = await _session(config)
    except Exception as exc:
        raise AssertionError(
            f"session failed after {time.monotonic() - began:.1f}s: {exc!r}; "
            f"verbs={fake_pop3.verbs}"
        ) from exc
    print(result, fake_pop3.verbs)
    assert result.committed
    assert len(receiver.requests) == 3
    assert fake_pop3.messages == []
