"""R2: a reconcile candidate whose proof RETR times out wedges the mailbox."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_poller_safety import _config, _session


async def test_reconcile_retr_timeout_does_not_wedge(
    fake_pop3: FakePop3Server, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    fake_pop3.add(make_message(0, size=3000))
    config = _config(fake_pop3, receiver.url, tmp_path, command_timeout=1, min_transfer_rate=1000)
    fake_pop3.drop_on("QUIT")  # acked + DELE sent, QUIT never carried out
    _, r1 = await _session(config)
    print("s1", r1, fake_pop3.verbs)
    assert len(receiver.requests) == 1
    assert len(fake_pop3.messages) == 1
    # new mail arrives; the acked message's proof RETR is trickled (times=0: every time)
    fake_pop3.add(make_message(1))
    fake_pop3.add(make_message(2))
    fake_pop3.trickle_on("RETR", 600, times=0, nth=1)
    results = []
    for _ in range(2):
        fake_pop3.commands.clear()
        import asyncio

        while fake_pop3.locked:  # noqa: ASYNC110 - the fake server frees its lock
            await asyncio.sleep(0.2)
        _app, r = await _session(config)
        print("s", r, fake_pop3.verbs)
        results.append(r)
    # what should happen: the trickled candidate is skipped (or parked), the two new
    # messages are posted and the session QUITs.
    assert results[-1] is not None, "every session fails: mailbox wedged"
