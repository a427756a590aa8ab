"""Inputs built to make a MIME parser slow: long runs of the characters each parser step
looks at, in every header a parser decodes and in the body structure.

Each generator takes a target size in bytes and returns a message of about that size, so
the timing test can check that parse time grows linearly with the size.
"""

from __future__ import annotations

from collections.abc import Callable

HEADERS = [
    "Subject",
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Content-Type",
    "Content-Disposition",
    "Content-Transfer-Encoding",
    "Content-ID",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Return-Path",
    "Auto-Submitted",
    "Precedence",
]
FILLERS = [
    ";",
    "; ",
    '"',
    '"a',
    "(",
    ")",
    "<",
    ">",
    ",",
    ":",
    "@",
    "a@",
    "a@b ",
    "\\",
    " ",
    "=",
    "=?",
    "=?utf-8?q?",
    "=?utf-8?b?",
    "=?x?q?a?= ",
    "=?utf-8?q?a ",
    "*0*=",
    ";a*0*=%",
    "%",
    "'",
    'a="',
    "\t",
    "-",
    "a ",
]

Generator = Callable[[int], bytes]


def header_filler(name: str, filler: str) -> Generator:
    """One header ``name`` holding ``filler`` repeated to the size (below max_header_bytes)."""

    def make(size: int) -> bytes:
        value = (filler * (size // len(filler) + 1))[:size]
        head = f"{name}: text/plain{value}\r\n"
        return (head + "From: a@example.org\r\n\r\nbody\r\n").encode()

    return make


def folded_header(size: int) -> bytes:
    """One header folded over thousands of continuation lines."""
    return b"Subject: a" + b"\r\n =?utf-8?q?b?=" * (size // 16) + b"\r\n\r\nbody\r\n"


def many_headers(size: int) -> bytes:
    """Thousands of short header fields (past max_headers)."""
    return b"X-A: b\r\n" * (size // 8) + b"\r\nbody\r\n"


def many_parts(size: int) -> bytes:
    """A multipart of thousands of empty parts (past max_parts)."""
    head = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    return head + b"--b\r\n\r\n" * (size // 7) + b"--b--\r\n"


def nested(size: int) -> bytes:
    """Multiparts nested as deep as the size allows (past max_depth), each with a body."""
    unit = 60
    depth = max(1, size // (2 * unit))
    out = [b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"]
    for level in range(1, depth):
        out.append(
            f"--b{level - 1}\r\nContent-Type: multipart/mixed; boundary=b{level}\r\n\r\n".encode()
        )
    out.append(b"--b%d\r\n\r\ntext\r\n" % (depth - 1))
    for level in reversed(range(depth)):
        out.append(f"--b{level}--\r\n".encode())
    return b"".join(out)


def boundary_lookalikes(size: int) -> bytes:
    """A body full of lines that start like the boundary but are not delimiters."""
    head = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n"
    return head + b"--bX\r\n--b--X\r\n-- b\r\n" * (size // 20) + b"--b--\r\n"


def no_boundary_dashes(size: int) -> bytes:
    """A multipart without a boundary whose body is all candidate boundary lines."""
    head = b"Content-Type: multipart/mixed\r\n\r\n"
    return head + b"--" * (size // 2)


def guess_long_lines(size: int) -> bytes:
    """A multipart without a boundary: lines starting with ``--`` then 200+ characters."""
    head = b"Content-Type: multipart/mixed\r\n\r\n"
    return head + (b"--" + b"x" * 250 + b"\r\n") * (size // 254)


def base64_garbage(size: int) -> bytes:
    """A base64 part full of characters outside the alphabet and stray padding."""
    head = b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    return head + b"QU=!*=\r\n" * (size // 8)


def qp_equals(size: int) -> bytes:
    """A quoted-printable text of ``=`` signs, soft breaks and soft breaks with spaces."""
    head = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    return head + b"== \t\r\n=\r\n=Z" * (size // 13)


def uuencode_lines(size: int) -> bytes:
    """A uuencoded part of broken lines."""
    head = b"Content-Type: application/x\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
    return head + b"begin 644 x\r\n" + b"M!!!\r\n" * (size // 6)


def flowed_lines(size: int) -> bytes:
    """A format=flowed text of soft-broken lines and quote markers."""
    head = b"Content-Type: text/plain; format=flowed; delsp=yes\r\n\r\n"
    return head + b">>> a \r\n" * (size // 8)


def html_tags(size: int) -> bytes:
    """An HTML-only message of unclosed tags and entities (text is derived from it)."""
    head = b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    return head + b"<p><b>&amp;<br><!--x" * (size // 21)


def bad_utf8(size: int) -> bytes:
    """A UTF-8 text where every other character is broken."""
    head = b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    return head + b"\xc3\xa9\xff" * (size // 3)


def cr_only(size: int) -> bytes:
    """Old Mac line ends: CR only."""
    return b"Subject: x\rX: y\r\r" + b"line\r" * (size // 5)


def rfc822_parts(size: int) -> bytes:
    """Many message/rfc822 parts, each with headers to read."""
    part = b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: s\r\nFrom: a@b\r\n\r\nx\r\n"
    head = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    return head + part * (size // len(part)) + b"--b--\r\n"


BODY_GENERATORS: dict[str, Generator] = {
    "folded_header": folded_header,
    "many_headers": many_headers,
    "many_parts": many_parts,
    "nested": nested,
    "boundary_lookalikes": boundary_lookalikes,
    "no_boundary_dashes": no_boundary_dashes,
    "guess_long_lines": guess_long_lines,
    "base64_garbage": base64_garbage,
    "qp_equals": qp_equals,
    "uuencode_lines": uuencode_lines,
    "flowed_lines": flowed_lines,
    "html_tags": html_tags,
    "bad_utf8": bad_utf8,
    "cr_only": cr_only,
    "rfc822_parts": rfc822_parts,
}


def all_generators() -> dict[str, Generator]:
    """Every adversarial generator by name: body structure, then each header x filler."""
    out = dict(BODY_GENERATORS)
    for name in HEADERS:
        for index, filler in enumerate(FILLERS):
            out[f"{name}:{index}:{filler!r}"] = header_filler(name, filler)
    return out
