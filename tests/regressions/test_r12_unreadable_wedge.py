"""Review of d41fd5e: a deferred message that is already delivered holds strict_order back.

A proof candidate whose RETR is refused is "deferred", and with strict_order every message
listed after a deferred one is held back (``_transaction``: ``held_back``). A candidate is a
message every target acknowledged: nothing of it waits to be posted, only its DELE waits for
the proof. While its RETR keeps failing (a damaged message file), no new mail is ever posted.
Before d41fd5e the unreadable candidate was left alone and the later mail went on.
"""

from __future__ import annotations

from pathlib import Path

from bridge.devserver.messages import _Session
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config
from tests.unit.test_keep import _session_result as _session


class _Damaged(FakePop3Server):
    """RETR of the messages whose UID is in ``damaged`` is refused (an unreadable file)."""

    def __init__(self) -> None:
        super().__init__()
        self.damaged: set[str] = set()

    async def _handle(self, session: _Session, verb: str, args: list[str]) -> bytes:
        if verb == "RETR" and args:
            found = self._message(session, args[0])
            if found is not None and found[1].uid in self.damaged:
                return b"-ERR [SYS/TEMP] cannot read the message\r\n"
        return await super()._handle(session, verb, args)


async def test_an_unreadable_delivered_message_does_not_hold_new_mail_for_ever(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """strict_order, no keep. X posted and DELE'd, QUIT refused (nothing removed). Since then
    the server refuses RETR of X (damaged file), and a new message W arrives after it. X is a
    proof candidate at every session, unreadable, deferred, and W is held back behind it for
    ever, though X was delivered long ago. Expected: W posted (X stays, undeleted)."""
    server = _Damaged()
    server.add(make_message(1, body="x, delivered\n"), uid="x")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, strict_order=True)
        server.reply_on("QUIT", "-ERR [SYS/TEMP] cannot commit now")
        first = await _session(config)
        assert first is not None
        assert first.delivered == 1
        assert not first.committed
        server.damaged = {"x"}
        server.add(make_message(2, body="w, brand new\n"), uid="w")
        for _ in range(3):
            await _session(config)
        subjects = [r.json()["subject"] for r in receiver.requests]
        assert subjects == ["message 1", "message 2"]
    finally:
        await server.stop()
