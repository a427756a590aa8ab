"""Review of d41fd5e: a deferral that never ends.

Messages over the proof budget are deferred (not posted, not recorded as seen) "for the next
session". But the budget is filled, in inventory order, by candidates that are proven again at
every session without ever settling: with keep, two reused identities listed at one new size
are both "unsettled", so ``_twin`` never renames either of them and each is RETRieved and
renamed to its already-known content key at every poll. The same first messages take the
budget every session; what comes after them is deferred for ever.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dovecot import Dovecot
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.integration.test_keep import _remove_and_rebuild
from tests.integration.test_keep import _session as _dovecot_session
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


def _subjects(receiver: WebhookReceiver) -> list[str]:
    return sorted(r.json()["subject"] for r in receiver.requests)


async def test_a_reused_uidl_over_the_proof_budget_is_posted_eventually(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, UIDLs reassigned by the server (Dovecot %u with a rebuilt UID list, or
    positional UIDLs). A and B kept as UIDLs 1 and 2. Both are removed by another client, and
    two new messages Y and Z of one size (a templated notification) get UIDLs 1 and 2. With
    session_max_messages 1, Y is proven and posted; Z is deferred. At every later session Y is
    proven again (two unsettled messages of its size: no twin rename) and takes the budget,
    and Z is deferred again: never posted. Expected: Z posted within a few sessions."""
    a = make_message(1, body="a, the first kept message\n")
    b = make_message(2, body="b, the second kept message, longer\n")
    y = make_message(3, body="y: your job 1 finished\n")
    z = make_message(4, body="z: your job 2 finished\n")
    assert len(y) == len(z)
    assert len({len(a), len(b), len(y)}) == 3
    server = FakePop3Server()
    server.add(a, uid="1")
    server.add(b, uid="2")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True)
        await _session(config)
        assert _subjects(receiver) == ["message 1", "message 2"]
        server.messages.clear()
        server.add(y, uid="1")
        server.add(z, uid="2")
        config = _config(server, receiver.url, tmp_path, keep=True, session_max_messages=1)
        results = [await _session(config) for _ in range(5)]
        assert _subjects(receiver) == ["message 1", "message 2", "message 3", "message 4"], [
            (r.skipped, r.kept, r.delivered) for r in results
        ]
    finally:
        await server.stop()


async def test_strict_order_is_not_wedged_for_ever_by_a_starved_proof(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """The scenario above with strict_order: Z deferred at every session holds back every
    message listed after it. A brand-new message W (new UIDL, its own size) arrives: it is
    never posted either: the mailbox is wedged for ever. Expected: Z and W posted."""
    a = make_message(1, body="a, the first kept message\n")
    b = make_message(2, body="b, the second kept message, longer\n")
    y = make_message(3, body="y: your job 1 finished\n")
    z = make_message(4, body="z: your job 2 finished\n")
    w = make_message(5, body="w: something completely different and new\n")
    server = FakePop3Server()
    server.add(a, uid="1")
    server.add(b, uid="2")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, strict_order=True)
        await _session(config)
        server.messages.clear()
        server.add(y, uid="1")
        server.add(z, uid="2")
        server.add(w, uid="3")
        config = _config(
            server, receiver.url, tmp_path, keep=True, strict_order=True, session_max_messages=1
        )
        for _ in range(6):
            await _session(config)
        assert _subjects(receiver) == [f"message {i}" for i in range(1, 6)]
    finally:
        await server.stop()


async def test_reused_uidls_of_one_size_are_not_retrieved_at_every_poll(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """The root of the above without a budget: keep, A and B kept as UIDLs 1 and 2, then Y and
    Z (one size) under UIDLs 1 and 2. Both are posted once, but they stay "unsettled" for ever
    (listed at a size the rows of 1 and 2 do not have), so ``_twin`` never takes the rename:
    both are RETRieved at every poll for ever (r10 promised no RETR once a reused UIDL's
    message is known) and use the proof budget each time. Expected: no RETR once posted."""
    a = make_message(1, body="a, the first kept message\n")
    b = make_message(2, body="b, the second kept message, longer\n")
    y = make_message(3, body="y: your job 1 finished\n")
    z = make_message(4, body="z: your job 2 finished\n")
    server = FakePop3Server()
    server.add(a, uid="1")
    server.add(b, uid="2")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True)
        await _session(config)
        server.messages.clear()
        server.add(y, uid="1")
        server.add(z, uid="2")
        await _session(config)
        assert len(receiver.requests) == 4
        for _ in range(2):
            server.commands.clear()
            later = await _session(config)
            assert (later.kept, later.delivered) == (2, 0)
            assert "RETR" not in server.verbs
        assert len(receiver.requests) == 4
    finally:
        await server.stop()


async def test_a_parked_reused_uidl_does_not_starve_the_proof_budget(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, UIDLs reassigned. A and B kept as UIDLs 1 and 2; then Y (UIDL 1) and Z
    (UIDL 2), each of a new size. The receiver refuses Y (422: parked). Its twin 1~<hash Y>
    is not done, so ``_twin`` never renames UIDL 1: it is proven (RETR) at every session and,
    with session_max_messages 1, takes the whole proof budget; Z is deferred at every
    session, never posted. Expected: Z posted."""
    a = make_message(1, body="a, the first kept message\n")
    b = make_message(2, body="b, the second kept message, longer\n")
    y = make_message(3, body="y, refused by the receiver\n")
    z = make_message(4, body="z, a perfectly fine new message, longest\n")
    assert len({len(a), len(b), len(y), len(z)}) == 4
    server = FakePop3Server()
    server.add(a, uid="1")
    server.add(b, uid="2")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True)
        await _session(config)
        receiver.decide(lambda r: 422 if r.json()["subject"] == "message 3" else None)
        server.messages.clear()
        server.add(y, uid="1")
        server.add(z, uid="2")
        config = _config(server, receiver.url, tmp_path, keep=True, session_max_messages=1)
        for _ in range(5):
            await _session(config)
        assert "message 4" in _subjects(receiver)
    finally:
        await server.stop()


@pytest.mark.dovecot
async def test_dovecot_rebuilt_uid_list_over_budget_posts_every_new_message(
    dovecot_u: Dovecot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Real Dovecot (%u), keep: true. A and B kept as UIDLs 1 and 2; another client removes
    them and the UID list is rebuilt; Y and Z (one size) are delivered as UIDLs 1 and 2. With
    session_max_messages 1, Y is posted and then proven again at every session; Z is never
    posted."""
    user = dovecot_u.new_user()
    user.deliver_many(
        [
            make_message(1, body="a, the first kept message\n"),
            make_message(2, body="b, the second kept message, longer\n"),
        ]
    )
    data = tmp_path / "data"
    await _dovecot_session(dovecot_u, user, receiver, data, keep=True)
    _remove_and_rebuild(user)
    user.deliver_many(
        [
            make_message(3, body="y: your job 1 finished\n"),
            make_message(4, body="z: your job 2 finished\n"),
        ]
    )
    for _ in range(5):
        await _dovecot_session(dovecot_u, user, receiver, data, keep=True, session_max_messages=1)
    assert _subjects(receiver) == ["message 1", "message 2", "message 3", "message 4"]
