"""Where the bridge reads a message differently from Python's ``email`` (policy.default), on
purpose. Each deviation says why (the reference is wrong, or the RFCs allow both) and
recognises its own disagreements narrowly; the differential test fails on any disagreement
no deviation explains, and prints how many each one explained.
"""

from __future__ import annotations

import difflib
import email.errors
import email.message
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.mime import Payload
from bridge.mime.charsets import lookup_charset
from bridge.mime.encoded_words import ENCODED_WORD, _word_bytes

HEADER_FIELDS = ("subject", "from", "to", "cc")
BODY_FIELDS = ("text", "html", "attachments")
_REF_UNDECODED = re.compile("[\ufffd\x80-\x9f\udc80-\udcff]")
_QP_SOFT_WSP = re.compile(r"=[ \t]+\n")
_STRUCTURE_KINDS = frozenset(
    {
        "boundary_guessed",
        "boundary_not_found",
        "multipart_without_boundary",
        "missing_close_boundary",
        "missing_header_separator",
        "header_continuation",
        "invalid_content_type",
        "too_deep",
        "too_many_parts",
        "no_headers",
        "mbox_from_line",
        "bare_cr_line_endings",
        "byte_order_mark",
    }
)
_ENCODING_KINDS = frozenset(
    {
        "invalid_base64",
        "invalid_quoted_printable",
        "invalid_uuencode",
        "unknown_transfer_encoding",
    }
)
_REF_STRUCTURE_DEFECTS = (
    email.errors.StartBoundaryNotFoundDefect,
    email.errors.CloseBoundaryNotFoundDefect,
    email.errors.MultipartInvariantViolationDefect,
    email.errors.NoBoundaryInMultipartDefect,
    email.errors.MissingHeaderBodySeparatorDefect,
    email.errors.FirstHeaderLineIsContinuationDefect,
    email.errors.MisplacedEnvelopeHeaderDefect,
    email.errors.InvalidMultipartContentTransferEncodingDefect,
)


@dataclass
class Case:
    """One disagreement: the field, both values, and what is needed to judge it."""

    field: str
    ours: Any
    ref: Any
    raw: bytes
    payload: Payload
    msg: email.message.EmailMessage


@dataclass(frozen=True)
class Deviation:
    """A documented, reasoned way the bridge differs from the reference."""

    name: str
    reason: str
    applies: Callable[[Case], bool]


def _flat(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join("\t".join(str(x) for x in item) for item in value)
    return "" if value is None else str(value)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _ref_segments(case: Case) -> list[tuple[str, str]]:
    """The differing ``(ours, ref)`` segments of the two values as text."""
    ours, ref = _flat(case.ours), _flat(case.ref)
    if len(ours) + len(ref) > 6_000:  # difflib is quadratic: one segment between the
        prefix = _common_prefix(ours, ref)  # common prefix and suffix
        rest_o, rest_r = ours[prefix:], ref[prefix:]
        suffix = _common_prefix(rest_o[::-1], rest_r[::-1])
        return [(rest_o[: len(rest_o) - suffix], rest_r[: len(rest_r) - suffix])]
    matcher = difflib.SequenceMatcher(None, ours, ref, autojunk=False)
    return [(ours[a:b], ref[c:d]) for op, a, b, c, d in matcher.get_opcodes() if op != "equal"]


def _charset_segment(ours: str, ref: str) -> bool:
    """A differing segment explained by the reference's charset handling."""
    if _REF_UNDECODED.search(ref) or (not ref.strip() and not ours.strip()):
        return True
    # GBK 0xA1AA: U+2014 in the WHATWG GBK/gb18030 tables, U+2015 in Python's gbk/gb2312.
    return bool(ref) and set(ref) <= {"\u2015"} and set(ours) <= {"\u2014"}


def _undecoded_in_reference(case: Case) -> bool:
    segments = _ref_segments(case)
    return (
        bool(segments)
        and all(_charset_segment(o, r) for o, r in segments)
        and any(_REF_UNDECODED.search(r) or "\u2015" in r for _, r in segments)
    )


def _encoded_word_left(case: Case) -> bool:
    return case.field in HEADER_FIELDS and "=?" in _flat(case.ref) and "=?" not in _flat(case.ours)


def _split_encoded_words(case: Case) -> bool:
    """The header holds an encoded word whose bytes do not decode alone: a multibyte
    character split across two words, which the bridge joins before decoding."""
    if case.field not in HEADER_FIELDS:
        return False
    head = re.split(rb"\r?\n\r?\n", case.raw, maxsplit=1)[0].decode("ascii", "replace")
    for match in ENCODED_WORD.finditer(head):
        codec = lookup_charset(match.group(1))
        if codec is None:
            continue
        data, _ = _word_bytes(match.group(2), match.group(3))
        try:
            data.decode(codec)
        except UnicodeDecodeError:
            return True
        except Exception:  # noqa: S112 - a codec that fails otherwise says nothing here
            continue
    return False


def _declared_charset_invalid(case: Case) -> bool:
    kinds = {d.kind for d in case.payload.defects}
    return case.field in ("text", "html") and "charset_mismatch" in kinds


def _truncated(case: Case) -> bool:
    return case.field in HEADER_FIELDS and any(
        d.kind == "header_too_long" for d in case.payload.defects
    )


def _unknown_disposition(case: Case) -> bool:
    return case.field in BODY_FIELDS and any(
        d.kind == "invalid_disposition" for d in case.payload.defects
    )


def _named_text_part(case: Case) -> bool:
    return case.field in BODY_FIELDS and any(
        a.content_type in ("text/plain", "text/html") and a.filename
        for a in case.payload.attachments
    )


def _message_id(case: Case) -> bool:
    return (
        case.field == "message_id"
        and isinstance(case.ref, str)
        and isinstance(case.ours, str)
        and case.ours.startswith(case.ref[:-1])
    )


def _qp_soft_break_whitespace(case: Case) -> bool:
    return case.field in ("text", "html") and bool(_QP_SOFT_WSP.search(_flat(case.ref)))


def _whitespace(case: Case) -> bool:
    return " ".join(_flat(case.ours).split()) == " ".join(_flat(case.ref).split())


def _concatenated(case: Case) -> bool:
    if case.field not in ("text", "html") or not isinstance(case.ours, str):
        return False
    return isinstance(case.ref, str) and case.ref.strip() in case.ours


def _empty_body(case: Case) -> bool:
    return case.field in ("text", "html") and case.ref is None and not (case.ours or "").strip()


def _ref_defects(msg: email.message.EmailMessage) -> list[Any]:
    found = list(msg.defects)
    for part in msg.walk():
        found.extend(part.defects)
    return found


def _structure(case: Case) -> bool:
    if case.field not in BODY_FIELDS:
        return False
    ours = {d.kind for d in case.payload.defects}
    theirs = _ref_defects(case.msg)
    return bool(ours & _STRUCTURE_KINDS) or any(
        isinstance(d, _REF_STRUCTURE_DEFECTS) for d in theirs
    )


def _encoding(case: Case) -> bool:
    if case.field not in BODY_FIELDS:
        return False
    ours = {d.kind for d in case.payload.defects}
    theirs = _ref_defects(case.msg)
    return bool(ours & _ENCODING_KINDS) or any("Base64" in type(d).__name__ for d in theirs)


def _ref_header_defects(case: Case) -> bool:
    if case.field not in HEADER_FIELDS:
        return False
    try:
        headers = case.msg.get_all(case.field) or []
        return any(getattr(h, "defects", ()) for h in headers)
    except Exception:
        return True


def _address_reading(case: Case) -> bool:
    """Same addresses, but ours has display names the reference drops (comment or bare),
    or more addresses (the reference drops the second of ``a@x b@x``)."""
    if case.field not in ("from", "to", "cc"):
        return False
    ours = [a for _, a in case.ours]
    ref = [a for _, a in case.ref]
    if set(ref) < set(ours):
        return True
    pairs = zip(case.ours, case.ref, strict=True) if ours == ref else ()
    return ours == ref and all(o == r or r[0] == "" for o, r in pairs)


def _ref_adds_whitespace(case: Case) -> bool:
    segments = _ref_segments(case)
    return bool(segments) and all(o == "" and r.isspace() for o, r in segments)


def _mhtml_root(case: Case) -> bool:
    return (
        case.field in ("text", "html")
        and case.ref is None
        and isinstance(case.ours, str)
        and b"multipart/related" in case.raw.lower()
    )


def _raw_header_syntax(case: Case) -> bool:
    head = case.raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return bool(re.search(rb"(?m)^[!-9;-~]*[\x80-\xff][!-9;-~\x80-\xff]*:|^[!-9;-~]+[ \t]+:", head))


def _flowed(case: Case) -> bool:
    return case.field == "text" and b"format=flowed" in case.raw.lower()


def _boundary_spaces(case: Case) -> bool:
    return case.field in BODY_FIELDS and bool(
        re.search(rb'boundary="[^"]*[ \t]"', case.raw, re.IGNORECASE)
    )


def _date(case: Case) -> bool:
    return case.field == "date"


def _filename(case: Case) -> bool:
    if case.field != "attachments" or not isinstance(case.ref, list):
        return False
    if len(case.ours) != len(case.ref):
        return False
    return all(o[0] == r[0] and o[2:] == r[2:] for o, r in zip(case.ours, case.ref, strict=True))


DEVIATIONS: list[Deviation] = [
    Deviation(
        "undecoded-in-reference",
        "Undeclared, mislabelled or superset charsets: the reference keeps undecodable bytes "
        "as U+FFFD, C1 controls or surrogate escapes (it reads iso-8859-1 as Latin-1, gb2312, "
        "shift_jis and euc-kr strictly, knows no windows-874 or iso-8859-8-i, and leaves raw "
        "8-bit headers undecoded); the bridge reads the WHATWG superset, raw headers as UTF-8 "
        "(RFC 6532), else windows-1252, as docs/payload.md documents.",
        _undecoded_in_reference,
    ),
    Deviation(
        "qp-soft-break-whitespace",
        "A quoted-printable '=' followed by spaces then a line break is a soft break: RFC 2045 "
        "6.7 (3) says transport-added trailing whitespace is deleted; the reference keeps it.",
        _qp_soft_break_whitespace,
    ),
    Deviation(
        "format-flowed",
        "format=flowed text is unwrapped (RFC 3676, issue 14 part 4); the reference does not.",
        _flowed,
    ),
    Deviation(
        "encoded-word-whitespace",
        "RFC 2047 6.2: whitespace between adjacent encoded words is ignored; the reference "
        "keeps it inside display names (e.g. 'O'N e il' from three encoded words).",
        _ref_adds_whitespace,
    ),
    Deviation(
        "whitespace",
        "Only whitespace differs (folding, runs of spaces, a leading space of an unfolded "
        "header): RFC 5322 unfolding allows both readings; the bridge collapses like clients.",
        _whitespace,
    ),
    Deviation(
        "inline-text-concatenated",
        "Inline text parts of a multipart/mixed are concatenated in order (docs/payload.md, "
        "Bodies), as mail clients show them; the reference's get_body() returns the first one.",
        _concatenated,
    ),
    Deviation(
        "empty-body",
        'An empty or blank body is "" for the bridge (the message has a body, it is empty); '
        "the reference's get_body() finds none.",
        _empty_body,
    ),
    Deviation(
        "broken-structure",
        "Malformed MIME structure (missing or wrong boundaries, missing close delimiter, "
        "header/body separator, invalid content types): the RFCs define no recovery, both "
        "readings are best effort; the bridge's (guessing the boundary, keeping the text "
        "before it, reading a line that is not a header as the body start) is pinned by the "
        "golden tests and reported in defects.",
        _structure,
    ),
    Deviation(
        "broken-transfer-encoding",
        "Broken base64/quoted-printable/uuencode or an unknown transfer encoding: the bridge "
        "decodes best effort and reports a defect; the reference returns undecoded or "
        "truncated data.",
        _encoding,
    ),
    Deviation(
        "boundary-trailing-space",
        "A quoted boundary ending in spaces: RFC 2046 allows spaces inside a boundary (not at "
        "its end); the bridge matches it as written, the reference strips the spaces.",
        _boundary_spaces,
    ),
    Deviation(
        "malformed-address-header",
        "An address header the reference itself reports as invalid: it drops or mangles what "
        "it cannot parse; the bridge reads what a mail client shows.",
        _ref_header_defects,
    ),
    Deviation(
        "address-names",
        "Same mailboxes, but the bridge also takes display names from a trailing comment "
        "(a@x (Al)) or an unbracketed 'Name a@x', and splits 'a@x b@x' (a missing comma) "
        "into two mailboxes, where the reference drops the name or the second mailbox.",
        _address_reading,
    ),
    Deviation(
        "obsolete-header-syntax",
        "Header lines with whitespace before the colon or 8-bit bytes in the name (obsolete "
        "or invalid RFC 5322 syntax): the bridge ends the header block there (reported as "
        "missing_header_separator), the reference reads on.",
        _raw_header_syntax,
    ),
    Deviation(
        "date-reading",
        "Dates in obsolete or broken forms (RFC 5322 4.3): both read with email.utils' "
        "lenient parser, but the reference's header registry refuses some the bridge reads "
        "(and the reverse); `date_raw` always carries the text.",
        _date,
    ),
    Deviation(
        "file-names",
        "Same parts, other file names: the bridge joins RFC 2231 continuations before "
        "decoding (RFC 2231 4.1), decodes RFC 2047 words in quoted names and reads an "
        "unquoted name with spaces up to the ';' (common, though not standard); the "
        "reference decodes segments alone, leaves the words or stops at the first space.",
        _filename,
    ),
    Deviation(
        "split-encoded-word",
        "A multibyte character split across two encoded words (RFC 2047 6.3 forbids it, "
        "CJK mailers do it): the bridge joins adjacent words of one charset before "
        "decoding; the reference decodes each word alone (garbage or U+FFFD).",
        _split_encoded_words,
    ),
    Deviation(
        "encoded-word-left-by-reference",
        "Encoded words the reference leaves undecoded (ISO-2022-JP with NEC or IBM "
        "characters, split multibyte characters, literal spaces); the bridge decodes them.",
        _encoded_word_left,
    ),
    Deviation(
        "declared-charset-invalid",
        "Bytes that are invalid in the declared charset: the bridge uses UTF-8 when they "
        "are valid UTF-8, else windows-1252 or the declared multibyte charset with U+FFFD "
        "(charset_mismatch defect); the reference uses the declared charset with U+FFFD.",
        _declared_charset_invalid,
    ),
    Deviation(
        "header-truncated",
        "A header over max_header_bytes (64 KiB) is truncated by the bridge (header_too_long "
        "defect), so its tail differs from the reference's full reading.",
        _truncated,
    ),
    Deviation(
        "unknown-disposition",
        "An unknown Content-Disposition is read as attachment, as RFC 2183 section 2.8 says; "
        "the reference shows such a text part as the body.",
        _unknown_disposition,
    ),
    Deviation(
        "named-text-part",
        "A text part with a file name and no Content-Disposition is an attachment for the "
        "bridge (docs/payload.md, Bodies: mail clients show it as a file); the reference's "
        "get_body() takes it as the body.",
        _named_text_part,
    ),
    Deviation(
        "mhtml-root",
        "A multipart/related without 'start' whose first part is not text (MHTML puts the "
        "resources first): the bridge takes the first text part as the root and shows it; "
        "the reference takes the first part (RFC 2387's default) and finds no body.",
        _mhtml_root,
    ),
    Deviation(
        "message-id-as-written",
        "A Message-ID with several '@' is kept whole as written; the reference cuts it.",
        _message_id,
    ),
]


def explain(case: Case) -> Deviation | None:
    """The first deviation that explains ``case``, or None."""
    for deviation in DEVIATIONS:
        if deviation.applies(case):
            return deviation
    return None
