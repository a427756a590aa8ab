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

from bridge.mime.iso2022jp import NAME as ISO_2022_JP

_LATIN1_HANDLER = "popbridge-latin1"


def _latin1_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Map the bytes windows-1252 leaves undefined (0x81, 0x8D, ...) to their Latin-1 characters."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return exc.object[exc.start : exc.end].decode("latin-1"), exc.end


codecs.register_error(_LATIN1_HANDLER, _latin1_fallback)

# fmt: off
# The WHATWG Encoding Standard's labels (https://encoding.spec.whatwg.org/#names-and-labels)
# that Python does not know or reads as a smaller charset, mapped to the superset codec mail
# clients use. Exceptions, on purpose: the ASCII labels stay ASCII (8-bit bytes under a
# "us-ascii" label are more often UTF-8 than windows-1252, and decode_bytes tries UTF-8
# next); big5 is cp950 (Microsoft's Big5, as Outlook writes it); euc-jp is Python's euc_jp;
# iso-2022-kr and hz-gb-2312, which WHATWG maps to "replacement" for browsers, keep their codecs.
_WHATWG: dict[str, tuple[str, ...]] = {
    "utf-8": ("unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf8", "x-unicode20utf8"),
    "ascii": ("us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us", "us"),
    "cp1252": (
        "iso-8859-1", "iso8859-1", "iso_8859-1", "iso_8859-1:1987", "iso88591", "iso-ir-100",
        "latin1", "latin-1", "l1", "cp819", "ibm819", "csisolatin1", "windows-1252", "cp-1252",
        "win-1252", "x-cp1252",
    ),
    "iso8859-2": ("iso88592",),
    "iso8859-3": ("iso88593",),
    "iso8859-4": ("iso88594",),
    "iso8859-5": ("iso88595",),
    "iso8859-6": ("iso88596", "csiso88596e", "csiso88596i", "iso-8859-6-e", "iso-8859-6-i"),
    "iso8859-7": ("iso88597", "sun_eu_greek"),
    "iso8859-8": (
        "iso88598", "csiso88598e", "iso-8859-8-e", "visual", "csiso88598i", "iso-8859-8-i",
        "logical",
    ),
    "iso8859-10": ("iso885910",),
    "iso8859-13": ("iso885913",),
    "iso8859-14": ("iso885914",),
    "iso8859-15": ("iso885915", "csisolatin9"),
    "koi8-r": ("koi", "koi8"),
    "koi8-u": ("koi8-ru",),
    "mac-roman": ("mac", "csmacintosh"),
    "mac-cyrillic": ("x-mac-ukrainian",),
    "cp874": ("windows-874", "dos-874", "iso-8859-11", "iso8859-11", "iso885911", "tis-620"),
    "cp1254": (
        "iso-8859-9", "iso8859-9", "iso_8859-9", "iso_8859-9:1989", "iso88599", "iso-ir-148",
        "latin5", "l5", "csisolatin5",
    ),
    "gb18030": (
        "gb2312", "gb_2312", "gb_2312-80", "gbk", "x-gbk", "cp936", "euc-cn", "csgb2312",
        "chinese", "csiso58gb231280", "iso-ir-58",
    ),
    "cp950": ("big5", "x-big5", "cn-big5", "csbig5", "x-x-big5"),
    "cp949": (
        "ks_c_5601-1987", "ks_c_5601-1989", "ks_c_5601", "ksc5601", "ksc_5601", "euc-kr",
        "cseuckr", "csksc56011987", "iso-ir-149", "korean", "windows-949",
    ),
    "cp932": (
        "shift_jis", "shift-jis", "sjis", "x-sjis", "ms_kanji", "windows-31j", "csshiftjis",
    ),
    "euc_jp": ("cseucpkdfmtjapanese",),
    "utf-16-be": ("unicodefffe",),
    "utf-16-le": ("csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff"),
}
_ALIASES: dict[str, str] = {label: codec for codec, labels in _WHATWG.items() for label in labels}
for _label in ("iso-2022-jp", "csiso2022jp", "iso2022jp", "iso2022_jp", "jis"):
    _ALIASES[_label] = ISO_2022_JP
# fmt: on

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


def utf8_with_replacements(data: bytes | memoryview) -> tuple[str, int] | None:
    """``data`` as UTF-8 with U+FFFD for bad bytes, if it is UTF-8 but for a few bad bytes.

    "A few": at least one valid multi-byte character and no more bad bytes than valid
    multi-byte characters, so windows-1252 text (where high bytes rarely form valid UTF-8
    sequences) is not mistaken for broken UTF-8. Returns the text and the bad byte count.
    """
    text = str(data, "utf-8", "replace")
    bad = text.count("\ufffd")
    good = len(text) - len(text.encode("ascii", "ignore")) - bad
    if good > 0 and bad <= good:
        return text, bad
    return None


def _stateful(codec: str) -> bool:
    """7-bit codecs with escape sequences: their bytes are also valid (and wrong) UTF-8."""
    return codec.startswith("iso2022") or codec in (ISO_2022_JP, "hz", "utf-7")


def decode_bytes(data: bytes | memoryview, declared: str | None) -> Decoded:
    """Decode ``data`` trying the declared charset, then UTF-8, then windows-1252. Never raises.

    UTF-8 with a few bad bytes (declared or not) keeps its good characters: only the bad
    bytes become U+FFFD. A multi-byte or escape-based declared charset that fails is used
    with U+FFFD for the bad bytes unless the whole text is valid UTF-8.
    """
    codec = lookup_charset(declared)
    if codec is not None:
        try:
            errors = _LATIN1_HANDLER if codec == "cp1252" else "strict"
            return Decoded(str(data, codec, errors), None)
        except UnicodeDecodeError:
            pass
        except Exception:  # some third-party codecs raise other errors
            codec = None
    if codec is not None and _stateful(codec):
        with contextlib.suppress(Exception):
            text = str(data, codec, "replace")
            return Decoded(text, ("charset_mismatch", f"not valid {declared}; bad bytes replaced"))
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
    if codec is None or codec in ("ascii", "utf-8"):
        mostly = utf8_with_replacements(data)
        if mostly is not None:
            text, bad = mostly
            how = f"decoded as utf-8 with {bad} bad bytes replaced"
            if codec is not None:
                return Decoded(text, ("charset_mismatch", f"not valid {declared}; {how}"))
            if declared:
                return Decoded(text, ("unknown_charset", f"unknown charset {declared!r}; {how}"))
            return Decoded(text, ("charset_missing", f"no charset declared; {how}"))
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
