"""Review of 886b96d (``_Prove._suspects``: a listed identity whose acknowledged content a
retrieved message was found to hold under another identity is retrieved too).

The suspects are looked for once, after the first ``verify``: a suspect found to hold yet
another delivered content (a chain of moves, one UIDL down each, after a rebuilt UID list)
makes no suspect of the identity that content was acknowledged under. That content's
delivery stays "accounted for" by its old UIDL, listed at its size, so the suspect's message
is posted again as new (a reused identity), and the new mail at the end of the chain, under
that old UIDL at the same size, is kept without a download: never posted (keep: true). With
one move (test_keep_moves_dovecot, r19) each message is posted once. Reproduced on real
Dovecot (%u, [3, 0, 1] delivered and kept, 3 deleted, the UID list rebuilt, 4 delivered:
message 1 posted twice, message 4 never).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


@pytest.mark.parametrize("moved", [2, 3])
async def test_a_chain_of_moves_posts_each_message_once(
    receiver: WebhookReceiver, tmp_path: Path, moved: int
) -> None:
    """keep: true, one target, UIDLs renumbered as Dovecot does after a rebuilt %u UID list.
    P (one size) and ``moved`` messages of another size S delivered and kept as UIDLs 1,
    2, ... P is deleted in the mail client, the UID list rebuilt, and N (new, size S)
    arrives: each of the others moves one UIDL down, N takes the last UIDL. UIDL 1 (another
    size) is retrieved and holds message 1, UIDL 2 is a suspect and holds message 2; UIDL 3
    is not retrieved. Message 2 is posted again as 2~<hash>, N never. Expected: each
    message posted once, N too, and an idle session after."""
    p = make_message(0, body="p, short\n")
    same = [make_message(i, body=f"body {i}, the longer one here\n") for i in range(1, moved + 2)]
    assert len({len(m) for m in same}) == 1
    assert len(p) != len(same[0])
    server = FakePop3Server()
    server.add(p, uid="1")
    for i, raw in enumerate(same[:-1]):
        server.add(raw, uid=str(i + 2))
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True)
        await _session(config)
        server.messages.clear()
        for i, raw in enumerate(same):  # the last one is N
            server.add(raw, uid=str(i + 1))
        for _ in range(3):
            await _session(config)
        posted = Counter(r.json()["subject"] for r in receiver.requests if r.answered == 200)
        assert posted == Counter({f"message {i}": 1 for i in range(moved + 2)}), posted
    finally:
        await server.stop()
