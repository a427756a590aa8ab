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

    * ``connect``: TCP connect, the TLS handshake and the greeting, in total (and the STLS
      handshake).
    * ``read``: the longest wait for any bytes while a reply is due (the idle timeout).
      A read that times out closes the connection, so a late reply can never be taken for
      the next command's.
    * ``command``: one single-line reply, in total (a trickle that keeps ``read`` happy
      still ends here).
    * ``min_rate``: octets per second a multi-line reply (RETR, TOP, LIST, UIDL) must
      average once ``read`` seconds have passed since it began: a slow but steady transfer
      of a large message goes on, a trickle ends. None: only the idle timeout applies.
    * ``session``: everything from ``connect()`` on; commands after it fail with a timeout.
    """

    connect: float | None = 30.0
    read: float | None = 60.0
    command: float | None = 60.0
    session: float | None = None
    min_rate: float | None = 2048.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "command", "session", "min_rate"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"Timeouts.{name} must be positive or None, not {value!r}")
