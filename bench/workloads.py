"""Deterministic benchmark workloads: the same bytes on every run and every machine.

- ``small``: 1000 messages of about 2 KB (plain, quoted-printable, small alternatives).
- ``mixed``: 200 messages, 12.6 MB in all: text, HTML, international charsets and
  encodings, a few 200 KB and 2 MB attachments.
- ``large_message``: one message of a given size, almost all of it one base64 attachment.

Used by the parse-only benchmark (``bench/parse_bench.py``) and the end-to-end benchmark.
Messages use CRLF line ends, as RETR delivers them.
"""

from __future__ import annotations

import base64
import random
import re

MIXED_TOTAL_BYTES = 12_600_000
"""Target size of the mixed workload (within 0.5%)."""

_WORDS = re.findall(
    r"\w+",
    "the quick brown fox jumps over lazy dog mail bridge webhook payload invoice order "
    "shipment meeting report quarter budget review please find attached regards thanks",
)
# Non-Latin look-alike letters are the point of this data.
_INTERNATIONAL = (
    ("utf-8", "Grüße aus München – Übersicht für Öl und Straße"),  # noqa: RUF001
    ("iso-8859-1", "Réunion à Paris: café, crème brûlée et déjà vu"),
    ("koi8-r", "Привет, это отчёт за квартал по продажам"),
    ("iso-2022-jp", "会議の議事録をお送りします。よろしくお願いします。"),
    ("shift_jis", "お見積りの件についてご連絡いたします"),
    ("gb2312", "关于下周会议安排的通知，请查收附件"),  # noqa: RUF001
    ("utf-8", "Ελληνικά κείμενα και emoji 🎉 για δοκιμή"),  # noqa: RUF001
    ("windows-1251", "Съобщение на български за тестване"),
)


def _text(rng: random.Random, size: int) -> str:
    lines: list[str] = []
    total = 0
    while total < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 12)))
        lines.append(line)
        total += len(line) + 2
    return "\r\n".join(lines)


def _b64_lines(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


def _headers(rng: random.Random, index: int, subject: str, extra: str = "") -> str:
    day = 1 + index % 28
    return (
        f"Return-Path: <sender{index}@example.org>\r\n"
        f"Received: from mx{index % 7}.example.org (mx.example.org [192.0.2.{index % 250}])\r\n"
        f"\tby pop.example.net with ESMTPS id {rng.getrandbits(48):x}\r\n"
        f"\tfor <user@example.net>; Mon, {day} Jan 2024 10:{index % 60:02d}:00 +0000\r\n"
        f"Message-ID: <{rng.getrandbits(64):x}.{index}@example.org>\r\n"
        f"Date: Mon, {day} Jan 2024 10:{index % 60:02d}:00 +0100\r\n"
        f'From: "Sender Number {index}" <sender{index}@example.org>\r\n'
        f"To: User <user@example.net>, other{index}@example.net\r\n"
        f"Subject: {subject}\r\n"
        f"MIME-Version: 1.0\r\n{extra}"
    )


def _plain(rng: random.Random, index: int, body_size: int) -> bytes:
    head = _headers(rng, index, f"Report {index}: " + _text(rng, 30)[:40])
    head += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n"
    return f"{head}\r\n{_text(rng, body_size)}\r\n".encode()


def _quoted(rng: random.Random, index: int, body_size: int) -> bytes:
    import quopri

    text = _text(rng, body_size).replace("fox", "Füchse").replace("café", "café")
    body = quopri.encodestring(text.encode("utf-8")).replace(b"\n", b"\r\n")
    head = _headers(rng, index, "=?utf-8?q?Gr=C3=BC=C3=9Fe_" + str(index) + "?=")
    head += "Content-Type: text/plain; charset=utf-8\r\n"
    head += "Content-Transfer-Encoding: quoted-printable\r\n"
    return head.encode() + b"\r\n" + body + b"\r\n"


def _alternative(rng: random.Random, index: int, body_size: int) -> bytes:
    text = _text(rng, body_size // 2)
    html = "<html><body><p>" + text.replace("\r\n", "</p>\r\n<p>") + "</p></body></html>"
    boundary = f"alt-{rng.getrandbits(40):x}"
    head = _headers(
        rng,
        index,
        f"Newsletter {index}",
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n',
    )
    return (
        f"{head}\r\n--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}\r\n"
        f"--{boundary}\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n{html}\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def _international(rng: random.Random, index: int, body_size: int) -> bytes:
    charset, phrase = _INTERNATIONAL[index % len(_INTERNATIONAL)]
    words = (phrase + " ") * max(1, body_size // (len(phrase.encode("utf-8")) + 1))
    lines = [words[i : i + 60] for i in range(0, len(words), 60)]
    body = "\r\n".join(lines).encode(charset)
    encoded_subject = base64.b64encode(phrase.encode(charset)).decode()
    cte = "8bit"
    if charset == "iso-2022-jp":
        cte = "7bit"
    elif index % 2:
        body, cte = _b64_lines(body), "base64"
    head = _headers(
        rng,
        index,
        f"=?{charset}?B?{encoded_subject}?=",
        f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: {cte}\r\n",
    )
    return head.encode() + b"\r\n" + body + b"\r\n"


def _with_attachment(rng: random.Random, index: int, attachment_size: int) -> bytes:
    boundary = f"mixed-{rng.getrandbits(40):x}"
    text = _text(rng, 800)
    html = f"<html><body><p>{text}</p></body></html>"
    data = rng.randbytes(attachment_size)
    name = f"report-{index}.pdf" if index % 2 else f"Übersicht {index}.zip"
    disposition = (
        f'attachment; filename="{name}"'
        if name.isascii()
        else f"attachment; filename*=utf-8''{name.replace(' ', '%20').replace('Ü', '%C3%9C')}"
    )
    head = _headers(
        rng,
        index,
        f"Files for {index}",
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n',
    )
    return (
        (
            f"{head}\r\n--{boundary}\r\n"
            f"Content-Type: multipart/alternative; boundary=in{boundary}\r\n"
            f"\r\n--in{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
            f"--in{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
            f"--in{boundary}--\r\n"
            f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Disposition: {disposition}\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + _b64_lines(data)
        + f"\r\n--{boundary}--\r\n".encode()
    )


def small_workload(count: int = 1000) -> list[bytes]:
    """``count`` messages of about 2 KB each (plain, quoted-printable, alternative)."""
    rng = random.Random(20240101)
    makers = (_plain, _plain, _quoted, _alternative)
    return [makers[i % len(makers)](rng, i, 1300) for i in range(count)]


def mixed_workload(count: int = 200) -> list[bytes]:
    """``count`` (200) messages, 12.6 MB in all: 3 with a 2 MB attachment, 15 with 200 KB,
    the rest text, HTML and international mail; the text sizes are scaled to the total."""
    rng = random.Random(20240202)
    big = {count * k // 3 + 5 for k in range(3)}
    medium = {count * k // 15 + 2 for k in range(15)} - big
    messages: list[bytes] = []
    for i in range(count):
        if i in big:
            messages.append(_with_attachment(rng, i, 2_000_000))
        elif i in medium:
            messages.append(_with_attachment(rng, i, 200_000))
        else:
            messages.append(b"")
    fixed = sum(len(m) for m in messages)
    rest = [i for i in range(count) if not messages[i]]
    per_message = (MIXED_TOTAL_BYTES - fixed) // max(1, len(rest))
    makers = (_plain, _alternative, _international, _quoted)
    for n, i in enumerate(rest):
        messages[i] = makers[n % len(makers)](rng, i, max(600, per_message - 900))
    return messages


def large_message(size: int = 50_000_000) -> bytes:
    """One message of about ``size`` bytes: a short text part and one base64 attachment."""
    rng = random.Random(50)
    return _with_attachment(rng, 1, size * 3 // 4 - 2000)


WORKLOADS = {"small": small_workload, "mixed": mixed_workload}
"""Workload name -> generator."""
