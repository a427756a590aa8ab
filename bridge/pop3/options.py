"""Connection options as value objects: timeouts and the TLS mode."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Timeouts", "TlsMode"]


class TlsMode(StrEnum):
    """How the connection is encrypted."""

    IMPLICIT = "implicit"
    """TLS from the first byte (port 995)."""
    STARTTLS = "starttls"
    """Plain connect, then ``STLS`` (RFC 2595); fails if the server does not offer it."""
    NONE = "none"
    """No encryption. Credentials are then refused unless ``allow_insecure`` is given."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Every time bound of a POP3 session, in seconds (None: unbounded).

    * ``connect``: TCP connect plus the TLS handshake (and the STLS handshake).
    * ``read``: the longest wait for any bytes while a reply is due. A read that times out
      closes the connection, so a late reply can never be taken for the next command's.
    * ``command``: one whole command, including a multi-line body (a slow trickle of bytes
      that keeps ``read`` happy still ends here).
    * ``session``: everything from ``connect()`` on; commands after it fail with a timeout.
    """

    connect: float | None = 30.0
    read: float | None = 60.0
    command: float | None = 300.0
    session: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "command", "session"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"Timeouts.{name} must be positive or None, not {value!r}")
