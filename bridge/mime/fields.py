"""Structured header fields: addresses, dates, message ids and MIME parameters (RFC 2231)."""

from __future__ import annotations

import re
import urllib.parse
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_tz

from bridge.mime.charsets import decode_bytes
from bridge.mime.encoded_words import ENCODED_WORD, decode_encoded_words

# ----------------------------------------------------------------------------- addresses

_SIMPLE_LIST = re.compile(r"[^\"(),:;<>\\\[\]]*\Z")
_WS = re.compile(r"\s+")
_PLAIN_RUN = re.compile(r'[^"(<:,;=\\]+')
_BARE_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\Z")


def _finish(name: list[str], angle: str | None, comment: list[str]) -> list[tuple[str, str]]:
    phrase = _WS.sub(" ", "".join(name)).strip()
    if angle is not None:
        address = angle.strip()
        if ":" in address and address.startswith("@"):  # obsolete source route "@a,@b:x@y"
            address = address.split(":", 1)[1]
        display = phrase or " ".join(comment).strip()
        return [(display, _WS.sub("", address))]
    if not phrase:
        return []
    words = phrase.split(" ")
    at_words = [w for w in words if "@" in w]
    if len(words) > 1 and len(at_words) == 1:  # "Name user@host" without angle brackets
        rest = [w for w in words if w is not at_words[0]]
        return [(" ".join(rest), at_words[0])]
    if len(at_words) > 1 and all(_BARE_ADDRESS.match(w) for w in words):
        return [("", w) for w in words]  # "a@x b@x": a missing comma, two addresses
    if "@" in phrase:
        return [(" ".join(comment).strip(), phrase.replace(" ", ""))]
    return [(" ".join(comment).strip(), phrase)]


def parse_address_list(text: str) -> list[tuple[str, str]]:
    """Split an address header into ``(display name, address)`` pairs; groups are flattened.

    Lenient like a mail client: missing angle brackets, unbalanced quotes and stray
    separators give a best-effort result; entries with nothing in them are dropped.
    Encoded words in names are decoded afterwards by the caller.
    """
    if _SIMPLE_LIST.match(text):
        return [e for piece in text.split(",") for e in _finish([piece], None, []) if e[1]]
    result: list[tuple[str, str]] = []
    name: list[str] = []
    comment: list[str] = []
    angle: str | None = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"' and text.find('"', i + 1) < 0:
            i += 1  # an unbalanced quote: ignore it
        elif c == '"':
            j = i + 1
            buf: list[str] = []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            name.append("".join(buf))
            i = j + 1
        elif c == "=" and (word := ENCODED_WORD.match(text, i)) is not None:
            name.append(word.group())  # an encoded word is one atom: its ":()," are text
            i = word.end()
        elif c == "(":
            depth, j = 1, i + 1
            start = j
            while j < n and depth:
                if text[j] == "\\":
                    j += 1
                elif text[j] == "(":
                    depth += 1
                elif text[j] == ")":
                    depth -= 1
                j += 1
            comment.append(text[start : j - 1] if depth == 0 else text[start:])
            i = j
        elif c == "<":
            j = text.find(">", i + 1)
            if j < 0:
                j = n
            angle = text[i + 1 : j]
            i = j + 1
        elif c == ":" and angle is None:
            name, comment = [], []  # a group name: drop it, keep its members
            i += 1
        elif c in ",;":
            if name or comment or angle is not None:
                result.extend(e for e in _finish(name, angle, comment) if e[1])
                name, comment, angle = [], [], None
            i += 1
        else:
            plain = _PLAIN_RUN.match(text, i)
            j = plain.end() if plain is not None else i + 1
            name.append(text[i:j])
            i = j
    result.extend(e for e in _finish(name, angle, comment) if e[1])
    return result


def decode_addresses(text: str) -> list[tuple[str, str]]:
    """Parse an address list (already bytes-decoded) and decode encoded words in the names."""
    out = []
    for name, address in parse_address_list(text):
        if "=?" in name:
            name = decode_encoded_words(name).text
        out.append((name, address))
    return out


# ----------------------------------------------------------------------------- dates


def parse_date(text: str) -> datetime | None:
    """An RFC 5322 date (lenient, obsolete forms too) as an aware datetime, or None."""
    try:
        parts = parsedate_tz(text)
        if parts is None:
            return None
        year, month, day, hour, minute, second = parts[:6]
        offset = parts[9]
        tz = UTC if not offset else timezone(timedelta(seconds=offset))
        return datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except (ValueError, OverflowError, TypeError, IndexError):
        return None


# ----------------------------------------------------------------------------- message ids

_MSGID = re.compile(r"<[^<>\s]*>")


def parse_msgids(text: str) -> list[str]:
    """Every ``<id>`` in a References / In-Reply-To value; bare tokens if there are none."""
    found = _MSGID.findall(text)
    if found:
        return [m for m in found if len(m) > 2]
    return text.split()


def first_msgid(text: str) -> str | None:
    """The first message id in a Message-ID / In-Reply-To value, or the stripped value."""
    found = parse_msgids(text)
    return found[0] if found else None


# ----------------------------------------------------------------------------- MIME parameters

# One parameter: "; name = value". Linear: every attempt starts at a ';' and cannot run past
# the next ';' (but a quoted value, which is matched once). The old pattern also skipped runs
# of ';' inside one attempt (";[\s;]*"), which made each ';' scan the whole run: 30 s for
# 65,000 of them. finditer skips them now, one attempt per ';', with the same result.
_PARAM = re.compile(r';\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)', re.DOTALL)
_SECTION = re.compile(r"^(.*?)\*(\d+)(\*?)$")


def _unquote(value: str) -> str:
    value = value.strip()
    if value.startswith('"'):
        value = value[1:-1] if value.endswith('"') and len(value) > 1 else value[1:]
        if "\\" in value:
            value = re.sub(r"\\(.)", r"\1", value)
    return value


def _join_2231(pieces: list[tuple[int, bool, str]]) -> str:
    """One parameter from its RFC 2231 segments: join, then percent-decode, then decode.

    Extended (``*``) segments are percent-encoded; plain ones are literal, so they are
    escaped before the join. Only the first segment may carry ``charset'language'``.
    """
    charset = ""
    joined: list[str] = []
    for index, (_, extended, piece) in enumerate(pieces):
        if extended:
            if index == 0 and piece.count("'") >= 2:
                charset, _, piece = piece.split("'", 2)
            joined.append(piece)
        else:
            joined.append(urllib.parse.quote(piece, safe=""))
    data = urllib.parse.unquote_to_bytes("".join(joined))
    return decode_bytes(data, charset or "utf-8").text


def parse_mime_header(text: str) -> tuple[str, dict[str, str]]:
    """Split ``Content-Type``/``Content-Disposition`` into a lower-cased value and parameters.

    Parameter names are lower-cased; RFC 2231 continuations (``name*0*``) and charsets are
    joined and decoded; RFC 2047 encoded words in quoted values (not standard, but common
    for filenames) are decoded as well. Linear in the length of ``text``.
    """
    head, sep, _ = text.partition(";")
    value = head.strip().lower()
    params: dict[str, str] = {}
    if not sep:
        return value, params
    sections: dict[str, list[tuple[int, bool, str]]] = {}
    for match in _PARAM.finditer(text, len(head)):
        key, raw = match.group(1).lower(), match.group(2)
        if key.endswith("*") and _SECTION.match(key) is None:  # name*=charset'lang'value
            sections.setdefault(key[:-1], []).append((0, True, raw.strip().strip('"')))
            continue
        section = _SECTION.match(key)
        if section is not None:
            sections.setdefault(section.group(1), []).append(
                (int(section.group(2)[:6]), bool(section.group(3)), _unquote(raw))
            )
            continue
        if key not in params:
            unquoted = _unquote(raw)
            params[key] = decode_encoded_words(unquoted).text if "=?" in unquoted else unquoted
    for key, pieces in sections.items():
        pieces.sort(key=lambda p: p[0])
        params[key] = _join_2231(pieces)  # an RFC 2231 value wins over a plain one
    return value, params
