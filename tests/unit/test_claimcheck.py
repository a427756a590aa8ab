"""The claim check: payload attachments replaced by references to durably stored bytes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from bridge.attachments import ClaimCheck, DirStore
from bridge.errors import AttachmentStoreError
from bridge.mime import Payload, PayloadOptions, build_payload, payload_json

SMALL = b"small attachment\n" * 10
LARGE = bytes(range(256)) * 800  # 204,800 bytes


def message() -> bytes:
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.org"
    msg["Subject"] = "two attachments"
    msg.set_content("see attached\n")
    msg.add_attachment(SMALL, maintype="text", subtype="plain", filename="small.txt")
    msg.add_attachment(LARGE, maintype="application", subtype="octet-stream", filename="big.bin")
    msg.add_attachment(LARGE, maintype="application", subtype="octet-stream", filename="copy.bin")
    return bytes(msg)


def payload(include_raw: bool = False) -> Payload:
    return build_payload(
        message(),
        mailbox="inbox",
        uidl="1",
        webhook_id="msg_1",
        fetched_at=datetime(2026, 11, 28, tzinfo=UTC),
        options=PayloadOptions(include_raw=include_raw),
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read(path: str | Path) -> bytes:
    """A file's bytes (a helper, so async tests do not call pathlib directly)."""
    return Path(path).read_bytes()


def exists(path: str | Path) -> bool:
    return Path(path).exists()


def entries(path: Path) -> list[Path]:
    return list(path.iterdir())


async def test_reference_stores_every_attachment_and_the_raw_message(tmp_path: Path) -> None:
    """reference(): no bytes in the payload; each content_ref holds exactly its sha256's bytes."""
    writes: list[int] = []
    claim = ClaimCheck(DirStore(tmp_path, on_write=writes.append))
    original = payload(include_raw=True)
    referenced = await claim.reference(original)
    assert [a.filename for a in referenced.attachments] == ["small.txt", "big.bin", "copy.bin"]
    for before, after in zip(original.attachments, referenced.attachments, strict=True):
        assert (after.content, after.omitted, after.omitted_reason) == (None, True, "reference")
        assert (after.size, after.sha256) == (before.size, before.sha256)
        assert after.content_ref is not None
        assert sha(read(after.content_ref)) == after.sha256
    assert referenced.raw is None
    assert referenced.raw_ref is not None
    assert sha(read(referenced.raw_ref)) == original.sha256
    # The same content twice in one message is one object, written once.
    assert referenced.attachments[1].content_ref == referenced.attachments[2].content_ref
    assert sorted(writes) == sorted([len(SMALL), len(LARGE), original.size])
    body = json.loads(payload_json(referenced))
    assert all(a["content"] is None and a["content_ref"] for a in body["attachments"])


async def test_store_large_moves_only_attachments_over_the_threshold(tmp_path: Path) -> None:
    """store_large(): attachments over store_above go by reference, small ones stay inline."""
    claim = ClaimCheck(DirStore(tmp_path), store_above=10_000)
    result = await claim.store_large(payload(include_raw=True))
    small, big, copy = result.attachments
    assert small.content is not None
    assert base64.b64decode(small.content) == SMALL
    assert small.content_ref is None
    assert big.content_ref is not None
    assert big.content_ref == copy.content_ref
    assert read(big.content_ref) == LARGE
    assert result.raw is not None  # the raw message goes by reference only after a 413
    assert result.raw_ref is None


async def test_store_large_without_threshold_changes_nothing(tmp_path: Path) -> None:
    """No store_above: the payload is returned as it is and nothing is written."""
    original = payload()
    assert await ClaimCheck(DirStore(tmp_path)).store_large(original) is original
    assert entries(tmp_path) == []


async def test_reference_body_writes_once_for_every_target(tmp_path: Path) -> None:
    """Several targets asking at once share one set of writes and get the same body."""
    writes: list[int] = []
    claim = ClaimCheck(DirStore(tmp_path, on_write=writes.append))
    body = claim.reference_body(payload())
    bodies = await asyncio.gather(body(), body(), body())
    assert bodies[0] == bodies[1] == bodies[2]
    assert len(writes) == 2  # small.txt and one copy of the large content


async def test_content_that_does_not_match_its_sha256_is_never_stored(tmp_path: Path) -> None:
    """Bytes that do not hash to the stated sha256 raise a store error; nothing is written."""
    errors: list[int] = []
    original = payload()
    wrong = original.model_copy(
        update={
            "attachments": [
                original.attachments[0].model_copy(update={"sha256": "0" * 64}),
            ]
        }
    )
    claim = ClaimCheck(DirStore(tmp_path), on_error=lambda: errors.append(1))
    with pytest.raises(AttachmentStoreError, match="hashes to"):
        await claim.reference(wrong)
    assert entries(tmp_path) == []
    assert errors == [1]


async def test_a_failing_store_fails_the_reference_body(tmp_path: Path) -> None:
    """A store that cannot write makes the reference body raise AttachmentStoreError."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    errors: list[int] = []
    claim = ClaimCheck(DirStore(blocker / "att"), on_error=lambda: errors.append(1))
    with pytest.raises(AttachmentStoreError):
        await claim.reference_body(payload())()
    assert errors == [1]
