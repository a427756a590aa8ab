"""Review of d7a6858 (limit changes while a target waits: another message under the
acknowledged identity goes by today's limit, parked via ``_park_oversize`` when over it and
it cannot be posted headers-only).

Without keep, the identity's waiting row (the first message's, gone from the server) is due
at every session, so the message listed under it now is read again, whole up to the size
acknowledged (the fetch follows the acknowledgement), told apart, renamed to its content key
and parked once more: a RETR of the whole oversize message at every poll, for ever, each
counted as a reused identity and an oversize message. Parked under its content key, it is
not due before its park delay, and a message over the limit is never retrieved whole
otherwise (oversize_policy park, or no TOP: parked without a download).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.regressions.test_r13_undelivered_twin import _config
from tests.unit.test_keep import _session


@pytest.mark.parametrize(("policy", "top"), [("park", True), ("headers_only", False)])
async def test_another_message_parked_as_oversize_is_not_retrieved_at_every_poll(
    receiver: WebhookReceiver, tmp_path: Path, policy: str, top: bool
) -> None:
    """keep: false, targets main and audit, positional UIDLs. Q (20 kB) as UIDL 1 is posted
    whole at max_message_bytes 100 000: main acknowledges, audit answers 500. Q is deleted
    in a mail client and R (another 20 kB message) gets UIDL 1; the limit is lowered to
    10 000 (oversize_policy park, or headers_only on a server without TOP); audit answers
    200 again. R is retrieved whole, told apart and parked (right), then retrieved whole and
    parked again at every session. Expected: once R is parked, no RETR of it while it is."""
    audit = WebhookReceiver()
    await audit.start()
    q = make_message(1, size=20000)
    r = make_message(2, size=20000)
    assert len(q) == len(r)
    assert q != r
    server = FakePop3Server()
    server.add(q, uid="1")
    await server.start()
    try:
        urls = {"main": receiver.url, "audit": audit.url}
        box = {"oversize_policy": policy}
        audit.decide(lambda req: 500)
        await _session(_config(server, urls, tmp_path, max_message_bytes=100_000, **box))
        audit.decide(None)
        server.messages.clear()
        server.add(r, uid="1")
        server.top = top
        config = _config(server, urls, tmp_path, max_message_bytes=10_000, **box)
        first = await _session(config)
        assert first.oversize == 1  # R parked
        for _ in range(2):
            server.commands.clear()
            result = await _session(config)
            assert "RETR" not in server.verbs, f"R retrieved at every poll: {result}"
        for hook in (receiver, audit):
            assert "message 2" not in [x.json()["subject"] for x in hook.requests]
    finally:
        await server.stop()
        await audit.stop()
