"""A dozen varied sample messages for the demo and the development POP3 server.

Built in code (deterministic bytes, no files to ship): plain text, HTML with a text
alternative, attachments with international names, an inline image, legacy charsets,
a forwarded message, a calendar invite, lines that start with a dot, and a message with
a wrong charset label, so the demo shows what the payload does with each.
"""

from __future__ import annotations

import base64

_PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _wrap64(data: bytes) -> bytes:
    text = base64.b64encode(data)
    return b"\n".join(text[i : i + 76] for i in range(0, len(text), 76))


def _headers(n: int, sender: bytes, subject: bytes, extra: bytes = b"") -> bytes:
    return (
        b"Return-Path: <" + sender.split(b"<")[-1].rstrip(b">") + b">\n"
        b"Delivered-To: support@demo.example\n"
        b"From: " + sender + b"\n"
        b"To: Support <support@demo.example>\n"
        b"Subject: " + subject + b"\n"
        b"Date: Thu, 26 Nov 2026 09:%02d:00 +0100\n"
        % n
        + b"Message-ID: <demo-%02d@demo.example>\n" % n
        + b"MIME-Version: 1.0\n"
        + extra
    )


def sample_messages() -> list[bytes]:
    """The demo mailbox, oldest first."""
    pdf = b"%PDF-1.4\n% demo invoice\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
    msgs = [
        _headers(1, b"Alice Example <alice@demo.example>", b"Printer on floor 3 is jammed")
        + b"Content-Type: text/plain; charset=utf-8\n\n"
        b"Hi team,\n\nthe printer on floor 3 is jammed again.\n\nAlice\n",
        _headers(
            2,
            b"=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@demo.example>",
            b"=?utf-8?q?R=C3=BCckruf_erbeten?=",
            b"Cc: Ops <ops@demo.example>\n",
        )
        + b"Content-Type: multipart/alternative; boundary=alt\n\n"
        b"--alt\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        + "Bitte rufen Sie mich zurück.\n".encode()
        + b"--alt\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        + "<p>Bitte rufen Sie mich <b>zurück</b>.</p>\n".encode()
        + b"--alt--\n",
        _headers(3, b"Billing <billing@vendor.example>", b"Invoice 2026-1183")
        + b"Content-Type: multipart/mixed; boundary=mix\n\n"
        b"--mix\nContent-Type: text/plain; charset=us-ascii\n\nYour invoice is attached.\n"
        b"--mix\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n"
        b"Content-Disposition: attachment; filename*=utf-8''Rechnung%20M%C3%A4rz.pdf\n\n"
        + _wrap64(pdf)
        + b"\n--mix--\n",
        _headers(4, b"Newsletter <news@shop.example>", b"Our new logo")
        + b"Content-Type: multipart/related; boundary=rel\n\n"
        b"--rel\nContent-Type: text/html; charset=utf-8\n\n"
        b'<p>Our new logo: <img src="cid:logo@shop.example"></p>\n'
        b"--rel\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n"
        b"Content-ID: <logo@shop.example>\nContent-Disposition: inline; filename=logo.png\n\n"
        + _wrap64(_PNG_1PX)
        + b"\n--rel--\n",
        _headers(5, b"Fran\xe7ois <francois@demo.example>", b"=?iso-8859-1?q?Caf=E9_cr=E8me?=")
        + b"Content-Type: text/plain; charset=iso-8859-1\n"
        b"Content-Transfer-Encoding: quoted-printable\n\n"
        b"Un caf=E9 cr=E8me, s'il vous pla=EEt.\n",
        _headers(
            6,
            b"=?iso-2022-jp?b?GyRCRURDZhsoQg==?= <tanaka@demo.example>",
            b"=?utf-8?b?5Lya6K2w44Gu5LqI5a6a?=",
        )
        + b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        + _wrap64("来週の会議は火曜日の10時からです。\n".encode())
        + b"\n",
        _headers(7, b"Bob <bob@demo.example>", b"Fwd: Original question")
        + b"Content-Type: multipart/mixed; boundary=fwd\n\n"
        b"--fwd\nContent-Type: text/plain\n\nSee below.\n"
        b"--fwd\nContent-Type: message/rfc822\n\n"
        b"From: Carol <carol@demo.example>\nTo: bob@demo.example\nSubject: Original question\n\n"
        b"Does the bridge keep my attachments?\n"
        b"--fwd--\n",
        _headers(8, b"Calendar <calendar@demo.example>", b"Invitation: Retro @ Fri 10:00")
        + b"Content-Type: multipart/mixed; boundary=cal\n\n"
        b"--cal\nContent-Type: text/plain\n\nYou are invited to the retro.\n"
        b"--cal\nContent-Type: text/calendar; method=REQUEST; charset=utf-8\n"
        b"Content-Disposition: attachment; filename=invite.ics\n\n"
        b"BEGIN:VCALENDAR\nVERSION:2.0\nMETHOD:REQUEST\nBEGIN:VEVENT\nUID:retro-1@demo.example\n"
        b"DTSTART:20261127T090000Z\nSUMMARY:Retro\nEND:VEVENT\nEND:VCALENDAR\n"
        b"--cal--\n",
        _headers(9, b"Dot Person <dots@demo.example>", b"Lines that start with a dot")
        + b"Content-Type: text/plain\n\n"
        b"POP3 stuffs these lines with an extra dot; the payload must not show it:\n"
        b".hidden\n..two dots\n.\nend\n",
        _headers(10, b"Legacy <legacy@demo.example>", b"Wrong charset label")
        + b"Content-Type: text/plain; charset=x-unknown-charset\n\n"
        + "Grüße aus dem Büro — declared with an unknown charset.\n".encode()
        + b"",
        _headers(
            11,
            b"Undisclosed <sender@demo.example>",
            b"Group addresses",
            b"Bcc: Team: ann@demo.example, Ben <ben@demo.example>;\n",
        )
        + b"Content-Type: text/plain\n\nA group in Bcc is flattened into addresses.\n",
        _headers(12, b"Monitor <monitor@demo.example>", b"Disk usage report")
        + b"Content-Type: multipart/mixed; boundary=rep\n\n"
        b"--rep\nContent-Type: text/plain\n\nDisk usage at 71 %.\n"
        b"--rep\nContent-Type: text/csv; name=usage.csv\nContent-Disposition: attachment\n\n"
        b"host,used\nweb-1,71\ndb-1,64\n"
        b"--rep--\n",
    ]
    return msgs
