"""Attachments by reference (the claim-check pattern): store the bytes, send where they are.

:class:`ClaimCheck` rewrites a payload so that chosen attachments carry ``content_ref``
(and ``content: null, omitted: true, omitted_reason: "reference"``) instead of their bytes,
after writing the bytes to an :class:`~bridge.attachments.store.AttachmentStore`. The
object is always written before the payload that refers to it exists, so a receiver can
fetch it whenever it sees the reference, and the message is deleted only after a 2xx for
that payload.

Two moments use it:

* before the first POST, attachments larger than ``store_above`` (the mailbox's
  ``max_attachment_bytes``) go by reference (:meth:`ClaimCheck.store_large`);
* when a target answers 413 or the payload is over its ``max_payload_bytes``, every
  attachment and the raw message go by reference (:meth:`ClaimCheck.reference_body`,
  built once per message and shared by all its targets).
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
from collections.abc import Awaitable, Callable

from bridge.attachments.store import AttachmentStore
from bridge.errors import AttachmentStoreError
from bridge.mime import Attachment, Payload, payload_json

__all__ = ["REFERENCE_REASON", "ClaimCheck"]

REFERENCE_REASON = "reference"
"""``omitted_reason`` of an attachment whose content went to the store."""

_THREAD_ABOVE = 256 * 1024  # decode and hash larger contents off the event loop


class ClaimCheck:
    """Puts attachment contents into a store and refers to them from the payload."""

    def __init__(
        self,
        store: AttachmentStore,
        *,
        store_above: int | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        """``store_above``: attachments larger than this many bytes always go by reference;
        ``on_error()`` is called for each failed store write (for metrics)."""
        self.store = store
        self.store_above = store_above
        self._on_error = on_error

    async def store_large(self, payload: Payload) -> Payload:
        """``payload`` with every attachment over ``store_above`` stored and referred to."""
        limit = self.store_above
        if limit is None or not any(
            a.content is not None and a.size > limit for a in payload.attachments
        ):
            return payload
        return await self._refer(payload, lambda a: a.size > limit, raw=False)

    async def reference(self, payload: Payload) -> Payload:
        """``payload`` with every attachment (and ``raw``, if present) stored and referred to."""
        return await self._refer(payload, lambda a: True, raw=True)

    def reference_body(self, payload: Payload) -> Callable[[], Awaitable[bytes]]:
        """A function giving the JSON of :meth:`reference`; the objects are written once, on
        the first call (by whichever target needs it first), and a failure is raised to
        every caller as :class:`~bridge.errors.AttachmentStoreError`."""
        done: list[bytes] = []
        lock = asyncio.Lock()

        async def body() -> bytes:
            async with lock:
                if not done:
                    done.append(payload_json(await self.reference(payload)))
            return done[0]

        return body

    async def _refer(
        self, payload: Payload, chosen: Callable[[Attachment], bool], *, raw: bool
    ) -> Payload:
        refs: dict[str, str] = {}
        attachments: list[Attachment] = []
        for attachment in payload.attachments:
            if attachment.content is None or not chosen(attachment):
                attachments.append(attachment)
                continue
            ref = await self._put(attachment.content, attachment.sha256, refs)
            attachments.append(
                attachment.model_copy(
                    update={
                        "content": None,
                        "omitted": True,
                        "omitted_reason": REFERENCE_REASON,
                        "content_ref": ref,
                    }
                )
            )
        update: dict[str, object] = {"attachments": attachments}
        if raw and payload.raw is not None and payload.sha256 is not None:
            update["raw"] = None
            update["raw_ref"] = await self._put(payload.raw, payload.sha256, refs)
        return payload.model_copy(update=update)

    async def _put(self, encoded: bytes, expected: str, refs: dict[str, str]) -> str:
        """Decode, check against ``expected`` (hex SHA-256), store once per content."""
        if expected in refs:
            return refs[expected]
        if len(encoded) > _THREAD_ABOVE:
            data, digest = await asyncio.to_thread(_decode, encoded)
        else:
            data, digest = _decode(encoded)
        try:
            if digest != expected:
                # Never store or point at bytes that are not what the payload describes.
                raise AttachmentStoreError(
                    f"content hashes to {digest}, not the sha256 {expected} the payload "
                    "states; nothing was stored",
                    store=self.store.kind,
                )
            refs[expected] = await self.store.put(data, digest)
        except AttachmentStoreError:
            if self._on_error is not None:
                self._on_error()
            raise
        return refs[expected]


def _decode(encoded: bytes) -> tuple[bytes, str]:
    data = binascii.a2b_base64(encoded)
    return data, hashlib.sha256(data).hexdigest()
