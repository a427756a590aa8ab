"""ISO-2022-JP as mail clients write it: the cp50220/cp50221 superset, decode only.

Outlook and Windows mail write ISO-2022-JP with Microsoft's code page 932 repertoire inside
the ``ESC $ B`` (JIS X 0208) sequences: NEC row 13 (circled digits, ``㈱``, roman numerals)
and the NEC-selected IBM extensions (rows 89-92), which Python's strict ``iso2022_jp``
refuses. This codec decodes JIS X 0208 runs through cp932, half-width katakana (``ESC ( I``
and SO/SI), JIS X 0212 (``ESC $ ( D``) through EUC-JP, and hands any other designation
(ISO-2022-JP-2, -2004, -3) to the Python codec that knows it. It is registered as
``popbridge-iso-2022-jp`` and used for the ``iso-2022-jp`` label.
"""

from __future__ import annotations

import codecs

NAME = "popbridge-iso-2022-jp"

_ASCII, _JIS0208, _KANA, _JIS0212 = range(4)
_ESCAPES: dict[bytes, int] = {
    b"(B": _ASCII,
    b"(J": _ASCII,  # JIS X 0201 Roman: ASCII but for two symbols, read as ASCII like clients
    b"(I": _KANA,
    b"$@": _JIS0208,
    b"$B": _JIS0208,
    b"$(B": _JIS0208,
    b"$(@": _JIS0208,
    b"$(D": _JIS0212,
}
_OTHER_CODECS = ("iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_3")


class _Unsupported(Exception):
    """An escape sequence this decoder leaves to the other ISO-2022-JP codecs."""


def _sjis_pair(j1: int, j2: int) -> bytes:
    """The Shift_JIS (cp932) bytes of a JIS X 0208 code (rows 1-94)."""
    s1 = ((j1 + 1) >> 1) + (0x70 if j1 <= 0x5E else 0xB0)
    s2 = (j2 + (0x1F if j2 < 0x60 else 0x20)) if j1 & 1 else j2 + 0x7E
    return bytes((s1, s2))


def _decode_run(mode: int, run: bytearray, errors: str) -> str:
    if mode == _ASCII:
        return run.decode("ascii", errors)
    if mode == _KANA:
        return "".join(chr(b + 0xFF40) if 0x21 <= b <= 0x5F else chr(b) for b in run)
    codec = "cp932" if mode == _JIS0208 else "euc_jp"
    pieces: list[str] = []
    out = bytearray()
    for i in range(0, len(run), 2):
        pair = run[i : i + 2]
        if len(pair) == 2 and 0x21 <= pair[0] <= 0x7E and 0x21 <= pair[1] <= 0x7E:
            if mode == _JIS0208:
                out += _sjis_pair(pair[0], pair[1])
            else:
                out += bytes((0x8F, pair[0] | 0x80, pair[1] | 0x80))
            continue
        if errors == "strict":  # a half character, or bytes outside the 94x94 table
            raise UnicodeDecodeError(NAME, bytes(run), i, i + len(pair), "not a JIS code")
        pieces.append(out.decode(codec, errors))
        pieces.append("\ufffd")
        out = bytearray()
    pieces.append(out.decode(codec, errors))
    return "".join(pieces)


def decode(data: bytes | memoryview, errors: str = "strict") -> tuple[str, int]:
    """Decode ISO-2022-JP (cp50221 repertoire) to str; ``errors`` as for bytes.decode."""
    raw = bytes(data)
    try:
        return raw.decode("iso2022_jp"), len(raw)  # the common case, at C speed
    except UnicodeDecodeError:
        pass
    try:
        return _decode(raw, errors), len(raw)
    except _Unsupported:
        pass
    for name in _OTHER_CODECS:
        try:
            return raw.decode(name), len(raw)
        except UnicodeDecodeError:
            continue
    return raw.decode(_OTHER_CODECS[0], errors), len(raw)


def _decode(raw: bytes, errors: str) -> str:
    out: list[str] = []
    mode = _ASCII
    before_so = _ASCII
    run = bytearray()
    i, n = 0, len(raw)
    while i < n:
        b = raw[i]
        if b == 0x1B:
            seq = next((e for e in _ESCAPES if raw.startswith(e, i + 1)), None)
            if seq is None:
                if raw.startswith(b"&@", i + 1):  # JIS X 0208-1990 announcer: no change
                    i += 3
                    continue
                raise _Unsupported
            out.append(_decode_run(mode, run, errors))
            run = bytearray()
            mode = _ESCAPES[seq]
            i += 1 + len(seq)
            continue
        if b in (0x0E, 0x0F):  # SO / SI: half-width katakana shift (cp50222)
            out.append(_decode_run(mode, run, errors))
            run = bytearray()
            if b == 0x0E:
                before_so, mode = mode, _KANA
            else:
                mode = before_so
            i += 1
            continue
        if b >= 0x80:
            out.append(_decode_run(mode, run, errors))
            run = bytearray()
            if errors == "strict":
                raise UnicodeDecodeError(NAME, raw, i, i + 1, "8-bit byte in ISO-2022-JP")
            out.append("\ufffd")
            i += 1
            continue
        if b < 0x21 and mode in (_JIS0208, _JIS0212):  # a line break inside a run: keep it
            out.append(_decode_run(mode, run, errors))
            run = bytearray()
            out.append(chr(b))
            i += 1
            continue
        run.append(b)
        i += 1
    out.append(_decode_run(mode, run, errors))
    return "".join(out)


def _encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
    return codecs.encode(text, "iso2022_jp_ext", errors), len(text)


def _search(name: str) -> codecs.CodecInfo | None:
    if name.replace("_", "-") != NAME:
        return None
    # typeshed wants a decoder taking any Buffer; this one takes bytes and memoryview.
    info = codecs.CodecInfo(_encode, decode, name=NAME)  # type: ignore[arg-type]
    info._is_text_encoding = True
    return info


codecs.register(_search)
