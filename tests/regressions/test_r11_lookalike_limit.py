"""Review of affcb8b: the proof of a look-alike (a new identity with the size of a delivered
message no identity accounts for) ignores the acknowledgement it is compared with.

``proof_by_head`` lets the acknowledgement decide TOP vs RETR, but a look-alike goes to
``verify`` with ``ack=None``: over today's max_message_bytes it is hashed by its header block
(``top:``), which can never equal the whole-message hash of a delivery made before the limit
was lowered. The moved message is then posted again (headers only).
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.pop3server import FakePop3Server
from tests.integration.kit import make_message
from tests.receiver import WebhookReceiver
from tests.unit.test_keep import _config, _session


async def test_a_moved_message_acked_whole_is_not_reposted_after_the_limit_was_lowered(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, oversize_policy headers_only. A 200 KB message is delivered whole and kept
    under UIDL a1. max_message_bytes is lowered to 64 KB, and the server renumbers its UIDLs
    (b1). Expected (as for the same identity, test_r10): retrieved whole for the proof,
    adopted, not posted. Before: hashed by TOP, no match, posted a second time."""
    server = FakePop3Server()
    server.add(make_message(1, size=200_000), uid="a1")
    await server.start()
    try:
        config = _config(server, receiver.url, tmp_path, keep=True, oversize_policy="headers_only")
        await _session(config)
        assert len(receiver.requests) == 1
        server.messages[0].uid = "b1"
        lowered = _config(
            server,
            receiver.url,
            tmp_path,
            keep=True,
            oversize_policy="headers_only",
            max_message_bytes=65536,
        )
        result = await _session(lowered)
        assert len(receiver.requests) == 1, "the moved message was posted again"
        assert result.moved_identities == 1
    finally:
        await server.stop()
