"""Proof before a reconcile DELE: the server's copy must be the message acknowledged.

A message every target acknowledged in an earlier session that did not commit (QUIT's reply
lost, a crash between DELE and QUIT, a server that answered QUIT before removing the files) is
deleted on reconcile without being posted again. That is only safe if the message listed under
the identity now is the one acknowledged: positional UIDLs, a rebuilt UID list (Dovecot with
``pop3_uidl_format = %u``), or a server without UIDL and new mail with look-alike headers give
the same identity to another message. So the ledger keeps the size and SHA-256 of what was
acknowledged, and a reconcile DELE needs:

1. the LIST size the identity had when it was first seen, and
2. the SHA-256 of the message retrieved now (``RETR``; ``TOP n 0`` for a headers-only
   acknowledgement of an oversize message) equal to the one acknowledged.

Anything else (another size, another hash, no stored hash, a ledger whose rows disagree) is
no proof: the message is new and is posted under a new identity ``<identity>~<hash>`` (and so
a new webhook-id). The content is retrieved for every candidate, whatever its identity scheme:
a reconcile is rare (it follows a session that died after acknowledging), and a wrongly
deleted message cannot be brought back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bridge.errors import Pop3Error, Pop3ResponseError, Pop3TimeoutError
from bridge.identity import Message, can_top, content_key, retr_limit
from bridge.ledger import Row
from bridge.pop3 import Pop3Client
from bridge.webhook import webhook_id

__all__ = [
    "HEAD_PREFIX",
    "Acknowledged",
    "Verdict",
    "acknowledged",
    "content_digest",
    "proof_by_head",
    "verify",
]

HEAD_PREFIX = "top:"
"""Marks a stored hash taken over ``TOP n 0`` (a headers-only acknowledgement)."""


@dataclass(frozen=True)
class Acknowledged:
    """What the done rows of one identity say was acknowledged."""

    listed_size: int | None
    raw_size: int | None
    sha256: str | None

    @property
    def head_only(self) -> bool:
        """True when the proof is a hash of the header block (``TOP n 0``)."""
        return self.sha256 is not None and self.sha256.startswith(HEAD_PREFIX)


def acknowledged(rows: Mapping[str, Row]) -> Acknowledged | None:
    """The content the done rows acknowledged, or None when they hold no proof (no stored
    hash, or rows that disagree: the identity was reused between acknowledgements)."""
    done = [r for r in rows.values() if r.done]
    proofs = {(r.raw_size, r.raw_sha256) for r in done}
    if not done or len(proofs) != 1:
        return None
    raw_size, sha = proofs.pop()
    if sha is None:
        return None
    sizes = {r.size for r in done}
    return Acknowledged(sizes.pop() if len(sizes) == 1 else None, raw_size, sha)


def content_digest(data: bytes, *, head_only: bool = False) -> str:
    """The stored form of a message's hash (``top:``-prefixed for a header block)."""
    digest = hashlib.sha256(data).hexdigest()
    return HEAD_PREFIX + digest if head_only else digest


@dataclass
class Verdict:
    """The outcome of :func:`verify` for the candidates of one session."""

    proven: list[Message] = field(default_factory=list)
    """The same content as acknowledged: delete without posting."""
    renamed: list[tuple[Message, Message]] = field(default_factory=list)
    """``(as listed, as a new message)``: no proof, posted under a new identity."""
    unreadable: list[tuple[Message, Pop3Error]] = field(default_factory=list)
    """RETR/TOP refused (gone since LIST) or too large: neither deleted nor posted now."""
    timed_out: Message | None = None
    """The candidate whose retrieval timed out (the connection is then closed)."""
    digests: dict[int, str] = field(default_factory=dict)
    """The stored form of each retrieved candidate's hash, by message number."""


def proof_by_head(msg: Message, ack: Acknowledged | None, max_message_bytes: int) -> bool:
    """True when ``msg`` is compared by its header block (``TOP n 0``), not its content.

    The acknowledgement decides, not today's ``max_message_bytes``: a message acknowledged
    whole is retrieved whole (up to the size it had then) even after the limit was lowered,
    and a headers-only acknowledgement is compared by headers even after it was raised.
    Without an acknowledgement, or with one of another ``LIST`` size (no proof is possible:
    the message is renamed by its content), a message over the limit is hashed by its header
    block, like any oversize message.
    """
    if ack is not None and ack.listed_size in (None, msg.size):
        return ack.head_only
    return msg.size > max_message_bytes


async def verify(
    client: Pop3Client,
    *,
    mailbox: str,
    candidates: Sequence[tuple[Message, Acknowledged | None]],
    max_message_bytes: int,
) -> Verdict:
    """Retrieve each candidate and compare it with what was acknowledged (see the module)."""
    verdict = Verdict()
    copies: dict[str, int] = {}

    def decide(msg: Message, ack: Acknowledged | None, digest: str) -> None:
        verdict.digests[msg.num] = digest
        if (
            ack is not None
            and ack.sha256 == digest
            and (ack.listed_size is None or ack.listed_size == msg.size)
        ):
            verdict.proven.append(msg)
            return
        short = digest.removeprefix(HEAD_PREFIX)
        key = content_key(msg.uid, ("t" if digest != short else "") + short, copies)
        verdict.renamed.append(
            (msg, Message(num=msg.num, uid=key, size=msg.size, webhook_id=webhook_id(mailbox, key)))
        )

    by_num = {msg.num: (msg, ack) for msg, ack in candidates}
    limit = retr_limit(max_message_bytes)
    heads = [n for n, (m, a) in by_num.items() if proof_by_head(m, a, max_message_bytes)]
    # Acknowledged whole at a size over today's limit: retrieved one at a time, up to the
    # size acknowledged (it was retrieved whole then), never posted on a lowered limit.
    large = {
        n: retr_limit(max(max_message_bytes, a.raw_size or 0))
        for n, (m, a) in sorted(by_num.items())
        if n not in heads
        and a is not None
        and m.size > max_message_bytes
        and a.listed_size in (None, m.size)
    }
    small = [n for n in sorted(by_num) if n not in heads and n not in large]
    waiting = [by_num[n][0] for n in [*heads, *small, *large]]
    try:
        for num in heads:
            msg, ack = by_num[num]
            if not can_top(client):
                # No TOP to read its header with (and it is over the limit, or its proof is
                # a header hash): no proof can be had; it is renamed by its listing, which
                # the oversize policy then parks (a server without TOP cannot do headers_only).
                waiting.pop(0)
                decide(msg, None, content_digest(b"size:%d" % msg.size, head_only=True))
                continue
            try:
                head = await client.top(num, 0)
            except Pop3ResponseError as exc:
                waiting.pop(0)
                verdict.unreadable.append((msg, exc))
                continue
            waiting.pop(0)  # not before: a TOP that timed out names its message (below)
            decide(msg, ack, content_digest(head + b"size:%d" % msg.size, head_only=True))
        passes = [(small, limit)] + [([n], cap) for n, cap in large.items()]
        for nums, cap in passes:
            async for num, item in client.retr_each(nums, max_bytes=cap):
                waiting.pop(0)
                msg, ack = by_num[num]
                if isinstance(item, Pop3Error):
                    verdict.unreadable.append((msg, item))
                    continue
                decide(msg, ack, content_digest(item))
    except Pop3Error as exc:
        timeout = exc if isinstance(exc, Pop3TimeoutError) else client.failure
        if not isinstance(timeout, Pop3TimeoutError) or not waiting:
            raise
        verdict.timed_out = waiting[0]  # the connection is gone; the caller reconnects
    return verdict
