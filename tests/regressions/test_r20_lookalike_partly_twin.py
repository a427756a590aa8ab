"""Review of 47d2c0a (``_Prove._prove``, ``partly``: an identity listed at its size with a done
row is taken for a content key ``<uid>~<hash>`` of that size proven after its rows were last
written).

On a server without UIDL the identity is a hash of Message-ID, Date, From, Subject and the
size: two look-alikes (the same headers and size, another body) listed together share it,
the earliest keeps it and the later one gets its content key (``_tell_apart``), delivered
after the first. When the later one is deleted in a mail client, the first is listed alone
under the identity, at its size, with the other's content key written last: it is taken for
the other message. Its own rows are never looked at again: a target added since gets it
under the other one's key, the check at delivery tells it apart and names it by its content,
and it is posted as new to every target, again to the one that has it; a target that was
waiting for it (parked) never gets it. Before 47d2c0a both were right (the identity listed at
its size is the message its rows stand for, checked at delivery).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

from bridge.ledger import DEFAULT_FILENAME
from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.regressions.test_r13_undelivered_twin import _config
from tests.unit.test_keep import _session

L1 = make_message(1, body="look-alike one: alpha\n")
L2 = make_message(1, body="look-alike two: bravo\n")


def _got(hook: WebhookReceiver) -> Counter[str]:
    """Acknowledged posts by body."""
    return Counter(r.json()["text"].strip() for r in hook.requests if r.answered == 200)


async def test_a_target_added_gets_the_remaining_lookalike_and_the_others_not_again(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, a server without UIDL (header identities), target main. L1 is posted and
    kept; L2 (L1's headers and size, another body) arrives, is told apart and posted; L2 is
    deleted in a mail client. Target audit is added. L1 is taken for L2, checked against
    L2 at delivery, renamed to its content key and posted to audit and to main again.
    Expected: L1 reaches audit once and main no more than once."""
    assert len(L1) == len(L2)
    assert L1 != L2
    audit = WebhookReceiver()
    await audit.start()
    server = FakePop3Server(uidl=False)
    server.add(L1)
    await server.start()
    try:
        one = _config(server, {"main": receiver.url}, tmp_path, keep=True)
        await _session(one)
        server.add(L2)
        await _session(one)
        server.messages.pop()  # L2 deleted in a mail client
        await _session(one)
        both = _config(server, {"main": receiver.url, "audit": audit.url}, tmp_path, keep=True)
        for _ in range(3):
            await _session(both)
        one_ = "look-alike one: alpha"
        assert _got(audit)[one_] == 1, f"audit: {_got(audit)}"
        assert _got(receiver)[one_] == 1, f"L1 posted to main again: {_got(receiver)}"
    finally:
        await server.stop()
        await audit.stop()


async def test_a_waiting_target_gets_the_remaining_lookalike(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, a server without UIDL, targets main and audit. L1 is posted: main
    acknowledges, audit answers 422 (parked, retried later). L2 (L1's headers and size,
    another body) arrives, is told apart and posted to both (acknowledged). L2 is deleted
    in a mail client; audit accepts again and L1's parked row comes due. L1 is taken for
    L2, kept without a download: audit never gets it. Expected: L1 reaches audit once."""
    audit = WebhookReceiver()
    await audit.start()
    server = FakePop3Server(uidl=False)
    server.add(L1)
    await server.start()
    try:
        config = _config(server, {"main": receiver.url, "audit": audit.url}, tmp_path, keep=True)
        audit.decide(lambda r: 422 if "alpha" in r.json()["text"] else None)
        await _session(config)
        server.add(L2)
        await _session(config)
        assert _got(audit) == Counter({"look-alike two: bravo": 1})
        server.messages.pop()  # L2 deleted in a mail client
        audit.decide(None)
        with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as conn:
            conn.execute("UPDATE deliveries SET next_attempt_at = 0 WHERE state = 'parked'")
        for _ in range(3):
            await _session(config)
        assert _got(audit)["look-alike one: alpha"] == 1, f"L1 never reached audit: {_got(audit)}"
        assert _got(receiver)["look-alike one: alpha"] == 1
    finally:
        await server.stop()
        await audit.stop()
