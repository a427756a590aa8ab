"""Review of 2a842c8 (``_Prove._twin``: "with several twins, the one written last").

The fix for "an identity with two twins is retrieved at every poll" takes the twin whose
rows were written last. A twin whose message is gone and that one target never acknowledged
(a 500 before the message was deleted in a mail client) can be the one written last while
the UIDL holds the other twin's message, delivered earlier. That stale twin is picked at
every session: it is "not delivered yet", so the message is RETRieved for its missing
target, found to be other content (``_reidentify``), named after the listed UIDL: the other
twin, done, kept. Nothing is written to the stale twin's rows, so the next session picks it
again: RETR at every poll, for ever (the audit row can never settle: its message is gone).
It also takes the session's message budget first at every session: with a small
``session_max_messages`` new mail listed after it is never posted.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.regressions.test_r13_undelivered_twin import _config
from tests.unit.test_keep import _session

X = make_message(1, body="x, the first kept message\n")
Z = make_message(2, body="z: your job 1 finished\n")
Y = make_message(3, body="y: your job 2 finished\n")
W = make_message(4, body="w: brand new mail, never posted\n")


async def _stale_twin(
    server: FakePop3Server, main: WebhookReceiver, audit: WebhookReceiver, tmp: Path
) -> None:
    """X kept as 1; Z posted as 1~<Z>; Y posted as 1~<Y> (audit: 500), Z adopted as 2; Y
    deleted, Z listed as 1 again (one session)."""
    assert len(Y) == len(Z) != len(X)
    config = _config(server, {"main": main.url, "audit": audit.url}, tmp, keep=True)
    server.add(X, uid="1")
    await _session(config)
    server.messages.clear()
    server.add(Z, uid="1")
    await _session(config)
    audit.decide(lambda r: 500 if r.json()["subject"] == "message 3" else None)
    server.messages.clear()
    server.add(Y, uid="1")
    server.add(Z, uid="2")
    await _session(config)
    server.messages.clear()
    server.add(Z, uid="1")


async def test_a_stale_half_delivered_twin_is_not_retrieved_at_every_poll(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, targets main and audit, UIDLs reassigned by the server. X kept as UIDL 1.
    X removed, Z (a new size) gets UIDL 1: posted as 1~<Z> to both. The UID list is
    rebuilt: Y (Z's size, new) gets 1 and Z gets 2: Y is posted as 1~<Y>, main acknowledges,
    audit answers 500; Z is adopted as 2. Y is deleted in a mail client and the list rebuilt
    once more: Z gets 1 again. UIDL 1 has two twins of its size: 1~<Z> (done) and 1~<Y>
    (written last, audit pending). 1~<Y> is picked at every session and Z RETRieved at every
    poll, for ever. Expected: no RETR once everything listed is delivered."""
    audit = WebhookReceiver()
    await audit.start()
    server = FakePop3Server()
    await server.start()
    try:
        await _stale_twin(server, receiver, audit, tmp_path)
        config = _config(server, {"main": receiver.url, "audit": audit.url}, tmp_path, keep=True)
        await _session(config)
        for _ in range(2):
            server.commands.clear()
            await _session(config)
            assert "RETR" not in server.verbs, "RETR at every poll"
        subjects = sorted(r.json()["subject"] for r in receiver.requests)
        assert subjects == ["message 1", "message 2", "message 3"]
    finally:
        await server.stop()
        await audit.stop()


async def test_a_stale_half_delivered_twin_does_not_starve_new_mail(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """The scenario above, and new mail W arrives as UIDL 3 (listed after Z). With
    session_max_messages 1 the stale twin's RETR of Z takes the budget at every session and
    W is never posted. Expected: W posted to both targets within a few sessions."""
    audit = WebhookReceiver()
    await audit.start()
    server = FakePop3Server()
    await server.start()
    try:
        await _stale_twin(server, receiver, audit, tmp_path)
        server.add(W, uid="3")
        config = _config(
            server,
            {"main": receiver.url, "audit": audit.url},
            tmp_path,
            keep=True,
            session_max_messages=1,
        )
        for _ in range(5):
            await _session(config)
        assert "message 4" in [r.json()["subject"] for r in receiver.requests], "W never posted"
        assert "message 4" in [r.json()["subject"] for r in audit.requests], "W never posted"
    finally:
        await server.stop()
        await audit.stop()
