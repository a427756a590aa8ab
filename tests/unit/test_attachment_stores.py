"""The attachment content stores: a local directory, and a real S3-protocol server (moto).

The S3 tests talk to ``moto_server`` as a separate process over loopback (tests/s3server.py)
with the same aiobotocore client the bridge uses in production, and fetch the presigned
URLs with the real aiohttp receiver's fetcher, checking the bytes against their sha256.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import stat
import time
from pathlib import Path

import pytest

from bridge.attachments import DirStore, S3Store, parse_duration
from bridge.errors import AttachmentStoreError, BridgeError
from tests.receiver import ClaimChecker, RecordedRequest
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY, S3Bucket


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read(path: str | Path) -> bytes:
    """A file's bytes (a helper, so async tests do not call pathlib directly)."""
    return Path(path).read_bytes()


def exists(path: str | Path) -> bool:
    return Path(path).exists()


def entries(path: Path) -> list[Path]:
    return list(path.iterdir())


# ---------------------------------------------------------------------- dir


async def test_dir_store_writes_content_addressed_private_files(tmp_path: Path) -> None:
    """An object lands at <path>/<sha[:2]>/<sha>, mode 0600 in 0700 folders, no temp left."""
    written: list[int] = []
    store = DirStore(tmp_path / "att", on_write=written.append)
    data = os.urandom(300_000)
    ref = await store.put(data, sha(data))
    path = tmp_path / "att" / sha(data)[:2] / sha(data)
    assert ref == str(path)
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "att").stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [sha(data)]
    assert written == [300_000]


async def test_dir_store_same_content_is_one_object_whose_age_is_refreshed(tmp_path: Path) -> None:
    """Writing identical bytes again keeps one file and resets its age (prune keeps it)."""
    store = DirStore(tmp_path)
    data = b"same attachment"
    ref = await store.put(data, sha(data))
    old = time.time() - 10 * 86400
    os.utime(ref, (old, old))
    assert await store.put(data, sha(data)) == ref
    assert os.stat(ref).st_mtime > old + 86400
    result = await store.prune(86400)
    assert (result.removed, result.kept) == (0, 1)
    assert read(ref) == data


async def test_dir_store_base_url_makes_the_ref_a_url(tmp_path: Path) -> None:
    """With base_url the ref is base_url/<sha256> (the operator serves the directory)."""
    store = DirStore(tmp_path, base_url="https://files.example.org/att/")
    data = b"x"
    assert await store.put(data, sha(data)) == f"https://files.example.org/att/{sha(data)}"


async def test_dir_store_prune_removes_only_old_objects(tmp_path: Path) -> None:
    """prune(older_than) removes objects last written before the cut-off and counts bytes."""
    store = DirStore(tmp_path)
    old, new = b"old" * 100, b"new" * 10
    old_ref = await store.put(old, sha(old))
    new_ref = await store.put(new, sha(new))
    stale = time.time() - 31 * 86400
    os.utime(old_ref, (stale, stale))
    result = await store.prune(parse_duration("30d"))
    assert (result.removed, result.removed_bytes, result.kept, result.kept_bytes) == (
        1,
        300,
        1,
        30,
    )
    assert not exists(old_ref)
    assert exists(new_ref)


async def test_dir_store_prune_waits_for_a_write_and_keeps_what_it_refreshed(
    tmp_path: Path,
) -> None:
    """A prune cannot remove an object while a write holds the store's shared lock; an object
    that write refreshed is kept (the prune looks at its age under the lock)."""
    store = DirStore(tmp_path)
    data = b"attachment sent again"
    ref = await store.put(data, sha(data))
    stale = time.time() - 40 * 86400
    os.utime(ref, (stale, stale))
    fd = os.open(tmp_path / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # what a concurrent put holds
        pruning = asyncio.create_task(store.prune(30 * 86400))
        await asyncio.sleep(0.2)
        assert not pruning.done()
        os.utime(ref)  # the concurrent put found the object present and refreshed it
    finally:
        os.close(fd)
    result = await pruning
    assert (result.removed, result.kept) == (0, 1)
    assert read(ref) == data


async def test_dir_store_failure_is_a_transient_store_error(tmp_path: Path) -> None:
    """A directory that cannot be created is an AttachmentStoreError (transient), not OSError."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = DirStore(blocker / "att")
    with pytest.raises(AttachmentStoreError) as info:
        await store.put(b"x", sha(b"x"))
    assert isinstance(info.value, BridgeError)
    assert info.value.transient
    assert info.value.store == "dir"
    assert str(blocker / "att") in str(info.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000), ("1d12h", 129600)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    """Durations for --older-than: a number with s, m, h, d or w, or several in a row."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "30x", "-1d", "12h30", "1.5.2h"])
def test_parse_duration_refuses_garbage(text: str) -> None:
    """Anything else is a ValueError that shows the accepted forms."""
    with pytest.raises(ValueError, match="s, m, h, d or w"):
        parse_duration(text)


# ---------------------------------------------------------------------- s3 (moto server)


def s3_store(s3: S3Bucket, **kwargs: object) -> S3Store:
    settings: dict[str, object] = {
        "bucket": s3.name,
        "endpoint_url": s3.endpoint_url,
        "region": REGION,
        "addressing_style": "path",
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
    }
    settings.update(kwargs)
    return S3Store(**settings)  # type: ignore[arg-type]


def fetch_request(ref: str, data: bytes) -> RecordedRequest:
    """A recorded webhook request whose payload refers to ``data`` at ``ref``."""
    import json

    from multidict import CIMultiDict, CIMultiDictProxy

    body = json.dumps(
        {"attachments": [{"content_ref": ref, "size": len(data), "sha256": sha(data)}]}
    ).encode()
    return RecordedRequest("POST", "/hook", "", CIMultiDictProxy(CIMultiDict()), body, 0.0, 0.0)


async def test_s3_store_puts_the_object_and_a_presigned_url_fetches_it(
    s3_bucket: S3Bucket,
) -> None:
    """put() writes <prefix><sha256>; its presigned URL serves the same bytes without keys."""
    written: list[int] = []
    store = s3_store(s3_bucket, prefix="mail/", url_expiry=600, on_write=written.append)
    data = os.urandom(200_000)
    try:
        ref = await store.put(data, sha(data))
    finally:
        await store.close()
    assert s3_bucket.keys() == [f"mail/{sha(data)}"]
    assert s3_bucket.get(f"mail/{sha(data)}") == data
    assert ref.startswith(f"{s3_bucket.endpoint_url}/{s3_bucket.name}/mail/{sha(data)}?")
    assert "X-Amz-Expires=600" in ref
    assert SECRET_KEY not in ref
    checker = ClaimChecker()
    reply = await checker(fetch_request(ref, data))
    assert (reply.status, checker.problems) == (200, [])
    assert checker.fetched == {sha(data): data}
    assert written == [200_000]


async def test_s3_store_prune_removes_objects_past_the_cutoff(s3_bucket: S3Bucket) -> None:
    """prune() lists the prefix and deletes what is older than the cut-off; others stay."""
    store = s3_store(s3_bucket, prefix="p/")
    s3_bucket.server.client().put_object(Bucket=s3_bucket.name, Key="other/keep", Body=b"k")
    try:
        for data in (b"one", b"two!"):
            await store.put(data, sha(data))
        kept = await store.prune(3600)
        assert (kept.removed, kept.kept, kept.kept_bytes) == (0, 2, 7)
        gone = await store.prune(3600, now=time.time() + 7200)
        assert (gone.removed, gone.removed_bytes, gone.kept) == (2, 7, 0)
    finally:
        await store.close()
    assert s3_bucket.keys() == ["other/keep"]


async def test_s3_store_failure_names_the_bucket_and_never_the_secret(
    s3_bucket: S3Bucket,
) -> None:
    """A missing bucket is an AttachmentStoreError with the S3 error code, no credential."""
    store = s3_store(s3_bucket, bucket="no-such-bucket-here")
    try:
        with pytest.raises(AttachmentStoreError) as info:
            await store.put(b"x", sha(b"x"))
    finally:
        await store.close()
    text = str(info.value)
    assert "no-such-bucket-here" in text
    assert "NoSuchBucket" in text
    assert SECRET_KEY not in text
    assert info.value.store == "s3"
    assert info.value.transient


async def test_s3_store_unreachable_endpoint_is_a_store_error(s3_bucket: S3Bucket) -> None:
    """Nothing listening at the endpoint: AttachmentStoreError, not a botocore exception."""
    store = s3_store(s3_bucket, endpoint_url="http://127.0.0.1:9", timeout=2.0, max_attempts=1)
    try:
        with pytest.raises(AttachmentStoreError, match="cannot put an object"):
            await store.put(b"x", sha(b"x"))
    finally:
        await store.close()


async def test_s3_store_concurrent_first_puts_share_one_client(s3_bucket: S3Bucket) -> None:
    """Deliveries in flight at once put through one client; every object arrives."""
    store = s3_store(s3_bucket)
    blobs = [os.urandom(1000 + i) for i in range(6)]
    try:
        refs = await asyncio.gather(*(store.put(b, sha(b)) for b in blobs))
        client = store._client
        await store.put(blobs[0], sha(blobs[0]))
        assert store._client is client
    finally:
        await store.close()
    assert len(set(refs)) == 6
    assert sorted(s3_bucket.keys()) == sorted(sha(b) for b in blobs)
