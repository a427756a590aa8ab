"""Behaviour of build_payload / build_headers_only_payload / reference mode / payload_json."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from datetime import UTC, datetime

import pytest

from bridge.mime import (
    Payload,
    PayloadOptions,
    build_headers_only_payload,
    build_payload,
    payload_json,
    payload_schema,
)
from bridge.mime.build import _fallback

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def build(raw: bytes, **options: object) -> Payload:
    """Build with fixed ids and the given option overrides."""
    return build_payload(
        raw,
        mailbox="inbox",
        uidl="u1",
        webhook_id="msg_1",
        fetched_at=NOW,
        options=PayloadOptions(**options),  # type: ignore[arg-type]
    )


def kinds(payload: Payload) -> list[str]:
    """The defect kinds of a payload, in order."""
    return [d.kind for d in payload.defects]


def multipart(parts: list[str], boundary: str = "b", subtype: str = "mixed") -> bytes:
    """A multipart message from ready-made part texts (headers + blank line + body)."""
    body = "".join(f"--{boundary}\r\n{p}\r\n" for p in parts) + f"--{boundary}--\r\n"
    head = f"From: a@example.org\r\nContent-Type: multipart/{subtype}; boundary={boundary}\r\n"
    return (head + "\r\n" + body).encode()


def test_identity_and_raw_fields() -> None:
    """Ids come from the caller; size and sha256 describe the raw bytes; version is 1."""
    raw = b"Subject: hi\r\n\r\nbody\r\n"
    payload = build(raw)
    assert (payload.version, payload.mailbox, payload.uidl, payload.webhook_id) == (
        1,
        "inbox",
        "u1",
        "msg_1",
    )
    assert payload.fetched_at == NOW
    assert payload.size == len(raw)
    assert payload.sha256 == hashlib.sha256(raw).hexdigest()
    assert payload.raw is None
    assert base64.b64decode(build(raw, include_raw=True).raw or b"") == raw


def test_json_uses_from_and_is_compact_utf8() -> None:
    """The webhook body says "from" (not from_), is compact and keeps non-ASCII as UTF-8."""
    body = payload_json(build("From: Zoë <z@example.org>\r\n\r\nhé\r\n".encode()))
    assert b'"from":[{"name":"Zo\xc3\xab","address":"z@example.org"}]' in body
    assert b'"from_"' not in body
    assert b": " not in body
    assert json.loads(body)["text"] == "hé\n"


def test_alternative_gives_text_and_html_and_keeps_other_alternatives() -> None:
    """multipart/alternative: the plain and HTML versions fill text/html; a calendar is kept."""
    raw = multipart(
        [
            "Content-Type: text/plain\r\n\r\nold plain",
            "Content-Type: text/plain\r\n\r\nbest plain",
            "Content-Type: text/html\r\n\r\n<p>html</p>",
            "Content-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR",
        ],
        subtype="alternative",
    )
    payload = build(raw)
    assert payload.text == "best plain"
    assert payload.html == "<p>html</p>"
    assert [a.content_type for a in payload.attachments] == ["text/calendar"]


def test_related_root_is_chosen_by_start_parameter() -> None:
    """multipart/related with start=: that part is the body; the others are related inline."""
    raw = (
        b'From: a@example.org\r\nContent-Type: multipart/related; boundary=r; start="<root>"\r\n'
        b"\r\n--r\r\nContent-Type: image/gif\r\nContent-ID: <img>\r\n\r\nGIF\r\n"
        b"--r\r\nContent-Type: text/html\r\nContent-ID: <root>\r\n\r\n"
        b"<img src=cid:img>\r\n--r--\r\n"
    )
    payload = build(raw)
    assert payload.html == "<img src=cid:img>"
    (image,) = payload.attachments
    assert (image.related, image.disposition, image.content_id) == (True, "inline", "img")


def test_text_attachment_is_not_body() -> None:
    """A text/plain part with disposition attachment is an attachment with its charset."""
    raw = multipart(
        [
            "Content-Type: text/plain\r\n\r\nbody",
            "Content-Type: text/plain; charset=utf-8\r\n"
            'Content-Disposition: attachment; filename="a.txt"\r\n\r\nfile',
        ]
    )
    payload = build(raw)
    assert payload.text == "body"
    (att,) = payload.attachments
    assert (att.filename, att.charset, att.size, base64.b64decode(att.content or b"")) == (
        "a.txt",
        "utf-8",
        4,
        b"file",
    )
    assert att.sha256 == hashlib.sha256(b"file").hexdigest()


def test_max_parts_limit_skips_the_rest_and_says_so() -> None:
    """Past max_parts, parts are skipped and a too_many_parts defect names how many."""
    raw = multipart([f"Content-Type: application/x-{i}\r\n\r\n{i}" for i in range(10)])
    payload = build(raw, max_parts=4)
    assert len(payload.attachments) == 3  # the root counts as one part
    defect = next(d for d in payload.defects if d.kind == "too_many_parts")
    assert defect.detail.startswith("7 parts")


def test_max_depth_keeps_deep_multipart_opaque() -> None:
    """A multipart nested deeper than max_depth is delivered as one opaque attachment."""
    inner = b"Content-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n\r\ndeep\r\n--c--"
    raw = multipart([inner.decode()])
    payload = build(raw, max_depth=1)
    assert "too_deep" in kinds(payload)
    (att,) = payload.attachments
    assert att.content_type == "multipart/mixed"
    assert att.part == "1"
    assert b"deep" in base64.b64decode(att.content or b"")
    assert build(raw).text == "deep"


def test_header_limits() -> None:
    """max_headers skips extra fields and max_header_bytes truncates long ones, with defects."""
    raw = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * (i * 10)) for i in range(8)) + b"\r\nbody"
    payload = build(raw, max_headers=5, max_header_bytes=25)
    assert [h.name for h in payload.headers] == ["X-H0", "X-H1", "X-H2", "X-H3", "X-H4"]
    assert max(len(h.value) for h in payload.headers) == 25
    assert {"too_many_headers", "header_too_long"} <= set(kinds(payload))
    assert payload.text == "body"


def test_size_policy_omits_big_attachments_but_keeps_metadata() -> None:
    """Attachments above max_attachment_bytes have no content, omitted_reason "size"."""
    data = bytes(range(256)) * 8
    part = "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    raw = multipart([part + base64.encodebytes(data).decode()])
    (att,) = build(raw, max_attachment_bytes=1000).attachments
    assert (att.content, att.omitted, att.omitted_reason, att.size) == (None, True, "size", 2048)
    assert att.sha256 == hashlib.sha256(data).hexdigest()


def test_reference_mode_drops_contents_and_raw_only() -> None:
    """without_attachment_content: contents and raw go, metadata stays, earlier reasons stay."""
    raw = multipart(
        [
            "Content-Type: application/x-a\r\n\r\n" + "a" * 50,
            "Content-Type: application/x-b\r\n\r\nb",
        ]
    )
    payload = build(raw, max_attachment_bytes=10, include_raw=True)
    reduced = payload.without_attachment_content("reference")
    assert [(a.omitted, a.omitted_reason, a.content) for a in reduced.attachments] == [
        (True, "size", None),
        (True, "reference", None),
    ]
    assert [a.sha256 for a in reduced.attachments] == [a.sha256 for a in payload.attachments]
    assert reduced.raw is None
    assert payload.attachments[1].content == base64.b64encode(b"b")  # original unchanged
    Payload.model_validate_json(payload_json(reduced))


def test_large_attachment_json_is_spliced_correctly() -> None:
    """Above the splice threshold the JSON body is byte-for-byte what pydantic would write."""
    data = hashlib.sha256(b"seed").digest() * 40000  # 1.28 MB
    part = "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    raw = multipart(
        ["Content-Type: text/plain\r\n\r\nhi", part + base64.encodebytes(data).decode()]
    )
    payload = build(raw, include_raw=True)
    body = payload_json(payload)
    assert body == Payload.__pydantic_serializer__.to_json(payload)
    document = json.loads(body)
    assert base64.b64decode(document["attachments"][0]["content"]) == data
    assert base64.b64decode(document["raw"]) == raw


def test_headers_only_payload() -> None:
    """TOP n 0 headers become a payload with empty bodies, body_omitted and the reason."""
    head = b"From: a@example.org\r\nSubject: =?utf-8?q?gro=C3=9F?=\r\nMessage-ID: <m@x>\r\n\r\n"
    payload = build_headers_only_payload(
        head,
        size=99_000_000,
        mailbox="inbox",
        uidl="u9",
        webhook_id="msg_9",
        fetched_at=NOW,
        reason="size",
        options=PayloadOptions(),
    )
    assert (payload.subject, payload.message_id, payload.size) == ("groß", "<m@x>", 99_000_000)
    assert (payload.text, payload.html, payload.attachments, payload.sha256) == (
        None,
        None,
        [],
        None,
    )
    assert (payload.body_omitted, payload.body_omitted_reason) == (True, "size")
    assert payload.defects[-1].kind == "body_omitted"
    assert "99000000" in payload.defects[-1].detail
    Payload.model_validate_json(payload_json(payload))


def test_last_resort_payload_carries_the_whole_message() -> None:
    """When parsing fails outright, the raw message is attached as message/rfc822."""
    raw = b"Subject: x\r\n\r\nbody"
    ids: dict[str, object] = {
        "mailbox": "inbox",
        "uidl": "u1",
        "webhook_id": "msg_1",
        "fetched_at": NOW,
    }
    payload = _fallback(raw, PayloadOptions(), ids, RuntimeError("boom"))
    assert kinds(payload) == ["parser_failed"]
    (att,) = payload.attachments
    assert (att.content_type, base64.b64decode(att.content or b"")) == ("message/rfc822", raw)
    Payload.model_validate_json(payload_json(payload))


@pytest.mark.parametrize("raw", [bytearray(b"Subject: a\r\n\r\nb"), memoryview(b"Subject: a\n\nb")])
def test_bytes_like_input_is_accepted(raw: bytes) -> None:
    """bytearray and memoryview inputs are read like bytes."""
    assert build(raw).subject == "a"


def test_options_are_frozen() -> None:
    """PayloadOptions cannot be changed after creation (it is shared between sessions)."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        PayloadOptions().max_parts = 1  # type: ignore[misc]


def test_schema_names_the_public_fields() -> None:
    """The JSON Schema has the issue's top-level names, "from" included, and version 1."""
    schema = payload_schema()
    names = set(schema["properties"])
    public = {
        "version", "webhook_id", "mailbox", "uidl", "message_id", "fetched_at", "from",
        "sender", "reply_to", "to", "cc", "bcc", "subject", "date", "date_raw", "in_reply_to",
        "references", "headers", "text", "html", "attachments", "size", "sha256", "raw",
        "defects",
    }  # fmt: skip
    assert public <= names
    assert schema["properties"]["version"]["const"] == 1
    attachment = schema["$defs"]["Attachment"]["properties"]
    assert {"filename", "content_type", "disposition", "content_id", "size", "sha256",
            "content", "omitted", "omitted_reason"} <= set(attachment)  # fmt: skip
    assert attachment["content"]["anyOf"][0]["contentEncoding"] == "base64"


def test_invalid_base64_content_is_rejected_on_validation() -> None:
    """A payload JSON whose attachment content is not base64 does not validate."""
    raw = multipart(["Content-Type: application/x-a\r\n\r\nabc"])
    document = json.loads(payload_json(build(raw)))
    document["attachments"][0]["content"] = "not base64!"
    with pytest.raises(ValueError, match="base64"):
        Payload.model_validate_json(json.dumps(document))
