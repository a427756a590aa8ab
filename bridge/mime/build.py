"""Raw message bytes to a :class:`Payload`; never raises, whatever the bytes."""

from __future__ import annotations

import binascii
import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from bridge.mime.automated import automation
from bridge.mime.charsets import decode_bytes
from bridge.mime.encoded_words import bytes_to_text
from bridge.mime.envelope import Envelope, read_envelope, strip_envelope
from bridge.mime.fields import parse_date, parse_mime_header
from bridge.mime.model import Attachment, Defect, EnclosedMessage, Payload, PayloadOptions
from bridge.mime.parts import DefectSink, Part, TreeParser, defect_path, read_headers
from bridge.mime.text import html_to_text, unflow
from bridge.mime.transfer import decode_transfer

_BODY_TYPES = ("text/plain", "text/html")
_MESSAGE_TYPES = ("message/rfc822", "message/global")
_ENCLOSED_HEAD_BYTES = 256 * 1024


@dataclass(slots=True)
class _Bodies:
    texts: list[str] = field(default_factory=list)
    htmls: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


def _can_be_root(part: Part) -> bool:
    """Whether a part can be what a multipart/related shows: text or a multipart."""
    return part.content_type.startswith(("text/", "multipart/")) and not _void(part)


def _void(part: Part) -> bool:
    """A part with neither header fields nor body (two boundary lines in a row): it carries
    nothing, so it is neither a body nor an attachment."""
    return not part.fields and part.body_end <= part.body_start and part.children is None


def _join(pieces: list[str]) -> str | None:
    if not pieces:
        return None
    out = [pieces[0]]
    for piece in pieces[1:]:
        if out[-1] and not out[-1].endswith("\n"):
            out.append("\n")
        out.append(piece)
    return "".join(out)


class _Builder:
    """Walks the part tree: picks the bodies a mail client shows, lists everything else."""

    def __init__(self, buf: bytes, options: PayloadOptions, defects: DefectSink) -> None:
        self.buf = buf
        self.options = options
        self.defects = defects
        self.view = memoryview(buf)

    def content(self, part: Part) -> bytes | memoryview:
        data = self.view[part.body_start : part.body_end]
        if part.children is not None or part.content_type.startswith("multipart/"):
            return data  # an opaque multipart: its body as it is
        decoded = decode_transfer(data, part.cte)
        if decoded.problem is not None:
            self.defects.append((defect_path(part.path), *decoded.problem))
        return decoded.data

    def text(self, part: Part) -> str:
        charset = part.params.get("charset")
        decoded = decode_bytes(self.content(part), charset)
        if decoded.problem is not None:
            self.defects.append((defect_path(part.path), *decoded.problem))
        text = decoded.text
        text = text.replace("\r\n", "\n") if "\r" in text else text
        if part.params.get("format", "").lower() == "flowed" and part.content_type == "text/plain":
            text = unflow(text, part.params.get("delsp", "").lower() == "yes")
        return text

    def enclosed(self, data: bytes | memoryview) -> EnclosedMessage:
        """The headers of a message/rfc822 part, from its first 256 KiB at most."""
        head = bytes(data[:_ENCLOSED_HEAD_BYTES])
        ignored: DefectSink = []  # the enclosed message's own defects are not the message's
        fields, _ = read_headers(head, 0, len(head), "", self.options, ignored)
        charset = None
        for name, value in fields:
            if name.lower() == "content-type":
                charset = parse_mime_header(bytes_to_text(value).text)[1].get("charset")
                break
        env = read_envelope(fields, charset, ignored)
        return EnclosedMessage.model_construct(
            subject=env.subject,
            from_=env.addresses.get("from_", []),
            to=env.addresses.get("to", []),
            date=parse_date(env.date_raw) if env.date_raw else None,
            message_id=env.message_id,
        )

    def attachment(self, part: Part, related: bool) -> Attachment:
        data = self.content(part)
        size = len(data)
        limit = self.options.max_attachment_bytes
        omitted = limit is not None and size > limit
        content_id = part.header("content-id")
        cid = bytes_to_text(content_id).text.strip().strip("<>").strip() if content_id else None
        disposition = part.disposition or ("inline" if related or cid else "attachment")
        path = part.path or "1"
        return Attachment.model_construct(
            part=path,
            filename=part.filename,
            content_type=part.content_type,
            disposition=disposition,
            content_id=cid or None,
            charset=part.params.get("charset") if part.content_type.startswith("text/") else None,
            related=related,
            size=size,
            sha256=hashlib.sha256(data).hexdigest(),
            content=None if omitted else binascii.b2a_base64(data, newline=False),
            omitted=omitted,
            omitted_reason="size" if omitted else None,
            message=self.enclosed(data) if part.content_type in _MESSAGE_TYPES else None,
        )

    def is_body(self, part: Part) -> bool:
        if part.content_type not in _BODY_TYPES or part.disposition == "attachment":
            return False
        return part.disposition == "inline" or not part.filename

    def collect(self, part: Part, out: _Bodies, related: bool = False) -> None:
        children = part.children
        if children is None:
            if _void(part):
                return
            if not related and self.is_body(part):
                target = out.htmls if part.content_type == "text/html" else out.texts
                target.append(self.text(part))
            else:
                out.attachments.append(self.attachment(part, related))
            return
        subtype = part.content_type[10:]
        if subtype == "alternative" and not related:
            subs = []
            for child in children:
                sub = _Bodies()
                self.collect(child, sub)
                subs.append(sub)
                out.attachments.extend(sub.attachments)
            with_text = [s for s in subs if s.texts]
            with_html = [s for s in subs if s.htmls]
            if with_text:
                out.texts.extend(with_text[-1].texts)
            if with_html:
                out.htmls.extend(with_html[-1].htmls)
        elif subtype == "related" and children and not related:
            root = 0
            start = part.params.get("start", "").strip().strip("<>")
            if start:
                for index, child in enumerate(children):
                    cid = child.header("content-id")
                    if cid is not None and bytes_to_text(cid).text.strip().strip("<>") == start:
                        root = index
                        break
            elif not _can_be_root(children[0]):  # MHTML writers put resources first; a void
                # part (a doubled boundary line) shows nothing
                root = next((i for i, c in enumerate(children) if _can_be_root(c)), 0)
            for index, child in enumerate(children):
                self.collect(child, out, related=index != root)
        else:
            for child in children:
                self.collect(child, out, related)


def _defects(sink: DefectSink) -> list[Defect]:
    return [Defect.model_construct(part=p, kind=k, detail=d) for p, k, d in sink]


def _payload(
    env: Envelope,
    defects: DefectSink,
    *,
    raw_size: int,
    sha256: str | None,
    mailbox: str,
    uidl: str,
    webhook_id: str,
    fetched_at: datetime,
    **rest: object,
) -> Payload:
    date = parse_date(env.date_raw) if env.date_raw else None
    if env.date_raw and date is None:
        defects.append((None, "invalid_date", f"unparsable Date {env.date_raw[:80]!r}"))
    addresses = env.addresses
    values: dict[str, object] = {
        "version": 1,
        "webhook_id": webhook_id,
        "mailbox": mailbox,
        "uidl": uidl,
        "message_id": env.message_id,
        "fetched_at": fetched_at,
        "from_": addresses.get("from_", []),
        "sender": addresses.get("sender", []),
        "reply_to": addresses.get("reply_to", []),
        "to": addresses.get("to", []),
        "cc": addresses.get("cc", []),
        "bcc": addresses.get("bcc", []),
        "delivered_to": addresses.get("delivered_to", []),
        "return_path": env.return_path,
        "subject": env.subject,
        "date": date,
        "date_raw": env.date_raw,
        "in_reply_to": env.in_reply_to,
        "references": env.references,
        "headers": env.headers,
        "size": raw_size,
        "sha256": sha256,
        "raw": None,
        "body_omitted": False,
        "body_omitted_reason": None,
        "text": None,
        "text_from_html": False,
        "html": None,
        "attachments": [],
    }
    values.update(
        auto_submitted=None, automated=False, automated_by=[], bounce=False, report_type=None
    )
    values.update(rest)
    values["defects"] = _defects(defects)
    return Payload.model_construct(**values)  # type: ignore[arg-type]


def _build(
    raw: bytes, options: PayloadOptions, ids: dict[str, object], defects: DefectSink
) -> Payload:
    buf, start = strip_envelope(raw, defects)
    root = TreeParser(buf, options, defects).parse(start, len(buf))
    if not root.fields:
        defects.append((None, "no_headers", "the message has no header fields"))
    charset = root.params.get("charset")
    env = read_envelope(root.fields, charset, defects)
    bodies = _Bodies()
    _Builder(buf, options, defects).collect(root, bodies)
    encoded_raw = binascii.b2a_base64(raw, newline=False) if options.include_raw else None
    text, html = _join(bodies.texts), _join(bodies.htmls)
    text_from_html = text is None and html is not None
    if text_from_html:
        text = html_to_text(html or "")
    return _payload(
        env,
        defects,
        raw_size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        text=text,
        text_from_html=text_from_html,
        html=html,
        attachments=bodies.attachments,
        raw=encoded_raw,
        **automation(env.automation, root),  # type: ignore[arg-type]
        **ids,  # type: ignore[arg-type]
    )


def _fallback(
    raw: bytes, options: PayloadOptions, ids: dict[str, object], exc: Exception
) -> Payload:
    """The last resort: no structure, the whole message as one attachment, and why."""
    limit = options.max_attachment_bytes
    omitted = limit is not None and len(raw) > limit
    whole = Attachment.model_construct(
        part="1",
        filename=None,
        content_type="message/rfc822",
        disposition="attachment",
        content_id=None,
        charset=None,
        related=False,
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        content=None if omitted else binascii.b2a_base64(raw, newline=False),
        omitted=omitted,
        omitted_reason="size" if omitted else None,
    )
    detail = f"{type(exc).__name__} while parsing; the raw message is attached as is"
    return _payload(
        Envelope(),
        [(None, "parser_failed", detail)],
        raw_size=len(raw),
        sha256=whole.sha256,
        attachments=[whole],
        raw=binascii.b2a_base64(raw, newline=False) if options.include_raw else None,
        **ids,  # type: ignore[arg-type]
    )


def build_payload(
    raw: bytes,
    *,
    mailbox: str,
    uidl: str,
    webhook_id: str,
    fetched_at: datetime,
    options: PayloadOptions = PayloadOptions(),  # noqa: B008 - frozen, so sharing is safe
) -> Payload:
    """Turn the bytes RETR returned into the webhook payload. Never raises for any input.

    Every problem found (bad charsets, broken encodings, unusable boundaries, limits
    reached) is repaired best-effort and listed in ``defects``; if parsing fails outright
    the payload carries the whole message as a ``message/rfc822`` attachment instead.
    """
    raw = raw if type(raw) is bytes else bytes(raw)
    ids: dict[str, object] = {
        "mailbox": mailbox,
        "uidl": uidl,
        "webhook_id": webhook_id,
        "fetched_at": fetched_at,
    }
    try:
        return _build(raw, options, ids, [])
    except Exception as exc:  # the contract is "never raises"
        return _fallback(raw, options, ids, exc)


def build_headers_only_payload(
    header_bytes: bytes,
    *,
    size: int,
    mailbox: str,
    uidl: str,
    webhook_id: str,
    fetched_at: datetime,
    reason: str,
    options: PayloadOptions = PayloadOptions(),  # noqa: B008 - frozen, so sharing is safe
) -> Payload:
    """A payload from the header block alone (``TOP n 0``), for a message not retrieved whole.

    Body fields are empty, ``body_omitted`` is true with ``reason``, ``size`` is the size
    the server reported, ``sha256`` is null, and a ``body_omitted`` defect says why.
    """
    header_bytes = header_bytes if type(header_bytes) is bytes else bytes(header_bytes)
    ids: dict[str, object] = {
        "mailbox": mailbox,
        "uidl": uidl,
        "webhook_id": webhook_id,
        "fetched_at": fetched_at,
    }
    defects: DefectSink = []
    try:
        buf, start = strip_envelope(header_bytes, defects)
        fields, _ = read_headers(buf, start, len(buf), "", options, defects)
        charset = None
        for name, value in fields:
            if name.lower() == "content-type":
                charset = parse_mime_header(bytes_to_text(value).text)[1].get("charset")
                break
        env = read_envelope(fields, charset, defects)
        automated = automation(env.automation, None)
    except Exception as exc:  # the contract is "never raises"
        env = Envelope()
        automated = {}
        defects.append((None, "parser_failed", f"{type(exc).__name__} while reading headers"))
    defects.append((None, "body_omitted", f"message of {size} bytes sent headers-only: {reason}"))
    return _payload(
        env,
        defects,
        raw_size=size,
        sha256=None,
        body_omitted=True,
        body_omitted_reason="size",  # the only reason today; the defect's detail says more
        **automated,  # type: ignore[arg-type]
        **ids,  # type: ignore[arg-type]
    )
