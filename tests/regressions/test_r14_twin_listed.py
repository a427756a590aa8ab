"""Review of 2a842c8 (``_Prove._twin``: "with several twins, the one written last").

A "twin" of a listed UIDL ``u`` is any ledger key ``u~<hash>`` at the listed size, including
the key another message listed in this very session has: a server that gives one UIDL to
several messages (duplicate UIDLs) has the first keep ``u`` and the others named by content,
``u~<hash>`` (``bridge.identity._tell_apart``). When ``u``'s own rows are of another size,
all of those are twins of ``u``; before 2a842c8 two or more named none (the message was
proven by content), now the one written last is taken, without a download, though it is the
identity of another message listed right now. If that one is not delivered yet, the message
listed as ``u`` is posted under the other message's webhook-id: its content, acknowledged
already under its own content key, is posted twice.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


async def test_a_twin_is_not_another_message_listed_now(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, one target, a server with duplicate UIDLs. X kept as UIDL 1. X removed;
    A, B, C (one size, not X's) all listed with UIDL 1: A keeps 1 (proven: posted as
    1~<A>), B and C are named 1~<B> and 1~<C>; the receiver answers 500 to C. At the next
    session 1 has three twins of its size, 1~<A>, 1~<B>, 1~<C>: 1~<C> was written last and
    is picked for A, which is posted again under C's webhook-id. Expected: A, B, C posted
    once each."""
    x = make_message(1, body="x, the first kept message\n")
    a = make_message(2, body="a: your job 1 finished\n")
    b = make_message(3, body="b: your job 2 finished\n")
    c = make_message(4, body="c: your job 3 finished\n")
    assert len(a) == len(b) == len(c) != len(x)
    server = FakePop3Server()
    server.add(x, uid="1")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, delivery_concurrency=1)
        await _session(config)
        server.messages.clear()
        for m in (a, b, c):
            server.add(m, uid="1")
        receiver.decide(lambda r: 500 if r.json()["subject"] == "message 4" else None)
        await _session(config)
        receiver.decide(None)
        for _ in range(3):
            await _session(config)
        posted = sorted(r.json()["text"] for r in receiver.requests if r.answered == 200)
        assert posted == [
            "a: your job 1 finished\n",
            "b: your job 2 finished\n",
            "c: your job 3 finished\n",
            "x, the first kept message\n",
        ]
    finally:
        await server.stop()
