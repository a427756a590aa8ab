"""A content store in any S3-compatible bucket (AWS S3, MinIO, Ceph RGW, R2, ...), via aiobotocore.

Objects are named ``<prefix><sha256>``. :meth:`S3Store.put` returns once the store answered
the ``PutObject`` with success (S3 makes a successful PUT durable and readable at once) and
gives a presigned ``GetObject`` URL that stays valid ``url_expiry`` seconds, so the receiver
needs no credentials. aiobotocore is an optional dependency: ``pip install 'popbridge[s3]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from bridge.attachments.store import OnWrite, PruneResult, StoreKind
from bridge.errors import AttachmentStoreError

__all__ = ["S3Store", "s3_available"]

MAX_URL_EXPIRY = 7 * 24 * 3600
"""SigV4 presigned URLs live at most 7 days."""


def s3_available() -> bool:
    """True when aiobotocore can be imported."""
    try:
        import aiobotocore.session  # noqa: F401
    except ImportError:
        return False
    return True


class S3Store:
    """Attachments as objects in one bucket; the client connects on first use."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing_style: Literal["auto", "path", "virtual"] = "auto",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        url_expiry: int = MAX_URL_EXPIRY,
        timeout: float = 60.0,
        max_attempts: int = 3,
        on_write: OnWrite | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Configure the store; without keys the default AWS credential chain is used.

        ``timeout`` bounds each request (seconds); ``max_attempts`` counts tries per call,
        with botocore's standard retry backoff between them.
        """
        if not 1 <= url_expiry <= MAX_URL_EXPIRY:
            raise ValueError(f"url_expiry must be 1 to {MAX_URL_EXPIRY} seconds")
        self.bucket = bucket
        self.prefix = prefix
        self.url_expiry = url_expiry
        self._endpoint_url = endpoint_url
        self._region = region
        self._addressing_style = addressing_style
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._on_write = on_write
        self._clock = clock
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self._connecting: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, prefix={self.prefix!r})"

    @property
    def kind(self) -> StoreKind:
        """Always ``"s3"``."""
        return "s3"

    def key(self, sha256: str) -> str:
        """The object key of the content with this hex SHA-256."""
        return f"{self.prefix}{sha256}"

    async def _get_client(self) -> Any:
        if self._client is not None:
            return self._client
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:  # concurrent first puts share one client
            if self._client is None:
                await self._connect()
        return self._client

    async def _connect(self) -> None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        config = AioConfig(
            connect_timeout=min(self._timeout, 30.0),
            read_timeout=self._timeout,
            retries={"max_attempts": self._max_attempts, "mode": "standard"},
            s3={"addressing_style": self._addressing_style},
            signature_version="s3v4",
        )
        stack = contextlib.AsyncExitStack()
        self._client = await stack.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=self._endpoint_url,
                region_name=self._region,
                aws_access_key_id=self._access_key_id,
                aws_secret_access_key=self._secret_access_key,
                config=config,
            )
        )
        self._stack = stack

    async def put(self, data: bytes, sha256: str) -> str:
        """PUT ``data`` as ``<prefix><sha256>`` and return a presigned GET URL for it."""
        key = self.key(sha256)
        try:
            client = await self._get_client()
            await client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentLength=len(data),
                ContentType="application/octet-stream",
            )
            url = await client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=self.url_expiry,
            )
        except Exception as exc:  # botocore, aiohttp and OS errors alike: the store failed
            raise AttachmentStoreError(
                f"attachment store s3 bucket {self.bucket!r}: cannot put an object: "
                f"{_describe(exc)}",
                store="s3",
            ) from exc
        if self._on_write is not None:
            self._on_write(len(data))
        return str(url)

    async def prune(self, older_than: float, *, now: float | None = None) -> PruneResult:
        """Delete objects under the prefix last written more than ``older_than`` seconds ago."""
        cutoff = (self._clock() if now is None else now) - older_than
        removed = removed_bytes = kept = kept_bytes = 0
        try:
            client = await self._get_client()
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                doomed: list[dict[str, str]] = []
                for item in page.get("Contents", []):
                    modified: datetime = item["LastModified"]
                    if modified.timestamp() < cutoff:
                        doomed.append({"Key": item["Key"]})
                        removed_bytes += int(item.get("Size", 0))
                    else:
                        kept += 1
                        kept_bytes += int(item.get("Size", 0))
                if doomed:  # a page holds at most 1000 keys, the DeleteObjects limit
                    answer = await client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": doomed, "Quiet": True}
                    )
                    errors = answer.get("Errors", [])
                    if errors:
                        first = errors[0]
                        raise AttachmentStoreError(
                            f"attachment store s3 bucket {self.bucket!r}: {len(errors)} "
                            f"object(s) not deleted, e.g. {first.get('Key')}: "
                            f"{first.get('Code')}",
                            store="s3",
                        )
                    removed += len(doomed)
        except AttachmentStoreError:
            raise
        except Exception as exc:
            raise AttachmentStoreError(
                f"attachment store s3 bucket {self.bucket!r}: prune failed: {_describe(exc)}",
                store="s3",
            ) from exc
        return PruneResult(removed, removed_bytes, kept, kept_bytes)

    async def close(self) -> None:
        """Close the client and its connection pool."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()


def _describe(exc: BaseException) -> str:
    """A short reason that never holds a credential (botocore messages carry none)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code = error.get("Code") if isinstance(error, dict) else None
        if code:
            return f"{code}: {error.get('Message') or 'no message'}"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
