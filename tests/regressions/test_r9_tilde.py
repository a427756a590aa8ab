"""R9: identity_base() splits at the first "~", but "~" is a legal UIDL character
(RFC 1939: 0x21..0x7E): stable UIDLs such as "a~1" are reported as unstable every session."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_poller_safety import _config, _session


async def test_tilde_uidl_is_not_unstable(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    fake_pop3.add(make_message(1), uid="box~1")
    receiver.reply(503)
    config = _config(fake_pop3, receiver.url, tmp_path)
    await _session(config)
    app, _ = await _session(config)  # same UIDL listed again
    metrics = app.metrics.render().decode()
    assert (
        'kind="unstable_uidl"' not in metrics
        or 'kind="unstable_uidl",mailbox="fake"} 0.0' in metrics
    ), [line for line in metrics.splitlines() if "unstable" in line]
