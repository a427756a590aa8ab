"""Content-Transfer-Encoding decoders that repair what they can and say what they repaired."""

from __future__ import annotations

import binascii
import re
from typing import NamedTuple

Buffer = bytes | memoryview

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_B64 = bytes(c for c in range(256) if c not in _B64_ALPHABET)
_B64_TEXT = _B64_ALPHABET + b"=\r\n \t"
_SOFT_BREAK_WSP = re.compile(rb"=[ \t]+(?=\r?\n)")
_BAD_QP = re.compile(rb"=(?![0-9A-Fa-f]{2}|[ \t]*\r?\n|[ \t]*\Z)")


class Transferred(NamedTuple):
    """Decoded part content and, if the encoding was broken or unknown, ``(kind, detail)``."""

    data: Buffer
    problem: tuple[str, str] | None


def normalize_cte(value: str | None) -> str:
    """Lower-case a Content-Transfer-Encoding value and map common misspellings."""
    if not value:
        return "7bit"
    cte = value.strip().strip("\"'").strip().lower()
    if cte in ("7bit", "8bit", "binary", "base64", "quoted-printable"):
        return cte
    if re.sub(r"[^a-z0-9]", "", cte) in ("base64", "xbase64", "b64"):
        return "base64"  # "base-64", "x-base64": but not "x-gzip64" and the like
    if "quoted" in cte or cte == "qp":
        return "quoted-printable"
    if cte in ("x-uuencode", "uuencode", "x-uue", "uue"):
        return "x-uuencode"
    if cte in ("7-bit", "8-bit", "7 bit", "8 bit", "none", ""):
        return "8bit"
    return cte


def repair_base64(data: Buffer) -> bytes:
    """Best-effort base64 decode: drop characters outside the alphabet, fix the padding."""
    cleaned = bytes(data).translate(None, _NOT_B64)
    usable = len(cleaned) - len(cleaned) % 4
    tail = cleaned[usable:]
    tail = tail + b"=" * (4 - len(tail)) if len(tail) >= 2 else b""
    try:
        decoded = binascii.a2b_base64(cleaned[:usable] + tail)
    except (binascii.Error, ValueError):  # pragma: no cover - cleaned input is always valid
        decoded = b""
    return decoded


def _count_stray(data: Buffer) -> int:
    """How many bytes of ``data`` are neither base64 nor padding nor whitespace.

    In 1 MiB slices, so a large attachment is not copied whole (translate runs at GB/s).
    """
    view = memoryview(data)
    step = 1 << 20
    return sum(
        len(bytes(view[i : i + step]).translate(None, _B64_TEXT)) for i in range(0, len(view), step)
    )


def _regular_shape(view: memoryview, decoded_size: int) -> bool:
    """Whether ``view`` is exactly the padded base64 of ``decoded_size`` bytes in lines of
    one length (the last one shorter) ending in LF or CRLF: then it holds no stray characters
    (they would add to the length), and the slower scan is skipped."""
    alphabet = 4 * ((decoded_size + 2) // 3)
    total = len(view)
    head = bytes(view[:200])
    nl = head.find(b"\n")
    if nl < 0:
        return total == alphabet
    eol = 2 if nl > 0 and head[nl - 1] == 0x0D else 1
    width = nl + 1 - eol
    if width <= 0 or width % 4:
        return False
    lines = max(1, -(-alphabet // width))
    expected = alphabet + (lines - 1) * eol
    return total in (expected, expected + eol)


def decode_base64(data: Buffer) -> Transferred:
    """Decode base64, ignoring line breaks; repair stray characters and broken padding."""
    try:
        decoded = binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        pass
    else:
        stray = 0 if _regular_shape(memoryview(data), len(decoded)) else _count_stray(data)
        if stray:  # a2b_base64 skips characters outside the alphabet silently
            detail = f"{stray} characters outside the base64 alphabet skipped"
            return Transferred(decoded, ("invalid_base64", detail))
        return Transferred(decoded, None)
    detail = "bad padding or characters; decoded best effort"
    return Transferred(repair_base64(data), ("invalid_base64", detail))


def decode_qp(data: Buffer) -> Transferred:
    """Decode quoted-printable; invalid ``=`` sequences are kept as they are.

    A soft line break with whitespace after the ``=`` (added by some gateways) is still a
    soft line break (RFC 2045 6.7 (3): trailing whitespace is to be deleted).
    """
    if _SOFT_BREAK_WSP.search(data) is not None:
        data = _SOFT_BREAK_WSP.sub(b"=", data)
    decoded = binascii.a2b_qp(data)
    if _BAD_QP.search(data) is not None:
        return Transferred(decoded, ("invalid_quoted_printable", "invalid '=' sequence kept as is"))
    return Transferred(decoded, None)


def decode_uu(data: Buffer) -> Transferred:
    """Decode uuencoded content between ``begin`` and ``end`` lines."""
    out: list[bytes] = []
    bad = 0
    started = False
    for line in bytes(data).splitlines():
        if not started:
            started = line.startswith(b"begin")
            continue
        if line.strip() in (b"end", b"`", b""):
            if line.strip() == b"end":
                break
            continue
        try:
            out.append(binascii.a2b_uu(line))
        except binascii.Error:
            try:  # some encoders pad lines badly; the length byte tells how much is real
                nbytes = (((line[0] - 32) & 63) * 4 + 5) // 3
                out.append(binascii.a2b_uu(line[:nbytes]))
            except (binascii.Error, IndexError):
                bad += 1
    if not started:
        return Transferred(data, ("invalid_uuencode", "no 'begin' line; content kept as is"))
    if bad:
        return Transferred(b"".join(out), ("invalid_uuencode", f"{bad} undecodable lines skipped"))
    return Transferred(b"".join(out), None)


def decode_transfer(data: Buffer, cte: str) -> Transferred:
    """Undo the transfer encoding ``cte`` (already normalised). Never raises."""
    if cte == "base64":
        return decode_base64(data)
    if cte == "quoted-printable":
        return decode_qp(data)
    if cte in ("7bit", "8bit", "binary"):
        return Transferred(data, None)
    if cte == "x-uuencode":
        return decode_uu(data)
    return Transferred(data, ("unknown_transfer_encoding", f"{cte[:40]!r}: content kept as is"))
