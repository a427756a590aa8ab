"""Issue 14 part 4: payload fields added in version 1 (text from HTML, enclosed message
headers, automated/bounce detection, format=flowed)."""

from __future__ import annotations

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
from bridge.mime.text import html_to_text, unflow

NOW = datetime(2024, 5, 6, tzinfo=UTC)


def build(raw: bytes) -> Payload:
    """Build with fixed ids."""
    return build_payload(
        raw,
        mailbox="inbox",
        uidl="u1",
        webhook_id="msg_1",
        fetched_at=NOW,
        options=PayloadOptions(),
    )


# ------------------------------------------------------------------ text from HTML


def test_text_is_derived_from_html_when_there_is_no_plain_part() -> None:
    """An HTML-only message gets a readable ``text`` and ``text_from_html: true``."""
    raw = (
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>p{}</style><script>alert(1)</script></head><body>"
        b"<p>Hello&nbsp;<b>W\xc3\xb6rld</b></p><p>Line<br>two</p></body></html>"
    )
    payload = build(raw)
    assert payload.text == "Hello W\u00f6rld\n\nLine\ntwo\n"
    assert payload.text_from_html is True
    assert payload.html is not None


def test_a_plain_part_is_never_replaced() -> None:
    """With text/plain present, ``text`` is that part and ``text_from_html`` is false."""
    raw = (
        b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: text/plain\r\n\r\nplain\r\n--b\r\nContent-Type: text/html\r\n\r\n"
        b"<p>html</p>\r\n--b--\r\n"
    )
    payload = build(raw)
    assert (payload.text, payload.text_from_html) == ("plain", False)


def test_no_body_at_all_gives_null_text() -> None:
    """A message with only an attachment keeps ``text`` null and not derived."""
    payload = build(b"Content-Type: application/pdf\r\n\r\n%PDF")
    assert (payload.text, payload.text_from_html) == (None, False)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("<ul><li>a</li><li>b</li></ul>", "- a\n- b\n"),
        ("<pre>  x\n   y</pre>", "  x\n   y\n"),
        ('<a href="https://e.org/x">docs</a>', "docs <https://e.org/x>\n"),
        ('<a href="https://e.org">https://e.org</a>', "https://e.org\n"),
        ('<a href="mailto:a@e.org">a@e.org</a>', "a@e.org\n"),
        ("a <!-- hidden --> b", "a b\n"),
        ("a <!-- never closed", "a\n"),
        ("1 < 2 &lt; 3 &#x263a;", "1 < 2 < 3 \u263a\n"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc\n"),
        ("<title>T</title><p>x</p>", "x\n"),
        ("", ""),
    ],
)
def test_html_to_text(source: str, expected: str) -> None:
    """The converter: lists, pre, links, comments, entities, tables, skipped head content."""
    assert html_to_text(source) == expected


# ------------------------------------------------------------------ format=flowed


def test_format_flowed_is_unwrapped() -> None:
    """Soft-broken lines are joined; quoted paragraphs keep their quote; the sig stays."""
    raw = (
        b"Content-Type: text/plain; format=flowed\r\n\r\n"
        b"> quoted text that \r\n> goes on\r\nmy answer that \r\ngoes on\r\n\r\n-- \r\nme\r\n"
    )
    assert build(raw).text == "> quoted text that goes on\nmy answer that goes on\n\n-- \nme\n"


def test_format_flowed_delsp_and_space_stuffing() -> None:
    """delsp=yes removes the space before the break; a space-stuffed line loses its stuffing."""
    assert (
        unflow("Donau\u00adDampf \nschiff\n From me", delsp=True)
        == "Donau\u00adDampfschiff\nFrom me"
    )
    assert unflow("a \nb", delsp=False) == "a b"


def test_fixed_text_is_not_unwrapped() -> None:
    """Without format=flowed, lines ending in a space stay as they are."""
    raw = b"Content-Type: text/plain\r\n\r\nline one \r\nline two\r\n"
    assert build(raw).text == "line one \nline two\n"


# ------------------------------------------------------------------ message/rfc822


def test_enclosed_message_headers_are_in_the_attachment() -> None:
    """A forwarded message's subject, from, to, date and message_id come with its attachment."""
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        b"fwd\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Message-ID: <in@example.org>\r\nDate: Tue, 5 Mar 2024 09:15:00 +0100\r\n"
        b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>\r\nTo: a@example.org\r\n"
        b"Subject: =?utf-8?q?R=C3=A9union?=\r\n\r\nbody\r\n--b--\r\n"
    )
    (attachment,) = build(raw).attachments
    assert attachment.message is not None
    assert attachment.message.subject == "Réunion"
    assert [(a.name, a.address) for a in attachment.message.from_] == [("Jürgen", "j@example.org")]
    assert attachment.message.date == datetime.fromisoformat("2024-03-05T09:15:00+01:00")
    assert attachment.message.message_id == "<in@example.org>"
    as_json = Payload.model_validate_json(payload_json(build(raw)))
    assert as_json.attachments[0].message == attachment.message


def test_other_attachments_have_no_enclosed_message() -> None:
    """``message`` is null for every attachment that is not a message."""
    payload = build(b"Content-Type: application/pdf\r\n\r\n%PDF")
    assert payload.attachments[0].message is None


# ------------------------------------------------------------------ automated mail


@pytest.mark.parametrize(
    ("headers", "auto_submitted", "automated_by"),
    [
        ("Auto-Submitted: auto-replied", "auto-replied", ["auto-submitted"]),
        ("Auto-Submitted: Auto-Generated; owner=x", "auto-generated", ["auto-submitted"]),
        ("Auto-Submitted: no", "no", []),
        ("X-Autoreply: yes", None, ["x-autoreply"]),
        ("X-Autorespond: on", None, ["x-autorespond"]),
        ("Precedence: bulk", None, ["precedence"]),
        ("Precedence: list", None, ["precedence"]),
        ("Precedence: first-class", None, []),
        ("X-Auto-Response-Suppress: All", None, ["x-auto-response-suppress"]),
        ("X-Auto-Response-Suppress: None", None, []),
        ("Subject: hello", None, []),
    ],
)
def test_automated_mail_is_recognised(
    headers: str, auto_submitted: str | None, automated_by: list[str]
) -> None:
    """RFC 3834 Auto-Submitted and the common auto-reply headers set ``automated``."""
    payload = build(f"{headers}\r\nFrom: a@example.org\r\n\r\nbody".encode())
    assert payload.auto_submitted == auto_submitted
    assert payload.automated_by == automated_by
    assert payload.automated is bool(automated_by)
    assert payload.bounce is False


def test_a_delivery_status_notification_is_a_bounce() -> None:
    """multipart/report with report-type=delivery-status: ``bounce`` and ``automated``."""
    raw = (
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n--b--\r\n"
    )
    payload = build(raw)
    assert (payload.bounce, payload.report_type, payload.automated) == (
        True,
        "delivery-status",
        True,
    )
    assert payload.automated_by == ["delivery-status"]


def test_a_read_receipt_is_automated_but_not_a_bounce() -> None:
    """A disposition notification (read receipt) is automated, not a bounce."""
    raw = (
        b"Content-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nread\r\n--b--\r\n"
    )
    payload = build(raw)
    assert (payload.bounce, payload.report_type) == (False, "disposition-notification")
    assert payload.automated_by == ["disposition-notification"]


def test_headers_only_payload_detects_auto_replies() -> None:
    """A message too large to retrieve is still recognised as automated from its headers."""
    payload = build_headers_only_payload(
        b"Auto-Submitted: auto-generated\r\nSubject: x\r\n\r\n",
        size=10**9,
        mailbox="m",
        uidl="u",
        webhook_id="w",
        fetched_at=NOW,
        reason="size",
    )
    assert (payload.automated, payload.auto_submitted) == (True, "auto-generated")


# ------------------------------------------------------------------ schema


def test_new_fields_keep_schema_version_1_and_are_optional() -> None:
    """The additions are in the schema, not required, and the version stays 1."""
    schema = payload_schema()
    props = schema["properties"]
    added = ["text_from_html", "auto_submitted", "automated", "automated_by", "bounce"]
    for name in [*added, "report_type"]:
        assert name in props
        assert name not in schema.get("required", [])
    assert props["version"]["const"] == 1
    assert "message" in schema["$defs"]["Attachment"]["properties"]
    body = build(b"Subject: x\r\n\r\nbody").model_dump(mode="json", by_alias=True)
    for name in [*added, "report_type"]:  # a v1 payload from before the additions
        del body[name]
    older = Payload.model_validate(body)
    assert (older.automated, older.text_from_html, older.automated_by) == (False, False, [])
