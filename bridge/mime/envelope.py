"""The top-level header of a message: the envelope fields a payload names (addresses, subject,
date, ids, automation signals) decoded once, and what is not MIME stripped before parsing."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.mime.automated import AUTOMATION_HEADERS
from bridge.mime.encoded_words import bytes_to_text, decode_header_value
from bridge.mime.fields import decode_addresses, first_msgid, parse_msgids
from bridge.mime.model import Address, Header
from bridge.mime.parts import DefectSink

ADDRESS_FIELDS = {
    "from": "from_",
    "sender": "sender",
    "reply-to": "reply_to",
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
    "delivered-to": "delivered_to",
}


@dataclass(slots=True)
class Envelope:
    headers: list[Header] = field(default_factory=list)
    addresses: dict[str, list[Address]] = field(default_factory=dict)
    subject: str | None = None
    date_raw: str | None = None
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    return_path: str | None = None
    automation: list[tuple[str, bytes]] = field(default_factory=list)
    """The header fields automation() looks at (lower-case names)."""


def read_envelope(
    fields: list[tuple[str, bytes]], charset: str | None, defects: DefectSink
) -> Envelope:
    env = Envelope()
    for name, raw in fields:
        key = name.lower()
        try:
            decoded = decode_header_value(raw, charset)
            value = decoded.text
            lossy = decoded.problem is not None
            if decoded.problem is not None:
                defects.append((None, decoded.problem[0], f"{name}: {decoded.problem[1]}"))
            if key in ADDRESS_FIELDS:
                found = decode_addresses(bytes_to_text(raw, charset).text)
                env.addresses.setdefault(ADDRESS_FIELDS[key], []).extend(
                    Address.model_construct(name=n, address=a) for n, a in found
                )
            elif key == "subject":
                if env.subject is None:
                    env.subject = value
            elif key == "date":
                if env.date_raw is None:
                    env.date_raw = value
            elif key == "message-id":
                if env.message_id is None:
                    env.message_id = first_msgid(value) or None
            elif key == "in-reply-to":
                if env.in_reply_to is None:
                    env.in_reply_to = first_msgid(value)
            elif key == "references":
                env.references.extend(parse_msgids(value))
            elif key == "return-path":
                if env.return_path is None:
                    found = decode_addresses(value)
                    env.return_path = found[0][1] if found else value.strip("<> ")
            elif key in AUTOMATION_HEADERS:
                env.automation.append((key, raw))
        except Exception as exc:  # one header never fails the message
            value = raw.decode("latin-1")
            lossy = True
            detail = f"{name}: {type(exc).__name__} while decoding; kept as Latin-1"
            defects.append((None, "header_decode_failed", detail))
        raw_text = raw.decode("ascii", "backslashreplace") if lossy else None
        env.headers.append(Header.model_construct(name=name, value=value, raw=raw_text))
    return env


def strip_envelope(raw: bytes, defects: DefectSink) -> tuple[bytes, int]:
    """Undo what is not MIME: a byte-order mark, an mbox ``From `` line, CR-only line ends."""
    start = 0
    if b"\n" not in raw and b"\r" in raw:
        raw = raw.replace(b"\r", b"\n")
        defects.append((None, "bare_cr_line_endings", "CR-only line ends read as line breaks"))
    if raw.startswith(b"\xef\xbb\xbf"):
        start = 3
        defects.append((None, "byte_order_mark", "leading UTF-8 byte-order mark skipped"))
    if raw.startswith(b"From ", start):
        nl = raw.find(b"\n", start)
        start = len(raw) if nl < 0 else nl + 1
        defects.append((None, "mbox_from_line", "leading mbox 'From ' line skipped"))
    return raw, start
