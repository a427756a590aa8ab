"""The exact webhook body (compact UTF-8 JSON) and the payload's JSON Schema."""

from __future__ import annotations

import secrets
from typing import Any

from bridge.mime.model import Payload

_SPLICE_AT = 256 * 1024
"""Above this many bytes of base64 content, contents are spliced in rather than re-serialised."""


def payload_json(payload: Payload) -> bytes:
    """Serialise ``payload`` to the compact UTF-8 JSON bytes POSTed to the webhook.

    Large base64 contents (attachments, ``raw``) are not copied through the JSON encoder:
    the rest is serialised with placeholders which are then replaced by one join, so a
    message costs about one copy of its base64 text on top of what the payload holds.
    """
    big = [a for a in payload.attachments if a.content is not None and len(a.content) > 4096]
    total = sum(len(a.content or b"") for a in big) + len(payload.raw or b"")
    if total < _SPLICE_AT:
        return Payload.__pydantic_serializer__.to_json(payload)
    token = secrets.token_hex(16)
    blobs: list[tuple[bytes, bytes]] = []
    attachments = list(payload.attachments)
    for index, attachment in enumerate(attachments):
        if attachment in big and attachment.content is not None:
            marker = f"PBSPLICE{token}A{index}".encode("ascii")
            blobs.append((marker, attachment.content))
            attachments[index] = attachment.model_copy(update={"content": marker})
    update: dict[str, object] = {"attachments": attachments}
    if payload.raw is not None:
        marker = f"PBSPLICE{token}R".encode("ascii")
        blobs.append((marker, payload.raw))
        update["raw"] = marker
    skeleton = Payload.__pydantic_serializer__.to_json(payload.model_copy(update=update))
    pieces: list[bytes] = []
    rest = skeleton
    for marker, blob in blobs:
        before, _, rest = rest.partition(marker)
        pieces.append(before)
        pieces.append(blob)
    pieces.append(rest)
    return b"".join(pieces)


def payload_schema(*, strict: bool = False) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the payload as receivers get it.

    By default the schema a receiver validates with: it allows properties it does not list,
    because later releases add fields within version 1 (never renaming or removing one), so
    a receiver that validates with it keeps working. ``strict=True`` gives the exact shape of
    this release (``additionalProperties: false`` everywhere): what this bridge sends now,
    for its own tests, not for receivers.
    """
    schema = Payload.model_json_schema(by_alias=True, mode="serialization")
    if not strict:
        schema = _open(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    if strict:
        schema["title"] = "popbridge webhook payload, version 1 (exact, this release)"
    else:
        schema["title"] = "popbridge webhook payload, version 1"
        schema["description"] = (
            "For receivers: fields may be added within version 1 and are allowed here; none "
            "is ever renamed or removed. Ignore fields you do not know."
        )
    return schema


def _open(node: Any) -> Any:
    """``node`` with every ``additionalProperties: false`` removed (unknown fields allowed)."""
    if isinstance(node, dict):
        return {
            k: _open(v) for k, v in node.items() if not (k == "additionalProperties" and v is False)
        }
    if isinstance(node, list):
        return [_open(v) for v in node]
    return node
