"""Wire framing: status lines, multi-line bodies, dot-unstuffing, limits and command encoding.

The reader is fed through a real asyncio.StreamReader, in arbitrary chunk splits, so the
terminator and line ends split across reads are covered.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import (
    Pop3CommandArgumentError,
    Pop3ConnectionError,
    Pop3LineTooLongError,
    Pop3MessageTooLargeError,
    Pop3ProtocolError,
    Pop3TimeoutError,
)
from bridge.pop3.responses import Status
from bridge.pop3.wire import FrameReader, encode_command, unstuff
from tests.fakes.pop3server import stuff


def _reader(*chunks: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    for chunk in chunks:
        reader.feed_data(chunk)
    if eof:
        reader.feed_eof()
    return reader


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


async def _retr(*chunks: bytes, max_bytes: int | None = None) -> bytes:
    frames = FrameReader(_reader(*chunks), read_timeout=1.0)
    status = await frames.read_status()
    assert status.ok
    return await frames.read_body(max_bytes=max_bytes)


def _expected(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\r\n" for line in lines)


# Lines hold any octet but LF; a CR may appear inside a line but not at its end (it would
# make the line end CRLF).
line_strategy = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").rstrip(b"\r"))
dotty_line = st.one_of(
    line_strategy,
    line_strategy.map(lambda b: b"." + b),
    st.sampled_from([b".", b"..", b"...", b"", b". "]),
)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(dotty_line, max_size=30),
    bare_lf=st.lists(st.booleans(), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
async def test_property_framing_and_unstuffing_roundtrip(
    lines: list[bytes], bare_lf: list[bool], cuts: list[int]
) -> None:
    """Any message, mixed CRLF/LF line ends, dot-stuffed by the server and cut into arbitrary
    reads, comes back exactly as its CRLF-normalised original, and the stream stays framed
    (the next status line is read correctly)."""
    flags = bare_lf + [False] * len(lines)
    ends = [b"\n" if flags[i] else b"\r\n" for i in range(len(lines))]
    original = b"".join(line + end for line, end in zip(lines, ends, strict=True))
    wire = b"+OK message follows\r\n" + stuff(original) + b"+OK next\r\n"
    frames = FrameReader(_reader(*_split(wire, cuts)), read_timeout=1.0)
    assert (await frames.read_status()).ok
    assert await frames.read_body() == _expected(lines)
    nxt = await frames.read_status()
    assert nxt.text == "next"


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(dotty_line, max_size=20), cuts=st.lists(st.integers(0, 5000), max_size=6))
async def test_property_bare_lf_wire(lines: list[bytes], cuts: list[int]) -> None:
    """A sloppy server that sends bare LF on the wire (terminator '.\\n' included) still gives
    the CRLF form of the message."""
    wire = b"+OK\n" + stuff(_expected(lines), line_end=b"\n")
    frames = FrameReader(_reader(*_split(wire, cuts)), read_timeout=1.0)
    assert (await frames.read_status()).ok
    assert await frames.read_body() == _expected(lines)


async def test_empty_body_right_after_status_line() -> None:
    """'+OK\\r\\n.\\r\\n' is an empty body, also when the '.' line arrives in a later read."""
    assert await _retr(b"+OK\r\n.\r\n") == b""
    assert await _retr(b"+OK\r\n", b".", b"\r", b"\n") == b""


async def test_message_that_starts_with_a_dot_line() -> None:
    """A message whose first line is '.' travels as '..' and comes back as '.'."""
    assert await _retr(b"+OK\r\n..\r\nx\r\n.\r\n") == b".\r\nx\r\n"


async def test_terminator_split_across_reads() -> None:
    """The CRLF.CRLF terminator split over several reads is still found, once."""
    assert await _retr(b"+OK\r\nabc\r", b"\n.", b"\r", b"\n") == b"abc\r\n"


async def test_dot_lines_inside_are_not_terminators() -> None:
    """'..' and '.x' lines are data; only a line that is exactly '.' ends the body."""
    got = await _retr(b"+OK\r\n...\r\n..x\r\n.\rx\r\n.\r\n")
    assert got == b"..\r\n.x\r\n\rx\r\n"


async def test_unstuff_strips_exactly_one_dot() -> None:
    """unstuff removes one leading '.' per line and normalises bare LF to CRLF."""
    assert unstuff(b"..a\r\n...b\nc\n") == b".a\r\n..b\r\nc\r\n"
    assert unstuff(b"a\rb\r\n") == b"a\rb\r\n"


async def test_status_line_too_long() -> None:
    """A status line past max_line_length raises Pop3LineTooLongError, without a newline ever
    arriving (an endless line)."""
    frames = FrameReader(
        _reader(b"+OK " + b"x" * 100_000, eof=False), read_timeout=1.0, max_line_length=8192
    )
    with pytest.raises(Pop3LineTooLongError):
        await frames.read_status()


async def test_listing_line_too_long() -> None:
    """In a listing body an unterminated line past max_line raises Pop3LineTooLongError."""
    frames = FrameReader(_reader(b"+OK\r\n1 " + b"9" * 50_000, eof=False), read_timeout=1.0)
    await frames.read_status()
    with pytest.raises(Pop3LineTooLongError):
        await frames.read_body(max_line=1000)


async def test_size_limit_is_exact() -> None:
    """max_bytes equal to the size passes; one octet less gives None (too large), the body is
    read to its end and the next reply still pairs with its command."""
    body = b"0123456789\r\n" * 10
    wire = b"+OK\r\n" + stuff(body)
    assert await _retr(wire, max_bytes=len(body)) == body
    frames = FrameReader(_reader(wire + wire), read_timeout=1.0)
    assert (await frames.read_status()).ok
    assert await frames.read_body(max_bytes=len(body) - 1) is None
    assert (await frames.read_status()).ok
    assert await frames.read_body(max_bytes=len(body)) == body


async def test_too_large_body_is_dropped_to_its_end() -> None:
    """A body well past the limit is read and dropped in chunks (memory stays bounded) and the
    stream stays in step: the next reply is read correctly."""
    big = b"y" * 70 + b"\r\n"
    wire = b"+OK\r\n" + big * 20_000 + b".\r\n" + b"+OK next\r\n"
    frames = FrameReader(_reader(*_split(wire, list(range(0, len(wire), 65_537)))), read_timeout=1)
    await frames.read_status()
    assert await frames.read_body(max_bytes=10_000) is None
    assert len(frames._buf) < 300_000  # never held the whole 1.4 MB body
    assert (await frames.read_status()).text == "next"


async def test_size_limit_stops_reading_a_body_that_never_ends() -> None:
    """A body that goes on far past the limit is abandoned (Pop3MessageTooLargeError), not read
    until EOF."""
    reader = _reader(b"+OK\r\n" + b"x" * 200_000, eof=False)
    frames = FrameReader(reader, read_timeout=5.0)
    frames.discard_floor = 100_000
    await frames.read_status()
    with pytest.raises(Pop3MessageTooLargeError):
        await frames.read_body(max_bytes=10_000)


async def test_garbage_status_line() -> None:
    """A line that is neither +OK nor -ERR is a Pop3ProtocolError; '+ ' only counts as a SASL
    continuation when one is expected."""
    with pytest.raises(Pop3ProtocolError):
        await FrameReader(_reader(b"HELLO\r\n"), read_timeout=1.0).read_status()
    with pytest.raises(Pop3ProtocolError):
        await FrameReader(_reader(b"+ abc\r\n"), read_timeout=1.0).read_status()
    cont = await FrameReader(_reader(b"+ abc\r\n"), read_timeout=1.0).read_status(
        allow_continuation=True
    )
    assert cont.status is Status.CONTINUE
    assert cont.text == "abc"


async def test_err_with_response_code() -> None:
    """'-ERR [SYS/TEMP] busy' parses into status ERR, code SYS/TEMP and the text."""
    frames = FrameReader(_reader(b"-ERR [sys/temp] busy\r\n"), read_timeout=1.0)
    response = await frames.read_status()
    assert response.status is Status.ERR
    assert response.code == "SYS/TEMP"
    assert response.text == "busy"


async def test_eof_mid_body() -> None:
    """EOF in the middle of a multi-line body raises Pop3ConnectionError."""
    with pytest.raises(Pop3ConnectionError):
        await _retr(b"+OK\r\nhalf a mess")


async def test_read_timeout() -> None:
    """No bytes within read_timeout raises Pop3TimeoutError (a TimeoutError)."""
    frames = FrameReader(_reader(b"+OK\r\nsome", eof=False), read_timeout=0.05)
    await frames.read_status()
    with pytest.raises(Pop3TimeoutError):
        await frames.read_body()


@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "a\0b"])
async def test_encode_command_refuses_control_characters(bad: str) -> None:
    """CR, LF and NUL in an argument are refused, and the value is not in the message."""
    with pytest.raises(Pop3CommandArgumentError) as info:
        encode_command("PASS", bad)
    assert bad not in str(info.value)
    assert encode_command("RETR", "1") == b"RETR 1\r\n"
