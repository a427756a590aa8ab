"""The MIME tree of a raw message, as offsets into the original bytes (no copies of bodies).

Headers are split and unfolded here; every structural problem (a line that is not a header,
a multipart without a usable boundary, a missing close delimiter, a limit reached) is written
to the caller's defect list and parsing goes on with a best-effort structure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bridge.mime.encoded_words import bytes_to_text
from bridge.mime.fields import parse_mime_header
from bridge.mime.model import PayloadOptions
from bridge.mime.transfer import normalize_cte

_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_GUESS_BOUNDARY = re.compile(rb"^--([^\r\n]{1,200}?)(?:--)?[ \t]*\r?$", re.MULTILINE)
_KNOWN_TYPES = frozenset(
    {"text", "image", "audio", "video", "application", "multipart", "message", "model", "font"}
)

DefectSink = list[tuple[str | None, str, str]]
"""Where parsing problems go: ``(part path or None for the top level, kind, detail)``."""


@dataclass(slots=True)
class Part:
    """One MIME entity: its header fields and where its body lies in the raw buffer."""

    path: str
    fields: list[tuple[str, bytes]]
    content_type: str
    params: dict[str, str]
    body_start: int
    body_end: int
    cte: str = "7bit"
    disposition: str | None = None
    disposition_params: dict[str, str] = field(default_factory=dict)
    children: list[Part] | None = None
    """Child entities for a multipart that was split, else None."""

    def header(self, name: str) -> bytes | None:
        """The raw value of the first field called ``name`` (lower-case), or None."""
        for key, value in self.fields:
            if key.lower() == name:
                return value
        return None

    @property
    def filename(self) -> str | None:
        """The file name from Content-Disposition, else from the Content-Type ``name``."""
        return self.disposition_params.get("filename") or self.params.get("name") or None


def defect_path(path: str) -> str | None:
    """The ``part`` of a defect: None for the top-level message."""
    return path or None


def read_headers(
    buf: bytes, start: int, end: int, path: str, options: PayloadOptions, defects: DefectSink
) -> tuple[list[tuple[str, bytes]], int]:
    """Split the header block at ``buf[start:end]`` into unfolded ``(name, value)`` fields.

    Returns the fields and the offset where the body starts. A line that is neither a
    header nor a continuation ends the header block (the body starts there, as RFC 5322
    parsers do) and is recorded as a defect.
    """
    fields: list[tuple[str, bytes]] = []
    name: str | None = None
    chunks: list[bytes] = []
    skipped = 0
    truncated = 0
    pos = start

    def commit() -> None:
        nonlocal skipped, truncated
        if name is None:
            return
        if len(fields) >= options.max_headers:
            skipped += 1
            return
        value = b"".join(chunks).strip() if len(chunks) > 1 else chunks[0].strip()
        if len(value) > options.max_header_bytes:
            truncated += 1
            value = value[: options.max_header_bytes]
        fields.append((name, value))

    while pos < end:
        nl = buf.find(b"\n", pos, end)
        line_end = end if nl < 0 else nl + 1
        line = buf[pos : line_end if nl < 0 else nl]
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            pos = line_end
            break
        if line[0] in (0x20, 0x09):
            if name is not None:
                chunks.append(line)
            else:
                defects.append((defect_path(path), "header_continuation", "folded line skipped"))
            pos = line_end
            continue
        match = _FIELD.match(line)
        if match is None:
            if fields or name is not None:
                detail = "a line that is not a header ended the header block"
                defects.append((defect_path(path), "missing_header_separator", detail))
            break
        commit()
        name = match.group(1).decode("ascii")
        chunks = [line[match.end() :]]
        pos = line_end
    commit()
    if skipped:
        detail = f"{skipped} header fields past the limit of {options.max_headers} skipped"
        defects.append((defect_path(path), "too_many_headers", detail))
    if truncated:
        detail = f"{truncated} header fields truncated to {options.max_header_bytes} bytes"
        defects.append((defect_path(path), "header_too_long", detail))
    return fields, pos


def split_multipart(
    buf: bytes, start: int, end: int, boundary: bytes
) -> tuple[list[tuple[int, int]], bool]:
    """Offsets of each body part between ``--boundary`` delimiter lines.

    The line break before a delimiter belongs to the delimiter. Returns the parts and
    whether the close delimiter ``--boundary--`` was found.
    """
    delim = b"--" + boundary
    dlen = len(delim)
    found: list[tuple[int, int]] = []  # (delimiter start, content start after its line)
    closed = False
    pos = start
    while True:
        i = buf.find(delim, pos, end)
        if i < 0:
            break
        if i != start and buf[i - 1] != 0x0A:
            pos = i + 1
            continue
        j = i + dlen
        is_close = buf[j : j + 2] == b"--" and j + 2 <= end
        k = j + 2 if is_close else j
        while k < end and buf[k] in (0x20, 0x09):
            k += 1
        if k < end and buf[k] not in (0x0D, 0x0A):
            pos = i + 1  # "--boundaryX", "--boundary--X": a longer string, not a delimiter
            continue
        nl = buf.find(b"\n", k, end)
        line_end = end if nl < 0 else nl + 1
        found.append((i, line_end))
        if is_close:
            closed = True
            break
        pos = line_end
    parts: list[tuple[int, int]] = []
    for index, (_, content_start) in enumerate(found):
        if index + 1 < len(found):
            content_end = found[index + 1][0]
            if content_end > content_start and buf[content_end - 1] == 0x0A:
                content_end -= 1
                if content_end > content_start and buf[content_end - 1] == 0x0D:
                    content_end -= 1
        elif closed:
            break
        else:
            content_end = end
        parts.append((content_start, max(content_start, content_end)))
    return parts, closed


def _guess_boundary(buf: bytes, start: int, end: int) -> tuple[bytes, int] | None:
    """A boundary line in the first 64 KiB of the body: the boundary and where its line starts."""
    match = _GUESS_BOUNDARY.search(buf, start, min(end, start + 64 * 1024))
    if match is None:
        return None
    candidate = match.group(1).rstrip()
    return (candidate, match.start()) if candidate else None


class TreeParser:
    """Builds the :class:`Part` tree of one message within the limits of the options."""

    def __init__(self, buf: bytes, options: PayloadOptions, defects: DefectSink) -> None:
        self.buf = buf
        self.options = options
        self.defects = defects
        self.count = 0
        self.skipped = 0

    def parse(self, start: int, end: int) -> Part:
        """Parse the message at ``buf[start:end]``; the root part has path ``""``."""
        return self._entity(start, end, "", 0, "text/plain")

    def _text(self, value: bytes) -> str:
        return bytes_to_text(value).text

    def _entity(self, start: int, end: int, path: str, depth: int, default: str) -> Part:
        self.count += 1
        fields, body_start = read_headers(self.buf, start, end, path, self.options, self.defects)
        part = Part(path, fields, default, {}, body_start, end)
        self._content_type(part)
        raw_disposition = part.header("content-disposition")
        if raw_disposition is not None:
            disposition, part.disposition_params = parse_mime_header(self._text(raw_disposition))
            if disposition in ("attachment", "inline"):
                part.disposition = disposition
            else:
                part.disposition = "attachment"
                detail = f"unknown disposition {disposition[:40]!r}; treated as attachment"
                self.defects.append((defect_path(path), "invalid_disposition", detail))
        raw_cte = part.header("content-transfer-encoding")
        if raw_cte is not None:
            part.cte = normalize_cte(self._text(raw_cte))
        if part.content_type.startswith("multipart/"):
            self._multipart(part, depth)
        return part

    def _content_type(self, part: Part) -> None:
        raw = part.header("content-type")
        if raw is None:
            return
        value, params = parse_mime_header(self._text(raw))
        main, slash, sub = value.partition("/")
        main, sub = main.strip(), sub.strip()
        if slash and main and sub and (main in _KNOWN_TYPES or main.startswith("x-")):
            part.content_type, part.params = f"{main}/{sub}", params
            return
        where = defect_path(part.path)
        if "boundary" in params:
            part.content_type, part.params = "multipart/mixed", params
            detail = f"content type {value[:60]!r} has a boundary; read as multipart/mixed"
        elif slash and main and sub:
            part.content_type, part.params = f"{main}/{sub}", params
            detail = f"unknown content type {value[:60]!r}; kept as an attachment"
        elif main.startswith("text") or not main:
            part.content_type, part.params = "text/plain", params
            detail = f"invalid content type {value[:60]!r}; read as text/plain"
        else:
            part.content_type, part.params = "application/octet-stream", params
            detail = f"invalid content type {value[:60]!r}; read as application/octet-stream"
        self.defects.append((where, "invalid_content_type", detail))

    def _multipart(self, part: Part, depth: int) -> None:
        where = defect_path(part.path)
        if depth >= self.options.max_depth:
            detail = f"multipart nested deeper than {self.options.max_depth}; kept opaque"
            self.defects.append((where, "too_deep", detail))
            return
        boundary_text = part.params.get("boundary", "")
        spans: list[tuple[int, int]] = []
        closed = False
        if boundary_text:
            boundary = boundary_text.encode("utf-8", "replace")
            spans, closed = split_multipart(self.buf, part.body_start, part.body_end, boundary)
        preamble: Part | None = None
        if not spans:
            guess = _guess_boundary(self.buf, part.body_start, part.body_end)
            if guess is not None:
                guessed, first = guess
                spans, closed = split_multipart(self.buf, part.body_start, part.body_end, guessed)
                preamble = self._preamble(part, first)
            if spans and guess is not None:
                found = guess[0].decode("utf-8", "replace")[:80]
                if boundary_text:
                    detail = f"boundary {boundary_text[:80]!r} not in the body; used {found!r}"
                else:
                    detail = f"no boundary parameter; used {found!r} found in the body"
                if preamble is not None:
                    detail += "; the text before it is kept as the first part"
                self.defects.append((where, "boundary_guessed", detail))
            else:
                kind = "boundary_not_found" if boundary_text else "multipart_without_boundary"
                detail = "no usable boundary; the body is read as text/plain"
                self.defects.append((where, kind, detail))
                part.content_type, part.params = "text/plain", {}
                return
        if not closed:
            self.defects.append((where, "missing_close_boundary", "last part runs to the end"))
        default = "message/rfc822" if part.content_type == "multipart/digest" else "text/plain"
        prefix = f"{part.path}." if part.path else ""
        children: list[Part] = []
        if preamble is not None:
            preamble.path = f"{prefix}1"
            children.append(preamble)
        for index, (start, end) in enumerate(spans, len(children) + 1):
            if self.count >= self.options.max_parts:
                skipped = len(spans) - index + 1
                detail = f"{skipped} parts past the limit of {self.options.max_parts} skipped"
                self.defects.append((where, "too_many_parts", detail))
                break
            children.append(self._entity(start, end, f"{prefix}{index}", depth + 1, default))
        part.children = children

    def _preamble(self, part: Part, first: int) -> Part | None:
        """The text before a guessed boundary, as a headerless text part; None if blank.

        With the declared boundary missing, nothing says that text is a MIME preamble
        (which readers ignore): it is often the message itself, so it is kept.
        """
        end = first
        if end > part.body_start and self.buf[end - 1] == 0x0A:
            end -= 1
            if end > part.body_start and self.buf[end - 1] == 0x0D:
                end -= 1
        if not self.buf[part.body_start : end].strip():
            return None
        return Part("", [], "text/plain", {}, part.body_start, end)
