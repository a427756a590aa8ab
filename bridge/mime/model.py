"""The webhook payload, version 1: pydantic models, their JSON shape and the build options."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

PAYLOAD_VERSION: Literal[1] = 1

_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def _ascii_bytes(value: object) -> object:
    return value.encode("ascii") if isinstance(value, str) else value


def _check_base64(value: bytes) -> bytes:
    if len(value) % 4 or _BASE64.fullmatch(value) is None:
        raise ValueError("not padded standard base64")
    return value


Base64Text = Annotated[
    bytes,
    BeforeValidator(_ascii_bytes),
    AfterValidator(_check_base64),
    PlainSerializer(lambda v: v.decode("ascii"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "contentEncoding": "base64"}),
]
"""Standard, padded base64 text with no line breaks; held as ASCII bytes to avoid copies."""


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        serialize_by_alias=True,
        validate_by_alias=True,
        validate_by_name=True,
    )


class Address(_Model):
    """One mailbox from an address header; groups are flattened into their members."""

    name: str = Field(description='Display name, encoded words decoded; "" when none.')
    address: str = Field(description="The addr-spec, e.g. user@example.com, as written.")


class Header(_Model):
    """One header field of the message, in the order it appeared."""

    name: str = Field(description="Field name as written (case kept).")
    value: str = Field(description="Unfolded value with encoded words and 8-bit bytes decoded.")
    raw: str | None = Field(
        default=None,
        description="The undecoded value (non-ASCII bytes as \\xNN) when decoding was lossy.",
    )


class EnclosedMessage(_Model):
    """The headers of a message/rfc822 attachment (a forwarded or bounced message)."""

    subject: str | None = Field(default=None, description="Its decoded subject.")
    from_: list[Address] = Field(default=[], alias="from", description="Its From mailboxes.")
    to: list[Address] = Field(default=[], description="Its To mailboxes.")
    date: datetime | None = Field(default=None, description="Its Date, ISO 8601, or null.")
    message_id: str | None = Field(default=None, description="Its Message-ID.")


class Attachment(_Model):
    """An attachment or inline part that is not the message's main text or HTML."""

    part: str = Field(description='MIME part path, IMAP style ("1", "2.1").')
    filename: str | None = Field(description="RFC 2231/2047-decoded file name; untrusted.")
    content_type: str = Field(description="Lower-cased type/subtype, e.g. image/png.")
    disposition: str = Field(description='"attachment" or "inline".')
    content_id: str | None = Field(description="Content-ID without angle brackets.")
    charset: str | None = Field(default=None, description="Declared charset of text parts.")
    related: bool = Field(
        default=False, description="Part of multipart/related (e.g. an image the HTML shows)."
    )
    size: int = Field(description="Decoded size in bytes.")
    sha256: str = Field(description="Hex SHA-256 of the decoded content.")
    content: Base64Text | None = Field(
        description="Decoded content in standard base64; null when omitted."
    )
    omitted: bool = Field(default=False, description="True when content was left out.")
    omitted_reason: str | None = Field(
        default=None,
        description='Why content was left out: "reference" (in the attachment store, at '
        'content_ref) or "size" (over max_attachment_bytes, no store); more may be added.',
    )
    message: EnclosedMessage | None = Field(
        default=None, description="For message/rfc822 parts: the enclosed message's headers."
    )
    content_ref: str | None = Field(
        default=None,
        description="Where the content was stored when sent by reference (an https URL, "
        "e.g. a presigned S3 URL, or a file path); its bytes hash to sha256. Null otherwise.",
    )


class Defect(_Model):
    """Something wrong with the message that was repaired, guessed or skipped."""

    part: str | None = Field(description='MIME part path ("1.2"); null for the top level.')
    kind: str = Field(description="Stable machine-readable kind, see docs/payload.md.")
    detail: str = Field(description="Human-readable explanation.")


class Payload(_Model):
    """The JSON document POSTed to the webhook for one message (payload version 1)."""

    version: Literal[1] = Field(default=PAYLOAD_VERSION, description="Payload format version.")
    webhook_id: str = Field(description="Stable per mailbox + message; the webhook-id header.")
    mailbox: str = Field(description="Configured mailbox name.")
    uidl: str = Field(description="The POP3 UIDL (or fallback identity) of the message.")
    message_id: str | None = Field(description="Message-ID header, with angle brackets.")
    fetched_at: datetime = Field(description="When the bridge retrieved the message.")
    pop3_utf8: bool = Field(
        default=False,
        exclude_if=lambda value: value is False,
        description=(
            "Present (true) when the POP3 session ran in UTF8 mode (RFC 6856): the server "
            "sent UTF-8 headers as stored. Absent otherwise."
        ),
    )
    from_: list[Address] = Field(alias="from", description="From header mailboxes.")
    sender: list[Address] = Field(description="Sender header mailboxes.")
    reply_to: list[Address] = Field(description="Reply-To header mailboxes.")
    to: list[Address] = Field(description="To header mailboxes.")
    cc: list[Address] = Field(description="Cc header mailboxes.")
    bcc: list[Address] = Field(description="Bcc header mailboxes (rarely present).")
    delivered_to: list[Address] = Field(default=[], description="Delivered-To mailboxes.")
    return_path: str | None = Field(default=None, description="Return-Path address.")
    subject: str | None = Field(description="Decoded subject; null when absent.")
    date: datetime | None = Field(description="Date header as ISO 8601 with offset, or null.")
    date_raw: str | None = Field(description="The Date header as written.")
    in_reply_to: str | None = Field(description="First message id of In-Reply-To.")
    references: list[str] = Field(description="Message ids of References, in order.")
    headers: list[Header] = Field(description="Every top-level header, in order.")
    text: str | None = Field(description="Plain-text body as a mail client shows it (\\n lines).")
    text_from_html: bool = Field(
        default=False, description="True when text was derived from html (no text/plain part)."
    )
    html: str | None = Field(description="HTML body as a mail client shows it.")
    attachments: list[Attachment] = Field(description="Attachments and inline parts.")
    size: int = Field(description="Size of the raw message in bytes (as retrieved).")
    sha256: str | None = Field(description="Hex SHA-256 of the raw message; null if headers-only.")
    raw: Base64Text | None = Field(
        default=None, description="The raw message in base64 when include_raw is on."
    )
    raw_ref: str | None = Field(
        default=None,
        description="Where the raw message was stored when include_raw is on and it was sent "
        "by reference (URL or file path); its bytes hash to sha256. Null otherwise.",
    )
    body_omitted: bool = Field(default=False, description="True for a headers-only payload.")
    body_omitted_reason: str | None = Field(
        default=None, description='"size" (over max_message_bytes); more may be added.'
    )
    defects: list[Defect] = Field(description="What was wrong with the message, per part.")
    auto_submitted: str | None = Field(
        default=None, description="The Auto-Submitted keyword (RFC 3834), lower-cased."
    )
    automated: bool = Field(
        default=False, description="True for auto-replies, bulk and list mail, bounces, receipts."
    )
    automated_by: list[str] = Field(
        default=[], description="Which signals made it automated, e.g. auto-submitted."
    )
    bounce: bool = Field(default=False, description="True for a delivery status notification.")
    report_type: str | None = Field(
        default=None, description="report-type of a multipart/report, e.g. delivery-status."
    )

    def without_attachment_content(self, reason: str) -> Payload:
        """This payload in reference mode: every attachment's content (and ``raw``) left out.

        Metadata (name, type, size, sha256) stays; each attachment gets ``omitted=True`` and
        ``omitted_reason=reason`` unless it was already omitted for another reason.
        """
        attachments = [
            a
            if a.omitted
            else a.model_copy(update={"content": None, "omitted": True, "omitted_reason": reason})
            for a in self.attachments
        ]
        return self.model_copy(update={"attachments": attachments, "raw": None})


@dataclass(frozen=True, slots=True)
class PayloadOptions:
    """How a payload is built. Limits keep the work bounded; what they skip becomes a defect."""

    include_raw: bool = False
    """Add the raw message in base64 as ``raw``."""
    max_attachment_bytes: int | None = None
    """Attachments larger than this (decoded) go without content (``omitted_reason="size"``)."""
    max_parts: int = 1000
    """MIME parts beyond this many are not looked at."""
    max_depth: int = 30
    """Multiparts nested deeper than this are kept as opaque attachments."""
    max_headers: int = 1000
    """Header fields per part beyond this many are skipped."""
    max_header_bytes: int = 64 * 1024
    """A longer header field is truncated to this many bytes."""
