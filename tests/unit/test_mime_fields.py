"""Header-level decoding: charsets, RFC 2047 words, addresses, dates, parameters, encodings."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bridge.mime.charsets import decode_bytes, lookup_charset
from bridge.mime.encoded_words import decode_encoded_words, decode_header_value
from bridge.mime.fields import decode_addresses, parse_date, parse_mime_header, parse_msgids
from bridge.mime.transfer import decode_transfer, normalize_cte


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("UTF-8", "utf-8"),
        ('"utf8"', "utf-8"),
        ("iso-8859-1", "cp1252"),
        ("us-ascii", "ascii"),
        ("gb2312", "gb18030"),
        ("ks_c_5601-1987", "cp949"),
        ("Shift_JIS", "cp932"),
        ("x-koi8-r", "koi8-r"),
        ("x-no-such", None),
        ("", None),
        ("base64", None),  # a bytes-to-bytes codec is not a charset
        ("zlib", None),
        ("unicode_escape", None),
        ("idna", None),
    ],
)
def test_charset_labels(label: str, codec: str | None) -> None:
    """Labels map to mail-client supersets; unknown and non-text codecs are refused."""
    assert lookup_charset(label) == codec


@pytest.mark.parametrize(
    ("data", "declared", "text", "kind"),
    [
        ("é".encode(), "utf-8", "é", None),
        ("é".encode("latin-1"), "iso-8859-1", "é", None),
        (b"\x81", "iso-8859-1", "\x81", None),  # undefined in cp1252: kept as Latin-1
        ("é".encode(), "us-ascii", "é", "charset_mismatch"),
        ("“é”".encode("cp1252"), "utf-8", "“é”", "charset_mismatch"),
        ("é".encode(), "x-bogus", "é", "unknown_charset"),
        ("é".encode("latin-1"), None, "é", "charset_missing"),
        (b"plain", None, "plain", None),
        (b"\x82\xa0\x82", "shift_jis", "\u3042\ufffd", "charset_mismatch"),
    ],
)
def test_decode_bytes_fallbacks(
    data: bytes, declared: str | None, text: str, kind: str | None
) -> None:
    """Declared charset first, then UTF-8, then cp1252 (or U+FFFD for multi-byte charsets)."""
    decoded = decode_bytes(data, declared)
    assert decoded.text == text
    assert (decoded.problem[0] if decoded.problem else None) == kind


def test_encoded_words_joined_across_a_split_character() -> None:
    """Adjacent words in one charset are joined before decoding; the space between is dropped."""
    raw = "日本".encode("iso-2022-jp")
    a, b = base64.b64encode(raw[:4]).decode(), base64.b64encode(raw[4:]).decode()
    text = f"=?iso-2022-jp?B?{a}?= =?iso-2022-jp?B?{b}?= tail"
    assert decode_encoded_words(text).text == "日本 tail"


def test_encoded_words_keep_text_between_and_language_suffix() -> None:
    """Plain text between words stays; RFC 2231 language tags in the charset are ignored."""
    assert decode_encoded_words("a =?utf-8*en?q?b_c?= d").text == "a b c d"
    assert decode_encoded_words("=?utf-8?q?x?=  =?iso-8859-1?q?=E9?=").text == "xé"


def test_header_value_with_latin1_bytes_uses_part_charset() -> None:
    """Raw 8-bit header bytes that are not UTF-8 use the part's charset and are marked lossy."""
    decoded = decode_header_value("Grüße".encode("latin-1"), "iso-8859-1")
    assert decoded.text == "Grüße"
    assert decoded.problem is not None
    assert decoded.problem[0] == "header_8bit"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a@example.org", [("", "a@example.org")]),
        ('"Doe, Jane" <j@x.org>, b@x.org', [("Doe, Jane", "j@x.org"), ("", "b@x.org")]),
        ("team: a@x.org, B <b@x.org>;", [("", "a@x.org"), ("B", "b@x.org")]),
        ("undisclosed-recipients:;", []),
        ("a@x.org (Al Pha)", [("Al Pha", "a@x.org")]),
        ("Al a@x.org", [("Al", "a@x.org")]),
        ("=?utf-8?q?J=C3=B6rg?= <j@x.org>", [("Jörg", "j@x.org")]),
        ('"=?utf-8?q?J=C3=B6rg?=" <j@x.org>', [("Jörg", "j@x.org")]),
        ('"unbalanced <u@x.org>', [("unbalanced", "u@x.org")]),
        ("<@relay:r@x.org>", [("", "r@x.org")]),
        (",,, ,", []),
        ("Al <a@x.org", [("Al", "a@x.org")]),
    ],
)
def test_address_lists(text: str, expected: list[tuple[str, str]]) -> None:
    """Address lists are parsed leniently, groups flattened, names decoded."""
    assert decode_addresses(text) == expected


def test_dates() -> None:
    """Dates keep their offset; -0000 means UTC; garbage and impossible dates are None."""
    assert parse_date("Tue, 5 Mar 2024 09:15:00 +0530") == datetime(
        2024, 3, 5, 9, 15, tzinfo=timezone(timedelta(hours=5, minutes=30))
    )
    assert parse_date("5 Mar 2024 09:15 -0000") == datetime(2024, 3, 5, 9, 15, tzinfo=UTC)
    assert parse_date("not a date") is None
    assert parse_date("Tue, 45 Mar 2024 09:15:00 +0000") is None


def test_message_ids() -> None:
    """References give every <id>; a value without brackets is split on whitespace."""
    assert parse_msgids("<a@x> junk\r\n <b@y>") == ["<a@x>", "<b@y>"]
    assert parse_msgids("a@x b@y") == ["a@x", "b@y"]


def test_mime_parameters() -> None:
    """Parameters: quoting, RFC 2231 continuations and charsets, RFC 2047 in quoted values."""
    assert parse_mime_header('Text/Plain; Charset="UTF-8"; format=flowed') == (
        "text/plain",
        {"charset": "UTF-8", "format": "flowed"},
    )
    value, params = parse_mime_header(
        'attachment; filename*0*=utf-8\'\'%C3%A9t%C3%A9; filename*1=".pdf"; filename="x.pdf"'
    )
    assert (value, params["filename"]) == ("attachment", "été.pdf")
    assert parse_mime_header('a/b; name="=?utf-8?B?w6k=?="')[1] == {"name": "é"}
    assert parse_mime_header('a/b; name="semi;colon"; x=1')[1] == {"name": "semi;colon", "x": "1"}


@pytest.mark.parametrize(
    ("cte", "data", "decoded", "kind"),
    [
        ("base64", b"aGVs\r\nbG8=\r\n", b"hello", None),
        ("base64", b"aGVsbG8", b"hello", "invalid_base64"),
        ("base64", b"aGV*sbG8=", b"hello", "invalid_base64"),
        ("quoted-printable", b"a=3Db=\r\nc", b"a=bc", None),
        ("quoted-printable", b"a=ZZ", b"a=ZZ", "invalid_quoted_printable"),
        ("8bit", b"\xff", b"\xff", None),
        ("x-weird", b"keep", b"keep", "unknown_transfer_encoding"),
    ],
)
def test_transfer_decoding(cte: str, data: bytes, decoded: bytes, kind: str | None) -> None:
    """Transfer encodings decode leniently and report what they repaired."""
    result = decode_transfer(memoryview(data), normalize_cte(cte))
    assert bytes(result.data) == decoded
    assert (result.problem[0] if result.problem else None) == kind


def test_cte_misspellings() -> None:
    """Common misspellings of Content-Transfer-Encoding values are understood."""
    assert [normalize_cte(v) for v in ["Base64 ", '"base-64"', "Quoted-Printable", None]] == [
        "base64",
        "base64",
        "quoted-printable",
        "7bit",
    ]
