"""A content store in a local directory, written durably.

Layout: ``<path>/<first two hex digits>/<sha256>``, files 0600, folders 0700. Each object is
written to a unique temporary name in its folder, fsynced, renamed into place and the folder
fsynced, so when :meth:`DirStore.put` returns the bytes survive a crash or power loss, and a
reader never sees a half-written object under its final name.

Writers and :meth:`DirStore.prune` coordinate through ``flock`` on ``<path>/.lock`` (shared for
a write, exclusive for a prune; across processes too, e.g. the service and the ``prune``
command): an object that a write found present and refreshed is never removed by a prune
that had already listed it as old.

``content_ref`` is the object's absolute path, or ``base_url/<sha256>`` when the directory
is served over HTTP (by a web server the operator runs; the bridge serves nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bridge.attachments.store import OnWrite, PruneResult, StoreKind
from bridge.errors import AttachmentStoreError

__all__ = ["DirStore"]

_OBJECT_NAME = re.compile(r"[0-9a-f]{64}")
_STALE_TEMP_SECONDS = 3600.0


class DirStore:
    """Attachments as files under one directory (created 0700 on the first write)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        base_url: str | None = None,
        on_write: OnWrite | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Use ``path``; nothing touches the disk until the first :meth:`put`."""
        self.path = Path(path)
        self.base_url = base_url.rstrip("/") if base_url else None
        self._on_write = on_write
        self._clock = clock

    @property
    def kind(self) -> StoreKind:
        """Always ``"dir"``."""
        return "dir"

    def object_path(self, sha256: str) -> Path:
        """Where the object with this hex SHA-256 lives."""
        if not _OBJECT_NAME.fullmatch(sha256):
            raise ValueError("an object name is 64 lower-case hex digits (a SHA-256)")
        return self.path / sha256[:2] / sha256

    def ref(self, sha256: str) -> str:
        """The ``content_ref`` of an object: its URL under ``base_url``, else its path."""
        if self.base_url is not None:
            return f"{self.base_url}/{sha256}"
        return str(self.object_path(sha256).absolute())

    async def put(self, data: bytes, sha256: str) -> str:
        """Write ``data`` durably (or refresh the age of an identical object); return its ref."""
        try:
            await asyncio.to_thread(self._put, data, sha256)
        except OSError as exc:
            raise AttachmentStoreError(
                f"attachment store directory {self.path}: cannot write an object: "
                f"{exc.strerror or type(exc).__name__}; check the disk and permissions",
                store="dir",
            ) from exc
        if self._on_write is not None:
            self._on_write(len(data))
        return self.ref(sha256)

    def _put(self, data: bytes, sha256: str) -> None:
        target = self.object_path(sha256)
        _make_dirs(target.parent)
        with _flock(self.path, fcntl.LOCK_SH):
            self._put_locked(target, data, sha256)

    def _put_locked(self, target: Path, data: bytes, sha256: str) -> None:
        try:
            present = target.stat().st_size == len(data)
        except FileNotFoundError:
            present = False
        if present:
            os.utime(target)  # referred to again: prune counts its age from now
            return
        tmp = target.with_name(f".{sha256}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(target.parent)

    async def prune(self, older_than: float, *, now: float | None = None) -> PruneResult:
        """Delete objects whose last write is more than ``older_than`` seconds old."""
        cutoff = (self._clock() if now is None else now) - older_than
        try:
            return await asyncio.to_thread(self._prune, cutoff)
        except OSError as exc:
            raise AttachmentStoreError(
                f"attachment store directory {self.path}: prune failed: "
                f"{exc.strerror or type(exc).__name__}",
                store="dir",
            ) from exc

    def _prune(self, cutoff: float) -> PruneResult:
        if not self.path.is_dir():
            return PruneResult(0, 0, 0, 0)
        with _flock(self.path, fcntl.LOCK_EX):
            return self._prune_locked(cutoff)

    def _prune_locked(self, cutoff: float) -> PruneResult:
        removed = removed_bytes = kept = kept_bytes = 0
        for folder in sorted(self.path.iterdir()):
            if not folder.is_dir() or len(folder.name) != 2:
                continue
            changed = False
            for entry in folder.iterdir():
                try:
                    info = entry.stat()
                except FileNotFoundError:
                    continue
                if entry.name.endswith(".tmp"):  # left by a crash mid-write
                    if info.st_mtime < min(cutoff, self._clock() - _STALE_TEMP_SECONDS):
                        entry.unlink(missing_ok=True)
                        changed = True
                    continue
                if not _OBJECT_NAME.fullmatch(entry.name):
                    continue
                if info.st_mtime < cutoff:
                    entry.unlink(missing_ok=True)
                    removed += 1
                    removed_bytes += info.st_size
                    changed = True
                else:
                    kept += 1
                    kept_bytes += info.st_size
            if changed:
                _fsync_dir(folder)
        return PruneResult(removed, removed_bytes, kept, kept_bytes)

    async def close(self) -> None:
        """Nothing to release."""


@contextlib.contextmanager
def _flock(directory: Path, operation: int) -> Iterator[None]:
    """Hold ``flock(operation)`` on ``directory/.lock`` (created 0600) for the block."""
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _make_dirs(folder: Path) -> None:
    """Create ``folder`` and missing parents (0700), fsyncing each new entry's parent."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
        _fsync_dir(directory.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
