"""Review of 2a842c8 (``_Prove._twin``: "with several twins, the one written last").

With keep, a UIDL listed at a size other than its own rows' is taken, without a download,
for the content identity ``<uid>~<hash>`` of that size whose rows have the greatest
``updated_at``. ``updated_at`` says which row was written last, not which content the UIDL
holds now: a retry (``mark_transient``), a park or a RETR failure of one twin makes it the
"latest" though the server may have given the UIDL back to the other content (a UID list
rebuilt again). A twin not delivered yet is then "delivered as it is": the message listed
now is RETRieved and posted under the twin's webhook-id without any check (no target
acknowledged the twin, so there is nothing to compare with). That content was acknowledged
already under its own content key: it is posted a second time, under another webhook-id.
The twin's key ``<uid>~<B>`` is then acknowledged with A's content. Keys are trusted by
name later: once keep_days pass and B itself is listed under the UIDL, B is "proven" to be
the twin picked for it (1~<B>, A's hash: no), renamed by its content to 1~<B>, found known
and done, and deleted without ever being posted: data loss.
Before 2a842c8 two twins named none: the message was proven by its content (RETR) and found
to be the one delivered, so nothing was posted twice (and B was posted when proven).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bridge.config import Config
from bridge.keep import DAY
from bridge.ledger import DEFAULT_FILENAME
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session

X = make_message(1, body="x, the first kept message\n")
A = make_message(2, body="a: your job 1 finished\n")
B = make_message(3, body="b: your job 2 finished\n")
assert len(A) == len(B) != len(X)


async def _swap_twice(server: FakePop3Server, receiver: WebhookReceiver, config: Config) -> None:
    """X (kept as 1) removed, A gets UIDL 1; then B gets 1 (its POST answered 500) and A 2;
    then A gets 1 again and B 2 (the receiver answers again)."""
    server.messages.clear()
    server.add(A, uid="1")
    await _session(config)
    receiver.decide(lambda r: 500 if r.json()["subject"] == "message 3" else None)
    server.messages.clear()
    server.add(B, uid="1")
    server.add(A, uid="2")
    await _session(config)
    server.messages.clear()
    server.add(A, uid="1")
    server.add(B, uid="2")
    receiver.decide(None)


async def test_a_retried_twin_does_not_claim_the_other_twins_message(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, one target, UIDLs reassigned by the server (a rebuilt UID list). X kept
    as UIDL 1. X removed, A (a new size) gets UIDL 1: posted as 1~<A>. B (A's size) arrives,
    and the UID list is rebuilt: B gets 1, A gets 2. B is posted as 1~<B> but the receiver
    answers 500 (retry later); A is adopted as 2. Rebuilt once more: A gets 1 again, B gets
    2. UIDL 1 now has two twins of its size, 1~<A> (acknowledged) and 1~<B> (retried last):
    1~<B> is picked, and A's content is posted again under 1~<B>'s webhook-id. Expected: A
    posted once. (B, now under 2 whose adopted rows say A at this size, is not posted while
    kept: keep's documented limit, not checked here.)"""
    server = FakePop3Server()
    server.add(X, uid="1")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True)
        await _session(config)
        await _swap_twice(server, receiver, config)
        for _ in range(3):
            await _session(config)
        posted = [r.json()["text"] for r in receiver.requests if r.answered == 200]
        assert posted.count("a: your job 1 finished\n") == 1, f"A posted twice: {posted}"
    finally:
        await server.stop()


async def test_a_twin_acknowledged_with_other_content_never_deletes_unposted_mail(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, keep_days: 3. The scenario above leaves 1~<B> acknowledged with A's
    content (A was posted under it). The UID list is rebuilt once more: B gets 1, A gets 2,
    and keep_days pass. B under 1 is proven against its picked twin 1~<B> (A's hash): other
    content, renamed by that content to 1~<B>, which is known and done, so it is deleted.
    B was never posted: it is lost. Expected: B posted before any DELE of it."""
    server = FakePop3Server()
    server.add(X, uid="1")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, keep_days=3)
        await _session(config)
        await _swap_twice(server, receiver, config)
        await _session(config)
        server.messages.clear()
        server.add(B, uid="1")
        server.add(A, uid="2")
        with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as conn:
            conn.execute("UPDATE deliveries SET acked_at = acked_at - ?", (4 * DAY,))
        await _session(config)
        posted = [r.json()["text"] for r in receiver.requests if r.answered == 200]
        b_left = any(m.uid == "1" for m in server.messages)
        assert "b: your job 2 finished\n" in posted or b_left, f"B deleted unposted: {posted}"
    finally:
        await server.stop()
