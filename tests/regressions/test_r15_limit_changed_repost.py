"""Found reviewing d108685, also before it (``_Deliver._handle_locked`` / ``_is_content``:
the check of a message some target acknowledged before, at delivery).

When a target acknowledged a message and another still waits for it, the message is
retrieved for the waiting target and compared with what was acknowledged. The comparison
takes the digest of what the fetch phase got now: the whole message when it is within
``max_message_bytes``, its header block (``TOP n 0``) when it is over. The acknowledgement
may have been taken the other way: headers-only when the message was over the limit then,
whole when it was within. So after ``max_message_bytes`` is raised or lowered the message
never matches its own acknowledgement: it is "another message", gets a content identity
and is posted again to the target that acknowledged it already, under a new webhook-id.
The reconcile proof does it right (``bridge.reconcile.proof_by_head``: the acknowledgement
decides, not today's limit; docs/config.md: "lowering the limit never reposts it").
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.regressions.test_r13_undelivered_twin import _config
from tests.unit.test_keep import _session


async def _half_delivered_then(
    main: WebhookReceiver, tmp: Path, first_limit: int, then_limit: int
) -> None:
    """A 20 kB message as UIDL 1; main acknowledges, audit answers 500; the limit is
    changed and the sessions go on (audit answers 200 again)."""
    audit = WebhookReceiver()
    await audit.start()
    server = FakePop3Server()
    server.add(make_message(1, size=20000), uid="1")
    await server.start()
    try:
        urls = {"main": main.url, "audit": audit.url}
        box = {"oversize_policy": "headers_only"}
        audit.decide(lambda r: 500)
        await _session(_config(server, urls, tmp, max_message_bytes=first_limit, **box))
        audit.decide(None)
        config = _config(server, urls, tmp, max_message_bytes=then_limit, **box)
        for _ in range(2):
            await _session(config)
        assert [r.answered for r in audit.requests][-1] == 200
    finally:
        await server.stop()
        await audit.stop()


async def test_raising_the_limit_does_not_post_a_headers_only_delivery_again(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Two targets, oversize_policy headers_only, max_message_bytes 10 000. A 20 kB
    message is posted headers-only: main acknowledges, audit answers 500. The limit is
    raised to 100 000: the message is retrieved whole for audit, its hash is not the
    header hash main acknowledged, so it is renamed 1~<hash> and posted to main again.
    Expected: main gets the message once."""
    await _half_delivered_then(receiver, tmp_path, 10_000, 100_000)
    ids = [r.headers.get("webhook-id") for r in receiver.requests if r.answered == 200]
    assert len(ids) == 1, f"posted to main again: {ids}"


async def test_lowering_the_limit_does_not_post_a_whole_delivery_again(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """Two targets, oversize_policy headers_only, max_message_bytes 100 000. A 20 kB
    message is posted whole: main acknowledges, audit answers 500. The limit is lowered to
    10 000: the message is read with TOP for audit, its header hash is not the hash main
    acknowledged, so it is renamed 1~t<hash> and posted to main again (headers-only).
    Expected: main gets the message once."""
    await _half_delivered_then(receiver, tmp_path, 100_000, 10_000)
    ids = [r.headers.get("webhook-id") for r in receiver.requests if r.answered == 200]
    assert len(ids) == 1, f"posted to main again: {ids}"
