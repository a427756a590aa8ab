"""Messages with known answers: built from a random specification, so the right payload
is known by construction (ground truth), not by asking another parser.

``generate(rng)`` returns ``(raw bytes, Expected)``. The variety follows issue 14: nested
multiparts, encoded words split across lines (mid-character too) in mixed charsets, RFC 2231
continuations split anywhere (mid percent-escape too), base64 with garbage, quoted-printable
soft breaks (some followed by whitespace), 8-bit and binary parts, CJK and legacy charsets,
superset and mislabelled charsets the bridge is documented to read right, a missing boundary
parameter, message/rfc822, inline images with Content-ID, calendar parts, TNEF, format=flowed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import urllib.parse
from dataclasses import dataclass, field

# (label written in the message, Python codec that encodes the sample text, sample words)
CHARSETS: list[tuple[str, str, list[str]]] = [
    ("utf-8", "utf-8", ["café", "naïve", "日本語", "Ελληνικά", "emoji 🎉", "Zürich", "ok"]),
    ("iso-8859-1", "cp1252", ["café", "déjà vu", "Müller", "“quoted”", "5 €", "ok"]),
    ("windows-1252", "cp1252", ["smart “quotes”", "em—dash", "façade", "ok"]),
    ("iso-8859-2", "iso8859-2", ["Łódź", "Příliš", "žluťoučký", "ok"]),
    ("koi8-r", "koi8-r", ["Привет", "мир", "почта", "ok"]),
    ("windows-1251", "cp1251", ["Здравствуйте", "письмо", "ok"]),
    ("shift_jis", "cp932", ["こんにちは", "日本", "①②", "テスト", "ok"]),
    ("iso-2022-jp", "iso2022_jp", ["こんにちは", "日本語", "テスト", "ok"]),
    ("euc-jp", "euc_jp", ["こんにちは", "東京", "ok"]),
    ("gb2312", "gb18030", ["你好", "中文邮件", "ok"]),
    ("gbk", "gb18030", ["你好", "镕", "ok"]),
    ("big5", "cp950", ["你好", "繁體中文", "ok"]),
    ("euc-kr", "cp949", ["안녕하세요", "메일", "ok"]),
    ("ks_c_5601-1987", "cp949", ["안녕하세요", "똠방각하", "ok"]),
    ("windows-874", "cp874", ["สวัสดี", "ok"]),
    ("iso-8859-8-i", "iso8859-8", ["שלום", "ok"]),
    ("windows-1256", "cp1256", ["مرحبا", "ok"]),
]
ATTACHMENT_TYPES = [
    ("application/pdf", ".pdf"),
    ("image/png", ".png"),
    ("application/octet-stream", ".bin"),
    ("application/ms-tnef", ".dat"),
    ("text/csv", ".csv"),
    ("application/zip", ".zip"),
]
NAME_WORDS = ["report", "Résumé", "日本語の資料", "Übersicht", "отчёт", "file", "a b", "数据"]


@dataclass
class Expected:
    """The payload fields a correct parser produces for a generated message."""

    subject: str
    from_: list[tuple[str, str]]
    to: list[tuple[str, str]]
    text: str | None
    html: str | None
    attachments: list[tuple[str, str | None, int, str]] = field(default_factory=list)
    """``(content_type, filename, size, sha256)`` of each attachment, in order."""
    enclosed_subjects: list[str] = field(default_factory=list)


@dataclass
class _Part:
    head: list[str]
    body: bytes


def _words(rng: random.Random, words: list[str], n: int) -> str:
    return " ".join(rng.choice(words) for _ in range(n))


def _q(piece: bytes, lenient: bool) -> str:
    """Q encoding; ``lenient`` leaves printable ASCII (spaces, ``:()``) literal, as many
    mailers do although RFC 2047 does not allow it."""
    out = []
    for b in piece:
        char = chr(b)
        if (char.isascii() and char.isalnum()) or (lenient and 32 <= b < 127 and char not in "?=_"):
            out.append(char)
        else:
            out.append(f"={b:02X}")
    return "".join(out)


def encoded_words(rng: random.Random, text: str, label: str, codec: str) -> str:
    """``text`` as RFC 2047 words, B or Q, split into pieces, sometimes mid-character."""
    data = text.encode(codec)
    if codec.startswith("iso2022"):  # stateful: only whole text per word is safe
        cuts: list[int] = []
    else:
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 3))))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    words = []
    lenient = rng.random() < 0.3
    for piece in pieces:
        if rng.random() < 0.5:
            payload = base64.b64encode(piece).decode()
            words.append(f"=?{label}?B?{payload}?=")
        else:
            words.append(f"=?{label}?Q?{_q(piece, lenient)}?=")
    return rng.choice(["\r\n ", " ", "\r\n\t"]).join(words)


def _header_text(rng: random.Random, text: str) -> str:
    label, codec, _ = rng.choice([c for c in CHARSETS if _can(text, c[1])])
    if text.isascii() and rng.random() < 0.5:
        return text
    return encoded_words(rng, text, label, codec)


def _can(text: str, codec: str) -> bool:
    try:
        text.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def _filename_params(rng: random.Random, name: str) -> str:
    """A filename parameter: plain, RFC 2047 in quotes, or RFC 2231 split anywhere."""
    if name.isascii() and " " not in name and rng.random() < 0.5:
        return f"filename={name}"
    style = rng.choice(["2231", "2231", "2047"])
    if style == "2047":
        words = encoded_words(rng, name, "utf-8", "utf-8").replace("\r\n", "")
        return f'filename="{words}"'
    escaped = urllib.parse.quote(name.encode("utf-8"), safe="")
    n = rng.randint(1, 4)
    cuts = sorted(rng.sample(range(1, len(escaped)), min(len(escaped) - 1, n - 1)))
    pieces = [escaped[a:b] for a, b in zip([0, *cuts], [*cuts, len(escaped)], strict=True)]
    if len(pieces) == 1:
        return f"filename*=utf-8''{pieces[0]}"
    out = [f"filename*0*=utf-8''{pieces[0]}"]
    out += [f"filename*{i}*={p}" for i, p in enumerate(pieces[1:], 1)]
    return ";\r\n ".join(out)


def _text_part(rng: random.Random, subtype: str, text: str) -> _Part:
    """A text part whose decoded, \\n-normalised content is exactly ``text``."""
    label, codec, _ = rng.choice([c for c in CHARSETS if _can(text, c[1])])
    if text.isascii() and rng.random() < 0.3:
        label = "us-ascii"
    data = text.replace("\n", "\r\n").encode(codec)
    cte = rng.choice(["7bit" if data.isascii() else "8bit", "quoted-printable", "base64"])
    if codec.startswith("iso2022") and cte == "8bit":
        cte = "7bit"
    if cte == "quoted-printable":
        body = _qp(rng, data)
    elif cte == "base64":
        body = base64.encodebytes(data).replace(b"\n", b"\r\n")
        body = body[:-2] if body.endswith(b"\r\n") else body
    else:
        body = data
    head = [f"Content-Type: text/{subtype}; charset={label}", f"Content-Transfer-Encoding: {cte}"]
    return _Part(head, body)


def _qp(rng: random.Random, data: bytes) -> bytes:
    encoded = binascii.b2a_qp(data, istext=False, header=False)
    if rng.random() < 0.3:  # soft breaks followed by whitespace (some gateways add it)
        encoded = encoded.replace(b"=\n", b"= \r\n").replace(b"=\r\n", b"= \r\n")
    return encoded.replace(b"\r\r\n", b"\r\n")


def _flowed(rng: random.Random, text_words: list[str]) -> tuple[_Part, str]:
    paragraph = _words(rng, [w for w in text_words if w.isascii()] or ["word"], 40)
    lines, line = [], ""
    for word in paragraph.split(" "):
        if line and len(line) + len(word) > 60:
            lines.append(line + " ")
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    body = "\r\n".join(lines).encode()
    head = ["Content-Type: text/plain; charset=us-ascii; format=flowed"]
    return _Part(head, body), paragraph


def _attachment(rng: random.Random, inline_cid: bool = False) -> tuple[_Part, tuple]:
    ctype, ext = rng.choice(ATTACHMENT_TYPES)
    size = rng.choice([0, 1, 2, 3, 57, 100, 1000, rng.randint(0, 4000)])
    data = rng.randbytes(size)
    name = rng.choice(NAME_WORDS) + ext
    if ctype == "application/ms-tnef":
        name = "winmail.dat"
    disposition = "inline" if inline_cid else "attachment"
    head = [
        f"Content-Type: {ctype}",
        f"Content-Disposition: {disposition}; {_filename_params(rng, name)}",
    ]
    if inline_cid:
        head.append(f"Content-ID: <img{rng.randint(0, 10**6)}@example.org>")
    body = base64.encodebytes(data).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    if rng.random() < 0.15 and body:  # garbage between lines: skipped (and reported)
        body = body.replace(b"\r\n", b"!\r\n", 1) + b"\r\n*"
    head.append("Content-Transfer-Encoding: base64")
    return _Part(head, body), (ctype, name, size, hashlib.sha256(data).hexdigest())


def _calendar(rng: random.Random) -> tuple[_Part, tuple]:
    data = (
        b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nSUMMARY:Meet\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR"
    )
    head = ["Content-Type: text/calendar; method=REQUEST; charset=utf-8"]
    return _Part(head, data), ("text/calendar", None, len(data), hashlib.sha256(data).hexdigest())


def _multipart(rng: random.Random, subtype: str, parts: list[_Part], declare: bool = True) -> _Part:
    boundary = f"=_b{rng.randint(0, 10**9)}_" + rng.choice(
        ["", "x'()+,-./:=?"[: rng.randint(0, 12)]]
    )
    boundary = boundary.rstrip(" ")
    out = bytearray()
    if declare and rng.random() < 0.2:  # without a boundary parameter it would be kept
        out += b"This is a multi-part message in MIME format.\r\n"
    for part in parts:
        out += b"--" + boundary.encode() + b"\r\n"
        out += ("\r\n".join(part.head) + "\r\n\r\n").encode()
        out += part.body + b"\r\n"
    out += b"--" + boundary.encode() + b"--\r\n"
    if declare:
        head = [f'Content-Type: multipart/{subtype}; boundary="{boundary}"']
    else:
        head = [f"Content-Type: multipart/{subtype}"]
    return _Part(head, bytes(out))


def _address(rng: random.Random) -> tuple[str, str, str]:
    """(header text, expected name, expected address)."""
    user = rng.choice(["alice", "bob", "c.d", "e+tag", "x_y"])
    address = f"{user}@{rng.choice(['example.org', 'mail.example.com'])}"
    name = rng.choice(
        [
            "",
            "Alice",
            "Bob Smith",
            "Jürgen Groß",
            "山田太郎",
            "Иван",
            "O'Neil",
            "Café (Paris): Sales",
        ]
    )
    if not name:
        return address, "", address
    if rng.random() < 0.3:  # an encoded display name, even for ASCII ones with specials
        words = encoded_words(rng, name, "utf-8", "utf-8").replace("\r\n", "")
        return f"{words} <{address}>", name, address
    if name.isascii() and not any(c in name for c in "():'"):
        return f"{name} <{address}>", name, address
    if name.isascii():
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{address}>', name, address
    label, codec, _ = rng.choice([c for c in CHARSETS if _can(name, c[1])])
    words = encoded_words(rng, name, label, codec).replace("\r\n", "")
    return f"{words} <{address}>", name, address


def generate(rng: random.Random, depth: int = 0) -> tuple[bytes, Expected]:
    """One message and its known payload fields."""
    _, _, words = rng.choice(CHARSETS)
    subject = _words(rng, words, rng.randint(1, 5))
    from_header, from_name, from_addr = _address(rng)
    to = [_address(rng) for _ in range(rng.randint(1, 3))]
    expected = Expected(
        subject=subject,
        from_=[(from_name, from_addr)],
        to=[(n, a) for _, n, a in to],
        text=None,
        html=None,
    )
    text = _words(rng, words, rng.randint(1, 30)) + "\nline two\n"
    html = f"<p>{_words(rng, words, rng.randint(1, 10))}</p>\n"
    layout = rng.choice(["plain", "html", "alternative", "mixed", "related", "flowed", "nested"])
    if depth:
        layout = rng.choice(["plain", "alternative"])
    attachments: list[tuple] = []
    if layout == "plain":
        root = _text_part(rng, "plain", text)
        expected.text = text
    elif layout == "flowed":
        root, expected.text = _flowed(rng, words)
    elif layout == "html":
        root = _text_part(rng, "html", html)
        expected.html = html
    else:
        alt_parts = [_text_part(rng, "plain", text), _text_part(rng, "html", html)]
        expected.text, expected.html = text, html
        if rng.random() < 0.3:
            cal, meta = _calendar(rng)
            alt_parts.append(cal)
            attachments.append(meta)
        alternative = _multipart(rng, "alternative", alt_parts)
        if layout == "alternative":
            root = alternative
        elif layout == "related":
            image, meta = _attachment(rng, inline_cid=True)
            attachments.append(meta)
            root = _multipart(rng, "related", [alternative, image])
        else:
            parts = [alternative]
            for _ in range(rng.randint(1, 3)):
                part, meta = _attachment(rng)
                parts.append(part)
                attachments.append(meta)
            if layout == "nested" and depth == 0:
                inner, inner_expected = generate(rng, depth + 1)
                inner_name = "forwarded.eml"
                parts.append(
                    _Part(
                        [
                            "Content-Type: message/rfc822",
                            f"Content-Disposition: attachment; filename={inner_name}",
                        ],
                        inner,
                    )
                )
                attachments.append(
                    ("message/rfc822", inner_name, len(inner), hashlib.sha256(inner).hexdigest())
                )
                expected.enclosed_subjects.append(inner_expected.subject)
            root = _multipart(rng, "mixed", parts, declare=rng.random() > 0.05)
    expected.attachments = attachments
    headers = [
        f"From: {from_header}",
        "To: " + ",\r\n ".join(h for h, _, _ in to),
        f"Subject: {_header_text(rng, subject)}",
        f"Message-ID: <{rng.randint(0, 10**12)}@example.org>",
        "Date: Tue, 5 Mar 2024 09:15:00 +0100",
        "MIME-Version: 1.0",
        *root.head,
    ]
    raw = ("\r\n".join(headers) + "\r\n\r\n").encode() + root.body
    return raw, expected
