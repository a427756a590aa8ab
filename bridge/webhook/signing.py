"""Standard Webhooks identity and signatures (https://www.standardwebhooks.com).

Pure functions, no I/O:

* :func:`webhook_id` derives the ``webhook-id`` header from the mailbox name and the
  message's UIDL, so it is the same on every retry, after a restart and on another
  replica;
* :func:`decode_secret` checks a ``whsec_<base64>`` secret and returns its key bytes;
* :func:`sign` builds the ``webhook-signature`` header value, one ``v1,<base64>``
  entry per configured secret (several during a rotation).

Error messages never contain a secret or any part of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["SECRET_PREFIX", "decode_secret", "sign", "signature_base", "webhook_id"]

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret
"""Prefix of a Standard Webhooks symmetric secret."""

_ID_PREFIX = "msg_"
_ID_DIGEST_BYTES = 20  # 160 bits: collisions are out of reach for any realistic mailbox


def webhook_id(mailbox: str, uidl: str) -> str:
    """Return the stable ``webhook-id`` of one message of one mailbox.

    ``"msg_"`` followed by 32 lower-case base32 characters of SHA-256 over
    ``mailbox NUL uidl``. Deterministic forever: the same mailbox name and UIDL give
    the same id across retries, restarts and replicas, so a receiver can drop
    duplicates by id. Different mailboxes never share ids for equal UIDLs.
    """
    digest = hashlib.sha256(f"{mailbox}\x00{uidl}".encode()).digest()[:_ID_DIGEST_BYTES]
    return _ID_PREFIX + base64.b32encode(digest).decode("ascii").lower()


def decode_secret(secret: str) -> bytes:
    """Check one ``whsec_<base64>`` secret and return its key bytes.

    Raises :class:`ValueError` (without echoing the secret) when the prefix is
    missing, the rest is not base64 or the key is shorter than 16 bytes.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret must start with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"a webhook secret must be {SECRET_PREFIX!r} followed by base64 (A-Z a-z 0-9 + /)"
        ) from None
    if len(key) < 16:
        raise ValueError(
            f"a webhook secret must decode to at least 16 bytes (this one has {len(key)})"
        )
    return key


def signature_base(msg_id: str, timestamp: int, body: bytes) -> bytes:
    """Return the signed content: ``"{msg_id}.{timestamp}.".encode() + body``."""
    return f"{msg_id}.{timestamp}.".encode() + body


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``webhook-signature`` header value for ``body``.

    One ``v1,<base64 HMAC-SHA256>`` entry per secret, separated by single spaces,
    in the order given; a receiver holding any one of the secrets verifies it.
    ``timestamp`` is the integer Unix time also sent as ``webhook-timestamp``.
    Raises :class:`ValueError` if ``secrets`` is empty or one is malformed.
    """
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of strings, not one string")
    if not secrets:
        raise ValueError("at least one webhook secret is needed to sign")
    content = signature_base(msg_id, timestamp, body)
    entries = []
    for secret in secrets:
        mac = hmac.new(decode_secret(secret), content, hashlib.sha256).digest()
        entries.append("v1," + base64.b64encode(mac).decode("ascii"))
    return " ".join(entries)
