"""Review of affcb8b: ``once`` exits 0 with a new message left undelivered on the server.

With keep, a proof candidate the budget leaves for later is "kept one more session"
(``_Prove._prove``: ``self._kept.add``) and counted in ``result.kept``, whatever it is: also a
kept identity listed at another size, i.e. another message that has not been posted. When the
proven part of the session neither fetched nor deleted anything (an adoption), ``once`` stops
after that session (more_pending without fetched/reconciled) and the exit code compares
on_server with deleted + kept: 0, "all delivered", while a new message waits.
"""

from __future__ import annotations

from pathlib import Path

from bridge.app import App
from bridge.exitcodes import ExitCode
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config


async def _once(config) -> ExitCode:  # type: ignore[no-untyped-def]
    app = App(config)
    try:
        report = await app.once()
    finally:
        await app.close()
    return report.exit_code


async def test_once_does_not_exit_0_with_a_new_message_left_undelivered(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, session_max_messages 1, positional UIDLs. A (UIDL 1) and B (UIDL 2) kept.
    Another client removes A and a new message C arrives: B is now UIDL 1 and C UIDL 2, both
    listed at other sizes. The pass proves UIDL 1 (B: adopted, nothing fetched), leaves UIDL 2
    for later counted as kept, stops, and exits 0 without posting C. Expected: C posted, or
    exit code 3 (messages left on the server)."""
    a = make_message(1, body="a\n")
    b = make_message(2, body="bb, the second message\n")
    c = make_message(3, body="ccc, a new message, never posted before\n")
    assert len({len(a), len(b), len(c)}) == 3
    server = FakePop3Server()
    server.add(a, uid="1")
    server.add(b, uid="2")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, session_max_messages=1)
        assert await _once(config) is ExitCode.OK
        assert len(receiver.requests) == 2
        server.messages.clear()
        server.add(b, uid="1")
        server.add(c, uid="2")
        code = await _once(config)
        posted = [r.json()["subject"] for r in receiver.requests]
        assert "message 3" in posted or code is ExitCode.LEFT_ON_SERVER, (code, posted)
    finally:
        await server.stop()
