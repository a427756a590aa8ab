"""Review of 51cd3d2 (``_Prove._follow_moves``: a moved message whose suspect cannot be
retrieved is deferred, neither posted nor deleted).

A suspect whose RETR the server refuses for good (a corrupted message file: ``-ERR`` at
every RETR) is only deferred for the session: no backoff is recorded for it (a failed RETR
in the delivery phase waits ``retr_retry_base``, doubling; a proof that timed out waits in
``unverifiable``). So at every poll the moved message is retrieved again, found moved, its
suspect asked for again and refused, and the moved message deferred again: two RETRs at
every poll for ever (one of them of a readable message, however large). Before 51cd3d2
the moved message was posted again (r20), after which nothing was retrieved.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from bridge.devserver import crlf
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


class _Corrupted(FakePop3Server):
    """Refuses RETR of the messages whose bytes are in ``corrupted``, at every attempt."""

    corrupted: frozenset[bytes] = frozenset()

    async def _handle(self, session: Any, verb: str, args: list[str]) -> bytes:
        if verb == "RETR" and args:
            found = self._message(session, args[0])
            if found is not None and found[1].data in self.corrupted:
                return b"-ERR message is corrupted\r\n"
        return await super()._handle(session, verb, args)


async def test_a_suspect_refused_for_good_does_not_retrieve_the_moved_message_at_every_poll(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, one target, UIDLs renumbered (a rebuilt %u UID list). P (one size) and A
    (another) delivered and kept as UIDLs 1 and 2. P is deleted, the list rebuilt, N (A's
    size) arrives: A is UIDL 1, N is UIDL 2, and the server refuses every RETR of N. At
    every poll: RETR 1 (A, found moved from UIDL 2), RETR 2 (refused), A deferred.
    Expected: A is not posted again, and after the first refusal the polls that follow
    (at once) retrieve neither message (a backoff, as for any failed RETR)."""
    p = make_message(0, body="p, short\n")
    a = make_message(1, body="a, the longer one here\n")
    n = make_message(2, body="n, the longer one HERE\n")
    assert len(a) == len(n) != len(p)
    server = _Corrupted()
    server.add(p, uid="1")
    server.add(a, uid="2")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True)
        await _session(config)
        server.messages.clear()
        server.add(a, uid="1")
        server.add(n, uid="2")
        server.corrupted = frozenset({crlf(n)})
        await _session(config)
        assert "RETR 2" in server.commands  # the suspect was asked for, and refused
        for _ in range(3):
            server.commands.clear()
            await _session(config)
            retrieved = [c for c in server.commands if c.split()[0] in ("RETR", "TOP")]
            assert retrieved == [], f"retrieved again at every poll: {retrieved}"
        posted = Counter(r.json()["subject"] for r in receiver.requests if r.answered == 200)
        assert posted["message 1"] == 1, f"A posted again: {posted}"
    finally:
        await server.stop()
