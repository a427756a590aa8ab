"""Review of d108685 (``_Prove._trusted``: "no twin is taken while a delivered message of
that size is not accounted for").

A content key ``u~<hash>`` stays in the ledger as long as ``u`` is listed (``Ledger.prune``
keeps a key whose base is listed), also when its message is long gone: a UIDL reused twice
(Q, then P of another size, then R of a third size) leaves ``5~<P>`` delivered, unlisted,
"spare", for as long as UIDL 5 is listed. ``_trusted`` takes such an entry for a delivered
message that could have moved under any UIDL listed at its size, and so no other UIDL's
twin of that size is ever taken again: UIDL 1, whose twin ``1~<A>`` is the message it
holds, is RETRieved at every poll, for ever (before d108685 it was taken without a
download). The proof of an identity that has a twin no longer comes last either (the twin
was dropped from ``twins``), so with a small ``session_max_messages`` it takes the budget
at every session and new mail of that size, which must be compared with the spare entries
first, is deferred for ever: never posted.
"""

from __future__ import annotations

from pathlib import Path

from bridge.config import Config
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session

X = make_message(1, body="x, the first kept message\n")
Q = make_message(2, body="q, another kept message, longer\n")
A = make_message(3, body="a: your job 1 finished\n")
P = make_message(4, body="p: your job 2 finished\n")
R = make_message(5, body="r: a reply of quite another length\n")
N = make_message(6, body="n: your job 3 finished\n")


async def _loose_spare(server: FakePop3Server, config: Config) -> None:
    """X kept as 1, Q as 5; both UIDLs reused for A and P (one size, new): posted as 1~<A>
    and 5~<P>; P deleted in a mail client and UIDL 5 reused for R (a third size): 5~<R>."""
    assert len(A) == len(P) == len(N)
    assert len({len(X), len(Q), len(A), len(R)}) == 4
    server.add(X, uid="1")
    server.add(Q, uid="5")
    await _session(config)
    server.messages.clear()
    server.add(A, uid="1")
    server.add(P, uid="5")
    await _session(config)
    server.messages.clear()
    server.add(A, uid="1")
    server.add(R, uid="5")
    await _session(config)


async def test_a_twin_is_not_retrieved_at_every_poll_for_a_gone_content_key(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, one target, UIDLs reused. After the scenario above UIDL 1 (listed at A's
    size) has one twin, 1~<A>, the message it holds. 5~<P> (P's size = A's) is spare for
    as long as 5 is listed, so 1~<A> is never trusted: A is RETRieved at every poll.
    Expected: no RETR once everything listed is delivered (as before d108685)."""
    server = FakePop3Server()
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True)
        await _loose_spare(server, config)
        for _ in range(3):
            server.commands.clear()
            await _session(config)
            assert "RETR" not in server.verbs, f"RETR at every poll: {server.commands}"
        posted = sorted(r.json()["subject"] for r in receiver.requests if r.answered == 200)
        assert posted == [f"message {n}" for n in (1, 2, 3, 4, 5)]
    finally:
        await server.stop()


async def test_a_twin_left_untrusted_does_not_starve_new_mail_of_its_size(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """The scenario above, then new mail N (A's size) arrives as UIDL 7. With
    session_max_messages 1 the proof of UIDL 1 (its twin not trusted, so no longer last)
    takes the budget at every session; N, a look-alike of the spare entries, waits for its
    own proof for ever. Expected: N posted within a few sessions (as before d108685)."""
    server = FakePop3Server()
    await server.start()
    try:
        await _loose_spare(server, _config(server, receiver.url, tmp_path, keep=True))
        server.add(N, uid="7")
        config = _config(server, receiver.url, tmp_path, keep=True, session_max_messages=1)
        for _ in range(5):
            await _session(config)
        posted = [r.json()["subject"] for r in receiver.requests if r.answered == 200]
        assert "message 6" in posted, f"N never posted: {posted}"
        assert posted.count("message 6") == 1, posted
    finally:
        await server.stop()
