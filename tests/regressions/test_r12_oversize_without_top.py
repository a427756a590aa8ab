"""Review of d41fd5e (idea 4: an acknowledgement of another LIST size proves nothing, so an
oversize message is hashed by TOP and follows the oversize policy).

``verify`` sends ``TOP n 0`` for every oversize candidate without looking at the server's
CAPA (``bridge.identity.can_top`` is what every other TOP asks). A server that does not offer
TOP answers ``-ERR``: the candidate is "unreadable", deferred, and the same at every session.
The message is never parked (the oversize policy: a TOP-less server parks) nor counted as
oversize; with strict_order everything after it waits for ever, and spare rows are retained
for ever. The module promises that no command the server's CAPA left out is ever sent.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config
from tests.unit.test_keep import _session_result as _session


async def test_an_oversize_reused_uidl_on_a_server_without_top_is_parked(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """A server with UIDL but no TOP in its CAPA; keep: true, max_message_bytes 64 KB. X
    (small) is kept under UIDL 1; X is removed and Y (300 KB) gets UIDL 1; then a new small
    message W arrives as UIDL 2. Expected: TOP never sent; Y parked as oversize (like any
    oversize message on a server without TOP), W posted. Before: TOP -> -ERR,
    "reconcile_unreadable" at every session, Y deferred for ever (with strict_order, which
    holds everything behind a parked message by design, W would wait for ever either way)."""
    server = FakePop3Server(top=False)
    server.add(make_message(1), uid="1")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, max_message_bytes=65536)
        await _session(config)
        assert len(receiver.requests) == 1
        server.messages.clear()
        server.add(make_message(2, size=300_000), uid="1")
        server.add(make_message(3), uid="2")
        server.commands.clear()
        results = [await _session(config) for _ in range(3)]
        assert "TOP" not in server.verbs
        assert any(r is not None and r.oversize for r in results), results
        subjects = [r.json()["subject"] for r in receiver.requests]
        assert subjects == ["message 1", "message 3"]
    finally:
        await server.stop()
