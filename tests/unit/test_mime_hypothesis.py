"""Property tests: any bytes, and real messages mutated at random, give a valid payload."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.mime import Payload, PayloadOptions, build_payload, payload_json

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
SEEDS = [p.read_bytes() for p in sorted(GOLDEN.glob("*.eml"))]
FETCHED_AT = datetime(2024, 1, 1, tzinfo=UTC)
TIGHT = PayloadOptions(max_parts=5, max_depth=2, max_headers=5, max_header_bytes=40)

# Bytes that matter to MIME parsers, to make mutations hit interesting places.
_SPECIAL = [
    b"\r\n",
    b"\n",
    b"\r",
    b"--",
    b"=",
    b"=?",
    b"?=",
    b":",
    b";",
    b'"',
    b"\x00",
    b"\xff",
    b"\xe9",
    b"boundary=",
    b"Content-Type: multipart/mixed; boundary=x\r\n",
    b"\r\n\r\n",
    b"--x\r\n",
    b"--x--",
    b"charset=",
    b"base64",
    b"*0*=",
    b"'",
]


def _check(raw: bytes, options: PayloadOptions) -> None:
    payload = build_payload(
        raw, mailbox="fuzz", uidl="1", webhook_id="msg_1", fetched_at=FETCHED_AT, options=options
    )
    body = payload_json(payload)
    again = Payload.model_validate_json(body)
    assert again == payload
    assert again.size == len(raw)
    assert all(d.kind != "parser_failed" for d in payload.defects)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000), st.booleans())
def test_arbitrary_bytes_give_a_valid_payload(raw: bytes, tight: bool) -> None:
    """Whatever the bytes, build_payload returns a payload whose JSON validates and round-trips."""
    _check(raw, TIGHT if tight else PayloadOptions())


@st.composite
def _mutated(draw: st.DrawFn, seed: bytes | None = None) -> bytes:
    data = bytearray(seed if seed is not None else draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "flip", "truncate"]))
        if action == "insert":
            data[pos:pos] = draw(st.one_of(st.sampled_from(_SPECIAL), st.binary(max_size=8)))
        elif action == "delete":
            del data[pos : pos + draw(st.integers(1, 40))]
        elif action == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif action == "truncate":
            del data[pos:]
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated(), st.booleans())
def test_mutated_messages_give_a_valid_payload(raw: bytes, tight: bool) -> None:
    """Golden messages with random edits (inserts of MIME syntax, cuts, byte flips) never fail."""
    _check(raw, TIGHT if tight else PayloadOptions())


def _corpus_seeds() -> list[bytes]:
    root = os.environ.get("POPBRIDGE_CORPUS")
    if not root:
        return []
    files = sorted(p for p in Path(root).rglob("*") if p.is_file() and p.stat().st_size < 200_000)
    return [p.read_bytes() for p in files if p.suffix not in (".md", ".tsv", ".py")]


CORPUS_SEEDS = _corpus_seeds()


@pytest.mark.skipif(not CORPUS_SEEDS, reason="POPBRIDGE_CORPUS is not set")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.booleans())
def test_mutated_corpus_messages_give_a_valid_payload(data: st.DataObject, tight: bool) -> None:
    """Real-world corpus messages with random edits never fail and always validate."""
    seed = data.draw(st.sampled_from(CORPUS_SEEDS))
    raw = data.draw(_mutated(seed))
    _check(raw, TIGHT if tight else PayloadOptions())
