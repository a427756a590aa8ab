"""Raw message bytes to the versioned JSON payload the webhook receives.

The public API::

    payload = build_payload(raw, mailbox=..., uidl=..., webhook_id=..., fetched_at=...)
    body = payload_json(payload)              # the exact webhook body
    smaller = payload.without_attachment_content("reference")   # the 413 fallback
    schema = payload_schema()                 # printed by `popbridge schema payload`
    if not parses_inline(len(raw)):           # on an event loop: parse in a thread
        payload = await asyncio.to_thread(build_payload, raw, ...)

:func:`build_payload` never raises; whatever was wrong with the message is listed in
``Payload.defects``.
"""

from bridge.mime.budget import INLINE_PARSE_MAX_BYTES, parses_inline
from bridge.mime.build import build_headers_only_payload, build_payload
from bridge.mime.model import (
    PAYLOAD_VERSION,
    Address,
    Attachment,
    Defect,
    Header,
    Payload,
    PayloadOptions,
)
from bridge.mime.serialize import payload_json, payload_schema

__all__ = [
    "INLINE_PARSE_MAX_BYTES",
    "PAYLOAD_VERSION",
    "Address",
    "Attachment",
    "Defect",
    "Header",
    "Payload",
    "PayloadOptions",
    "build_headers_only_payload",
    "build_payload",
    "parses_inline",
    "payload_json",
    "payload_schema",
]
