"""The same fields read by Python's ``email`` package (policy.default), for the differential test.

``reference_fields(raw)`` and ``our_fields(payload)`` return comparable dicts. Reading the
reference never raises: a field ``email`` cannot produce is :data:`FAILED`.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import hashlib
import re
from datetime import datetime
from typing import Any

from bridge.mime import Payload

FAILED = "<reference failed>"
BODY_TYPES = ("text/plain", "text/html")
_MSGID = re.compile(r"<[^<>\s]*>")


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception:  # the reference raises on some broken input: that field is skipped
        return FAILED


def _addresses(msg: email.message.EmailMessage, name: str) -> Any:
    def read() -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for header in msg.get_all(name) or []:
            out.extend((a.display_name, a.addr_spec) for a in header.addresses)
        return out

    return _safe(read)


Leaf = tuple[email.message.EmailMessage, bool]


def _leaves(part: email.message.EmailMessage, related: bool = False) -> list[Leaf]:
    """Leaf parts in order with whether they are a non-root part of a multipart/related
    (always an attachment for the bridge), not descending into message/rfc822."""
    children = part.get_payload()
    if part.get_content_maintype() != "multipart" or not isinstance(children, list):
        return [(part, related)]
    out: list[Leaf] = []
    root = _related_root(part, children) if part.get_content_subtype() == "related" else None
    for index, child in enumerate(children):
        out.extend(_leaves(child, related or (root is not None and index != root)))
    return out


def _related_root(part: email.message.EmailMessage, children: list[Any]) -> int:
    start = (part.get_param("start") or "").strip().strip("<>")
    for index, child in enumerate(children):
        if start and str(child.get("content-id", "")).strip().strip("<>") == start:
            return index
    if not start and children[0].get_content_maintype() not in ("text", "multipart"):
        for index, child in enumerate(children):
            if child.get_content_maintype() in ("text", "multipart"):
                return index
    return 0


def _is_body(leaf: Leaf) -> bool:
    """The bridge's rule: a text/plain or text/html part without attachment disposition or
    (when there is no disposition) without a file name, not a related resource."""
    part, related = leaf
    if related or part.get_content_type() not in BODY_TYPES:
        return False
    disposition = part.get_content_disposition()
    if disposition == "attachment":
        return False
    return disposition == "inline" or not part.get_filename()


def _attachment(part: email.message.EmailMessage) -> tuple[str, str | None, int, str]:
    if part.get_content_maintype() == "message":
        data = part.as_bytes()  # re-serialised: compared by type and name only (a deviation)
        return (part.get_content_type(), part.get_filename(), -1, "")
    data = part.get_payload(decode=True) or b""
    assert isinstance(data, bytes)
    return (
        part.get_content_type(),
        part.get_filename(),
        len(data),
        hashlib.sha256(data).hexdigest(),
    )


def _body(msg: email.message.EmailMessage, kind: str) -> Any:
    def read() -> str | None:
        body = msg.get_body(preferencelist=(kind,))
        if body is None:
            return None
        content = body.get_content()
        return content.replace("\r\n", "\n") if isinstance(content, str) else None

    return _safe(read)


def reference_fields(raw: bytes) -> tuple[dict[str, Any], email.message.EmailMessage]:
    """The compared fields as ``email`` (policy.default) reads ``raw``."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    fields: dict[str, Any] = {
        "subject": _safe(lambda: None if msg["subject"] is None else str(msg["subject"])),
        "from": _addresses(msg, "from"),
        "to": _addresses(msg, "to"),
        "cc": _addresses(msg, "cc"),
        "date": _safe(lambda: None if msg["date"] is None else msg["date"].datetime),
        "message_id": _safe(lambda: _first_id(msg["message-id"])),
        "text": _body(msg, "plain"),
        "html": _body(msg, "html"),
        "attachments": _safe(
            lambda: [_attachment(leaf[0]) for leaf in _leaves(msg) if not _is_body(leaf)]
        ),
    }
    return fields, msg


def _first_id(value: Any) -> str | None:
    if value is None:
        return None
    found = _MSGID.findall(str(value))
    return found[0] if found else (str(value).strip() or None)


def our_fields(payload: Payload) -> dict[str, Any]:
    """The same fields from a bridge payload."""

    def pairs(addresses: list[Any]) -> list[tuple[str, str]]:
        return [(a.name, a.address) for a in addresses]

    def attachment(a: Any) -> tuple[str, str | None, int, str]:
        if a.content_type.startswith("message/"):
            return (a.content_type, a.filename, -1, "")
        return (a.content_type, a.filename, a.size, a.sha256)

    date: datetime | None = payload.date
    return {
        "subject": payload.subject,
        "from": pairs(payload.from_),
        "to": pairs(payload.to),
        "cc": pairs(payload.cc),
        "date": date,
        "message_id": payload.message_id,
        "text": None if payload.text_from_html else payload.text,
        "html": payload.html,
        "attachments": [attachment(a) for a in payload.attachments],
    }
