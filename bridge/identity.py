"""Message identity across POP3 sessions.

Message numbers last one session; the ledger knows a message by its identity (DESIGN.md):

- its UIDL (RFC 1939 section 7), hashed (``h:...``) when it is over-long or malformed;
- without UIDL (not offered by the server), a hash of the headers Message-ID, Date, From,
  Subject and the size (``hdr:...``), read with ``TOP n 0``, or, from a server that offers
  neither UIDL nor TOP, from the header of the message itself (``RETR``): the same hash
  either way. No command that the server's CAPA left out is ever sent;
- where two messages would share one (duplicate UIDLs, colliding header hashes), a content
  hash is added (``<id>~<sha256>``), so two different messages never share a ledger row or a
  webhook-id.

An identity listed again after every target acknowledged it (a reused UIDL, new mail with the
same headers, a server that did not remove it) is checked against the acknowledged content
before anything is deleted: :mod:`bridge.reconcile`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.errors import Pop3ResponseError
from bridge.ledger import Row
from bridge.pop3 import Pop3Client
from bridge.webhook import webhook_id

__all__ = [
    "MAX_UIDL_LENGTH",
    "Inventory",
    "Message",
    "can_top",
    "content_key",
    "key_base",
    "retr_limit",
    "take_inventory",
]

MAX_UIDL_LENGTH = 70  # RFC 1939 section 7: 1 to 70 characters in 0x21..0x7E


@dataclass(frozen=True)
class Message:
    """One message as the server listed it in this session."""

    num: int
    uid: str
    size: int
    webhook_id: str = ""


@dataclass
class Inventory:
    """The session's messages, oldest (lowest number) first, and what was odd about them."""

    messages: list[Message]
    listed: set[str] = field(default_factory=set)
    """The identities as listed, before any content hash was added (what prune keeps)."""
    problems: list[str] = field(default_factory=list)
    unidentified: int = 0
    """Listed messages left out because no identity could be had now: the ledger must not
    prune, or their acknowledged, uncommitted rows would be forgotten."""
    uidl_refused: Pop3ResponseError | None = None
    """The ``-ERR`` to UIDL of a server that does not offer it (header identities used)."""
    uidl_missing: bool = False
    """The server's CAPA has no UIDL, so UIDL was not sent (header identities used)."""


def retr_limit(max_message_bytes: int) -> int:
    """The RETR size limit: LIST sizes can be a little off (line ends), so allow some slack."""
    return max_message_bytes + max(65536, max_message_bytes // 8)


def valid_uidl(uid: str) -> bool:
    """True for an RFC 1939 unique-id: 1 to 70 characters in 0x21..0x7E."""
    return 0 < len(uid) <= MAX_UIDL_LENGTH and all(0x21 <= ord(c) <= 0x7E for c in uid)


async def take_inventory(
    client: Pop3Client,
    *,
    mailbox: str,
    known: Mapping[str, Mapping[str, Row]],
    max_message_bytes: int,
) -> Inventory:
    """LIST and UIDL (TOP / RETR where needed): every message with a safe identity.

    ``known`` is the ledger's rows of ``mailbox`` (read before pruning). A ``-ERR`` to UIDL
    from a server that offers UIDL is raised: switching identities would repost everything.
    """
    sizes = {e.num: e.size for e in await client.list()}
    found = Inventory(messages=[])
    uids: dict[int, str] = {}
    caps = client.capabilities
    if caps.uidl or not caps.known:
        try:
            uids = {e.num: e.uid for e in await client.uidl()}
        except Pop3ResponseError as exc:
            if caps.uidl:
                raise
            found.uidl_refused = exc
    else:
        found.uidl_missing = True
    identities: dict[int, str] = {}
    heads = await header_blocks(client, [num for num in sorted(sizes) if num not in uids])
    for num in sorted(sizes):
        listed = uids.get(num)
        if listed is None:
            if num not in heads:
                continue  # unreadable now (gone since LIST): not this session
            identities[num] = header_identity(heads[num], sizes[num])
        elif not valid_uidl(listed):
            found.problems.append(f"UIDL of message {num} is not RFC 1939")
            digest = hashlib.sha256(listed.encode("utf-8", "surrogateescape")).hexdigest()
            identities[num] = "h:" + digest[:40]
        else:
            identities[num] = listed
    found.listed = {key_base(uid) for uid in identities.values()} | set(identities.values())
    await _tell_apart(client, identities, sizes, known, max_message_bytes, found)
    found.unidentified = len(sizes) - len(identities)
    found.messages = [
        Message(num=num, uid=uid, size=sizes[num], webhook_id=webhook_id(mailbox, uid))
        for num, uid in identities.items()
    ]
    return found


async def _tell_apart(
    client: Pop3Client,
    identities: dict[int, str],
    sizes: dict[int, int],
    known: Mapping[str, Mapping[str, Row]],
    max_message_bytes: int,
    found: Inventory,
) -> None:
    """Make identities unique: messages sharing one get content identities.

    If the ledger knows a shared identity, the earliest message (the one the ledger is about:
    new mail is appended) keeps it; whether it really is that message is checked before any
    reconcile DELE (:mod:`bridge.reconcile`).
    """
    groups: dict[str, list[int]] = {}
    for num, uid in identities.items():
        groups.setdefault(uid, []).append(num)
    for uid, nums in groups.items():
        if len(nums) == 1:
            continue
        found.problems.append(
            f"{len(nums)} messages share the identity {uid!r}; told apart by content"
        )
        if uid in known:
            nums = nums[1:]  # the earliest keeps the identity the ledger knows
        await _content_identities(client, uid, nums, sizes, max_message_bytes, identities)


def key_base(uid: str) -> str:
    """The part before ``~`` of the content keys derived from ``uid``."""
    return uid if len(uid) <= 40 else "h:" + hashlib.sha256(uid.encode()).hexdigest()[:24]


def content_key(uid: str, digest: str, copies: dict[str, int]) -> str:
    """``<uid>~<digest[:24]>``: the identity of a message told apart by its content.

    ``copies`` counts the digests named so far in this session: byte-identical copies are
    numbered in server order (``#2``, ``#3``...). A ``uid`` over 40 characters is hashed.
    """
    base = key_base(uid)
    short = digest[:24]
    copies[short] = copies.get(short, 0) + 1
    suffix = f"#{copies[short]}" if copies[short] > 1 else ""
    return f"{base}~{short}{suffix}"


def can_top(client: Pop3Client) -> bool:
    """True when TOP may be sent: CAPA listed it, or the server did not answer CAPA."""
    caps = client.capabilities
    return caps.top or not caps.known


async def header_blocks(client: Pop3Client, nums: list[int]) -> dict[int, bytes]:
    """The header of each message: ``TOP n 0`` where the server offers TOP, else ``RETR``
    (pipelined) cut at the first empty line, the body dropped at once. A message that
    cannot be retrieved now (gone since LIST) is left out."""
    if not nums:
        return {}
    heads: dict[int, bytes] = {}
    if can_top(client):
        for num in nums:
            try:
                heads[num] = await client.top(num, 0)
            except Pop3ResponseError:
                continue  # refused now (gone since LIST, a server fault): not this session
        return heads
    async for num, raw in client.retr_each(nums, max_bytes=None):
        if isinstance(raw, bytes):
            heads[num] = header_of(raw)
    return heads


def header_of(raw: bytes) -> bytes:
    """The header block of a message (up to and including the empty line)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(sep)
        if end >= 0:
            return raw[: end + len(sep)]
    return raw


def header_identity(head: bytes, size: int) -> str:
    """Identity from Message-ID, Date, From, Subject and size (DESIGN.md)."""
    wanted = {b"message-id", b"date", b"from", b"subject"}
    picked: list[bytes] = []
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        if not line.strip():
            break  # the end of the header: a TOP n 0 answer and a whole message agree
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() in wanted:
            picked.append(name.strip().lower() + b":" + value.strip())
    digest = hashlib.sha256(b"\n".join(sorted(picked)) + b"\nsize:%d" % size).hexdigest()
    return f"hdr:{digest[:40]}"


async def _content_identities(
    client: Pop3Client,
    uid: str,
    nums: list[int],
    sizes: dict[int, int],
    max_message_bytes: int,
    out: dict[int, str],
) -> None:
    """Give the messages ``nums`` identities from their content (RETR, hashed).

    Oversize messages are not retrieved: their whole header block (TOP n 0) is hashed
    instead, and they are parked as usual. Byte-identical copies are numbered in server order.
    """
    copies: dict[str, int] = {}

    def name(num: int, digest: str) -> None:
        out[num] = content_key(uid, digest, copies)

    small = [n for n in nums if sizes[n] <= max_message_bytes]
    large = [n for n in nums if sizes[n] > max_message_bytes]
    heads = await header_blocks(client, large)
    for num in large:
        if num not in heads:
            del out[num]  # unreadable now: not this session
            continue
        name(num, "t" + hashlib.sha256(heads[num] + b"size:%d" % sizes[num]).hexdigest()[:23])
    async for num, raw in client.retr_each(small, max_bytes=retr_limit(max_message_bytes)):
        if isinstance(raw, bytes):
            name(num, hashlib.sha256(raw).hexdigest()[:24])
        else:
            del out[num]  # unreadable now (gone, or past the limit): not this session
