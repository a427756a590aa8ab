"""The content store port: where attachments sent by reference are kept.

A store is content-addressed: an object's name is the hex SHA-256 of its bytes, so writing
the same attachment twice (two targets, a retried message, the same file in many mails)
keeps one object. Writing it again refreshes its age, so :meth:`AttachmentStore.prune`
never removes an object that was just referred to.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["AttachmentStore", "OnWrite", "PruneResult", "StoreKind", "parse_duration"]

StoreKind = Literal["dir", "s3"]

OnWrite = Callable[[int], None]
"""``on_write(size_bytes)`` after each object is durably in the store."""


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What a prune removed and what is left."""

    removed: int
    removed_bytes: int
    kept: int
    kept_bytes: int


class AttachmentStore(Protocol):
    """Durable, content-addressed storage for attachment bytes."""

    @property
    def kind(self) -> StoreKind:
        """``"dir"`` or ``"s3"`` (for logs and errors)."""
        ...

    async def put(self, data: bytes, sha256: str) -> str:
        """Store ``data`` (whose hex SHA-256 is ``sha256``) durably; return its ``content_ref``.

        When this returns, the object survives a crash and can be fetched through the
        returned reference. Raises :class:`~bridge.errors.AttachmentStoreError`.
        """
        ...

    async def prune(self, older_than: float, *, now: float | None = None) -> PruneResult:
        """Remove objects last written more than ``older_than`` seconds before ``now``."""
        ...

    async def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""
        ...


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"15m"``, ``"12h"``, ``"30d"``, ``"2w"`` or ``"1d12h"``.

    Raises :class:`ValueError` with the accepted forms for anything else.
    """
    stripped = text.strip().lower()
    total = 0.0
    position = 0
    for match in _DURATION.finditer(stripped):
        if match.start() != position or (not match.group(2) and position != 0):
            break  # a gap, or a bare number after a unit ("12h30"): ambiguous
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not stripped or position != len(stripped):
        raise ValueError(
            f"{text!r} is not a duration; write a number with a unit s, m, h, d or w "
            "(e.g. 30d, 12h, 1d12h)"
        )
    return total
