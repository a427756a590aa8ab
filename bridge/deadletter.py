"""The dead-letter store: rejected messages spooled to disk, durably, before they are deleted.

Layout under the store's directory::

    <mailbox>/<key>.eml            the raw message, byte for byte
    <mailbox>/<key>.payload.json   the JSON payload as it was POSTed (when known)
    <mailbox>/<key>.json           why it was spooled, and when
    replays.json                   how many replays succeeded and failed, per mailbox

``<key>`` (32 hex digits) is the dead letter's id, shown by ``popbridge dead-letters``.

``<key>`` is derived from (mailbox, UIDL), so writing the same message again (a
crash between spooling and QUIT) replaces its files instead of adding a copy.
Each file is written to a temporary name, fsynced, renamed into place, and the
directory is fsynced: when :meth:`DeadLetterStore.write` returns, both files
survive a crash or power loss, and only then may the caller send DELE.
"""

from __future__ import annotations

import builtins
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
_REPLAYS = "replays.json"


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
        """Why it was spooled (or why its last replay failed)."""
        return str(self.meta["reason"])

    @property
    def id(self) -> str:
        """The dead letter's id: the file name without its extension."""
        return self.json_path.stem

    @property
    def payload_path(self) -> Path:
        """Where the POSTed payload is kept (it may not exist for older dead letters)."""
        return self.json_path.with_suffix(".payload.json")

    @property
    def webhook_id(self) -> str | None:
        """The ``webhook-id`` it was posted with, when recorded."""
        value = self.meta.get("webhook_id")
        return str(value) if value else None

    @property
    def targets(self) -> list[str]:
        """The targets that refused it (the ones a replay posts to), when recorded."""
        value = self.meta.get("targets")
        return [str(t) for t in value] if isinstance(value, list) else []

    def read(self) -> bytes:
        """The raw message bytes."""
        return self.eml_path.read_bytes()

    def payload(self) -> bytes | None:
        """The stored JSON payload, or None when only the raw message was kept."""
        try:
            return self.payload_path.read_bytes()
        except FileNotFoundError:
            return None


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
        payload: bytes | None = None,
    ) -> Path:
        """Spool ``raw`` with ``reason`` durably and return the ``.eml`` path.

        The ``.eml`` (and the ``payload`` as POSTed, if given) land first, then the
        ``.json``, so a listed ``.json`` always has its message. ``extra`` adds
        JSON-serialisable fields to the metadata (``targets``: the targets that refused it).
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
        if payload is not None:
            _write_durably(folder / f"{key}.payload.json", payload)
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

    def find(self, prefix: str) -> builtins.list[DeadLetter]:
        """The dead letters whose id starts with ``prefix`` (at least 4 hex digits)."""
        prefix = prefix.strip().lower()
        if len(prefix) < 4 or not all(c in "0123456789abcdef" for c in prefix):
            return []
        return [letter for letter in self._scan() if letter.id.startswith(prefix)]

    def update(self, letter: DeadLetter, **fields: Any) -> DeadLetter:
        """Rewrite the metadata of ``letter`` durably with ``fields`` changed."""
        meta = {**letter.meta, **fields}
        if isinstance(meta.get("reason"), str):
            meta["reason"] = scrub(meta["reason"])
        encoded = json.dumps(meta, ensure_ascii=False, indent=2).encode() + b"\n"
        _write_durably(letter.json_path, encoded)
        _fsync_dir(letter.json_path.parent)
        return DeadLetter(eml_path=letter.eml_path, json_path=letter.json_path, meta=meta)

    def remove(self, letter: DeadLetter) -> None:
        """Delete ``letter``'s files durably: the ``.json`` first, so it is never listed
        without its message."""
        for path in (letter.json_path, letter.payload_path, letter.eml_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        _fsync_dir(letter.json_path.parent)

    def replay_counts(self) -> dict[str, dict[str, int]]:
        """Replays so far, ``{mailbox: {"ok": n, "failed": m}}`` (empty when none)."""
        try:
            data = json.loads((self.directory / _REPLAYS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            str(mailbox): {k: int(v) for k, v in counts.items() if k in ("ok", "failed")}
            for mailbox, counts in data.items()
            if isinstance(counts, dict)
        }

    def count_replays(self, mailbox: str, outcome: str, count: int = 1) -> None:
        """Add ``count`` replays with ``outcome`` (ok or failed) to the persisted totals."""
        counts = self.replay_counts()
        per = counts.setdefault(mailbox, {"ok": 0, "failed": 0})
        per[outcome] = per.get(outcome, 0) + count
        _make_dirs(self.directory)
        _write_durably(self.directory / _REPLAYS, json.dumps(counts, indent=2).encode())

    def _scan(self) -> Iterator[DeadLetter]:
        if not self.directory.is_dir():
            return
        for json_path in self.directory.glob("*/*.json"):
            if json_path.name.endswith(".payload.json"):
                continue
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
