"""Is this message automatic? Auto-replies, bulk mail, bounces and receipts, so receivers
can avoid mail loops (RFC 3834 section 2 and the headers common mail systems add)."""

from __future__ import annotations

from collections.abc import Iterator

from bridge.mime.parts import Part

_AUTOREPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder")
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
AUTOMATION_HEADERS = frozenset(
    {"auto-submitted", "precedence", "x-auto-response-suppress", *_AUTOREPLY_HEADERS}
)
_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})


def _walk(part: Part) -> Iterator[Part]:
    yield part
    if part.children:
        for child in part.children:
            yield from _walk(child)


def _keyword(raw: bytes) -> str:
    """A header value's first word, lower-cased: ``auto-replied; owner=x`` -> ``auto-replied``."""
    return raw.decode("ascii", "replace").split(";", 1)[0].strip().strip("\"'").lower()


def _signals(key: str, value: str) -> bool:
    """Whether header ``key`` with first word ``value`` marks a message as automatic."""
    if key in _AUTOREPLY_HEADERS:
        return value not in ("no", "false", "0")
    if key == "precedence":
        return value in _BULK_PRECEDENCE
    if key == "x-auto-response-suppress":  # Exchange: set on OOF replies, NDRs, system mail
        return value not in ("", "none")
    return False


def automation(fields: list[tuple[str, bytes]], root: Part | None) -> dict[str, object]:
    """The payload fields ``auto_submitted``, ``automated``, ``automated_by``, ``bounce``,
    ``report_type`` from the top-level header ``fields`` (those in AUTOMATION_HEADERS are
    enough) and the part tree (None when only the headers were retrieved)."""
    signals: list[str] = []
    auto_submitted: str | None = None
    seen: set[str] = set()
    for name, raw in fields:
        key = name.lower()
        if key not in AUTOMATION_HEADERS or key in seen:
            continue
        seen.add(key)
        value = _keyword(raw)
        if key == "auto-submitted":
            auto_submitted = value[:64] or None
            if value and value != "no":
                signals.append(key)
        elif _signals(key, value):
            signals.append(key)
    report_type: str | None = None
    bounce = False
    parts = () if root is None else (root,) if not root.children else _walk(root)
    for part in parts:
        if part.content_type == "multipart/report" and report_type is None:
            report_type = part.params.get("report-type", "").strip().lower()[:64] or None
            bounce = bounce or report_type == "delivery-status"
        bounce = bounce or part.content_type in _STATUS_TYPES
    if bounce:
        signals.append("delivery-status")
    elif report_type is not None:
        signals.append(report_type)  # e.g. disposition-notification: a read receipt
    return {
        "auto_submitted": auto_submitted,
        "automated": bool(signals),
        "automated_by": signals,
        "bounce": bounce,
        "report_type": report_type,
    }
