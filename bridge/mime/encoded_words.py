"""Header text: raw bytes to Unicode, and RFC 2047 encoded words decoded, without ever raising."""

from __future__ import annotations

import binascii
import re
from typing import NamedTuple

from bridge.mime.charsets import decode_bytes, lookup_charset, utf8_with_replacements
from bridge.mime.transfer import repair_base64

# The payload may hold literal spaces (not allowed, but written and decoded by everyone).
ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\r\n]*)\?=")
_WSP_ONLY = re.compile(r"[ \t\r\n]*\Z")


class HeaderText(NamedTuple):
    """A decoded header value; ``problem`` is ``(kind, detail)`` when decoding was lossy."""

    text: str
    problem: tuple[str, str] | None


def bytes_to_text(raw: bytes, fallback_charset: str | None = None) -> HeaderText:
    """Header bytes to str: ASCII, else UTF-8 (RFC 6532), else the part's charset, else cp1252.

    UTF-8 with a few bad bytes stays UTF-8, with U+FFFD for the bad bytes only.
    """
    try:
        return HeaderText(raw.decode("ascii"), None)
    except UnicodeDecodeError:
        pass
    try:
        return HeaderText(raw.decode("utf-8"), None)
    except UnicodeDecodeError:
        pass
    mostly = utf8_with_replacements(raw)
    if mostly is not None:
        detail = f"8-bit header decoded as utf-8 with {mostly[1]} bad bytes replaced"
        return HeaderText(mostly[0], ("header_8bit", detail))
    decoded = decode_bytes(raw, fallback_charset if lookup_charset(fallback_charset) else None)
    used = fallback_charset if decoded.problem is None else "windows-1252"
    return HeaderText(decoded.text, ("header_8bit", f"8-bit header bytes decoded as {used}"))


def _word_bytes(encoding: str, payload: str) -> tuple[bytes, bool]:
    """The bytes of one encoded word's payload and whether they had to be repaired."""
    data = payload.encode("ascii", "replace")
    if encoding in "Bb":
        try:
            return binascii.a2b_base64(data + b"=" * (-len(data) % 4)), False
        except (binascii.Error, ValueError):
            return repair_base64(data), True
    return binascii.a2b_qp(data, header=True), False


def decode_encoded_words(text: str) -> HeaderText:
    """Decode RFC 2047 encoded words in ``text``; whitespace between adjacent words is dropped.

    Adjacent words in the same charset are joined before decoding, so a multi-byte character
    split across two words (common in CJK mail) comes out whole.
    """
    if "=?" not in text:
        return HeaderText(text, None)
    out: list[str] = []
    problem: tuple[str, str] | None = None
    pending = bytearray()
    pending_charset = ""
    pos = 0

    def flush() -> None:
        nonlocal problem, pending
        if pending:
            decoded = decode_bytes(bytes(pending), pending_charset)
            out.append(decoded.text)
            if decoded.problem is not None and problem is None:
                problem = ("encoded_word", f"charset {pending_charset!r}: {decoded.problem[1]}")
            pending = bytearray()

    for match in ENCODED_WORD.finditer(text):
        between = text[pos : match.start()]
        if between and not (pending and _WSP_ONLY.match(between)):
            flush()
            out.append(between)
        charset = match.group(1).split("*", 1)[0]
        data, repaired = _word_bytes(match.group(2), match.group(3))
        if repaired and problem is None:
            problem = ("encoded_word", "invalid base64 in an encoded word")
        if pending and charset.lower() != pending_charset.lower():
            flush()
        pending_charset = charset
        pending += data
        pos = match.end()
    flush()
    out.append(text[pos:])
    return HeaderText("".join(out), problem)


def decode_header_value(raw: bytes, fallback_charset: str | None = None) -> HeaderText:
    """Raw (unfolded) header bytes to the text a mail client shows."""
    first = bytes_to_text(raw, fallback_charset)
    second = decode_encoded_words(first.text)
    return HeaderText(second.text, first.problem or second.problem)
