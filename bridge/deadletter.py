"""The dead-letter store: rejected messages spooled to disk, durably, before they are deleted.

Layout under the store's directory::

    <mailbox>/<key>.eml     the raw message, byte for byte
    <mailbox>/<key>.json    why it was spooled, and when

``<key>`` is derived from (mailbox, UIDL), so writing the same message again (a
crash between spooling and QUIT) replaces its files instead of adding a copy.
Each file is written to a temporary name, fsynced, renamed into place, and the
directory is fsynced: when :meth:`DeadLetterStore.write` returns, both files
survive a crash or power loss, and only then may the caller send DELE.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.redact import scrub

__all__ = ["DeadLetter", "DeadLetterStore"]

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One spooled message: where its files are and what its metadata says."""

    eml_path: Path
    json_path: Path
    meta: Mapping[str, Any]

    @property
    def mailbox(self) -> str:
        """The mailbox it came from."""
        return str(self.meta["mailbox"])

    @property
    def uidl(self) -> str:
        """Its UIDL on that mailbox."""
        return str(self.meta["uidl"])

    @property
    def reason(self) -> str:
        """Why it was spooled."""
        return str(self.meta["reason"])

    def read(self) -> bytes:
        """The raw message bytes."""
        return self.eml_path.read_bytes()


class DeadLetterStore:
    """A directory of dead letters; created (mode 0700) on the first write."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        """Use ``directory``; nothing touches the disk until :meth:`write`."""
        self.directory = Path(directory)

    def write(
        self,
        mailbox: str,
        uidl: str,
        raw: bytes,
        reason: str,
        *,
        webhook_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> Path:
        """Spool ``raw`` with ``reason`` durably and return the ``.eml`` path.

        The ``.eml`` lands first, then the ``.json``, so a listed ``.json`` always has
        its message. ``extra`` adds JSON-serialisable fields to the metadata.
        Raises :class:`OSError` if the disk refuses; then nothing may be deleted.
        """
        folder = self.directory / _folder_name(mailbox)
        key = hashlib.sha256(f"{mailbox}\x00{uidl}".encode()).hexdigest()[:32]
        stamp = time.time() if now is None else now
        meta: dict[str, Any] = {
            "format": _FORMAT,
            "mailbox": mailbox,
            "uidl": uidl,
            "reason": scrub(reason),
            "webhook_id": webhook_id,
            "size": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest(),
            "spooled_at": stamp,
            "spooled_at_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)),
            **{k: scrub(v) if isinstance(v, str) else v for k, v in (extra or {}).items()},
        }
        encoded = json.dumps(meta, ensure_ascii=False, indent=2).encode() + b"\n"
        _make_dirs(folder)
        eml = folder / f"{key}.eml"
        _write_durably(eml, raw)
        _write_durably(folder / f"{key}.json", encoded)
        _fsync_dir(folder)
        return eml

    def list(self, mailbox: str | None = None) -> list[DeadLetter]:
        """Every dead letter (of one mailbox, if given), oldest first."""
        found = [letter for letter in self._scan() if mailbox is None or letter.mailbox == mailbox]
        return sorted(found, key=lambda d: (float(d.meta.get("spooled_at", 0)), str(d.eml_path)))

    def get(self, mailbox: str, uidl: str) -> DeadLetter | None:
        """The dead letter of one message, or None."""
        key = hashlib.sha256(f"{mailbox}\x00{uidl}".encode()).hexdigest()[:32]
        json_path = self.directory / _folder_name(mailbox) / f"{key}.json"
        if not json_path.exists():
            return None
        return _load(json_path)

    def _scan(self) -> Iterator[DeadLetter]:
        if not self.directory.is_dir():
            return
        for json_path in self.directory.glob("*/*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                yield _load(json_path)


def _load(json_path: Path) -> DeadLetter:
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or "mailbox" not in meta or "uidl" not in meta:
        raise ValueError(f"{json_path} is not dead-letter metadata")
    return DeadLetter(eml_path=json_path.with_suffix(".eml"), json_path=json_path, meta=meta)


def _folder_name(mailbox: str) -> str:
    """The mailbox name if it is a safe file name, else a stable hash of it."""
    if _SAFE_NAME.fullmatch(mailbox) and mailbox not in (".", ".."):
        return mailbox
    return "mailbox-" + hashlib.sha256(mailbox.encode()).hexdigest()[:16]


def _write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temporary file, fsync, rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


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
