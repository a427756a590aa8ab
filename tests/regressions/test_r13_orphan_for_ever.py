"""Review of 25479bc (the ``orphans`` rule and the proof order, ``_Prove._prove``).

A listed unsettled message with no twin of its own is an "orphan": it is proven first, and
while one is listed at a size every twin-having message of that size is proven too. But
"no twin" includes "two twins": ``_twin`` returns None when the ledger has two content
identities ``<uid>~<hash>`` at the listed size. A UID list rebuilt twice (Dovecot %u, or
positional UIDLs) leaves exactly that behind, for ever (prune keeps ``u~*`` while ``u`` is
listed): that identity is an orphan at every session, RETRieved at every poll, first in the
proof budget, and a message after it that needs a proof is deferred at every session.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


def _subjects(receiver: WebhookReceiver) -> list[str]:
    return sorted(r.json()["subject"] for r in receiver.requests)


X = make_message(1, body="x, the first kept message\n")
B = make_message(2, body="b, the second kept message, longer\n")
C = make_message(3, body="c, the third kept message, longer still!\n")
Y = make_message(4, body="y: your job 1 finished\n")
Z = make_message(5, body="z: your job 2 finished\n")
V = make_message(6, body="v: a new message of yet another size, the longest of all\n")


async def _rebuilt_twice(server: FakePop3Server, receiver: WebhookReceiver, tmp: Path) -> None:
    """X, B, C kept as 1, 2, 3; then Y gets 1; then Z gets 1 and Y moves to 2 (B gone)."""
    assert len(Y) == len(Z)
    assert len({len(X), len(B), len(C), len(Y), len(V)}) == 5
    server.add(X, uid="1")
    server.add(B, uid="2")
    server.add(C, uid="3")
    config = _config(server, receiver.url, tmp, keep=True)
    await _session(config)
    server.messages.clear()
    server.add(Y, uid="1")
    server.add(B, uid="2")
    server.add(C, uid="3")
    await _session(config)
    server.messages.clear()
    server.add(Z, uid="1")
    server.add(Y, uid="2")
    server.add(C, uid="3")
    await _session(config)
    assert _subjects(receiver) == [f"message {i}" for i in (1, 2, 3, 4, 5)]


async def test_a_twice_rebuilt_identity_is_not_retrieved_at_every_poll(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true. X, B, C kept as UIDLs 1, 2, 3. The UID list is rebuilt: Y (new size)
    gets 1 (posted as 1~<Y>). Rebuilt again: Z (Y's size) gets 1 and Y gets 2 (B removed):
    Z posted as 1~<Z>, Y adopted as 2~<Y>. Now 1 has two twins at its size (1~<Y>, 1~<Z>),
    so it is an orphan for ever: 1 and 2 are RETRieved at every poll (r10/r12: no RETR once
    a reused UIDL's message is known). Expected: no RETR once everything is posted."""
    server = FakePop3Server()
    await server.start()
    try:
        await _rebuilt_twice(server, receiver, tmp_path)
        config = _config(server, receiver.url, tmp_path, keep=True)
        for _ in range(2):
            server.commands.clear()
            later = await _session(config)
            assert (later.kept, later.delivered) == (3, 0)
            assert "RETR" not in server.verbs, "RETR at every poll"
        assert len(receiver.requests) == 5
    finally:
        await server.stop()


async def test_a_twice_rebuilt_identity_does_not_starve_the_proof_budget(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """The scenario above, then C (UIDL 3) is removed and a new V of another size gets UIDL 3
    (a reused UIDL: it must be proven). With session_max_messages 1 the never-settling
    orphan 1 is first in the budget at every session and V is deferred at every session:
    never posted. Expected: V posted within a few sessions."""
    server = FakePop3Server()
    await server.start()
    try:
        await _rebuilt_twice(server, receiver, tmp_path)
        server.messages[2:] = []
        server.add(V, uid="3")
        config = _config(server, receiver.url, tmp_path, keep=True, session_max_messages=1)
        results = [await _session(config) for _ in range(5)]
        assert "message 6" in _subjects(receiver), [
            (r.skipped, r.kept, r.delivered, r.more_pending) for r in results
        ]
    finally:
        await server.stop()
