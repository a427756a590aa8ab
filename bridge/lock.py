"""One process per ``data_dir``: an exclusive OS lock, and checks that ``data_dir`` is usable.

Two processes on one ledger post the same mail twice: each sees the other's messages as new
(Dovecot's default ``pop3_lock_session = no`` means the POP3 maildrop lock does not exist
there). Every command that writes the ledger therefore holds :class:`DataDirLock` for its
whole life: an ``flock(2)`` on ``data_dir/popbridge.lock``, which the kernel releases when the
process dies, however it dies. The file holds the holder's pid, so the second process can say
who has it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType

from bridge.errors import DataDirError, DataDirLockedError

__all__ = ["LOCK_FILENAME", "DataDirLock", "check_data_dir", "prepare_data_dir"]

LOCK_FILENAME = "popbridge.lock"


def prepare_data_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``data_dir`` (mode 0700) if it is missing and check that it is writable."""
    where = Path(path)
    problem = check_data_dir(where)
    if problem:
        raise DataDirError(problem, data_dir=str(where))
    try:
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(_cannot(where, "create", exc), data_dir=str(where)) from exc
    problem = check_data_dir(where)
    if problem:
        raise DataDirError(problem, data_dir=str(where))
    return where


def check_data_dir(path: str | os.PathLike[str]) -> str | None:
    """What makes ``data_dir`` unusable, or None; creates nothing.

    A missing ``data_dir`` is fine when its nearest existing parent is writable (it will be
    created on first use).
    """
    where = Path(path)
    probe = where
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"data_dir {where}: {probe} is not a directory; point data_dir at a directory"
    if os.statvfs(probe).f_flag & os.ST_RDONLY:
        return (
            f"data_dir {where} is on a read-only file system: "
            "set data_dir to a writable volume (in a container, mount one there)"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        who = f"uid {os.geteuid()}"
        if probe == where:
            return (
                f"data_dir {where} is not writable by this user ({who}): "
                "fix its owner or mode, or set data_dir to a writable directory"
            )
        return (
            f"data_dir {where} does not exist and {probe} is not writable by this user ({who}) "
            "to create it: create it with the right owner, or set data_dir elsewhere"
        )
    return None


class DataDirLock:
    """Exclusive lock on ``data_dir`` for this process; use as a context manager.

    Raises :class:`~bridge.errors.DataDirLockedError` (with the holder's pid) at once when
    another live process holds it; never waits.
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_FILENAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock (creating ``data_dir`` if needed)."""
        if self._fd is not None:
            return
        prepare_data_dir(self.data_dir)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise DataDirError(
                _cannot(self.path, "open", exc), data_dir=str(self.data_dir)
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DataDirError(
                    _cannot(self.path, "lock", exc), data_dir=str(self.data_dir)
                ) from exc
            who = f"pid {holder}" if holder else "another process"
            raise DataDirLockedError(
                f"data_dir {self.data_dir} is in use by another popbridge process ({who}); "
                "stop it first, or give this process its own data_dir "
                "(each replica or shard needs its own)",
                data_dir=str(self.data_dir),
                pid=holder,
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid is only a courtesy for the next process's message
        self._fd = fd

    def release(self) -> None:
        """Release the lock (the kernel also does when the process dies)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the only descriptor releases the flock

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cannot(path: Path, what: str, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    hint = {
        errno.EACCES: "fix its owner or mode, or set data_dir to a writable directory",
        errno.EPERM: "fix its owner or mode, or set data_dir to a writable directory",
        errno.EROFS: "the file system is read-only: set data_dir to a writable volume",
        errno.ENOSPC: "the disk is full: free space or move data_dir",
    }.get(exc.errno or 0, "check data_dir")
    return f"cannot {what} {path}: {reason}; {hint}"
