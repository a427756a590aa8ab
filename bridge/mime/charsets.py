"""Bytes to text whatever the declared charset says: the declared one, then UTF-8, then a fallback.

Labels are mapped the way mail clients and browsers read them (WHATWG-style supersets:
``iso-8859-1`` and ``us-ascii`` read as windows-1252, ``gb2312`` as GB18030, ``ks_c_5601-1987``
as cp949, ``shift_jis`` as cp932). Decoding never raises: the last resort is windows-1252 with
its five undefined bytes mapped as Latin-1, which accepts any byte string.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
from typing import NamedTuple

_LATIN1_HANDLER = "popbridge-latin1"


def _latin1_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Map the bytes windows-1252 leaves undefined (0x81, 0x8D, ...) to their Latin-1 characters."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return exc.object[exc.start : exc.end].decode("latin-1"), exc.end


codecs.register_error(_LATIN1_HANDLER, _latin1_fallback)

# Labels that mean something other than their Python codec name, or that Python lacks.
_ALIASES: dict[str, str] = {
    "us-ascii": "ascii",
    "ascii": "ascii",
    "ansi_x3.4-1968": "ascii",
    "iso646-us": "ascii",
    "us": "ascii",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "windows-1252": "cp1252",
    "cp-1252": "cp1252",
    "win-1252": "cp1252",
    "x-cp1252": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "csgb2312": "gb18030",
    "big5": "cp950",
    "x-big5": "cp950",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ksc5601": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "x-unicode20utf8": "utf-8",
}

# Codecs Python accepts as "text encodings" that no mail ever means.
_REFUSED = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "mbcs", "oem"}
)


@functools.lru_cache(maxsize=256)
def lookup_charset(label: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None when the label is unknown or unusable."""
    if not label:
        return None
    name = label.strip().strip("\"'").strip().lower()
    if not name or len(name) > 40:
        return None
    name = _ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        if name.startswith("x-"):
            return lookup_charset(name[2:])
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED:
        return None
    return info.name


class Decoded(NamedTuple):
    """Text decoded from bytes and, when the declared charset was not used cleanly, why."""

    text: str
    problem: tuple[str, str] | None
    """``(defect kind, detail)`` or None when the declared (or implied) charset decoded it."""


def decode_bytes(data: bytes | memoryview, declared: str | None) -> Decoded:
    """Decode ``data`` trying the declared charset, then UTF-8, then windows-1252. Never raises."""
    codec = lookup_charset(declared)
    if codec is not None:
        try:
            errors = _LATIN1_HANDLER if codec == "cp1252" else "strict"
            return Decoded(str(data, codec, errors), None)
        except UnicodeDecodeError:
            pass
        except Exception:  # some third-party codecs raise other errors
            codec = None
    try:
        text = str(data, "utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if codec is not None:
            return Decoded(text, ("charset_mismatch", f"not valid {declared}; decoded as utf-8"))
        if declared:
            return Decoded(text, ("unknown_charset", f"unknown charset {declared!r}; utf-8"))
        if text.isascii():
            return Decoded(text, None)
        return Decoded(text, ("charset_missing", "no charset declared; decoded as utf-8"))
    if codec is not None and codec not in ("ascii", "cp1252", "utf-8"):
        with contextlib.suppress(Exception):  # a codec that fails even with "replace"
            text = str(data, codec, "replace")
            detail = f"not valid {declared}; undecodable bytes replaced"
            return Decoded(text, ("charset_mismatch", detail))
    text = str(data, "cp1252", _LATIN1_HANDLER)
    if codec is not None:
        return Decoded(text, ("charset_mismatch", f"not valid {declared}; decoded as windows-1252"))
    if declared:
        return Decoded(text, ("unknown_charset", f"unknown charset {declared!r}; windows-1252"))
    return Decoded(text, ("charset_missing", "no charset declared; decoded as windows-1252"))
